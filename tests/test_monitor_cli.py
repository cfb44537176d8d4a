"""``rules apply``, ``rules list``, ``rules defaults`` and ``alerts list`` on every engine."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import yaml
from typer.testing import CliRunner, Result

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.access import AuditLog
from banking_analytics.cli import app
from banking_analytics.monitor import default_rules, dump_rules, parse_rules
from test_monitor_evaluate import MINUTE, RULE, T0, hand_worked


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def test_a_rule_file_is_applied_versioned_audited_and_listed(
    store_url: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": [RULE]}))
    first = cli("rules", "apply", str(rules), "--db", store_url, "--json")
    assert first.exit_code == 0, first.output
    assert [(r["name"], r["version"], r["change"]) for r in json.loads(first.stdout)] == [
        ("success_low", 1, "created")
    ]
    again = cli("rules", "apply", str(rules), "--db", store_url)
    assert again.exit_code == 0, again.output
    assert "success_low │ 1       │ unchanged" in again.stdout

    listed = cli("rules", "list", "--db", store_url, "--json")
    [shown] = json.loads(listed.stdout)
    assert shown["definition"] == {**RULE, "interval": "1m"}
    text = cli("rules", "list", "--db", store_url)
    assert "connection_success_rate" in text.stdout
    assert "below" in text.stdout
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        entries = AuditLog(analytics.engine).entries(action="put_alert_rule")
    assert [(e.actor.startswith("cli:"), e.details["change"]) for e in reversed(entries)] == [
        (True, "created"),
        (True, "unchanged"),
    ]


def test_a_bad_rule_file_lists_each_problem_by_line_and_saves_nothing(
    store_url: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(dump_rules(parse_rules(yaml.safe_dump({"rules": [RULE]}), "x")))
    text = rules.read_text().replace("window: 30m", "window: 30 minutes")
    text = text.replace("warning: 0.9", "warning: high")
    rules.write_text(text)
    result = cli("rules", "apply", str(rules), "--db", store_url)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: {rules}:4: rules[0].window: a duration like 30s, 5m, 1h30m or 2d, "
        "got '30 minutes'",
        f"error: {rules}:8: rules[0].warning: a number, got 'high'",
    ]
    assert json.loads(cli("rules", "list", "--db", store_url, "--json").stdout) == []


def test_the_defaults_print_as_a_rule_file(tmp_path: Path) -> None:
    result = cli("rules", "defaults")
    assert result.exit_code == 0
    assert parse_rules(result.stdout, "defaults") == default_rules()


def test_alerts_list_shows_what_the_evaluator_raised(store_url: str) -> None:
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        analytics.ingest(hand_worked())
        monitor = analytics.monitor
        monitor.apply(parse_rules(yaml.safe_dump({"rules": [{**RULE, "for": "0"}]}), "x"), "t")
        monitor.evaluate(T0 + 30 * MINUTE)
    result = cli("alerts", "list", "--db", store_url, "--json")
    assert result.exit_code == 0, result.output
    assert [(a["labels"]["institution"], a["state"]) for a in json.loads(result.stdout)] == [
        ("ins_a", "firing"),
        ("ins_b", "firing"),
        ("ins_c", "nodata"),
    ]
    text = cli("alerts", "list", "--db", store_url, "--rule", "success_low").stdout
    assert "institution=ins_b" in text
    assert "critical" in text


def test_monitor_once_evaluates_at_the_latest_tick_and_delete_forgets_the_rule(
    store_url: str,
) -> None:
    now = datetime.now(UTC)
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        analytics.ingest(
            [{**e, "occurred_at": (now - 5 * MINUTE).isoformat()} for e in hand_worked()]
        )
        analytics.monitor.apply(
            parse_rules(yaml.safe_dump({"rules": [{**RULE, "for": "0"}]}), "x"), "t"
        )
    result = cli("monitor", "--once", "--db", store_url)
    assert result.exit_code == 0, result.output
    assert "success_low: 3 of 3 instances changed" in result.stdout
    deleted = cli("rules", "delete", "success_low", "--db", store_url)
    assert deleted.exit_code == 0, deleted.output
    assert "deleted success_low (version 2)" in deleted.stdout
    again = cli("rules", "delete", "success_low", "--db", store_url)
    assert again.exit_code == 2
    assert "no alert rule named 'success_low'" in again.stderr
