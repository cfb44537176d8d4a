"""Funnels: how many users go through a sequence of steps, and how fast (PostHog's semantics).

A step is one kind of event (:class:`EventStep`): an event type, optionally a
feature, an action and equality filters on the event's columns or its
``properties``, so one funnel can cross event types ("linked a bank → first
successful sync → used spending analysis → subscribed"). Every event the query
reads falls in its range ``[date_from, date_to)``; a user's events are put in one total
order, by ``occurred_at`` and then ``event_id`` (events at the same instant are
ordered by their ids). Three orders, as PostHog has them:

* **ordered** (the default): each step's event comes after the previous step's,
  other events allowed between. From each of the user's step-1 events the path
  takes, for each next step, the first matching event after the previous step's
  (the earliest choice reaches furthest);
* **strict**: each step's event is the user's very next event (of the event types
  the funnel's steps use);
* **unordered**: the steps in any order; a user has completed ``n`` steps when
  ``n`` distinct steps have an event at or after some anchor event of theirs (an
  event of any step) within the conversion window. An event matching two steps
  counts for both.

Every later step's event must fall within the **conversion window** (default 14
days, a fixed duration: 14 x 24 h) of the path's step-1 event, bound included:
``t_i - t_1 ≤ window``. A user counts once, with the path from their step-1 events
that reaches furthest (the earliest such start when several do). Per step:

* ``users`` reaching it, ``conversion_from_first`` = users_i / users_1 and
  ``conversion_from_previous`` = users_i / users_(i-1), ``dropped`` = users_(i-1) - users_i;
* the median (nearest rank) and mean seconds from the previous step's event to this one's
  (ordered and strict funnels; an unordered funnel's steps have no fixed order);
* the time to convert, step 1 to the last step, of the users who completed it: nearest-rank
  percentiles 10, 25, 50, 75 and 90, and a histogram in fixed bins.

**Breakdown** by a property with first-touch attribution: a user's value is the one on
their path's step-1 event (a column of its event type, or ``properties.<key>``); the
``breakdown_limit`` values with the most users are kept, the rest summed as ``(other)``,
a missing value is ``(none)``. The first series is always all users.

**Exclusion steps** (ordered funnels): a user who has, on any of their paths, an
exclusion event strictly between the events of steps ``after`` and ``before`` of that
path is dropped from the whole funnel. The users reaching a step and dropping off there
(or converting) are listed a page at a time by :meth:`Funnels.users`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
import sqlglot
from sqlglot import exp

from banking_analytics.analytics._shape import Period, Shape
from banking_analytics.analytics.behavior._query import (
    MAX_BREAKDOWN_VALUES,
    MAX_STEPS,
    OTHER,
    BehaviorQuery,
    BehaviorQueryError,
    EventFilter,
)
from banking_analytics.events import SCHEMAS, Kind
from banking_analytics.metrics import MetricService, Renderer, Statement
from banking_analytics.vocabulary import BankingFeature, EventType

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "ACTION_COLUMNS",
    "FEATURE_COLUMNS",
    "MAX_CONVERSION_WINDOW",
    "MAX_USERS_PAGE",
    "NONE",
    "TIME_BINS",
    "EventStep",
    "Exclusion",
    "FunnelOrder",
    "FunnelQuery",
    "FunnelResult",
    "FunnelSeries",
    "FunnelStepResult",
    "FunnelUsers",
    "Funnels",
    "TimeBin",
    "TimeToConvert",
    "event_condition",
    "step_tables",
]

MAX_CONVERSION_WINDOW = timedelta(days=90)
#: The most users one page of a funnel's drop-offs lists.
MAX_USERS_PAGE = 10_000
#: The breakdown label of users with no value (those outside the kept values: ``OTHER``).
NONE = "(none)"
#: Upper bounds (exclusive, seconds) of the time-to-convert histogram's bins; the last
#: bin holds everything from 7 days up to the conversion window.
TIME_BINS: tuple[int, ...] = (60, 600, 3600, 6 * 3600, 86_400, 3 * 86_400, 7 * 86_400)
_PERCENTILES = (0.1, 0.25, 0.5, 0.75, 0.9)

#: The column a step's ``action`` matches, per event type: what happened.
ACTION_COLUMNS: dict[EventType, str] = {
    EventType.BEHAVIOR: "action",
    EventType.CONNECTION_ATTEMPT: "outcome",
    EventType.SYNC_RUN: "outcome",
    EventType.SUBSCRIPTION: "kind",
    EventType.PERFORMANCE_METRIC: "metric_type",
}
#: The column a step's ``feature`` matches, per event type.
FEATURE_COLUMNS: dict[EventType, str] = {
    EventType.BEHAVIOR: "feature",
    EventType.CONNECTION_ATTEMPT: "feature",
    EventType.SYNC_RUN: "feature",
    EventType.SUBSCRIPTION: "attributed_feature",
    EventType.PERFORMANCE_METRIC: "feature",
}
_FILTERABLE = {Kind.IDENTIFIER, Kind.TEXT, Kind.ENUM, Kind.BOOLEAN, Kind.INTEGER}
_PROPERTY = re.compile(r"^properties\.([A-Za-z_][A-Za-z0-9_]{0,63})$")
_ENVELOPE_NOT_FILTERED = {"event_id", "occurred_at", "received_at", "sent_at", "properties"}

FilterValue = str | bool | int


class FunnelOrder(StrEnum):
    ORDERED = "ordered"
    STRICT = "strict"
    UNORDERED = "unordered"


def _column(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def _property(key: str) -> exp.Expr:
    """``properties ->> key`` as text, in each engine's JSON operator."""
    return exp.JSONExtractScalar(
        this=_column("properties"),
        expression=exp.JSONPath(expressions=[exp.JSONPathRoot(), exp.JSONPathKey(this=key)]),
        only_json_types=True,
    )


