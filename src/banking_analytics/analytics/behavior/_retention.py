"""Retention: of the users who did a start event in a period, how many return in later ones.

PostHog's semantics. The query's range ``[date_from, date_to)`` is cut into
intervals (hour, day, Monday week or calendar month) in its timezone; each
interval is a cohort period:

* **recurring** (PostHog's default): a user joins the cohort of *every* period in which
  they did the start event in the range;
* **first time**: a user joins only the cohort of the period of their first start event
  ever (events before the range included); a first event before the range puts them in
  no cohort.

Period ``N`` of cohort ``c`` counts the cohort's users who did the return event:

* **on** (the default): in period ``c + N`` exactly;
* **on or after**: in period ``c + N`` or any later one in the range (so the row never
  rises).

Period 0 is the cohort itself: its size, 100%. A user is counted in as many periods of
a cohort as they return in, so with "on" a later period can be higher than an earlier
one. Percentages are of the cohort's size. A period that ends after the range's end
(the one ``date_to`` falls in, when the range stops inside it) is marked
``in_progress``. The **weighted mean** of period ``N`` is Σ users ÷ Σ cohort sizes over
the cohorts whose period ``N`` is complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

import sqlglot
from sqlglot import exp

from banking_analytics.analytics._shape import Period, Shape
from banking_analytics.analytics.behavior._funnel import EventStep, event_condition
from banking_analytics.analytics.behavior._query import (
    BehaviorQuery,
    EventFilter,
    Interval,
    interval_index,
    start_of,
)
from banking_analytics.events import SCHEMAS
from banking_analytics.metrics import MetricService, Renderer, Statement
from banking_analytics.vocabulary import EventType

__all__ = [
    "Retention",
    "RetentionCell",
    "RetentionCohort",
    "RetentionCriterion",
    "RetentionKind",
    "RetentionMean",
    "RetentionQuery",
    "RetentionResult",
]


class RetentionKind(StrEnum):
    RECURRING = "recurring"
    FIRST_TIME = "first_time"


class RetentionCriterion(StrEnum):
    ON = "on"
    ON_OR_AFTER = "on_or_after"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionQuery(BehaviorQuery):
    """A retention grid's definition: start and return events, cohort kind and criterion;
    the range, interval (the period) and timezone of :class:`BehaviorQuery`, whose
    ``events`` filter applies to every behaviour event read."""

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    start_event: EventStep
    return_event: EventStep
    kind: RetentionKind = RetentionKind.RECURRING
    criterion: RetentionCriterion = RetentionCriterion.ON

    def __post_init__(self) -> None:
        BehaviorQuery.__post_init__(self)
        object.__setattr__(self, "kind", RetentionKind(self.kind))
        object.__setattr__(self, "criterion", RetentionCriterion(self.criterion))

    @property
    def _returns_are_starts(self) -> bool:
        """Whether the recurring cohorts' (user, period) pairs are the returns' too: the
        same event starts and returns (the usual "any activity" grid), read once."""
        same = (self.start_event.shape, self.start_event.values) == (
            self.return_event.shape,
            self.return_event.values,
        )
        return same and self.kind is RetentionKind.RECURRING

    @property
    def _shape(self) -> tuple[object, ...]:
        return (
            self.start_event.shape,
            None if self._returns_are_starts else self.return_event.shape,
            self.kind,
            self.interval,
            self.timezone,
            self.events.shape,
        )

    @property
    def _params(self) -> tuple[object, ...]:
        """Values in the SQL's order (see :func:`_retention_query`)."""

        def behaviour(step: EventStep) -> tuple[str, ...]:
            return self.events.params if step.event_type is EventType.BEHAVIOR else ()

        if self.kind is RetentionKind.RECURRING:
            starts: tuple[object, ...] = (
                *self.start_event.values,
                self.date_from,
                self.date_to,
                *behaviour(self.start_event),
            )
        else:
            starts = (
                *self.start_event.values,
                self.date_to,
                *behaviour(self.start_event),
                self.date_from,
            )
        if self._returns_are_starts:
            return starts
        returns = (
            *self.return_event.values,
            self.date_from,
            self.date_to,
            *behaviour(self.return_event),
        )
        return (*starts, *returns)


