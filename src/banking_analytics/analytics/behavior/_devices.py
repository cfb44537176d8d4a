"""Devices and platforms: who uses several devices, and which feature fails more where.

- **Multi-device users**: of the users whose events in the range name a device, those
  that name two or more device types; their sessions' **device mix** is how their
  sessions (see ``_sessions``) split by the session's device.
- **Cross-platform outcomes**: per feature and per device type or platform, the
  interactions, the success rate (successes ÷ interactions that report success or
  failure, as the catalogue's ``feature_success_rate``), the mean and the
  nearest-rank median and p90 of ``duration_s``; and the **difference** of the cut's
  success rate from the rest of the feature's interactions (the feature's other
  devices or platforms, events without one included), with its 95% confidence
  interval by Newcombe's hybrid score method (Newcombe 1998, method 10: from the two
  rates' Wilson intervals ``[l1, u1]`` and ``[l2, u2]``, the difference ``d = p1 - p2``
  has ``[d - √((p1-l1)² + (u2-p2)²), d + √((u1-p1)² + (p2-l2)²)]``), so a feature that
  fails more on Android than elsewhere shows a negative interval that excludes 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

from banking_analytics.analytics._shape import Period, Shape
from banking_analytics.analytics.behavior._query import (
    BEHAVIOR_TABLE,
    BehaviorQuery,
    x,
)
from banking_analytics.analytics.behavior._sessions import (
    SessionsQuery,
    sessions_select,
    with_sessions,
)
from banking_analytics.metrics import MetricService, QueryExecutor, Renderer, Statement

__all__ = [
    "CONFIDENCE_Z",
    "DeviceMix",
    "Devices",
    "OutcomeCut",
    "newcombe_interval",
    "run_devices",
    "wilson_interval",
]

#: z of a two-sided 95% interval.
CONFIDENCE_Z = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = CONFIDENCE_Z) -> tuple[float, float]:
    """Wilson's score interval of the proportion ``successes / n`` (``n > 0``)."""
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    margin = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - margin), min(1.0, centre + margin)


def newcombe_interval(
    s1: int, n1: int, s2: int, n2: int, z: float = CONFIDENCE_Z
) -> tuple[float, float]:
    """Newcombe's hybrid score interval of ``s1/n1 - s2/n2`` (see the module docs)."""
    p1, p2 = s1 / n1, s2 / n2
    l1, u1 = wilson_interval(s1, n1, z)
    l2, u2 = wilson_interval(s2, n2, z)
    d = p1 - p2
    return d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


def _multi_device(renderer: Renderer, filter_shape: tuple[int, ...]) -> exp.Query:
    """Sessions per session device of users with 2+ devices; and (device null, ``part``
    1) the users with a device and those with two or more."""
    per_user = (
        sqlglot.select("user_id", x("COUNT(DISTINCT device) AS devices"))
        .from_("events")
        .where(x("device IS NOT NULL"))
        .group_by("user_id")
    )
    mix = (
        sqlglot.select(x("0 AS part"), x("s.device AS device"), x("COUNT(*) AS n"))
        .from_(exp.alias_(exp.to_table("sessions"), "s"))
        .join(exp.alias_(exp.to_table("per_user"), "u"), on=x("u.user_id = s.user_id"))
        .where(x("u.devices >= 2"))
        .group_by(x("s.device"))
    )
    users = sqlglot.select(
        x("1 AS part"),
        x("CAST(SUM(CASE WHEN devices >= 2 THEN 1 ELSE 0 END) AS TEXT) AS device"),
        x("COUNT(*) AS n"),
    ).from_("per_user")
    query = sqlglot.union(mix, users, distinct=False)
    sessions = sessions_select(renderer, filter_shape)
    return with_sessions(query, sessions).with_("per_user", per_user)


_QUANTILES = (0.5, 0.9)


def _outcomes(renderer: Renderer, filter_shape: tuple[int, ...]) -> exp.Query:
    """Per feature, and per feature and device or platform (grouping sets), the
    interactions, reported outcomes, successes and duration figures."""
    events = BehaviorQuery.events_select(
        ["feature", "device", "platform", "success", "duration_s"], filter_shape
    )
    query = sqlglot.select(
        x("GROUPING(device, platform) AS part"),
        "feature",
        "device",
        "platform",
        x("COUNT(*) AS interactions"),
        x("COUNT(success) AS reported"),
        x("SUM(CASE WHEN success THEN 1 ELSE 0 END) AS successes"),
        x("AVG(duration_s) AS mean_duration_s"),
        exp.alias_(renderer.percentiles(x("duration_s"), _QUANTILES), "duration_q"),
    ).from_("events")
    sets = "GROUPING SETS ((feature), (feature, device), (feature, platform))"
    query.set("group", x(f"SELECT 1 GROUP BY {sets}").args["group"])
    return query.with_("events", events)