def _attribute(event_type: EventType, name: str) -> exp.Expr:
    """A column of the event type's table, or ``properties.<key>`` as text; checked."""
    if match := _PROPERTY.match(name):
        return _property(match[1])
    schema = SCHEMAS[event_type]
    try:
        kind = schema.field(name).kind
    except KeyError:
        raise BehaviorQueryError(
            f"{name!r} is not a column of {event_type.value} events "
            "(nor properties.<key>, a key of letters, digits and _)"
        ) from None
    if kind not in _FILTERABLE or name in _ENVELOPE_NOT_FILTERED:
        raise BehaviorQueryError(
            f"{event_type.value} column {name!r} ({kind.value}) cannot be matched"
        )
    return _column(name)


@dataclass(frozen=True, slots=True)
class EventStep:
    """Events of one kind: an event type, optionally its feature and action (the column
    :data:`ACTION_COLUMNS` names: a behaviour's action, an attempt's or a sync's outcome,
    a subscription event's kind) and equal values of other columns or of
    ``properties.<key>`` (compared as text)."""

    #: Unknown fields are an error when the API reads a step from JSON.
    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    event_type: EventType
    feature: BankingFeature | None = None
    action: str | None = None
    where: dict[str, FilterValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "event_type", EventType(self.event_type))
        if self.feature is not None:
            object.__setattr__(self, "feature", BankingFeature(self.feature))
        if len(self.where) > 10:
            raise BehaviorQueryError("a step matches at most 10 columns")
        for name, value in self.where.items():
            _attribute(self.event_type, name)
            if _PROPERTY.match(name) and not isinstance(value, str):
                raise BehaviorQueryError(f"{name} is compared as text: give a string")

    @property
    def shape(self) -> tuple[object, ...]:
        """What changes the step's SQL: its type and which fields it matches."""
        return (
            self.event_type,
            self.feature is not None,
            self.action is not None,
            tuple(sorted(self.where)),
        )

    @property
    def values(self) -> tuple[object, ...]:
        """The values its condition binds, in the order :func:`event_condition` places them."""
        found: list[object] = []
        if self.feature is not None:
            found.append(self.feature.value)
        if self.action is not None:
            found.append(self.action)
        found.extend(self.where[name] for name in sorted(self.where))
        return tuple(found)

    @property
    def label(self) -> str:
        parts = [self.event_type.value]
        if self.feature is not None:
            parts.append(self.feature.value)
        if self.action is not None:
            parts.append(self.action)
        parts.extend(f"{k}={v}" for k, v in sorted(self.where.items()))
        return " ".join(parts)


def event_condition(step_shape: tuple[object, ...]) -> exp.Expr:
    """The condition a step (given by its :attr:`EventStep.shape`) puts on its table's rows,
    its values as placeholders in :attr:`EventStep.values` order."""
    event_type, has_feature, has_action, names = step_shape
    assert isinstance(event_type, EventType)
    assert isinstance(names, tuple)
    terms: list[exp.Expr] = []
    if has_feature:
        terms.append(
            exp.EQ(this=_column(FEATURE_COLUMNS[event_type]), expression=exp.Placeholder())
        )
    if has_action:
        terms.append(exp.EQ(this=_column(ACTION_COLUMNS[event_type]), expression=exp.Placeholder()))
    for name in names:
        terms.append(exp.EQ(this=_attribute(event_type, name), expression=exp.Placeholder()))
    return exp.and_(*terms) if terms else exp.true()


def step_tables(steps: Sequence[EventStep]) -> tuple[EventType, ...]:
    """The event types the steps read, each once, in the order first named."""
    return tuple(dict.fromkeys(s.event_type for s in steps))


