"""Events for tests that need many valid ones."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

__all__ = ["NOW", "behavior_events"]

NOW = datetime.now(UTC).replace(microsecond=0)


def behavior_events(n: int) -> list[dict[str, object]]:
    """``n`` valid behavior events with fresh ids, one second apart back from ``NOW``."""
    return [
        {
            "event_type": "behavior",
            "event_id": str(uuid.uuid4()),
            "user_id": f"user-{i % 7}",
            "feature": "budget_tracking",
            "action": "open",
            "occurred_at": (NOW - timedelta(seconds=i)).isoformat(),
        }
        for i in range(n)
    ]
