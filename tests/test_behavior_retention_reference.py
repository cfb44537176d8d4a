"""Retention against a slow, obviously correct per-user reference, on random event sets.

Hypothesis draws a few users with start (A), return (B) and other (X) events over a
range of days or weeks, some before the range; the interval, the timezone (UTC or
London, whose clocks change inside some ranges), the kind, the criterion and the return
event (B, or A itself: "any activity" retention, whose pairs are read once). The
reference numbers each event's period from its local calendar date (``zoneinfo``)
and counts the grid user by user, as the retention module's docs define it.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.analytics.behavior import (
    EventStep,
    RetentionCriterion,
    RetentionKind,
    RetentionQuery,
)
from behavior_flows_fixtures import module_analytics, store  # noqa: F401 (a fixture)

KINDS = {
    "A": ("account_linking", "open"),
    "B": ("spending_analysis", "view"),
    "X": ("goal_setting", "open"),
}
#: Each example reads its own 4 weeks (and the one before) from here, in each store.
ORIGIN = datetime(2022, 3, 7, tzinfo=UTC)
SLOTS = 48
_EXAMPLES: dict[int, itertools.count[int]] = {}


def period(moment: datetime, interval: str, zone: str) -> int:
    """A number of the local calendar day or Monday week holding ``moment``."""
    local: date = moment.astimezone(ZoneInfo(zone)).date()
    ordinal = local.toordinal()
    return ordinal if interval == "day" else (ordinal - local.weekday()) // 7


def reference(
    events: list[tuple[str, datetime, str]],
    start: datetime,
    end: datetime,
    interval: str,
    zone: str,
    kind: RetentionKind,
    criterion: RetentionCriterion,
    returning: str = "B",
) -> list[tuple[int, list[int]]]:
    first = period(start, interval, zone)
    last = period(end - timedelta(microseconds=1), interval, zone)
    cohorts: dict[int, set[str]] = {c: set() for c in range(first, last + 1)}
    returns: dict[str, set[int]] = {}
    for user in {u for u, _, _ in events}:
        mine = sorted((at, k) for u, at, k in events if u == user)
        starts = [at for at, k in mine if k == "A" and at < end]
        if kind is RetentionKind.RECURRING:
            for at in starts:
                if at >= start:
                    cohorts[period(at, interval, zone)].add(user)
        elif starts and starts[0] >= start:
            cohorts[period(starts[0], interval, zone)].add(user)
        returns[user] = {
            period(at, interval, zone) for at, k in mine if k == returning and start <= at < end
        }
    grid = []
    for c in range(first, last + 1):
        cells = []
        for n in range(last - c + 1):
            if n == 0:
                cells.append(len(cohorts[c]))
            elif criterion is RetentionCriterion.ON:
                cells.append(sum(1 for u in cohorts[c] if c + n in returns[u]))
            else:
                cells.append(sum(1 for u in cohorts[c] if max(returns[u], default=c) >= c + n))
        grid.append((len(cohorts[c]), cells))
    return grid


one_user = st.lists(
    st.tuples(st.integers(min_value=-7 * 24, max_value=28 * 24 - 1), st.sampled_from("AABX")),
    min_size=1,
    max_size=10,
)


@settings(
    max_examples=45,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    users=st.dictionaries(st.sampled_from("abcdef"), one_user, min_size=1, max_size=6),
    interval=st.sampled_from(["day", "week"]),
    zone=st.sampled_from(["UTC", "Europe/London"]),
    kind=st.sampled_from(list(RetentionKind)),
    criterion=st.sampled_from(list(RetentionCriterion)),
    days=st.integers(min_value=3, max_value=14),
    returning=st.sampled_from("AB"),
)
def test_retention_agrees_with_the_reference(
    module_analytics: BankingPerformanceAnalytics,  # noqa: F811
    users: dict[str, list[tuple[int, str]]],
    interval: str,
    zone: str,
    kind: RetentionKind,
    criterion: RetentionCriterion,
    days: int,
    returning: str,
) -> None:
    example = next(_EXAMPLES.setdefault(id(module_analytics), itertools.count()))
    # Five weeks per example: one before the range (first-time cohorts look back), four in.
    start = ORIGIN + (example % SLOTS) * timedelta(weeks=5) + timedelta(weeks=1)
    length = timedelta(days=days) if interval == "day" else timedelta(weeks=2 + days % 3)
    events = [
        (f"r{example}-{user}", start + timedelta(hours=hour), k)
        for user, moments in users.items()
        for hour, k in moments
    ]
    store(
        module_analytics,
        [
            {
                "event_type": "behavior",
                "event_id": str(uuid.uuid4()),
                "user_id": user,
                "feature": KINDS[k][0],
                "action": KINDS[k][1],
                "occurred_at": at.isoformat(),
            }
            for user, at, k in events
        ],
    )
    result = module_analytics.retention(
        RetentionQuery(
            date_from=start,
            date_to=start + length,
            interval=interval,  # type: ignore[arg-type]
            timezone=zone,
            start_event=EventStep("behavior", *KINDS["A"]),
            return_event=EventStep("behavior", *KINDS[returning]),
            kind=kind,
            criterion=criterion,
        )
    )
    assert [(c.users, [cell.users for cell in c.cells]) for c in result.cohorts] == reference(
        events, start, start + length, interval, zone, kind, criterion, returning
    )
