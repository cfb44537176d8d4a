"""Child process of the lease test: an alert evaluator over a store, on a clock the test sets.

``python lease_child.py STORE_URL CLOCK_FILE OWNER LEASE_SECONDS``: runs a
:class:`BackgroundEvaluator` whose clock is the time written in ``CLOCK_FILE``
(ISO-8601); after each cycle at a new time it prints one JSON line: that time
and the rules it evaluated (``[[rule, evaluated_at], ...]``).
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.monitor import BackgroundEvaluator, RuleEvaluation


def main() -> None:
    url, clock_file, owner, lease = sys.argv[1:5]
    used: list[datetime] = []
    printed: list[datetime] = []

    def clock() -> datetime:
        used.append(datetime.fromisoformat(Path(clock_file).read_text().strip()))
        return used[-1]

    def cycle(reports: list[RuleEvaluation]) -> None:
        at = used[-1]
        if reports or not printed or printed[-1] != at:
            evaluated = [[r.rule_name, r.evaluated_at.isoformat()] for r in reports]
            sys.stdout.write(json.dumps({"at": at.isoformat(), "evaluated": evaluated}) + "\n")
            sys.stdout.flush()
            printed.append(at)

    with BankingPerformanceAnalytics.open(url) as analytics:
        evaluator = BackgroundEvaluator(
            analytics.monitor,
            period_seconds=0.02,
            clock=clock,
            on_cycle=cycle,
            owner=owner,
            lease=timedelta(seconds=float(lease)),
        )
        evaluator.start()
        threading.Event().wait()  # until killed


if __name__ == "__main__":
    main()
