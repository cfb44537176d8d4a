"""Institution health and sync freshness of a store, as one canonical JSON document.

    python -m benchmarks.answers URL --now ISO [--lookback 7d]

For checking that a change to how they are computed changes no answer: run it
with two versions of the code on the same store and compare the outputs, e.g.
another checkout's code against this one's::

    PYTHONPATH=../old/src .venv/bin/python benchmarks/answers.py URL --now ISO > before.json
    .venv/bin/python benchmarks/answers.py URL --now ISO > after.json
    cmp before.json after.json

Health comes with its whole history (every 15-minute step of every entity);
freshness lists every stale connection (one entry per feature it syncs), not
the 50 stalest. Entries equally late (never refreshed, most of all) are listed
in whatever order the engine returned them, so each run of equal lateness is
sorted by connection, institution, aggregator and feature here. Durations print
as text.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from itertools import groupby
from typing import Any

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.analytics import SyncFreshness


def answers(url: str, now: datetime, lookback: str) -> dict[str, Any]:
    with BankingPerformanceAnalytics.open(url) as analytics:
        health = analytics.institution_health(lookback, now=now, include_history=True)
        # Every stale connection, not the facade's 50 stalest.
        freshness = SyncFreshness(analytics.metrics).sync_freshness(
            lookback, now=now, stale_limit=10**9
        )
    freshness["stalest"] = [
        entry
        for _, tied in groupby(freshness["stalest"], key=_lateness)
        for entry in sorted(tied, key=_connection)
    ]
    return {"institution_health": health, "sync_freshness": freshness}


def _connection(entry: dict[str, Any]) -> tuple[str, str, str, str]:
    return (entry["connection_id"], entry["institution_id"], entry["aggregator"], entry["feature"])


def _lateness(entry: dict[str, Any]) -> tuple[bool, float]:
    freshness = entry["freshness_s"]
    return (
        freshness is None,
        0.0 if freshness is None else freshness / entry["expected_interval_s"],
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.answers")
    parser.add_argument("url")
    parser.add_argument("--now", required=True, type=datetime.fromisoformat)
    parser.add_argument("--lookback", default="7d")
    args = parser.parse_args(argv)
    document = answers(args.url, args.now, args.lookback)
    json.dump(document, sys.stdout, sort_keys=True, indent=1, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
