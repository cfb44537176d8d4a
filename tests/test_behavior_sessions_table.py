"""The sessions the store keeps as behaviour events arrive, on DuckDB and PostgreSQL.

``behavior_sessions`` holds every session of the behaviour events over all time, cut by
the default gap, and the sessions insights read it instead of sessionising every event.
Here it is checked against a plain Python sessionisation of the stored events (written
apart from the store's SQL) after every batch of random histories full of edges (gaps of
exactly the session gap and a microsecond either side, events at one instant, client
session ids among events without one) delivered shuffled, with duplicates; the
insights read from it are checked equal to those sessionising every event, over ranges
whose edges cut sessions; and a migration fills it in a store written before it.
"""

from __future__ import annotations

import dataclasses
import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from banking_analytics import BankingPerformanceAnalytics, EventStatus
from banking_analytics.analytics.behavior import EventFilter, SessionsQuery
from banking_analytics.store import BEHAVIOR_SESSIONS
from banking_analytics.vocabulary import BankingFeature, DeviceType, EventType, Platform
from behavior_flows_fixtures import module_analytics  # noqa: F401 (a fixture)

SESSIONS = BEHAVIOR_SESSIONS.table.name
SOURCE = BEHAVIOR_SESSIONS.source.name
WAITING = BEHAVIOR_SESSIONS.waiting.name
GAP = timedelta(minutes=30)
T0 = datetime(2026, 7, 6, 9, tzinfo=UTC)
#: Steps between a user's events: the edges of the session gap, and the ordinary.
STEPS = [
    timedelta(0),
    timedelta(microseconds=1),
    timedelta(minutes=7),
    GAP - timedelta(microseconds=1),
    GAP,
    GAP + timedelta(microseconds=1),
    timedelta(hours=3),
]
FEATURES = [f.value for f in BankingFeature]
#: Every feature named: a filter every event passes, which makes a query sessionise every
#: event in its range instead of reading the stored sessions.
EVERY_FEATURE = EventFilter(features=tuple(BankingFeature))
#: The stored sessions' columns, in the order :func:`reference` gives them.
COLUMNS = BEHAVIOR_SESSIONS.table.column_names


def event(user: str, at: datetime, rng: random.Random, session: str | None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "event_type": "behavior",
        "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "user_id": user,
        "feature": rng.choice(FEATURES[:4]),
        "action": "open",
        "occurred_at": at.isoformat(),
        "device": rng.choice([None, *(d.value for d in DeviceType)]),
        "platform": rng.choice([None, *(p.value for p in Platform)]),
        "duration_s": rng.choice([None, 0.5, 12.0]),
    }
    if session is not None:
        found["session_id"] = session
    return {k: v for k, v in found.items() if v is not None}


def history(seed: int, users: int = 3, events: int = 9) -> list[dict[str, Any]]:
    """Each user's events a random walk by :data:`STEPS`, some in client sessions."""
    rng = random.Random(seed)
    found = []
    for u in range(users):
        at = T0 + timedelta(minutes=rng.randrange(30))
        for _ in range(rng.randrange(1, events + 1)):
            at += rng.choice(STEPS)
            session = rng.choice([None, None, None, "a", "b"])
            found.append(event(f"u{u}", at, rng, session))
    return found


