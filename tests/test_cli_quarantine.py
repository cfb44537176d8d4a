"""``quarantine list`` / ``show`` on every engine: the rejected events, by reason and time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner, Result

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.cli import app

GOOD = {"event_type": "behavior", "user_id": "u1", "feature": "budget_tracking", "action": "open"}


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def reject_three(store_url: str) -> None:
    """Two events with an unknown feature, one without an action, between two good ones."""
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        results = analytics.ingest(
            [
                GOOD,
                {**GOOD, "feature": "teleport"},
                {**GOOD, "feature": "time_travel"},
                {k: v for k, v in GOOD.items() if k != "action"},
                {**GOOD, "action": "close"},
            ]
        )
    assert [r.status.value for r in results] == [
        "accepted", "rejected", "rejected", "rejected", "accepted",
    ]  # fmt: skip


def listed(store_url: str, *options: str) -> list[dict[str, object]]:
    result = cli("quarantine", "list", "--json", "--db", store_url, *options)
    assert result.exit_code == 0, result.output
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def test_list_filters_by_reason_and_time(store_url: str) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    reject_three(store_url)
    after = datetime.now(UTC) + timedelta(seconds=1)
    everything = listed(store_url)
    assert sorted(row["position"] for row in everything) == [1, 2, 3]  # type: ignore[type-var]
    by_feature = listed(store_url, "--reason", "FEATURE: must be one of")
    assert sorted(row["position"] for row in by_feature) == [1, 2]  # type: ignore[type-var]
    assert [row["position"] for row in listed(store_url, "--reason", "action: is required")] == [3]
    assert listed(store_url, "--reason", "no such reason") == []
    assert len(listed(store_url, "--since", before.isoformat(timespec="seconds"))) == 3
    assert listed(store_url, "--since", after.isoformat(timespec="seconds")) == []
    assert listed(store_url, "--until", before.isoformat(timespec="seconds")) == []
    assert len(listed(store_url, "--limit", "2")) == 2
    as_text = cli("quarantine", "list", "--db", store_url)
    assert as_text.exit_code == 0, as_text.output
    assert "3 quarantined events" in as_text.stdout
    assert "teleport" not in as_text.stdout  # the reason, not the payload


def test_show_prints_one_event_in_full(store_url: str) -> None:
    reject_three(store_url)
    [row] = listed(store_url, "--reason", "action: is required")
    shown = cli("quarantine", "show", str(row["quarantine_id"]), "--json", "--db", store_url)
    assert shown.exit_code == 0, shown.output
    event = json.loads(shown.stdout)
    assert event["position"] == 3
    assert [e["field"] for e in event["errors"]] == ["action"]
    assert json.loads(event["raw"]) == {k: v for k, v in GOOD.items() if k != "action"}
    as_text = cli("quarantine", "show", str(row["quarantine_id"]), "--db", store_url)
    assert as_text.exit_code == 0, as_text.output
    assert "action: is required [missing]" in as_text.stdout
    assert "budget_tracking" in as_text.stdout  # the raw payload


def test_bad_input_is_one_line_and_exit_2(store_url: str) -> None:
    for args in (
        ["show", "00000000-0000-0000-0000-000000000000"],
        ["list", "--since", "2026-12-02", "--until", "2026-12-01"],
    ):
        result = cli("quarantine", *args, "--db", store_url)
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
