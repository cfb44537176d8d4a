"""Sessions are cut by one rule, written twice: the sessions query aggregates slices of
events without sorting them (``_sessions.py``), paths order each session's events with
windows (``_paths.py``). Over a seeded random world full of edge cases (gaps of exactly
the session gap, a microsecond either side, client session ids that span long gaps,
events at the same instant), both count the same sessions, per user too, on every engine.
"""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.analytics.behavior import PathsQuery, SessionsQuery
from behavior_flows_fixtures import NODES, module_analytics, store  # noqa: F401 (a fixture)

T0 = datetime(2026, 7, 6, tzinfo=UTC)
RANGE = {"date_from": T0, "date_to": T0 + timedelta(days=3)}
GAP = timedelta(minutes=30)
#: Gaps between a user's events: the edges of the session gap, and the ordinary.
STEPS = [
    timedelta(0),
    timedelta(microseconds=1),
    timedelta(minutes=1),
    GAP - timedelta(microseconds=1),
    GAP,
    GAP + timedelta(microseconds=1),
    timedelta(hours=5),
]


def random_world(seed: int = 7, users: int = 60) -> list[dict[str, object]]:
    rng = random.Random(seed)
    events: list[dict[str, object]] = []
    for u in range(users):
        at = T0 + timedelta(minutes=rng.randrange(60))
        client_sessions = u % 3 == 0  # a third of the users' apps send session ids
        session = 0
        for _ in range(rng.randrange(1, 12)):
            step = rng.choice(STEPS)
            at += step
            if step >= timedelta(hours=5) or rng.random() < 0.1:
                session += 1
            feature, action = NODES[rng.choice(sorted(NODES))]
            event: dict[str, object] = {
                "event_type": "behavior",
                "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "user_id": f"u{u}",
                "feature": feature,
                "action": action,
                "occurred_at": at.isoformat(),
            }
            if client_sessions:
                event["session_id"] = f"s{u}-{session}"
            events.append(event)
    return events


def reference_sessions(events: list[dict[str, object]]) -> dict[str, int]:
    """Per user, the sessions by the documented rule, written plainly: one per client
    session id, and among the events without one a new session at the first event and
    wherever the gap from the previous such event is the session gap or more."""
    found: dict[str, int] = {}
    by_user: dict[str, list[dict[str, object]]] = {}
    for e in events:
        by_user.setdefault(str(e["user_id"]), []).append(e)
    for user, mine in by_user.items():
        ids = {e["session_id"] for e in mine if "session_id" in e}
        times = sorted(
            datetime.fromisoformat(str(e["occurred_at"])) for e in mine if "session_id" not in e
        )
        cuts = sum(1 for a, b in itertools.pairwise(times) if b - a >= GAP)
        found[user] = len(ids) + (1 + cuts if times else 0)
    return found


WORLD = random_world()
EXPECTED = reference_sessions(WORLD)


@pytest.fixture(scope="module")
def world(module_analytics: BankingPerformanceAnalytics) -> BankingPerformanceAnalytics:  # noqa: F811
    store(module_analytics, WORLD)
    return module_analytics


def test_paths_and_sessions_count_the_sessions_of_the_rule(
    world: BankingPerformanceAnalytics,
) -> None:
    sessions = world.behavior.sessions(SessionsQuery(**RANGE, gap=GAP))
    paths = world.paths(PathsQuery(**RANGE, session_gap=GAP, max_steps=10))
    total = sum(EXPECTED.values())
    assert total > 2 * len(EXPECTED)  # the edges above do cut sessions
    assert sessions.overall.sessions == total
    assert paths.paths == total


def test_each_users_sessions_follow_the_rule(world: BankingPerformanceAnalytics) -> None:
    query = SessionsQuery(**RANGE, gap=GAP)
    found = {user: world.behavior.user_sessions(user, query).total for user in EXPECTED}
    assert found == EXPECTED