@st.composite
def deliveries(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """A random history shuffled, some events sent twice, in one to three batches."""
    events = history(draw(st.integers(0, 2**32)))
    sent = draw(st.permutations(events + draw(st.lists(st.sampled_from(events), max_size=3))))
    cuts = sorted(draw(st.lists(st.integers(0, len(sent)), max_size=2)))
    return [sent[a:b] for a, b in pairwise([0, *cuts, len(sent)]) if b > a]


def deliver(analytics: BankingPerformanceAnalytics, batch: list[dict[str, Any]]) -> None:
    statuses = {r.status for r in analytics.ingest(batch)}
    assert statuses <= {EventStatus.ACCEPTED, EventStatus.DUPLICATE}


def reference(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The sessions of ``events`` by the documented rule, written plainly: per user, one
    per client session id; among the events without one, a new session at the first event
    and wherever the gap from the previous one is the session gap or more. A session's
    first and last event by time, then id."""
    by_session: dict[tuple[str, str | None], list[list[dict[str, Any]]]] = {}
    ordered = sorted(events, key=lambda e: (e["occurred_at"], str(e["event_id"])))
    for e in ordered:
        runs = by_session.setdefault((e["user_id"], e["session_id"]), [])
        previous = runs[-1][-1]["occurred_at"] if runs else None
        if not runs or (e["session_id"] is None and e["occurred_at"] - previous >= GAP):
            runs.append([])
        runs[-1].append(e)
    rows = []
    for (user, session), runs in by_session.items():
        for run in runs:
            first, last = run[0], run[-1]
            mask = 0
            for e in run:
                mask |= 1 << FEATURES.index(e["feature"])
            rows.append(
                (
                    user,
                    session,
                    first["occurred_at"],
                    str(first["event_id"]),
                    last["occurred_at"],
                    str(last["event_id"]),
                    last["duration_s"],
                    len(run),
                    mask,
                    first["device"],
                    first["platform"],
                )
            )
    return sorted(rows, key=repr)


def table(analytics: BankingPerformanceAnalytics, name: str) -> list[dict[str, Any]]:
    """The stored rows of ``name`` (the sessions with the events waiting merged, as any
    reader of them has them)."""
    analytics.engine.bring_up_to_date([name])
    rows = analytics.engine.query(f"SELECT * FROM {name}").to_pylist()
    for row in rows:
        for key in ("event_id", "first_event_id", "last_event_id"):
            if key in row:
                row[key] = str(row[key])
    return rows


def assert_kept_in_step(analytics: BankingPerformanceAnalytics) -> None:
    expected = reference(table(analytics, SOURCE))
    found = sorted((tuple(r[c] for c in COLUMNS) for r in table(analytics, SESSIONS)), key=repr)
    assert found == expected


def replace_all(analytics: BankingPerformanceAnalytics) -> None:
    with analytics.engine.begin() as tx:
        for name in (SOURCE, SESSIONS, WAITING):
            tx.execute(f"DELETE FROM {name}")


@settings(max_examples=40, deadline=None)
@given(batches=deliveries(), read_each=st.booleans())
def test_the_store_keeps_the_sessions_of_what_arrived_in_any_order(
    module_analytics: BankingPerformanceAnalytics,  # noqa: F811
    batches: list[list[dict[str, Any]]],
    read_each: bool,
) -> None:
    """Read after every batch (each merged on its own) or only after the last (all merged
    at once)."""
    replace_all(module_analytics)
    for batch in batches:
        deliver(module_analytics, batch)
        if read_each:
            assert_kept_in_step(module_analytics)
    assert_kept_in_step(module_analytics)


def waiting(analytics: BankingPerformanceAnalytics) -> int:
    return int(analytics.engine.query(f"SELECT COUNT(*) AS n FROM {WAITING}")["n"][0].as_py())


def test_small_commits_wait_and_a_reader_merges_them_a_large_one_merges_at_once(
    module_analytics: BankingPerformanceAnalytics,  # noqa: F811
) -> None:
    replace_all(module_analytics)
    rng = random.Random(4)
    versions = module_analytics.metrics.versions  # naming the sessions brings them up to date
    before = versions([SESSIONS])[SESSIONS]
    deliver(module_analytics, [event("w", T0 + timedelta(minutes=i), rng, None) for i in (0, 5)])
    assert waiting(module_analytics) == 2
    day = SessionsQuery(date_from=T0, date_to=T0 + timedelta(days=1))
    assert module_analytics.behavior.sessions(day).overall.sessions == 1  # merged first
    assert waiting(module_analytics) == 0
    assert versions([SESSIONS])[SESSIONS] == before + 1
    deliver(module_analytics, [event("w", T0 + timedelta(minutes=9), rng, None)])
    many = BEHAVIOR_SESSIONS.merge_at
    at = [T0 + timedelta(days=2, seconds=i) for i in range(many)]
    large = [event(f"m{i % 50}", t, rng, None) for i, t in enumerate(at)]
    outcome = module_analytics.ingest_arrow(
        pa.Table.from_pylist(large), event_type=EventType.BEHAVIOR
    )
    assert outcome.count(EventStatus.ACCEPTED) == many
    assert waiting(module_analytics) == 0  # merged in its own transaction, with the one waiting
    assert versions([SESSIONS])[SESSIONS] == before + 2
    assert_kept_in_step(module_analytics)


def test_a_late_event_bridging_two_sessions_merges_them(
    module_analytics: BankingPerformanceAnalytics,  # noqa: F811
) -> None:
    replace_all(module_analytics)
    rng = random.Random(1)
    at = [T0, T0 + timedelta(minutes=50), T0 + timedelta(minutes=25)]
    first, second, bridge = (event("b", t, rng, None) for t in at)
    deliver(module_analytics, [first, second])
    assert len(table(module_analytics, SESSIONS)) == 2
    deliver(module_analytics, [bridge])  # 25 minutes after the first, before the second
    (merged,) = table(module_analytics, SESSIONS)
    assert (merged["started_at"], merged["last_at"], merged["events"]) == (at[0], at[1], 3)
    assert merged["first_event_id"] == first["event_id"]
    assert_kept_in_step(module_analytics)


def test_an_event_without_a_user_is_in_no_session(
    module_analytics: BankingPerformanceAnalytics,  # noqa: F811
) -> None:
    replace_all(module_analytics)
    rng = random.Random(2)
    anonymous = {k: v for k, v in event("x", T0, rng, None).items() if k != "user_id"}
    deliver(
        module_analytics,
        [
            event("a", T0, rng, None),
            anonymous,
            anonymous | {"event_id": str(uuid.UUID(int=rng.getrandbits(128))), "session_id": "s"},
        ],
    )
    assert [r["user_id"] for r in table(module_analytics, SESSIONS)] == ["a"]
    day = SessionsQuery(date_from=T0, date_to=T0 + timedelta(days=1))
    for query in (day, dataclasses.replace(day, events=EVERY_FEATURE)):
        overall = module_analytics.behavior.sessions(query).overall
        assert (overall.sessions, overall.users) == (1, 1)


def figures(answer: Any) -> dict[str, Any]:
    return {
        f.name: getattr(answer, f.name)
        for f in dataclasses.fields(answer)
        if f.name not in {"period"}
    }


def assert_same(found: Any, expected: Any) -> None:
    """Equal, floats to the last few digits (means summed in another order)."""
    if dataclasses.is_dataclass(found):
        assert_same(figures(found), figures(expected))
    elif isinstance(found, dict):
        assert found.keys() == expected.keys()
        for key in found:
            assert_same(found[key], expected[key])
    elif isinstance(found, list):
        assert len(found) == len(expected)
        for a, b in zip(found, expected, strict=True):
            assert_same(a, b)
    elif isinstance(found, float) and expected is not None:
        assert math.isclose(found, expected, rel_tol=1e-9)
    else:
        assert found == expected


#: A world of 40 users over two days, and ranges whose edges cut its sessions: at an
#: event's instant, a microsecond either side, in the middle of a session.
WORLD = history(seed=11, users=40, events=30)
EDGES = sorted(datetime.fromisoformat(e["occurred_at"]) for e in WORLD)


@pytest.fixture(scope="module")
def world(module_analytics: BankingPerformanceAnalytics) -> BankingPerformanceAnalytics:  # noqa: F811
    replace_all(module_analytics)
    deliver(module_analytics, WORLD)
    return module_analytics


def ranges() -> list[tuple[datetime, datetime]]:
    rng = random.Random(5)
    one = timedelta(microseconds=1)
    found = [(EDGES[0], EDGES[-1] + one)]  # every event: nothing cut
    for _ in range(12):
        start, end = sorted(rng.sample(EDGES, 2))
        found.append((start + rng.choice([-one, 0 * one, one]), end + rng.choice([0 * one, one])))
    return found


@pytest.mark.parametrize(("start", "end"), ranges())
def test_reading_the_stored_sessions_answers_as_sessionising_every_event(
    world: BankingPerformanceAnalytics, start: datetime, end: datetime
) -> None:
    stored = SessionsQuery(date_from=start, date_to=end, interval="hour")
    assert stored.reads_stored
    every = dataclasses.replace(stored, events=EVERY_FEATURE)
    assert not every.reads_stored
    assert_same(world.behavior.sessions(stored), world.behavior.sessions(every))
    for user in ("u0", "u7", "u12"):
        page = world.behavior.user_sessions(user, stored)
        assert_same(page, world.behavior.user_sessions(user, every))


def test_a_range_that_starts_and_ends_inside_sessions_cuts_them() -> None:
    """The ranges above do cut sessions: some sessions cross their edges."""
    rows = reference(
        [
            {
                **e,
                "occurred_at": datetime.fromisoformat(e["occurred_at"]),
                "session_id": e.get("session_id"),
                "duration_s": e.get("duration_s"),
                "device": e.get("device"),
                "platform": e.get("platform"),
            }
            for e in WORLD
        ]
    )
    crossed = 0
    for start, end in ranges()[1:]:
        crossed += sum(1 for r in rows if r[2] < start <= r[4] or r[2] < end <= r[4])
    assert crossed > 20


def test_a_migration_fills_the_sessions_of_a_store_written_before_them(store_url: str) -> None:
    events = history(seed=3, users=5)
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        deliver(analytics, events)
        with analytics.engine.begin() as tx:  # as a store of the version before
            tx.execute(f"DROP TABLE {SESSIONS}")
            tx.execute(f"DELETE FROM data_versions WHERE table_name = '{SESSIONS}'")
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        assert table(analytics, SESSIONS)
        assert_kept_in_step(analytics)
        assert analytics.metrics.versions([SESSIONS]) == {SESSIONS: 0}
