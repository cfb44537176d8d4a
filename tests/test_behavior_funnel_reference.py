"""Funnels against a slow, obviously correct per-user reference, on random event sets.

Hypothesis draws a few users with a few behaviour events each (four kinds: three the
steps use, one they never do, so strict funnels meet events between steps), two to
four steps (repeats allowed except in unordered funnels), an order and a conversion
window. The reference walks each user's events in order, from every possible start,
exactly as the funnel module's docs define it. Event times within a user are distinct
minutes (the SQL orders same-instant events by id; the reference needs no tie rule).
Each example reads its own stretch of time in one store per engine.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.analytics.behavior import EventStep, FunnelOrder, FunnelQuery
from behavior_flows_fixtures import (  # noqa: F401 (a fixture)
    module_analytics,
    nearest_rank,
    store,
)

KINDS = {
    "L": ("account_linking", "open"),
    "S": ("spending_analysis", "view"),
    "B": ("budget_tracking", "open"),
    "X": ("goal_setting", "open"),
}
SPAN = timedelta(days=6)
#: Each example reads its own week from here on: 250 weeks fit in the 5 years a store
#: accepts events from, per store (engine).
ORIGIN = datetime(2022, 2, 7, tzinfo=UTC)
SLOTS = 250
_EXAMPLES: dict[int, itertools.count[int]] = {}


def slot_start(analytics: BankingPerformanceAnalytics) -> tuple[int, datetime]:
    """A number for the example, and the start of the week it reads in this store."""
    example = next(_EXAMPLES.setdefault(id(analytics), itertools.count()))
    return example, ORIGIN + (example % SLOTS) * timedelta(weeks=1)


@dataclass(frozen=True)
class Event:
    user: str
    minute: int
    kind: str


def user_path(
    events: list[Event], steps: list[str], order: FunnelOrder, window: int
) -> tuple[int, list[int]]:
    """(steps reached, minutes of the steps' events) of one user's best path: most steps,
    then the earliest start. Unordered paths give only the first and last times."""
    events = sorted(events, key=lambda e: e.minute)
    best: tuple[int, list[int]] = (0, [])
    for a, start in enumerate(events):
        if order is FunnelOrder.UNORDERED:
            if start.kind not in steps:
                continue
            firsts = []
            for step in steps:
                times = [e.minute for e in events[a:] if e.kind == step]
                if times and times[0] - start.minute <= window:
                    firsts.append(times[0])
            path = (len(firsts), [start.minute, max(firsts)])
        else:
            if start.kind != steps[0]:
                continue
            times, at = [start.minute], a
            for step in steps[1:]:
                if order is FunnelOrder.STRICT:
                    following = events[at + 1 : at + 2]
                else:
                    following = events[at + 1 :]
                found = next((j for j, e in enumerate(following) if e.kind == step), None)
                if found is None:
                    break
                at = at + 1 + found
                if events[at].minute - start.minute > window:
                    break
                times.append(events[at].minute)
            path = (len(times), times)
        if path[0] > best[0]:
            best = path
    return best


def check_funnel(
    analytics: BankingPerformanceAnalytics,
    users: dict[str, list[tuple[int, str]]],
    steps: list[str],
    order: FunnelOrder,
    window_minutes: int,
) -> None:
    example, base = slot_start(analytics)
    events = [
        Event(f"x{example}-{user}", minute, kind)
        for user, moments in users.items()
        for minute, kind in moments
    ]
    store(
        analytics,
        [
            {
                "event_type": "behavior",
                "event_id": str(uuid.uuid4()),
                "user_id": e.user,
                "feature": KINDS[e.kind][0],
                "action": KINDS[e.kind][1],
                "occurred_at": (base + timedelta(minutes=e.minute)).isoformat(),
            }
            for e in events
        ],
    )
    query = FunnelQuery(
        steps=tuple(EventStep("behavior", *KINDS[s]) for s in steps),
        order=order,
        conversion_window=timedelta(minutes=window_minutes),
        date_from=base,
        date_to=base + SPAN,
    )
    paths = {
        user: user_path([e for e in events if e.user == user], steps, order, window_minutes)
        for user in {e.user for e in events}
    }
    paths = {user: path for user, path in paths.items() if path[0] > 0}
    k = len(steps)
    (total,) = analytics.funnel(query).series
    assert [s.users for s in total.steps] == [
        sum(1 for n, _ in paths.values() if n >= i) for i in range(1, k + 1)
    ]
    if order is not FunnelOrder.UNORDERED:
        for i, step in enumerate(total.steps[1:], 2):
            gaps = [60.0 * (t[i - 1] - t[i - 2]) for n, t in paths.values() if n >= i]
            assert step.median_seconds_from_previous == nearest_rank(gaps, 0.5)
    converted = [60.0 * (t[-1] - t[0]) for n, t in paths.values() if n == k]
    assert total.time_to_convert.percentiles == {
        f"p{round(q * 100)}": nearest_rank(converted, q) for q in (0.1, 0.25, 0.5, 0.75, 0.9)
    }
    for i in range(1, k + 1):
        page = analytics.behavior.funnel_users(query, i, limit=1000)
        assert page.users == sorted(u for u, (n, _) in paths.items() if n == i)


minutes = st.integers(min_value=0, max_value=int(SPAN.total_seconds() // 60) - 1)
one_user = st.lists(
    st.tuples(minutes, st.sampled_from(sorted(KINDS))),
    min_size=1,
    max_size=8,
    unique_by=lambda e: e[0],
)


@st.composite
def definitions(draw: st.DrawFn) -> tuple[list[str], FunnelOrder]:
    order = draw(st.sampled_from(list(FunnelOrder)))
    count = draw(st.integers(min_value=2, max_value=3 if order is FunnelOrder.UNORDERED else 4))
    if order is FunnelOrder.UNORDERED:
        steps = draw(st.permutations(["L", "S", "B"]))[:count]
    else:
        steps = draw(st.lists(st.sampled_from(["L", "S", "B"]), min_size=count, max_size=count))
    return list(steps), order


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    users=st.dictionaries(st.sampled_from("abcde"), one_user, min_size=1, max_size=5),
    definition=definitions(),
    window_minutes=st.sampled_from([60, 24 * 60, 3 * 24 * 60]),
)
def test_funnels_agree_with_the_reference(
    module_analytics: BankingPerformanceAnalytics,  # noqa: F811
    users: dict[str, list[tuple[int, str]]],
    definition: tuple[list[str], FunnelOrder],
    window_minutes: int,
) -> None:
    steps, order = definition
    check_funnel(module_analytics, users, steps, order, window_minutes)
