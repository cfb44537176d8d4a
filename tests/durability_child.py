"""Child process for the durability test: ingest forever, print each id once acknowledged.

Four threads record through the facade (group commit); a line is printed only
after the event's commit returned, so every printed id must survive SIGKILL.
"""

from __future__ import annotations

import sys
import threading
import uuid
from datetime import UTC, datetime

from banking_analytics import BankingPerformanceAnalytics

lock = threading.Lock()


def produce(analytics: BankingPerformanceAnalytics, worker: int) -> None:
    while True:
        batch = [
            {
                "event_type": "behavior",
                "event_id": str(uuid.uuid4()),
                "user_id": f"user-{worker}",
                "feature": "spending_analysis",
                "action": "view_report",
                "occurred_at": datetime.now(UTC).isoformat(),
            }
            for _ in range(50)
        ]
        if worker % 2:
            results = analytics.ingest(batch)
            acked = [r.event_id for r in results if r.status == "accepted"]
        else:
            pending = [analytics.submit(e) for e in batch]
            acked = [p.result().event_id for p in pending]
        with lock:
            sys.stdout.write("".join(f"{i}\n" for i in acked))
            sys.stdout.flush()


def main() -> None:
    analytics = BankingPerformanceAnalytics.open(sys.argv[1])
    threads = [threading.Thread(target=produce, args=(analytics, w), daemon=True) for w in range(4)]
    for t in threads:
        t.start()
    threads[0].join()


if __name__ == "__main__":
    main()
