"""The sessions bench's three sides agree on a small simulated world with same-instant twins.

The bench checks its sides equal over 10M events; this checks them in the suite, on a
world where the first and last events of some slices share an instant (the hand SQL
and ours then take them again by event id; polars sorts by it).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
from benchmarks.behavior import (
    WINDOW,
    same_summary,
    sessions_ours,
    sessions_polars,
    sessions_sql,
    with_session_ids_of_a_third,
)
from benchmarks.simulated import DAYS, END, _simulate, store_world

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.simulate import SimulationConfig


def _twins(events: pa.Table) -> pa.Table:
    """A twin of each event at its instant, on another device and platform, with another
    duration and a fresh event id."""
    twins = events
    count = events.num_rows
    replaced = {
        "event_id": pa.array([str(uuid.UUID(int=n + 1)) for n in range(count)]),
        "device": pa.array([("tablet", "desktop")[n % 2] for n in range(count)]),
        "platform": pa.array([("web", "android")[n % 2] for n in range(count)]),
        "duration_s": pa.array([(7.0, 300.0)[n % 2] for n in range(count)]),
    }
    for name, values in replaced.items():
        index = events.schema.get_field_index(name)
        twins = twins.set_column(index, name, values.cast(events.schema.field(name).type))
    return twins


def test_ours_the_hand_sql_and_polars_give_the_same_sessions(tmp_path: Path) -> None:
    world = tmp_path / "world.arrow"
    _simulate(world, SimulationConfig(users=300, days=DAYS, seed=5, end=END, activity=2))
    events = with_session_ids_of_a_third(feather.read_table(world).replace_schema_metadata(None))
    without_id = events.filter(pc.is_null(events["session_id"]))
    events = pa.concat_tables([events, _twins(without_id.slice(0, 200))])
    with BankingPerformanceAnalytics.open(f"duckdb:///{tmp_path}/s.duckdb") as analytics:
        store_world(analytics, events)
        ours = sessions_ours(analytics, WINDOW)
        hand = sessions_sql(analytics, WINDOW)
    frame = pl.from_arrow(events)
    assert isinstance(frame, pl.DataFrame)
    theirs = sessions_polars(frame, WINDOW)
    assert ours[("overall", None)][0] > 1000  # sessions: a world worth comparing
    assert len([key for key in ours if key[0] == "device"]) >= 3
    assert same_summary(ours, hand)
    assert same_summary(ours, theirs)
