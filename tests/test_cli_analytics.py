"""The analytics commands end to end (real subprocesses), on every engine."""

from __future__ import annotations

import json
import subprocess
import sys

CLI = [sys.executable, "-m", "banking_analytics.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=300, check=False, env=env
    )


def test_performance_and_health_report_a_simulated_store(store_url: str) -> None:
    simulated = run("simulate", "--users", "400", "--days", "7", "--db", store_url)
    assert simulated.returncode == 0, simulated.stderr

    text = run("performance", "--period", "7d", "--db", store_url)
    assert text.returncode == 0, text.stderr
    assert "success rate" in text.stdout
    assert "by institution" in text.stdout

    as_json = run("performance", "--period", "7d", "--json", "--db", store_url)
    perf = json.loads(as_json.stdout)
    assert perf["attempts"] > 0
    assert perf["time_period"]["label"] == "7d"

    health = run("health", "--lookback", "7d", "--json", "--db", store_url)
    assert health.returncode == 0, health.stderr
    states = {p["state"] for p in json.loads(health.stdout)["products"]}
    assert states <= {"HEALTHY", "DEGRADED", "DOWN", "UNKNOWN"}
    assert run("health", "--db", store_url).returncode == 0


def test_a_bad_period_is_one_line_and_exit_2(store_url: str) -> None:
    for args in (("performance", "--period", "yesterday"), ("health", "--lookback", "0d")):
        result = run(*args, "--db", store_url)
        assert result.returncode == 2
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert "error:" in result.stderr