@dataclass(frozen=True, slots=True)
class Exclusion:
    """Users with such an event between their path's steps ``after`` and ``before``
    (numbered from 1) are dropped from the funnel."""

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    step: EventStep
    after: int = 1
    before: int = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class FunnelQuery(BehaviorQuery):
    """A funnel's definition (see the module docs); validated and bounded when made.

    Its range ``[date_from, date_to)`` bounds every event it reads; ``events`` filters
    the behaviour events among them (other event types are matched by the steps alone).
    """

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    steps: tuple[EventStep, ...]
    order: FunnelOrder = FunnelOrder.ORDERED
    conversion_window: timedelta = timedelta(days=14)
    breakdown: str | None = None
    breakdown_limit: int = 10
    exclusions: tuple[Exclusion, ...] = ()

    def __post_init__(self) -> None:
        BehaviorQuery.__post_init__(self)
        object.__setattr__(self, "steps", tuple(self.steps))
        object.__setattr__(self, "exclusions", tuple(self.exclusions))
        object.__setattr__(self, "order", FunnelOrder(self.order))
        if not 2 <= len(self.steps) <= MAX_STEPS:
            raise BehaviorQueryError(f"a funnel has 2 to {MAX_STEPS} steps, got {len(self.steps)}")
        if not timedelta(0) < self.conversion_window <= MAX_CONVERSION_WINDOW:
            raise BehaviorQueryError(
                f"conversion_window must be longer than zero and at most "
                f"{MAX_CONVERSION_WINDOW.days} days"
            )
        if not 1 <= self.breakdown_limit <= MAX_BREAKDOWN_VALUES:
            raise BehaviorQueryError(f"breakdown_limit must be 1 to {MAX_BREAKDOWN_VALUES}")
        if self.breakdown is not None:
            # It must name a column of the first step's type (or a property): first touch.
            _attribute(self.steps[0].event_type, self.breakdown)
        if self.exclusions and self.order is not FunnelOrder.ORDERED:
            raise BehaviorQueryError("exclusion steps apply to ordered funnels only")
        if len(self.exclusions) > MAX_STEPS:
            raise BehaviorQueryError(f"at most {MAX_STEPS} exclusion steps")
        for ex in self.exclusions:
            if not 1 <= ex.after < ex.before <= len(self.steps):
                raise BehaviorQueryError(
                    f"an exclusion lies between two steps 1 ≤ after < before ≤ {len(self.steps)}"
                )
        distinct = {(s.shape, s.values) for s in self.steps}
        if self.order is FunnelOrder.UNORDERED and len(distinct) < len(self.steps):
            raise BehaviorQueryError("an unordered funnel's steps must differ")

    @property
    def _shape(self) -> tuple[object, ...]:
        every = [(s.shape, s.values) for s in (*self.steps, *(e.step for e in self.exclusions))]
        return (
            self.order,
            tuple(s.shape for s in self.steps),
            tuple((e.step.shape, e.after, e.before) for e in self.exclusions),
            self.breakdown,
            self.events.shape,
            # Two steps (or exclusions) alike in their values too: see _paths_asof.
            len(set(every)) < len(every),
        )

    def _event_params(self) -> list[object]:
        """The values of the events part, in its order: per table, each step's then each
        exclusion's condition values, then the range's bounds (and for behaviour events,
        the event filter's values)."""
        found: list[object] = []
        for table in _tables(self._shape):
            for step in (*self.steps, *(e.step for e in self.exclusions)):
                if step.event_type is table:
                    found.extend(step.values)
            found.extend((self.date_from, self.date_to))
            if table is EventType.BEHAVIOR:
                found.extend(self.events.params)
        return found


# -- result shapes ------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class FunnelStepResult(Shape):
    """One step's figures."""

    step: int
    name: str
    users: int
    """Users who reached this step."""
    dropped: int
    """Users who reached the previous step but not this one (0 at step 1)."""
    conversion_from_first: float | None
    conversion_from_previous: float | None
    median_seconds_from_previous: float | None
    """Nearest-rank median of the seconds from the previous step's event (ordered, strict)."""
    mean_seconds_from_previous: float | None


@dataclass(slots=True, eq=False)
class TimeBin(Shape):
    """Users who converted in less than ``below_seconds`` (and at least the previous bin's)."""

    below_seconds: float | None
    """None: the last bin, up to the conversion window."""
    users: int


@dataclass(slots=True, eq=False)
class TimeToConvert(Shape):
    """Seconds from step 1 to the last step, of the users who completed the funnel."""

    users: int
    median_seconds: float | None
    percentiles: dict[str, float | None]
    """p10, p25, p50, p75, p90 (nearest rank)."""
    bins: list[TimeBin]


@dataclass(slots=True, eq=False)
class FunnelSeries(Shape):
    """The funnel of all users (``breakdown_value`` None) or of one breakdown value."""

    breakdown_value: str | None
    steps: list[FunnelStepResult]
    time_to_convert: TimeToConvert


@dataclass(slots=True, eq=False)
class FunnelResult(Shape):
    period: Period
    order: str
    conversion_window_seconds: float
    breakdown: str | None
    series: list[FunnelSeries]
    """All users first, then each breakdown value by users at step 1 (``(other)``,
    ``(none)`` among them by their size)."""


@dataclass(slots=True, eq=False)
class FunnelUsers(Shape):
    """A page of the users whose path ends at ``step`` (dropped off after it, or converted
    when it is the last step), by user id."""

    step: int
    total: int
    offset: int
    users: list[str]
    next_offset: int | None


# -- SQL ----------------------------------------------------------------------------------


