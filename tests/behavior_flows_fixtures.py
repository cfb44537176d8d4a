"""Shared by the funnel, retention and paths tests: one store per engine for a whole test
module, a simulated world of behaviour events, and nearest-rank percentiles.

Their hand-worked worlds are small and only read once stored, so a module builds one
store per engine (a DuckDB file; a PostgreSQL schema, dropped afterwards) instead of
one per test: the stores' set-up was most of their time.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import psycopg
import pytest

from banking_analytics import BankingPerformanceAnalytics, EventStatus
from conftest import ENGINES, with_schema

__all__ = [
    "NODES",
    "WORLD_START",
    "as_events",
    "module_analytics",
    "module_world",
    "nearest_rank",
    "simulated_world",
    "store",
]


@pytest.fixture(scope="module", params=ENGINES)
def module_analytics(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BankingPerformanceAnalytics]:
    """A fresh store on each engine, shared by the tests of one module."""
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path_factory.mktemp('flows')}/store.duckdb"
        with BankingPerformanceAnalytics.open(url) as analytics:
            yield analytics
        return
    server: str = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with BankingPerformanceAnalytics.open(with_schema(server, schema)) as analytics:
            yield analytics
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def module_world(module_analytics: BankingPerformanceAnalytics) -> pd.DataFrame:
    """The simulated world, stored in the module's store."""
    frame = simulated_world()
    store(module_analytics, as_events(frame))
    return frame


def store(analytics: BankingPerformanceAnalytics, events: list[dict[str, object]]) -> None:
    """Store the events, every one accepted."""
    results = analytics.ingest(events)
    assert {r.status for r in results} == {EventStatus.ACCEPTED}, [r.reason for r in results]


#: The simulated world's nodes: (feature, action).
NODES = {
    "L": ("account_linking", "open"),
    "S": ("spending_analysis", "view"),
    "B": ("budget_tracking", "open"),
    "X": ("goal_setting", "open"),
}
WORLD_START = datetime(2026, 2, 2, tzinfo=UTC)


def simulated_world(users: int = 120, seed: int = 7) -> pd.DataFrame:
    """Behaviour events of ``users`` over five weeks: sessions of 1-6 events (10 s to 20
    min apart, sessions an hour or more apart), half of them with a session id; kinds and
    platforms drawn at random. Times are distinct per user (whole seconds)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        at = WORLD_START + timedelta(seconds=int(rng.integers(0, 3 * 86_400)))
        for s in range(int(rng.integers(1, 7))):
            session = f"s{u}-{s}" if rng.random() < 0.5 else None
            for _ in range(int(rng.integers(1, 7))):
                kind = str(rng.choice(list(NODES), p=[0.35, 0.3, 0.2, 0.15]))
                platform = rng.choice(["ios", "android", "web", "none"], p=[0.4, 0.3, 0.2, 0.1])
                rows.append(
                    {
                        "user": f"w{u}",
                        "t": at,
                        "kind": kind,
                        "platform": None if platform == "none" else str(platform),
                        "session_id": session,
                        "event_id": str(uuid.UUID(int=int(rng.integers(0, 2**62)) << 64)),
                    }
                )
                at += timedelta(seconds=int(rng.integers(10, 20 * 60)))
            at += timedelta(seconds=int(rng.integers(3600, 6 * 86_400)))
    return pd.DataFrame(rows)


def as_events(world: pd.DataFrame) -> list[dict[str, object]]:
    """The world's rows as behaviour events to ingest."""
    events = []
    for row in world.itertuples():
        event: dict[str, object] = {
            "event_type": "behavior",
            "event_id": row.event_id,
            "user_id": row.user,
            "feature": NODES[row.kind][0],
            "action": NODES[row.kind][1],
            "occurred_at": row.t.isoformat(),
        }
        if isinstance(row.platform, str):  # pandas holds a missing value as NaN
            event["platform"] = row.platform
        if isinstance(row.session_id, str):
            event["session_id"] = row.session_id
        events.append(event)
    return events


def nearest_rank(values: list[float], q: float) -> float | None:
    """The smallest value with at least a fraction ``q`` of the values at or below it
    (``percentile_disc``)."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[max(math.ceil(q * len(ordered) - 1e-9), 1) - 1])
