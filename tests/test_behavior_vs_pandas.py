"""Every behaviour insight of this package against an independent pandas computation over a
small simulated world, on each engine.

The world: 150 users over five weeks around the end of US daylight saving time (1 November
2026), some events in client sessions and most not, devices and platforms that vary per
user, outcomes and durations sometimes missing. The pandas side follows the definitions in
docs/behavior.md step by step, with none of the SQL's tricks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.analytics.behavior import (
    EngagementQuery,
    Interval,
    LifecycleQuery,
    SessionsQuery,
    StickinessQuery,
)
from banking_analytics.vocabulary import BankingFeature, DeviceType, EventType, Platform
from behavior_stores import module_store
from conftest import ENGINES

ZONE = "America/New_York"
START = datetime(2026, 10, 19, 4, tzinfo=UTC)  # midnight in New York (EDT)
END = datetime(2026, 11, 23, 5, tzinfo=UTC)  # midnight in New York (EST)
GAP = timedelta(minutes=30)
FEATURES = [f.value for f in BankingFeature][:6]
DEVICES = [d.value for d in DeviceType]
PLATFORMS = [p.value for p in Platform]


def simulate(seed: int = 7, users: int = 150) -> pd.DataFrame:
    """Users who come back on some days, in bursts of events a few minutes apart (so gaps
    around 30 minutes happen), from a device or two."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    span_us = int((END - START + timedelta(days=3)) / timedelta(microseconds=1))
    for u in range(users):
        devices = rng.choice(len(DEVICES) - 1, size=1 + (rng.random() < 0.3), replace=False)
        for _ in range(rng.integers(1, 12)):
            at = START - timedelta(days=2) + timedelta(microseconds=int(rng.integers(span_us)))
            client = f"s-{u}-{rng.integers(1_000)}" if rng.random() < 0.25 else None
            for _ in range(rng.integers(1, 6)):
                device = int(rng.choice(devices))
                rows.append(
                    {
                        "event_id": str(uuid.UUID(int=int(rng.integers(2**62)))),
                        "occurred_at": at,
                        "user_id": f"u{u}",
                        "session_id": client,
                        "feature": FEATURES[int(rng.zipf(1.6)) % len(FEATURES)],
                        "action": "open",
                        "duration_s": None if rng.random() < 0.2 else round(rng.exponential(20), 3),
                        "success": None if rng.random() < 0.1 else bool(rng.random() < 0.85),
                        "device": None if rng.random() < 0.05 else DEVICES[device],
                        "platform": PLATFORMS[device % 3] if rng.random() < 0.95 else None,
                    }
                )
                # Mostly a few minutes apart; now and then exactly the gap, or just under.
                step = rng.choice(
                    [rng.exponential(300), 1800, 1799.999999, rng.exponential(7200)],
                    p=[0.7, 0.05, 0.05, 0.2],
                )
                at += timedelta(seconds=float(step))
    frame = pd.DataFrame(rows)
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True).dt.floor("us")
    return frame


@pytest.fixture(scope="module")
def world() -> pd.DataFrame:
    return simulate()


@pytest.fixture(scope="module", params=ENGINES)
def analytics(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, world: pd.DataFrame
) -> Iterator[BankingPerformanceAnalytics]:
    for opened in module_store(request, tmp_path_factory):
        table = pa.Table.from_pandas(world, preserve_index=False)
        outcome = opened.ingest_arrow(table, event_type=EventType.BEHAVIOR)
        assert (outcome.status == 0).all(), outcome.errors
        yield opened


def in_range(world: pd.DataFrame) -> pd.DataFrame:
    return world[(world["occurred_at"] >= START) & (world["occurred_at"] < END)].copy()


def local_day(times: pd.Series) -> pd.Series:
    return times.dt.tz_convert(ZONE).dt.tz_localize(None).dt.floor("D")


def nearest_rank(values: pd.Series, q: float) -> float | None:
    """``percentile_disc``: the smallest value whose cumulative share is at least q."""
    if values.dropna().empty:
        return None
    return float(np.percentile(values.dropna(), q * 100, method="inverted_cdf"))


# -- the reference --------------------------------------------------------------------------


