"""``serve`` and ``demo``: settings refused with one line and exit 2; the demo's summary."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from api_server import Server
from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.access import KeyStore, Role
from banking_analytics.cli import app


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"BA_JWT_HS256_SECRET": "changeme"}, "BA_JWT_HS256_SECRET"),
        ({"BA_JWT_HS256_SECRET": "short"}, "at least 32 bytes"),
        ({"BA_RATE_LIMIT_PER_SECOND": "-1"}, "BA_RATE_LIMIT_PER_SECOND"),
    ],
)
def test_serve_refuses_bad_settings_in_one_line(
    tmp_path: Path, env: dict[str, str], names: str
) -> None:
    result = CliRunner().invoke(
        app, ["serve", "--db", f"duckdb:///{tmp_path}/s.duckdb"], env={**env, "COLUMNS": "200"}
    )
    assert result.exit_code == 2
    assert names in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_demo_without_serving_simulates_and_summarises(tmp_path: Path) -> None:
    db = f"duckdb:///{tmp_path}/demo.duckdb"
    result = CliRunner().invoke(
        app,
        ["demo", "--db", db, "--users", "300", "--days", "3", "--no-serve"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "success rate" in result.stdout.lower()
    assert (tmp_path / "demo.truth.json").exists()


def demo(db: Path, *options: str) -> Result:
    """A small demo world into ``db``, without serving it."""
    return CliRunner().invoke(
        app,
        ["demo", "--db", f"duckdb:///{db}", "--users", "50", "--days", "1", "--no-serve", *options],
        env={"COLUMNS": "200"},
    )


def leave_a_measurement(db: Path) -> None:
    """Record one measurement by user ``mine`` into ``db`` (creating the store if need be)."""
    with BankingPerformanceAnalytics.open(f"duckdb:///{db}") as analytics:
        analytics.record_performance_metric(
            metric_type="error_rate", feature="transaction_sync", value=0.02, user_id="mine"
        )


def measurements_left(db: Path) -> int:
    with BankingPerformanceAnalytics.open(f"duckdb:///{db}") as analytics:
        found = analytics.engine.query(
            "SELECT count(*) AS n FROM performance_metric_events WHERE user_id = 'mine'"
        )
        return int(found["n"][0].as_py())


def test_demo_refuses_to_replace_a_file_it_did_not_make(tmp_path: Path) -> None:
    mine = tmp_path / "mine.duckdb"
    leave_a_measurement(mine)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a store at all")
    for precious in (mine, notes):
        before = precious.read_bytes()
        result = demo(precious)
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1
        assert "the demo did not make it" in result.stderr
        assert "--fresh" in result.stderr
        assert "Traceback" not in result.output
        assert precious.read_bytes() == before
    assert measurements_left(mine) == 1


def test_demo_replaces_its_own_store_and_any_with_fresh(tmp_path: Path) -> None:
    store = tmp_path / "demo.duckdb"
    assert demo(store).exit_code == 0
    # Its own store, recognised by the marker beside it: replaced, not added to.
    leave_a_measurement(store)
    again = demo(store)
    assert again.exit_code == 0, again.output
    assert measurements_left(store) == 0
    # Another file moved into its place is not the demo's, though the marker is there.
    other = tmp_path / "other.duckdb"
    leave_a_measurement(other)
    other.replace(store)
    assert (tmp_path / "demo.duckdb.demo.json").exists()
    refused = demo(store)
    assert refused.exit_code == 2, refused.output
    assert measurements_left(store) == 1
    # --fresh replaces it all the same, and the result is the demo's own again.
    for options in (["--fresh"], []):
        replaced = demo(store, *options)
        assert replaced.exit_code == 0, replaced.output
    assert measurements_left(store) == 0


def test_several_workers_need_postgresql(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["serve", "--db", f"duckdb:///{tmp_path}/s.duckdb", "--workers", "2"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 2
    assert "PostgreSQL" in result.stderr


@pytest.mark.postgres
def test_several_workers_serve_one_postgresql_store(
    postgres_store_url: str, tmp_path: Path
) -> None:
    with BankingPerformanceAnalytics.open(postgres_store_url) as analytics:
        key = KeyStore(analytics.engine).create("workers", Role.ADMIN).secret
    server = Server(postgres_store_url, tmp_path / "server.log", "--workers", "2")
    try:
        server.start()
        headers = {"Authorization": f"Bearer {key}"}
        body = {"metric_type": "error_rate", "feature": "transaction_sync", "value": 0.02}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            assert client.get("/readyz").status_code == 200
            answers = [
                client.post("/api/banking-analytics/performance/metric", json=body)
                for _ in range(40)
            ]
            assert {a.status_code for a in answers} == {201}
            report = client.get("/api/banking-analytics/admin/audit/verify").json()
        assert report["ok"] is True
    finally:
        server.stop()
    with BankingPerformanceAnalytics.open(postgres_store_url) as analytics:
        stored = analytics.engine.query("SELECT count(*) AS n FROM performance_metric_events")
        assert stored["n"][0].as_py() == 40
    assert "Started parent process" in (tmp_path / "server.log").read_text()