def _tables(shape: tuple[object, ...]) -> tuple[EventType, ...]:
    _, steps, exclusions, _, _, _ = shape
    assert isinstance(steps, tuple)
    assert isinstance(exclusions, tuple)
    kinds = [s[0] for s in steps] + [e[0][0] for e in exclusions]
    return tuple(dict.fromkeys(kinds))


_MICROS_PER_SECOND = "1000000.0"


def _x(text: str) -> exp.Expr:
    return sqlglot.parse_one(text)


def _events(shape: tuple[object, ...], micros: Renderer | None = None) -> exp.Query:
    """Every event of the tables the funnel reads in its window: user, time (epoch seconds),
    id, one flag per step ``m1..mk`` and exclusion ``x1..``, the breakdown value ``bd``;
    rows matching no step left out unless the funnel is strict. With ``micros``, the time
    in integer epoch microseconds too (``us``), as that renderer writes it, and the seconds
    read from it (``us / 10^6``: one rounding, as the as-of chain reads them from ``us``)."""
    order, steps, exclusions, breakdown, behaviour_filter, _ = shape
    assert isinstance(steps, tuple)
    assert isinstance(exclusions, tuple)
    parts: list[exp.Select] = []
    for table in _tables(shape):
        columns: list[exp.Expr] = [_x("user_id AS user_id"), _x("event_id AS event_id")]
        if micros is None:
            columns.append(_x("TIME_TO_UNIX(occurred_at) AS t"))
        else:
            us = micros.epoch_micros(_x("occurred_at"))
            seconds = exp.Div(this=us.copy(), expression=_x(_MICROS_PER_SECOND))
            columns += [exp.alias_(us, "us"), exp.alias_(seconds, "t")]
        flags = [(f"m{i}", s) for i, s in enumerate(steps, 1)]
        flags += [(f"x{i}", e[0]) for i, e in enumerate(exclusions, 1)]
        for name, step in flags:
            condition = event_condition(step) if step[0] is table else exp.false()
            # NULL where a matched column is NULL: every use of a flag reads NULL as
            # false, and plain comparisons are what the engine pushes into its scan.
            columns.append(exp.alias_(condition, name))
        if breakdown is not None and table is steps[0][0]:
            value: exp.Expr = exp.cast(_attribute(table, str(breakdown)), "TEXT")
        else:
            value = exp.cast(exp.null(), "TEXT")
        columns.append(exp.alias_(value, "bd"))
        rows = _x("occurred_at >= ? AND occurred_at < ? AND user_id IS NOT NULL")
        if table is EventType.BEHAVIOR:
            chosen = EventFilter.condition(behaviour_filter)  # type: ignore[arg-type]
            rows = rows if chosen is None else exp.and_(rows, chosen)
        parts.append(
            sqlglot.select(*columns)
            .from_(exp.table_(SCHEMAS[table].table, quoted=True))
            .where(rows)
        )
    union: exp.Query = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)
    every = sqlglot.select("*").from_(
        exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier("u")))
    )
    if order is not FunnelOrder.STRICT:
        names = [f"m{i}" for i in range(1, len(steps) + 1)]
        names += [f"x{j}" for j in range(1, len(exclusions) + 1)]
        every = every.where(exp.or_(*(_x(name) for name in names)))
    return every


