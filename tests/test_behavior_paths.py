"""Paths, hand-worked from PostHog's documentation, on every engine.

Nodes: L = account_linking/open, S = spending_analysis/view, B = budget_tracking/open.

* ``a`` (no session id): L, L, S at minutes 0, 1, 2; then B at 32 (a gap of exactly
  30 minutes: a new session) and S at 33;
* ``b`` (session ``s1``): L at 0, S at 50, B at 51: one session whatever the gaps;
* ``c`` (no session id): L, S, B, each 29 min 59 s after the previous: one session;
* ``d`` (no session id): L then S, twice, two hours apart: two paths of one user.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.analytics.behavior import PathsQuery, PathsResult
from banking_analytics.analytics.behavior._query import BehaviorQueryError, EventFilter
from behavior_flows_fixtures import module_analytics, store  # noqa: F401 (a fixture)

T0 = datetime(2026, 7, 6, tzinfo=UTC)
RANGE = {"date_from": T0, "date_to": T0 + timedelta(days=1)}
NODES = {
    "L": ("account_linking", "open"),
    "S": ("spending_analysis", "view"),
    "B": ("budget_tracking", "open"),
}


def event(user: str, node: str, seconds: float, session: str | None = None) -> dict[str, object]:
    feature, action = NODES[node]
    found: dict[str, object] = {
        "event_type": "behavior",
        "event_id": str(uuid.uuid4()),
        "user_id": user,
        "feature": feature,
        "action": action,
        "occurred_at": (T0 + timedelta(seconds=seconds)).isoformat(),
    }
    if session is not None:
        found["session_id"] = session
    return found


M = 60
ALMOST = 30 * M - 1
WORLD = [
    event("a", "L", 0),
    event("a", "L", 1 * M),
    event("a", "S", 2 * M),
    event("a", "B", 32 * M),
    event("a", "S", 33 * M),
    event("b", "L", 0, "s1"),
    event("b", "S", 50 * M, "s1"),
    event("b", "B", 51 * M, "s1"),
    event("c", "L", 0),
    event("c", "S", ALMOST),
    event("c", "B", 2 * ALMOST),
    event("d", "L", 0),
    event("d", "S", 1 * M),
    event("d", "L", 120 * M),
    event("d", "S", 121 * M),
]
L, S, B = (f"{f}/{a}" for f, a in NODES.values())
#: Only the budget events: a, b and c each have one, alone in its path.
OPENED_BUDGETS = EventFilter(features=("budget_tracking",))


@pytest.fixture(scope="module")
def world(module_analytics: BankingPerformanceAnalytics) -> BankingPerformanceAnalytics:  # noqa: F811
    store(module_analytics, WORLD)
    return module_analytics


def edges(result: PathsResult) -> list[tuple[int, str, str, int]]:
    return [(t.step, t.source, t.target, t.transitions) for t in result.transitions]


def test_transitions_are_counted_per_path(world: BankingPerformanceAnalytics) -> None:
    result = world.paths(PathsQuery(**RANGE))
    # Paths: a (L S), a (B S), b (L S B), c (L S B), d (L S) twice.
    assert result.paths == 6
    assert edges(result) == [(1, L, S, 5), (2, S, B, 2), (1, B, S, 1)]


def test_start_and_end_points(world: BankingPerformanceAnalytics) -> None:
    started = world.paths(PathsQuery(start_point=S, **RANGE))
    assert started.paths == 6
    assert edges(started) == [(1, S, B, 2)]
    ended = world.paths(PathsQuery(end_point=B, max_steps=2, **RANGE))
    # a's second path starts at B (B alone); b and c end S -> B.
    assert ended.paths == 3
    assert edges(ended) == [(1, S, B, 2)]


def test_at_most_max_steps_and_feature_nodes(world: BankingPerformanceAnalytics) -> None:
    short = world.paths(PathsQuery(max_steps=2, **RANGE))
    assert edges(short) == [(1, L, S, 5), (1, B, S, 1)]
    features = world.paths(PathsQuery(node="feature", limit=1, **RANGE))
    assert edges(features) == [(1, "account_linking", "spending_analysis", 5)]
    # Paths of one step make no transition, and are still read.
    alone = world.paths(PathsQuery(end_point=B, max_steps=2, **RANGE, events=OPENED_BUDGETS))
    assert (alone.paths, edges(alone)) == (3, [])


def test_bad_queries_are_refused() -> None:
    with pytest.raises(BehaviorQueryError, match="not both"):
        PathsQuery(start_point=L, end_point=B, **RANGE)
    with pytest.raises(BehaviorQueryError, match="max_steps"):
        PathsQuery(max_steps=11, **RANGE)
    with pytest.raises(BehaviorQueryError, match="limit"):
        PathsQuery(limit=0, **RANGE)