def sessions_of(world: pd.DataFrame) -> pd.DataFrame:
    """Each session: events of a client session id, or runs of a user's other events with
    gaps under 30 minutes."""
    events = in_range(world).sort_values(["user_id", "occurred_at", "event_id"])
    keyed = events[events["session_id"].notna()].copy()
    keyed["key"] = keyed["user_id"] + "|" + keyed["session_id"]
    loose = events[events["session_id"].isna()].copy()
    gap = loose.groupby("user_id")["occurred_at"].diff()
    starts = gap.isna() | (gap >= pd.Timedelta(GAP))
    loose["key"] = loose["user_id"] + "|#" + starts.groupby(loose["user_id"]).cumsum().astype(str)
    both = pd.concat([keyed, loose]).sort_values(["occurred_at", "event_id"])
    grouped = both.groupby("key")
    sessions = pd.DataFrame(
        {
            "user_id": grouped["user_id"].first(),
            "started_at": grouped["occurred_at"].min(),
            "last_at": grouped["occurred_at"].max(),
            "last_duration": grouped["duration_s"].agg(lambda d: d.fillna(0).iloc[-1]),
            "events": grouped.size(),
            "features": grouped["feature"].nunique(),
            "device": grouped["device"].agg(lambda d: d.iloc[0]),
            "platform": grouped["platform"].agg(lambda d: d.iloc[0]),
        }
    )
    sessions["length_s"] = (
        sessions["last_at"] - sessions["started_at"]
    ).dt.total_seconds() + sessions["last_duration"]
    return sessions


def figures(sessions: pd.DataFrame) -> dict[str, Any]:
    return {
        "sessions": len(sessions),
        "users": sessions["user_id"].nunique(),
        "mean_length_s": sessions["length_s"].mean(),
        "median_length_s": nearest_rank(sessions["length_s"], 0.5),
        "p90_length_s": nearest_rank(sessions["length_s"], 0.9),
        "mean_events": sessions["events"].mean(),
        "mean_features": sessions["features"].mean(),
        "bounce_rate": (sessions["events"] == 1).mean(),
    }


def lifecycle_of(world: pd.DataFrame) -> list[tuple[int, int, int, int]]:
    days = pd.date_range(
        local_day(pd.Series([START])).iloc[0],
        local_day(pd.Series([END - timedelta(microseconds=1)])).iloc[0],
    )
    before = world[world["occurred_at"] < END]
    created = local_day(before.groupby("user_id")["occurred_at"].min())
    active = before.assign(day=local_day(before["occurred_at"]))
    active_days = active.groupby("user_id")["day"].agg(set)
    one = pd.Timedelta(days=1)
    rows = []
    for day in days:
        new = returning = resurrecting = dormant = 0
        for user, seen in active_days.items():
            if day in seen:
                if created[user] == day:
                    new += 1
                elif day - one in seen:
                    returning += 1
                else:
                    resurrecting += 1
            elif day - one in seen:
                dormant += 1
        rows.append((new, returning, resurrecting, -dormant))
    return rows


# -- the comparisons ------------------------------------------------------------------------


def test_sessions_match_pandas(analytics: BankingPerformanceAnalytics, world: pd.DataFrame) -> None:
    ours = analytics.behavior.sessions(SessionsQuery(date_from=START, date_to=END, timezone=ZONE))
    sessions = sessions_of(world)
    assert dict(ours.overall) == pytest.approx(figures(sessions))
    for cuts, column in ((ours.by_device, "device"), (ours.by_platform, "platform")):
        theirs = {
            value: figures(group) for value, group in sessions.groupby(sessions[column].fillna("?"))
        }
        mine = {c.value or "?": dict(c.figures) for c in cuts}
        assert mine.keys() == theirs.keys()
        for value, expected in theirs.items():
            assert mine[value] == pytest.approx(expected), value
    per_day = sessions.groupby(local_day(sessions["started_at"])).size()
    assert {p.start.astimezone(UTC): p.sessions for p in ours.series if p.sessions} == {
        day.tz_localize(ZONE).tz_convert(UTC).to_pydatetime(): n for day, n in per_day.items()
    }


def test_user_sessions_match_pandas(
    analytics: BankingPerformanceAnalytics, world: pd.DataFrame
) -> None:
    sessions = sessions_of(world)
    user = sessions["user_id"].value_counts().index[0]
    page = analytics.behavior.user_sessions(
        user, SessionsQuery(date_from=START, date_to=END), limit=1000
    )
    theirs = sessions[sessions["user_id"] == user].sort_values("started_at", ascending=False)
    assert page.total == len(theirs)
    assert [s.started_at for s in page.sessions] == list(theirs["started_at"])
    assert [s.length_s for s in page.sessions] == pytest.approx(list(theirs["length_s"]))


def test_devices_match_pandas(analytics: BankingPerformanceAnalytics, world: pd.DataFrame) -> None:
    ours = analytics.behavior.devices(SessionsQuery(date_from=START, date_to=END))
    events = in_range(world)
    per_user = events.dropna(subset=["device"]).groupby("user_id")["device"].nunique()
    multi = set(per_user[per_user >= 2].index)
    assert (ours.users_with_device, ours.multi_device_users) == (len(per_user), len(multi))
    sessions = sessions_of(world)
    mix = sessions[sessions["user_id"].isin(multi)]["device"].fillna("?").value_counts()
    assert {m.device or "?": m.sessions for m in ours.multi_device_session_mix} == mix.to_dict()
    for cut in ours.outcomes:
        feature = events[events["feature"] == cut.feature]
        mine = feature[feature[cut.by].fillna("?") == (cut.value or "?")]
        rest = feature.drop(mine.index)
        assert cut.interactions == len(mine)
        assert cut.success_rate == pytest.approx(
            mine["success"].dropna().astype(bool).mean(), nan_ok=True
        )
        rest_rate = rest["success"].dropna().astype(bool).mean()
        assert cut.rest_success_rate == pytest.approx(rest_rate, nan_ok=True)
        assert cut.mean_duration_s == pytest.approx(mine["duration_s"].mean(), nan_ok=True)
        assert cut.median_duration_s == pytest.approx(nearest_rank(mine["duration_s"], 0.5))


