"""docs/monitoring.md's anomaly and backtest examples (fenced as ``yaml anomaly``,
``python backtest`` and ``console backtest``) run as written, over the store that
tests/test_monitor_anomaly.py builds."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from banking_analytics import BankingPerformanceAnalytics, EventStatus
from banking_analytics.cli import app
from test_monitor_anomaly import weekly_attempts
from test_monitor_docs import DOC, DOC_DB, inside


def blocks(fence: str) -> list[str]:
    return [b.split("```", 1)[0] for b in DOC.split(f"```{fence}\n")[1:]]


def test_the_anomaly_and_backtest_examples_run_as_written(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    [rules] = blocks("yaml anomaly")
    assert rules.startswith("# file: anomaly-rules.yaml\n")
    (tmp_path / "anomaly-rules.yaml").write_text(rules)
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        assert {r.status for r in analytics.ingest(weekly_attempts())} == {EventStatus.ACCEPTED}

    [python] = blocks("python backtest")
    with inside(tmp_path):
        exec(compile(python.replace(DOC_DB, store_url), "docs/monitoring.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    expected = [
        line.strip()[2:]
        for line in python.split("print(", 1)[1].splitlines()
        if line.strip().startswith("# ")
    ]
    assert printed == ["4 evaluations, 2 instances", "ins_a 15:00-17:00 peak z -20.9 critical"]
    assert printed == expected

    [command] = blocks("console backtest")
    args = command.strip().removeprefix("$ banking-analytics ").replace(DOC_DB, store_url)
    with inside(tmp_path):
        result = CliRunner().invoke(app, args.split(), env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "1 firing episodes of 1 rules" in result.stdout
    assert "institution=ins_a" in result.stdout
    assert "2026-11-11T15:00:00+00:00" in result.stdout

    with inside(tmp_path):
        bad = CliRunner().invoke(app, [*args.split(), "--step", "fortnight"])
    assert bad.exit_code == 2
    assert "--step: a duration like" in bad.stderr
