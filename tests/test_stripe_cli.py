"""``banking-analytics import stripe-events FILE.jsonl`` end to end (real subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.ingest import map_stripe_event
from test_stripe_webhook import as_rows, lifecycle, stored

CLI = [sys.executable, "-m", "banking_analytics.cli"]


def run(*args: str, progress: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BA_PROGRESS": "1" if progress else "0"}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=300, check=False, env=env
    )


def write(path: Path, events: list[object], extra_lines: tuple[str, ...] = ()) -> Path:
    lines = [orjson.dumps(e).decode() for e in events] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_export_is_stored_like_the_webhook_stores_it(tmp_path: Path, store_url: str) -> None:
    events = lifecycle()
    path = write(tmp_path / "export.jsonl", events)
    result = run("import", "stripe-events", str(path), "--db", store_url, progress=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("8 Stripe events in "), result.stdout  # the time taken follows
    assert "7 snapshots stored, 0 duplicate, 1 events ignored, 0 rejected" in result.stdout
    assert "ignored 1 x customer.created: event type customer.created is not mapped" in (
        result.stdout
    )
    assert "importing export.jsonl" in result.stderr  # the progress bar
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        expected = [e for payload in events for e in map_stripe_event(payload).events]
        assert stored(analytics) == as_rows(expected)

    again = run("import", "stripe-events", str(path), "--db", store_url)
    assert again.returncode == 0, again.stderr
    assert "0 snapshots stored, 7 duplicate, 1 events ignored, 0 rejected" in again.stdout


def test_bad_lines_are_one_line_each_and_exit_2(tmp_path: Path, store_url: str) -> None:
    bad_currency = lifecycle()[3]
    bad_currency["data"]["object"]["currency"] = "dollars"
    path = write(
        tmp_path / "mixed.jsonl",
        [lifecycle()[0], bad_currency],
        ("{not json", '{"id": "evt_9", "type": "invoice.paid"}', ""),
    )
    result = run("import", "stripe-events", str(path), "--db", store_url)
    assert result.returncode == 2
    assert "4 Stripe events" in result.stdout
    assert "1 snapshots stored, 0 duplicate, 0 events ignored, 3 rejected" in result.stdout
    # Besides the store's resolved path, which every command that opens one prints once.
    problems = [p for p in result.stderr.strip().splitlines() if not p.startswith("store: ")]
    assert [p.split(": ", 1)[0] for p in problems] == [
        f"{path}:line 2",
        f"{path}:line 3",
        f"{path}:line 4",
    ]
    assert "currency" in problems[0]
    assert "not JSON" in problems[1]
    assert "created is not a unix time" in problems[2]


def test_an_unreadable_file_is_one_line_and_exit_2(tmp_path: Path, store_url: str) -> None:
    result = run("import", "stripe-events", str(tmp_path / "missing.jsonl"), "--db", store_url)
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot read")
    assert len(result.stderr.strip().splitlines()) == 1
