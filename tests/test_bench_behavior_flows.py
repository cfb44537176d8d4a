"""The funnel bench's baselines order a user's same-instant events by event id, as ours does.

The bench's simulated world has no two events of a user at one instant, so there the
baselines' chains by instant alone never meet a tie; this world is made of ties.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
from benchmarks.behavior_flows import (
    BY_INSTANT,
    START,
    STEPS,
    _hand_funnel,
    _same_funnel,
    hand_funnel,
    our_funnel,
    polars_funnel,
)
from benchmarks.simulated import store_world

from banking_analytics import BankingPerformanceAnalytics

T = START + timedelta(days=3)
#: (user, seconds after T, step 1-4, event id's last digits).
EVENTS = [
    # Opens and views transactions at one instant, the view's id after the open's: both
    # steps at T, then the next two 10 s apart.
    ("usr_1", 0, 1, 1),
    ("usr_1", 0, 2, 2),
    ("usr_1", 10, 3, 3),
    ("usr_1", 20, 4, 4),
    # The view at the open's instant has the smaller id: it came first, so the path's
    # step 2 is the view a minute later.
    ("usr_2", 0, 1, 12),
    ("usr_2", 0, 2, 11),
    ("usr_2", 60, 2, 13),
    ("usr_2", 70, 3, 14),
    ("usr_2", 80, 4, 15),
    # No tie: two steps, 5 s apart.
    ("usr_3", 0, 1, 21),
    ("usr_3", 5, 2, 22),
]


def _world() -> pa.Table:
    at = [T + timedelta(seconds=s) for _, s, _, _ in EVENTS]
    return pa.table(
        {
            "event_id": [f"00000000-0000-4000-8000-{n:012d}" for *_, n in EVENTS],
            "occurred_at": pa.array(at, pa.timestamp("us", tz="UTC")),
            "received_at": pa.array(
                [t + timedelta(seconds=1) for t in at], pa.timestamp("us", tz="UTC")
            ),
            "user_id": [user for user, *_ in EVENTS],
            "feature": [STEPS[step - 1][0] for _, _, step, _ in EVENTS],
            "action": [STEPS[step - 1][1] for _, _, step, _ in EVENTS],
            "platform": ["ios"] * len(EVENTS),
        }
    )


def test_every_side_orders_same_instant_events_by_event_id(tmp_path: Path) -> None:
    events = _world()
    with BankingPerformanceAnalytics.open(f"duckdb:///{tmp_path}/s.duckdb") as analytics:
        store_world(analytics, events)
        ours = our_funnel(analytics)
        by_instant, tied = _hand_funnel(analytics, BY_INSTANT)
        hand = hand_funnel(analytics)
    frame = pl.from_arrow(events)
    assert isinstance(frame, pl.DataFrame)
    # Users per step; gaps from step 1 to 2: 0, 60 and 5 s (median by nearest rank: 5).
    assert ours[None][0] == (3, 3, 2, 2)
    assert ours[None][1][0] == 5.0
    assert abs((ours[None][2][0] or 0) - 65 / 3) < 1e-9
    assert tied
    assert not _same_funnel(by_instant, ours)  # the instant alone misplaces usr_2's view
    assert _same_funnel(hand, ours)
    assert _same_funnel(polars_funnel(frame), ours)