def _paths_ordered(
    k: int, exclusions: tuple[tuple[object, int, int], ...]
) -> list[tuple[str, exp.Expr]]:
    """Each step-1 event's greedy path, in window passes over the user's events, no joins.

    ``N_i(q)``, the position of the first step-i event after row ``q``, is non-decreasing
    in ``q``; so is any value ``X`` that grows with position (the time, a running count).
    The value at the first following step-i row is therefore the minimum of
    ``CASE WHEN m_i THEN X END`` over the following rows: a running minimum over the
    user's events in reverse order (which PostgreSQL computes incrementally). Chaining
    backwards from step ``i``, pass ``s`` turns the value at step ``i`` reached from a
    step-``(i - s + 1)`` row into the value reached from a step-``(i - s)`` row; after
    ``i - 1`` passes each step-1 row holds ``X`` at its path's step ``i``: the path's times,
    and for exclusions the running count of exclusion events at steps ``after`` (through
    it) and ``before`` (before it). Pass ``s`` reads only the rows of steps 1 to
    ``k - s + 1``: the later steps' rows have served.
    """
    later = (
        "PARTITION BY user_id ORDER BY t DESC, event_id DESC "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING"
    )
    upto = "PARTITION BY user_id ORDER BY t, event_id ROWS UNBOUNDED PRECEDING"
    counts = [
        f"SUM(CASE WHEN x{j} THEN 1 ELSE 0 END) OVER ({upto}) AS through{j}"
        for j in range(1, len(exclusions) + 1)
    ]
    ctes: list[tuple[str, exp.Expr]] = []
    source = "ev"
    # (step, value, name): the value at the path's step, under that name at the start row.
    chained: list[tuple[int, str, str]] = [(i, "t", f"t{i}") for i in range(2, k + 1)]
    at_start = ["t AS t1"]
    if exclusions:
        ctes.append(("counted", _x(f"SELECT {', '.join(['*', *counts])} FROM ev")))
        source = "counted"
        for j, (_, a, b) in enumerate(exclusions, 1):
            before = f"through{j} - CASE WHEN x{j} THEN 1 ELSE 0 END"
            chained.append((b, f"({before})", f"before{j}"))
            if a == 1:
                at_start.append(f"through{j} AS after{j}")
            else:
                chained.append((a, f"through{j}", f"after{j}"))
    for s in range(1, k):
        columns = ["*"]
        for step, value, name in chained:
            if step - s >= 1:
                previous = value if s == 1 else f"{name}_{s - 1}"
                flag = f"m{step - s + 1}"
                columns.append(
                    f"MIN(CASE WHEN {flag} THEN {previous} END) OVER ({later}) AS {name}_{s}"
                )
        # Pass s reads only the rows of steps 1..k-s+1: later steps have served.
        kept = " OR ".join(f"m{i}" for i in range(1, k - s + 2))
        rows = f" WHERE {kept}" if s > 1 else ""  # the first reads every step's rows
        ctes.append((f"pass{s}", _x(f"SELECT {', '.join(columns)} FROM {source}{rows}")))
        source = f"pass{s}"
    finals = [f"{name}_{step - 1} AS {name}" for step, _, name in chained]
    ctes.append(
        (
            "chain",
            _x(f"SELECT user_id, bd, {', '.join([*at_start, *finals])} FROM {source} WHERE m1"),
        )
    )
    # Later steps come later: the steps reached are those within the window of step 1.
    within = " + ".join(f"CASE WHEN t{i} - t1 <= ? THEN 1 ELSE 0 END" for i in range(2, k + 1))
    excluded = " OR ".join(
        f"(t{b} - t1 <= ? AND before{j} - after{j} > 0)"
        for j, (_, a, b) in enumerate(exclusions, 1)
    )
    steps = _x(
        f"SELECT user_id, bd, {', '.join(f't{i}' for i in range(1, k + 1))}, "
        f"1 + {within} AS steps, {excluded or 'FALSE'} AS excluded FROM chain"
    )
    return [*ctes, ("paths", steps)]


def _paths_asof(
    k: int, exclusions: tuple[tuple[object, int, int], ...], *, repeated: bool
) -> list[tuple[str, exp.Expr]]:
    """Each step-1 event's greedy path by as-of joins, for an engine that has them: the
    path so far joined, per user, to the first next-step event after its last one, in the
    users' total order. An exclusion joins the first exclusion event after the path's step
    ``after``: the path is excluded when that event comes before its step ``before``. The
    same paths as :func:`_paths_ordered`, without sorting every event once per step (10M
    events, 4 steps: about half the time).

    The order's key is ``(t, event_id)``, and comparing such pairs makes the joins slower
    by a fifth. So the joins first compare the integer instant (``us``), joining the first
    event *at or after* the instant: where that event is at a later instant, no event of
    the same instant came between, and it is the one the exact order gives. Only where a
    join met an event at the same instant (``tied``) is every path chained again on the
    exact key; the other chain then reads no rows. A funnel with two identical steps
    (or exclusions) is ``repeated``: an event of one is at the instant of the other, always
    tied, so it is chained on the exact key alone.
    """
    times = ", ".join(f"t{i}" for i in range(1, k + 1))
    early = "".join(f", early{j}" for j in range(1, len(exclusions) + 1))
    if repeated:
        exact = _asof_chain(k, exclusions, "exact", "(t, event_id)", "<", "TRUE", times=True)
        ctes = [*exact, ("chained", _x(f"SELECT user_id, bd, {times}{early} FROM exact"))]
    else:
        fast = _asof_chain(k, exclusions, "fast", "us", "<=", "TRUE")
        exact = _asof_chain(
            k, exclusions, "exact", "(t, event_id)", "<", "(SELECT tied FROM ties)", times=True
        )
        met = [f"k{i} = k{i - 1}" for i in range(2, k + 1)]
        met += [f"e{j} = k{a} OR e{j} = k{b}" for j, (_, a, b) in enumerate(exclusions, 1)]
        ties = _x(f"SELECT COALESCE(BOOL_OR({' OR '.join(met)}), FALSE) AS tied FROM fast")
        seconds = ", ".join(f"k{i} / {_MICROS_PER_SECOND} AS t{i}" for i in range(1, k + 1))
        chained = _x(
            f"SELECT user_id, bd, {seconds}{early} FROM fast WHERE NOT (SELECT tied FROM ties) "
            f"UNION ALL SELECT user_id, bd, {times}{early} FROM exact"
        )
        ctes = [*fast, ("ties", ties), *exact, ("chained", chained)]
    within = " + ".join(f"CASE WHEN t{i} - t1 <= ? THEN 1 ELSE 0 END" for i in range(2, k + 1))
    excluded = " OR ".join(
        f"(t{b} - t1 <= ? AND early{j})" for j, (_, _, b) in enumerate(exclusions, 1)
    )
    steps = _x(
        f"SELECT user_id, bd, {times}, 1 + {within} AS steps, {excluded or 'FALSE'} AS excluded "
        "FROM chained"
    )
    return [*ctes, ("paths", steps)]