@dataclass(slots=True, eq=False)
class RetentionCell(Shape):
    period: int
    """Periods after the cohort's (0: the cohort itself)."""
    start: datetime
    """When that period starts (UTC)."""
    users: int
    percentage: float | None
    """users ÷ the cohort's size."""
    in_progress: bool


@dataclass(slots=True, eq=False)
class RetentionCohort(Shape):
    start: datetime
    """When the cohort's period starts (UTC)."""
    users: int
    cells: list[RetentionCell]


@dataclass(slots=True, eq=False)
class RetentionMean(Shape):
    period: int
    percentage: float | None
    """Σ users ÷ Σ cohort sizes over the cohorts whose period is complete."""
    cohorts: int
    """How many cohorts it is taken over."""


@dataclass(slots=True, eq=False)
class RetentionResult(Shape):
    period: Period
    interval: str
    timezone: str
    kind: str
    criterion: str
    cohorts: list[RetentionCohort]
    mean: list[RetentionMean]


def _x(text: str) -> exp.Expr:
    return sqlglot.parse_one(text)


def _rows(
    step: tuple[object, ...], behaviour_filter: tuple[int, ...], first_time: bool
) -> exp.Expr:
    """A step's events by users in the range (first time: before its end): condition values,
    bounds, then the behaviour filter's values."""
    bounds = "occurred_at < ?" if first_time else "occurred_at >= ? AND occurred_at < ?"
    rows = exp.and_(event_condition(step), _x(f"{bounds} AND user_id IS NOT NULL"))
    if step[0] is EventType.BEHAVIOR and (chosen := EventFilter.condition(behaviour_filter)):
        rows = exp.and_(rows, chosen)
    return rows


def _table(step: tuple[object, ...]) -> exp.Table:
    kind = step[0]
    assert isinstance(kind, EventType)
    return exp.table_(SCHEMAS[kind].table, quoted=True)


def _retention_query(renderer: Renderer, *shape: object) -> exp.Query:
    """Rows (cohort, n, users): n = -1 holds each cohort's size; "on": users with a
    return event in period cohort + n; "on or after" is summed from the users' furthest
    return (n = the last period they returned in), in Python."""
    start, ret, kind, interval, timezone, behaviour_filter = shape
    assert isinstance(start, tuple)
    assert isinstance(interval, Interval)
    assert isinstance(timezone, str)
    assert isinstance(behaviour_filter, tuple)

    def index(name: str) -> exp.Expr:
        return interval_index(renderer, exp.column(name, quoted=True), interval, timezone)

    if kind is RetentionKind.RECURRING:
        starts = (
            sqlglot.select("user_id", exp.alias_(index("occurred_at"), "cohort"))
            .distinct()
            .from_(_table(start))
            .where(_rows(start, behaviour_filter, first_time=False))
        )
        ctes: list[tuple[str, exp.Expr]] = [("starts", starts)]
    else:
        firsts = (
            sqlglot.select("user_id", _x("MIN(occurred_at) AS first_at"))
            .from_(_table(start))
            .where(_rows(start, behaviour_filter, first_time=True))
            .group_by("user_id")
        )
        starts = (
            sqlglot.select("user_id", exp.alias_(index("first_at"), "cohort"))
            .from_("firsts")
            .where(_x("first_at >= ?"))
        )
        ctes = [("firsts", firsts), ("starts", starts)]
    returns: exp.Expr
    if ret is None:  # the start event returns too: its pairs are the cohorts'
        returns = _x("SELECT user_id, cohort AS p FROM starts")
    else:
        assert isinstance(ret, tuple)
        returns = (
            sqlglot.select("user_id", exp.alias_(index("occurred_at"), "p"))
            .distinct()
            .from_(_table(ret))
            .where(_rows(ret, behaviour_filter, first_time=False))
        )
    pairs = _x(
        "SELECT s.cohort AS cohort, s.user_id AS user_id, r.p - s.cohort AS n "
        "FROM starts AS s JOIN returns AS r ON r.user_id = s.user_id AND r.p > s.cohort"
    )
    final = _x(
        "SELECT cohort, -1 AS n, COUNT(*) AS users FROM starts GROUP BY cohort "
        "UNION ALL SELECT cohort, n, COUNT(*) AS users FROM pairs GROUP BY cohort, n"
    )
    assert isinstance(final, exp.Query)
    for name, query in [*ctes, ("returns", returns), ("pairs", pairs)]:
        final = final.with_(name, as_=query, copy=False)
    return final


