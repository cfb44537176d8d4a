"""``serve`` and ``demo``: settings refused with one line and exit 2; the demo's summary."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from api_server import CLI, SERVER_ENV, Server, free_port, wait_until_serving
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
    # The shipped alert rules are installed, and the hints run the CLI at once (no server).
    assert "Installed the 7 default alert rules" in result.stdout
    hints = " ".join(result.stdout.split())
    assert f"Try: banking-analytics performance --period 7d --db {db}" in hints
    assert f"banking-analytics alerts list --db {db}" in hints
    listed = CliRunner().invoke(app, ["rules", "list", "--db", db], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert "institution_success_rate_low" in listed.stdout


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


def test_demo_reuses_its_own_store_replaces_it_for_another_world_and_any_with_fresh(
    tmp_path: Path,
) -> None:
    store = tmp_path / "demo.duckdb"
    assert demo(store).exit_code == 0
    # Its own store, recognised by the marker beside it, with the same world: reused.
    leave_a_measurement(store)
    again = demo(store)
    assert again.exit_code == 0, again.output
    assert "Reusing the demo store" in again.stdout
    assert "simulated and stored" not in again.stdout
    assert measurements_left(store) == 1
    # Asked for another world, it replaces its own store.
    other_world = demo(store, "--seed", "7")
    assert other_world.exit_code == 0, other_world.output
    assert "simulated and stored" in other_world.stdout
    assert measurements_left(store) == 0
    # --fresh replaces it though the world is the same.
    leave_a_measurement(store)
    assert demo(store, "--seed", "7", "--fresh").exit_code == 0
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


def test_an_interrupted_demo_is_simulated_again(tmp_path: Path) -> None:
    store = tmp_path / "demo.duckdb"
    assert demo(store).exit_code == 0
    marker = tmp_path / "demo.duckdb.demo.json"
    made = json.loads(marker.read_text())
    del made["world"]  # as the marker is before the simulation has finished
    marker.write_text(json.dumps(made))
    leave_a_measurement(store)
    again = demo(store)
    assert again.exit_code == 0, again.output
    assert "simulated and stored" in again.stdout
    assert measurements_left(store) == 0


@pytest.mark.parametrize("command", ["demo", "serve"])
def test_a_busy_port_is_refused_before_anything_else(tmp_path: Path, command: str) -> None:
    store = tmp_path / "demo.duckdb"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            app,
            [command, "--db", f"duckdb:///{store}", "--port", str(port)],
            env={"COLUMNS": "200"},
        )
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr
    assert "make demo PORT=8001" in result.stderr
    assert not store.exists()  # nothing simulated, no store opened


def serve_demo(store: Path, port: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``banking-analytics demo`` serving a small world on ``port``; returns it and its output
    once it answers."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                CLI,
                "demo",
                "--db",
                f"duckdb:///{store}",
                "--users",
                "50",
                "--days",
                "1",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**SERVER_ENV, "COLUMNS": "300"},
        )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", proc, log, seconds=120)
    except RuntimeError:
        proc.kill()
        raise
    return proc, log.read_text()


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(30)


def test_the_demo_prints_its_real_port_and_serves_the_same_key_again(tmp_path: Path) -> None:
    store = tmp_path / "demo.duckdb"
    keys = []
    for run in ("first", "second"):
        port = free_port()
        proc, printed = serve_demo(store, port, tmp_path / f"{run}.log")
        try:
            assert f"http://127.0.0.1:{port}/" in printed
            assert ":8000" not in printed
            key = re.search(r"Admin API key: (\S+)", printed)
            assert key is not None, printed
            keys.append(key.group(1))
            answer = httpx.get(
                f"http://127.0.0.1:{port}/api/banking-analytics/admin/keys",
                headers={"Authorization": f"Bearer {key.group(1)}"},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            assert [k["name"] for k in answer.json()] == ["demo admin"]
        finally:
            stop(proc)
        assert ("Reusing the demo store" in printed) is (run == "second")
    assert keys[0] == keys[1]
    assert (tmp_path / "demo.duckdb.demo.json").stat().st_mode & 0o777 == 0o600


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