def _asof_chain(
    k: int,
    exclusions: tuple[tuple[object, int, int], ...],
    name: str,
    key: str,
    after: str,
    applies: str,
    *,
    times: bool = False,
) -> list[tuple[str, exp.Expr]]:
    """:func:`_paths_asof`'s joins on the order ``key``, each joining the first event whose
    key is ``after`` (``<`` or ``<=``) the path's, over the rows where ``applies``: CTEs
    ``{name}_s1..``, ``{name}_x1..``, ``{name}_c1..``, then ``{name}``: each path's keys
    ``k1..`` (and with ``times`` its times ``t1..``), and per exclusion its event's key
    ``e1..`` and whether that event came ``early`` (before the step it must not precede)."""
    time = "t, " if times else ""
    ctes: list[tuple[str, exp.Expr]] = [
        (
            f"{name}_s1",
            _x(
                f"SELECT user_id, bd, {time and 't AS t1, '}{key} AS k1 FROM ev "
                f"WHERE m1 AND {applies}"
            ),
        )
    ]
    ctes += [
        (
            f"{name}_s{i}",
            _x(f"SELECT user_id, {time}{key} AS k FROM ev WHERE m{i} AND {applies}"),
        )
        for i in range(2, k + 1)
    ]
    ctes += [
        (f"{name}_x{j}", _x(f"SELECT user_id, {key} AS k FROM ev WHERE x{j} AND {applies}"))
        for j in range(1, len(exclusions) + 1)
    ]
    source = f"{name}_s1"
    joins = [
        (f"s{i}", f"k{i - 1}", f"{time and f's.t AS t{i}, '}s.k AS k{i}") for i in range(2, k + 1)
    ]
    joins += [(f"x{j}", f"k{a}", f"s.k AS e{j}") for j, (_, a, _) in enumerate(exclusions, 1)]
    for n, (table, since, columns) in enumerate(joins, 1):
        joined = sqlglot.parse_one(
            f"SELECT c.*, {columns} FROM {source} AS c ASOF LEFT JOIN {name}_{table} AS s "
            f"ON c.user_id = s.user_id AND c.{since} {after} s.k",
            read="duckdb",
        )
        source = f"{name}_c{n}"
        ctes.append((source, joined))
    early = "".join(f", e{j} < k{b} AS early{j}" for j, (_, _, b) in enumerate(exclusions, 1))
    return [*ctes, (name, _x(f"SELECT *{early} FROM {source}"))]


def _paths_strict(k: int) -> list[tuple[str, exp.Expr]]:
    """Each step-1 event's path through the user's very next events (``LEAD``)."""
    order = "PARTITION BY user_id ORDER BY t, event_id"
    leads = [
        f"LEAD(m{i}, {i - 1}) OVER ({order}) AS l{i}, LEAD(t, {i - 1}) OVER ({order}) AS t{i}"
        for i in range(2, k + 1)
    ]
    leaded = _x(f"SELECT user_id, bd, m1, t AS t1, {', '.join(leads)} FROM ev")
    reached = " + ".join(
        "CASE WHEN "
        + " AND ".join(f"COALESCE(l{j}, FALSE) AND t{j} - t1 <= ?" for j in range(2, i + 1))
        + " THEN 1 ELSE 0 END"
        for i in range(2, k + 1)
    )
    steps = _x(
        f"SELECT user_id, bd, {', '.join(f't{i}' for i in range(1, k + 1))}, "
        f"1 + {reached} AS steps, FALSE AS excluded FROM leaded WHERE m1"
    )
    return [("leaded", leaded), ("paths", steps)]


def _paths_unordered(k: int) -> list[tuple[str, exp.Expr]]:
    """Each anchor event's completed steps: per step, its first event at or after the
    anchor (a running minimum over the user's events in reverse order)."""
    later = (
        "PARTITION BY user_id ORDER BY t DESC, event_id DESC "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
    )
    firsts = [f"MIN(CASE WHEN m{i} THEN t END) OVER ({later}) AS f{i}" for i in range(1, k + 1)]
    found = _x(f"SELECT user_id, bd, t AS t1, {', '.join(firsts)} FROM ev")
    done = [f"CASE WHEN f{i} - t1 <= ? THEN f{i} END AS d{i}" for i in range(1, k + 1)]
    completed = _x(f"SELECT user_id, bd, t1, {', '.join(done)} FROM found")
    count = " + ".join(f"CASE WHEN d{i} IS NULL THEN 0 ELSE 1 END" for i in range(1, k + 1))
    # Only the last step's time is defined (when all are done): the latest first event.
    last = f"GREATEST({', '.join(f'd{i}' for i in range(1, k + 1))})"
    middle = ", ".join(f"CAST(NULL AS DOUBLE) AS t{i}" for i in range(2, k))
    steps = _x(
        f"SELECT user_id, bd, t1, {middle + ', ' if middle else ''}"
        f"CASE WHEN {count} = {k} THEN {last} END AS t{k}, "
        f"{count} AS steps, FALSE AS excluded FROM completed"
    )
    return [("found", found), ("completed", completed), ("paths", steps)]