def _furthest(renderer: Renderer, *shape: object) -> exp.Query:
    """As :func:`_retention_query`, with each cohort user's furthest return as the offset."""
    query = _retention_query(renderer, *shape)
    furthest = _x("SELECT cohort, user_id, MAX(n) AS n FROM pairs GROUP BY cohort, user_id")
    final = _x(
        "SELECT cohort, -1 AS n, COUNT(*) AS users FROM starts GROUP BY cohort "
        "UNION ALL SELECT cohort, n, COUNT(*) AS users FROM furthest GROUP BY cohort, n"
    )
    assert isinstance(final, exp.Query)
    for cte in query.ctes:
        final = final.with_(cte.alias, as_=cte.this, copy=False)
    return final.with_("furthest", as_=furthest, copy=False)


class Retention:
    """Runs retention queries through the metric layer."""

    def __init__(self, metrics: MetricService) -> None:
        self._metrics = metrics

    def run(self, query: RetentionQuery) -> RetentionResult:
        build = _retention_query if query.criterion is RetentionCriterion.ON else _furthest
        depends = tuple(
            dict.fromkeys(
                SCHEMAS[s.event_type].table for s in (query.start_event, query.return_event)
            )
        )
        table = self._metrics.run_statement(Statement(build, query._params, depends, query._shape))
        sizes: dict[int, int] = {}
        counts: dict[tuple[int, int], int] = {}
        for cohort, offset, users in zip(
            table.column("cohort").to_pylist(),
            table.column("n").to_pylist(),
            table.column("users").to_pylist(),
            strict=True,
        ):
            if offset < 0:
                sizes[int(cohort)] = int(users)
            else:
                counts[int(cohort), int(offset)] = int(users)
        first, last = query.first_index, query.last_index
        cohorts = []
        for c in range(first, last + 1):
            size = sizes.get(c, 0)
            cells = []
            reached = 0
            span = last - c
            # "on or after": period N counts users whose furthest return is N or later.
            for n in range(span, -1, -1):
                if query.criterion is RetentionCriterion.ON_OR_AFTER:
                    reached += counts.get((c, n), 0)
                    users = size if n == 0 else reached
                else:
                    users = size if n == 0 else counts.get((c, n), 0)
                ends = start_of(c + n + 1, query.interval, query.timezone)
                cells.append(
                    RetentionCell(
                        period=n,
                        start=start_of(c + n, query.interval, query.timezone),
                        users=users,
                        percentage=users / size if size else None,
                        in_progress=ends > query.date_to,
                    )
                )
            cells.reverse()
            cohorts.append(
                RetentionCohort(
                    start=start_of(c, query.interval, query.timezone), users=size, cells=cells
                )
            )
        return RetentionResult(
            period=Period.of(query.window),
            interval=query.interval.value,
            timezone=query.timezone,
            kind=query.kind.value,
            criterion=query.criterion.value,
            cohorts=cohorts,
            mean=_means(cohorts, last - first + 1),
        )


def _means(cohorts: list[RetentionCohort], periods: int) -> list[RetentionMean]:
    means = []
    for n in range(periods):
        complete = [
            (c.cells[n].users, c.users)
            for c in cohorts
            if n < len(c.cells) and not c.cells[n].in_progress and c.users
        ]
        total = sum(size for _, size in complete)
        means.append(
            RetentionMean(
                period=n,
                percentage=sum(u for u, _ in complete) / total if total else None,
                cohorts=len(complete),
            )
        )
    return means
