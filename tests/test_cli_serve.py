"""``serve`` and ``demo``: settings refused with one line and exit 2; the demo's summary."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

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