def _per_user(k: int) -> list[tuple[str, exp.Expr]]:
    """Each user's best path (most steps, earliest start), users with an excluded path
    left out, labelled by breakdown value (kept values, ``(other)``, ``(none)``)."""
    times = ", ".join(f"t{i}" for i in range(1, k + 1))
    best = _x(
        f"SELECT user_id, bd, steps, {times}, "
        "MAX(CASE WHEN excluded THEN 1 ELSE 0 END) OVER (PARTITION BY user_id) AS out, "
        "ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY steps DESC, t1) AS choice FROM paths"
    )
    users = _x(f"SELECT user_id, bd, steps, {times} FROM best WHERE choice = 1 AND out = 0")
    sizes = _x(
        "SELECT bd, ROW_NUMBER() OVER (ORDER BY COUNT(*) DESC, bd) AS place "
        "FROM users WHERE NOT bd IS NULL GROUP BY bd"
    )
    labelled = _x(
        f"SELECT users.user_id, users.steps, {', '.join(f'users.t{i}' for i in range(1, k + 1))}, "
        f"CASE WHEN users.bd IS NULL THEN '{NONE}' WHEN sizes.place <= ? THEN users.bd "
        f"ELSE '{OTHER}' END AS label FROM users LEFT JOIN sizes ON sizes.bd = users.bd"
    )
    return [("best", best), ("users", users), ("sizes", sizes), ("labelled", labelled)]


def _with(ctes: list[tuple[str, exp.Expr]], final: exp.Select) -> exp.Select:
    for name, query in ctes:
        final = final.with_(name, as_=query, copy=False)
    return final


def _user_ctes(renderer: Renderer, shape: tuple[object, ...]) -> list[tuple[str, exp.Expr]]:
    order, steps, exclusions, _, _, repeated = shape
    assert isinstance(steps, tuple)
    assert isinstance(exclusions, tuple)
    k = len(steps)
    asof = order is FunnelOrder.ORDERED and renderer.asof_join
    if asof:
        paths = _paths_asof(k, exclusions, repeated=bool(repeated))
    elif order is FunnelOrder.ORDERED:
        paths = _paths_ordered(k, exclusions)
    elif order is FunnelOrder.STRICT:
        paths = _paths_strict(k)
    else:
        paths = _paths_unordered(k)
    return [("ev", _events(shape, renderer if asof else None)), *paths, *_per_user(k)]


def _funnel_query(renderer: Renderer, *shape: object) -> exp.Query:
    """Per breakdown label (and for all users: the grouping set ``()``), per step: users
    reaching it, and the seconds from the previous step (median, mean); the time to convert's
    percentiles and histogram."""
    order, steps, _, _, _, _ = shape
    assert isinstance(steps, tuple)
    k = len(steps)
    columns: list[exp.Expr] = [_x("label"), _x("GROUPING(label) AS total")]
    for i in range(1, k + 1):
        columns.append(_x(f"SUM(CASE WHEN steps >= {i} THEN 1 ELSE 0 END) AS u{i}"))
    gaps = range(2, k + 1) if order is not FunnelOrder.UNORDERED else range(0)
    for i in gaps:
        gap = _x(f"CASE WHEN steps >= {i} THEN t{i} - t{i - 1} END")
        columns.append(exp.alias_(renderer.percentiles(gap, [0.5]), f"med{i}"))
        columns.append(exp.alias_(exp.Avg(this=gap.copy()), f"mean{i}"))
    whole = _x(f"CASE WHEN steps = {k} THEN t{k} - t1 END")
    columns.append(exp.alias_(renderer.percentiles(whole, _PERCENTILES), "ttc"))
    bounds = [*TIME_BINS, None]
    for b, upper in enumerate(bounds):
        lower = TIME_BINS[b - 1] if b else None
        terms = [f"steps = {k}"]
        if lower is not None:
            terms.append(f"t{k} - t1 >= {lower}")
        if upper is not None:
            terms.append(f"t{k} - t1 < {upper}")
        columns.append(_x(f"SUM(CASE WHEN {' AND '.join(terms)} THEN 1 ELSE 0 END) AS b{b}"))
    final = (
        sqlglot.select(*columns)
        .from_("labelled")
        .group_by(exp.GroupingSets(expressions=[exp.Tuple(expressions=[_x("label")]), exp.Tuple()]))
    )
    return _with(_user_ctes(renderer, shape), final)


def _users_query(renderer: Renderer, *shape: object) -> exp.Query:
    """A page of the users whose path ends at a step, by id, with their total."""
    final = _x(
        "SELECT user_id, COUNT(*) OVER () AS total FROM labelled WHERE steps = ? "
        "ORDER BY user_id LIMIT ? OFFSET ?"
    )
    assert isinstance(final, exp.Select)
    return _with(_user_ctes(renderer, shape), final)