def test_engagement_matches_pandas(
    analytics: BankingPerformanceAnalytics, world: pd.DataFrame
) -> None:
    ours = analytics.behavior.engagement(
        EngagementQuery(date_from=START, date_to=END, timezone=ZONE)
    )
    days = local_day(world["occurred_at"])
    active = world.assign(day=days)[["user_id", "feature", "day"]].drop_duplicates()
    for point in ours.series:
        day = pd.Timestamp(point.start.astimezone(UTC)).tz_convert(ZONE).tz_localize(None)
        users = [
            active[(active["day"] > day - pd.Timedelta(days=span)) & (active["day"] <= day)][
                "user_id"
            ].nunique()
            for span in (1, 7, 30)
        ]
        assert [point.dau, point.wau, point.mau] == users
    last = local_day(pd.Series([END - timedelta(microseconds=1)])).iloc[0]
    l28 = active[(active["day"] > last - pd.Timedelta(days=28)) & (active["day"] <= last)]
    l28 = l28[world.loc[l28.index, "occurred_at"] < END]
    counts = l28.drop_duplicates(["user_id", "day"]).groupby("user_id").size().value_counts()
    assert ours.power_users == [int(counts.get(k, 0)) for k in range(1, 29)]
    events = in_range(world)
    used = events[["user_id", "feature"]].drop_duplicates()
    n = used["user_id"].nunique()
    users_of = used.groupby("feature")["user_id"].agg(set)
    lifts = {}
    for a, b in combinations(sorted(users_of.index), 2):
        both = len(users_of[a] & users_of[b])
        if both:
            lifts[(a, b)] = both * n / (len(users_of[a]) * len(users_of[b]))
    assert {(c.feature_a, c.feature_b): c.lift for c in ours.co_usage} == pytest.approx(lifts)
    local = events["occurred_at"].dt.tz_convert(ZONE)
    cells = events.groupby([local.dt.day_of_week + 1, local.dt.hour]).agg(
        events=("user_id", "size"), users=("user_id", "nunique")
    )
    assert {(c.weekday, c.hour): (c.events, c.users) for c in ours.heat_map} == {
        key: (row.events, row.users) for key, row in cells.iterrows()
    }
    firsts = events.groupby(["user_id", "feature"])["occurred_at"].min().reset_index()
    firsts = firsts.sort_values(["user_id", "occurred_at", "feature"])
    firsts["position"] = firsts.groupby("user_id").cumcount() + 1
    firsts["hours"] = (
        firsts["occurred_at"] - firsts.groupby("user_id")["occurred_at"].transform("min")
    ).dt.total_seconds() / 3600
    for use in ours.first_use:
        mine = firsts[firsts["feature"] == use.feature]
        assert use.users == len(mine)
        assert use.first_share == pytest.approx((mine["position"] == 1).sum() / n)
        assert use.mean_position == pytest.approx(mine["position"].mean())
        assert use.median_hours_after_first_event == pytest.approx(nearest_rank(mine["hours"], 0.5))


def test_stickiness_matches_pandas(
    analytics: BankingPerformanceAnalytics, world: pd.DataFrame
) -> None:
    for interval, freq in ((Interval.DAY, "D"), (Interval.WEEK, "W-MON")):
        ours = analytics.stickiness(
            StickinessQuery(date_from=START, date_to=END, interval=interval, timezone=ZONE)
        )
        events = in_range(world)
        local = events["occurred_at"].dt.tz_convert(ZONE).dt.tz_localize(None)
        period = local.dt.to_period(freq if freq == "D" else "W-SUN")
        counts = period.groupby(events["user_id"]).nunique().value_counts()
        assert [p.users for p in ours.points] == [
            int(counts.get(k, 0)) for k in range(1, ours.intervals + 1)
        ]


def test_lifecycle_matches_pandas(
    analytics: BankingPerformanceAnalytics, world: pd.DataFrame
) -> None:
    ours = analytics.lifecycle(LifecycleQuery(date_from=START, date_to=END, timezone=ZONE))
    got = [(p.new, p.returning, p.resurrecting, p.dormant) for p in ours.points]
    assert got == lifecycle_of(world)
