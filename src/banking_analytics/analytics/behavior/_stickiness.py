"""Stickiness, as PostHog computes it: how many intervals of the range each user was active.

For each user with a matching event in the range, count the **distinct intervals**
(days, weeks, ...) of the range in which they did it at least once; the answer is the
histogram of users by that count, from 1 to the number of intervals the range
touches ``N`` (PostHog's ``stickiness_query_runner.py``). **Exact**: users active in
exactly ``k`` intervals; **cumulative**: in ``k`` or more (PostHog's cumulative
mode), so cumulative(1) is every active user and cumulative(k) = Σ_{j≥k} exact(j).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from banking_analytics.analytics._shape import Period, Shape
from banking_analytics.analytics.behavior._query import (
    BEHAVIOR_TABLE,
    BehaviorQuery,
    Interval,
    x,
)
from banking_analytics.metrics import MetricService, Renderer, Statement

__all__ = ["Stickiness", "StickinessPoint", "StickinessQuery", "run_stickiness"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StickinessQuery(BehaviorQuery):
    """Users by how many intervals of the range they were active in."""


def _stickiness(
    renderer: Renderer, filter_shape: tuple[int, ...], interval: Interval, timezone: str
) -> exp.Query:
    events = BehaviorQuery.interval_events(renderer, ["user_id"], filter_shape, interval, timezone)
    per_user = (
        sqlglot.select("user_id", x("COUNT(DISTINCT idx) AS intervals"))
        .from_("events")
        .group_by("user_id")
    )
    return (
        sqlglot.select("intervals", x("COUNT(*) AS users"))
        .from_("per_user")
        .group_by("intervals")
        .with_("events", events)
        .with_("per_user", per_user)
    )


@dataclass(slots=True, eq=False)
class StickinessPoint(Shape):
    """Users active in ``intervals`` intervals of the range."""

    intervals: int
    users: int
    """Users active in exactly this many intervals."""
    cumulative_users: int
    """Users active in this many intervals or more."""


@dataclass(slots=True, eq=False)
class Stickiness(Shape):
    """The stickiness histogram of a range: one point per count 1 to ``intervals``."""

    period: Period
    interval: str
    timezone: str
    intervals: int
    """How many intervals the range touches (the largest count a user can have)."""
    users: int
    """Users active at least once in the range."""
    points: list[StickinessPoint]


def run_stickiness(metrics: MetricService, query: StickinessQuery) -> Stickiness:
    """The :class:`Stickiness` of ``query``, from one statement."""
    table = metrics.run_statement(
        Statement(
            _stickiness,
            query.params,
            (BEHAVIOR_TABLE,),
            (query.events.shape, query.interval, query.timezone),
        )
    )
    exact = dict(zip(table["intervals"].to_pylist(), table["users"].to_pylist(), strict=True))
    total = query.last_index - query.first_index + 1
    points: list[StickinessPoint] = []
    remaining = sum(exact.values())
    for k in range(1, total + 1):
        users = int(exact.get(k, 0))
        points.append(StickinessPoint(k, users, remaining))
        remaining -= users
    return Stickiness(
        period=Period.of(query.window),
        interval=query.interval.value,
        timezone=query.timezone,
        intervals=total,
        users=sum(int(v) for v in exact.values()),
        points=points,
    )