def _statement_params(query: FunnelQuery) -> list[object]:
    """Values in the SQL's order: the events part, then the conversion window (seconds) as
    each path comparison uses it, then the breakdown limit."""
    k = len(query.steps)
    seconds = query.conversion_window.total_seconds()
    if query.order is FunnelOrder.ORDERED:
        uses = (k - 1) + len(query.exclusions)
    elif query.order is FunnelOrder.STRICT:
        uses = (k - 1) * k // 2
    else:
        uses = k
    return [*query._event_params(), *([seconds] * uses), query.breakdown_limit]


def _depends_on(query: FunnelQuery) -> tuple[str, ...]:
    return tuple(SCHEMAS[t].table for t in _tables(query._shape))


class Funnels:
    """Runs funnel queries through the metric layer."""

    def __init__(self, metrics: MetricService) -> None:
        self._metrics = metrics

    def run(self, query: FunnelQuery) -> FunnelResult:
        table = self._metrics.run_statement(
            Statement(
                _funnel_query,
                tuple(_statement_params(query)),
                _depends_on(query),
                query._shape,
            )
        )
        series = _series(table, query)
        return FunnelResult(
            period=Period.of(query.window),
            order=query.order.value,
            conversion_window_seconds=query.conversion_window.total_seconds(),
            breakdown=query.breakdown,
            series=series,
        )

    def users(
        self,
        query: FunnelQuery,
        step: int,
        *,
        limit: int = 100,
        offset: int = 0,
    ) -> FunnelUsers:
        """The users whose path ends at ``step`` (1-based): they dropped off after it, or
        converted when it is the last step."""
        if not 1 <= step <= len(query.steps):
            raise BehaviorQueryError(f"step must be 1 to {len(query.steps)}")
        if not 1 <= limit <= MAX_USERS_PAGE or offset < 0:
            raise BehaviorQueryError(f"limit must be 1 to {MAX_USERS_PAGE} and offset ≥ 0")
        params = (*_statement_params(query), step, limit, offset)
        table = self._metrics.run_statement(
            Statement(_users_query, params, _depends_on(query), query._shape)
        )
        users = [str(u) for u in table.column("user_id").to_pylist()]
        total = int(table.column("total")[0].as_py()) if table.num_rows else 0
        if not users and offset:
            # Past the end: the total still answers (counted without the page).
            first = self.users(query, step, limit=1, offset=0)
            total = first.total
        following = offset + len(users)
        return FunnelUsers(
            step=step,
            total=total,
            offset=offset,
            users=users,
            next_offset=following if following < total else None,
        )


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _series(table: pa.Table, query: FunnelQuery) -> list[FunnelSeries]:
    k = len(query.steps)
    rows = table.to_pylist()
    found: list[tuple[int, str, FunnelSeries]] = []
    for row in rows:
        users = [int(row[f"u{i}"] or 0) for i in range(1, k + 1)]
        steps = []
        for i in range(1, k + 1):
            previous = users[i - 2] if i > 1 else users[0]
            steps.append(
                FunnelStepResult(
                    step=i,
                    name=query.steps[i - 1].label,
                    users=users[i - 1],
                    dropped=previous - users[i - 1],
                    conversion_from_first=_ratio(users[i - 1], users[0]),
                    conversion_from_previous=_ratio(users[i - 1], previous),
                    median_seconds_from_previous=_median(row.get(f"med{i}")),
                    mean_seconds_from_previous=_float(row.get(f"mean{i}")),
                )
            )
        quantiles = list(row["ttc"] or [None] * len(_PERCENTILES))
        bins = [
            TimeBin(
                below_seconds=float(upper) if upper is not None else None,
                users=int(row[f"b{b}"] or 0),
            )
            for b, upper in enumerate([*TIME_BINS, None])
        ]
        converted = users[-1]
        ttc = TimeToConvert(
            users=converted,
            median_seconds=_float(quantiles[2]),
            percentiles={
                f"p{round(q * 100)}": _float(v)
                for q, v in zip(_PERCENTILES, quantiles, strict=True)
            },
            bins=bins,
        )
        total = bool(row["total"])
        if not total and query.breakdown is None:
            continue  # without a breakdown every user is "(none)": the total says it
        label = None if total else str(row["label"])
        found.append((0 if total else 1, label or "", FunnelSeries(label, steps, ttc)))
    if not any(total == 0 for total, _, _ in found):  # no events at all
        empty = TimeToConvert(
            0,
            None,
            {f"p{round(q * 100)}": None for q in _PERCENTILES},
            [TimeBin(float(u) if u is not None else None, 0) for u in [*TIME_BINS, None]],
        )
        found.append(
            (
                0,
                "",
                FunnelSeries(
                    None,
                    [
                        FunnelStepResult(i, s.label, 0, 0, None, None, None, None)
                        for i, s in enumerate(query.steps, 1)
                    ],
                    empty,
                ),
            )
        )
    found.sort(key=lambda f: (f[0], -f[2].steps[0].users, f[1]))
    return [f[2] for f in found]


def _median(value: object) -> float | None:
    if isinstance(value, list):
        return _float(value[0]) if value else None
    return _float(value)