@dataclass(slots=True, eq=False)
class DeviceMix(Shape):
    """Sessions of multi-device users on one device type."""

    device: str | None
    sessions: int
    share: float


@dataclass(slots=True, eq=False)
class OutcomeCut(Shape):
    """One feature's outcomes on one device type or platform, against the rest."""

    feature: str
    by: str
    """``device`` or ``platform``."""
    value: str | None
    interactions: int
    success_rate: float | None
    mean_duration_s: float | None
    median_duration_s: float | None
    p90_duration_s: float | None
    rest_success_rate: float | None
    """The feature's success rate over its other interactions."""
    difference: float | None
    """``success_rate - rest_success_rate``."""
    difference_low: float | None
    """The difference's 95% interval (Newcombe's hybrid score)."""
    difference_high: float | None


@dataclass(slots=True, eq=False)
class Devices(Shape):
    """Multi-device use and cross-platform outcomes over a range."""

    period: Period
    users_with_device: int
    multi_device_users: int
    multi_device_share: float | None
    multi_device_session_mix: list[DeviceMix]
    outcomes: list[OutcomeCut]


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _cuts(rows: list[dict[str, Any]]) -> list[OutcomeCut]:
    totals = {r["feature"]: r for r in rows if r["part"] == 0b11}
    cuts = []
    for row in rows:
        if row["part"] == 0b11:
            continue
        by = "device" if row["part"] == 0b01 else "platform"
        total = totals[row["feature"]]
        s1, n1 = int(row["successes"]), int(row["reported"])
        s2, n2 = int(total["successes"]) - s1, int(total["reported"]) - n1
        rate = s1 / n1 if n1 else None
        rest = s2 / n2 if n2 else None
        low = high = difference = None
        if rate is not None and rest is not None:
            difference = rate - rest
            low, high = newcombe_interval(s1, n1, s2, n2)
        median, p90 = row["duration_q"] or (None, None)
        cuts.append(
            OutcomeCut(
                feature=row["feature"],
                by=by,
                value=row[by],
                interactions=int(row["interactions"]),
                success_rate=rate,
                mean_duration_s=_float(row["mean_duration_s"]),
                median_duration_s=_float(median),
                p90_duration_s=_float(p90),
                rest_success_rate=rest,
                difference=difference,
                difference_low=low,
                difference_high=high,
            )
        )
    return sorted(cuts, key=lambda c: (c.feature, c.by, c.value or ""))


def run_devices(metrics: MetricService, queries: QueryExecutor, query: SessionsQuery) -> Devices:
    """The :class:`Devices` of ``query``, from two statements run side by side."""
    shape = (query.events.shape,)
    mix, outcomes = queries.gather(
        [
            lambda: metrics.run_statement(
                # Every event in the range is read for the users' devices: sessionised too.
                Statement(_multi_device, query.params_for(stored=False), (BEHAVIOR_TABLE,), shape)
            ),
            lambda: metrics.run_statement(
                Statement(_outcomes, query.params, (BEHAVIOR_TABLE,), shape)
            ),
        ]
    )
    mix_rows = mix.to_pylist()
    counted = next((r for r in mix_rows if r["part"] == 1), None)
    with_device = int(counted["n"]) if counted else 0
    multi = int(counted["device"] or 0) if counted else 0
    sessions = [r for r in mix_rows if r["part"] == 0]
    all_sessions = sum(int(r["n"]) for r in sessions)
    session_mix = sorted(
        (DeviceMix(r["device"], int(r["n"]), int(r["n"]) / all_sessions) for r in sessions),
        key=lambda m: (-m.sessions, m.device or ""),
    )
    return Devices(
        period=Period.of(query.window),
        users_with_device=with_device,
        multi_device_users=multi,
        multi_device_share=multi / with_device if with_device else None,
        multi_device_session_mix=session_mix,
        outcomes=_cuts(outcomes.to_pylist()),
    )
