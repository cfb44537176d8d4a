"""What every behaviour query shares: its typed base, its bounds, which events it reads,
and how time is cut into intervals in a timezone.

Each kind of behaviour question (sessions, engagement, stickiness, lifecycle, funnel,
retention, paths) is a frozen dataclass deriving from :class:`BehaviorQuery`, checked
when it is made (a :class:`BehaviorQueryError`, a 4xx at the API, names the part that
is out of bounds), compiled by its own module to a :class:`~banking_analytics.metrics.Statement`
and answered as a typed :class:`~banking_analytics.analytics.Shape`.

Intervals are numbered, so "the previous interval" and "N intervals later" are integer
arithmetic in SQL and in Python alike (:func:`interval_index` in the store,
:func:`index_of` and :func:`start_of` here). An interval is a wall-clock hour, day,
Monday-based week or calendar month in the query's timezone, as PostHog cuts them in
the project's timezone: a London day in late March lasts 23 hours. The index of an
instant is counted on its local wall-clock time read as if it were UTC:

- hour: ⌊epoch(local) / 3600⌋, day: ⌊epoch(local) / 86400⌋;
- week: ⌊(epoch(local) + 3·86400) / 604800⌋ (1970-01-01 was a Thursday: weeks start
  on the Monday three days before a multiple of seven days);
- month: 12·(year - 1970) + month - 1 of the local time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Self
from zoneinfo import ZoneInfo

import sqlglot
from sqlglot import exp

from banking_analytics.events import SCHEMAS
from banking_analytics.metrics import (
    OTHER,
    QueryError,
    Renderer,
    TimeWindow,
    check_timezone,
    parse_time_period,
    window_condition,
)
from banking_analytics.store.statements import column
from banking_analytics.vocabulary import BankingFeature, DeviceType, EventType, Platform

__all__ = [
    "BEHAVIOR_TABLE",
    "DEFAULT_SESSION_GAP",
    "MAX_BREAKDOWN_VALUES",
    "MAX_FILTER_VALUES",
    "MAX_INTERVALS",
    "MAX_STEPS",
    "OTHER",
    "BehaviorQuery",
    "BehaviorQueryError",
    "EventFilter",
    "Interval",
    "index_of",
    "interval_index",
    "start_of",
    "x",
]

#: The stored table of behaviour events.
BEHAVIOR_TABLE = SCHEMAS[EventType.BEHAVIOR].table
#: The most intervals a query may cut its range into (a year of days, two weeks of hours).
MAX_INTERVALS = 400
#: The most values a breakdown shows; the rest are summed into one ``OTHER`` row.
MAX_BREAKDOWN_VALUES = 25
#: The most values one list of an event filter may name.
MAX_FILTER_VALUES = 25
#: The most steps a funnel or path may have.
MAX_STEPS = 10
#: PostHog's session (and path) break: a gap of this long or longer starts a new session.
DEFAULT_SESSION_GAP = timedelta(minutes=30)


class BehaviorQueryError(QueryError):
    """A behaviour query that cannot be answered as asked; the message says which part."""


class Interval(StrEnum):
    """How a behaviour query cuts time: wall-clock hours, days, Monday weeks, months."""

    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


_SECONDS = {Interval.HOUR: 3600, Interval.DAY: 86_400, Interval.WEEK: 604_800}
#: Seconds from the epoch to the Monday before it, as an offset added before dividing.
_WEEK_SHIFT = 3 * 86_400
_EPOCH = datetime(1970, 1, 1)


def x(text: str) -> exp.Expr:
    """An expression in sqlglot's own (engine-neutral) SQL; the renderer writes it per dialect."""
    return sqlglot.parse_one(text)


def interval_index(
    renderer: Renderer, timestamp: exp.Expr, interval: Interval, timezone: str
) -> exp.Expr:
    """The number (a BIGINT) of the interval holding ``timestamp`` in ``timezone``, as the
    module docs define it. In UTC a fixed-width interval is the epoch floored, with no
    time-zone conversion per row."""
    del renderer  # the same sqlglot expression serves every dialect; kept for symmetry
    local: exp.Expr = (
        timestamp
        if timezone == "UTC" and interval is not Interval.MONTH
        else exp.AtTimeZone(this=timestamp, zone=exp.Literal.string(timezone))
    )
    if interval is Interval.MONTH:
        year = exp.Extract(this=exp.var("YEAR"), expression=local)
        month = exp.Extract(this=exp.var("MONTH"), expression=local.copy())
        months = exp.Add(
            this=exp.Mul(
                this=exp.Paren(this=exp.Sub(this=year, expression=exp.Literal.number(1970))),
                expression=exp.Literal.number(12),
            ),
            expression=exp.Sub(this=month, expression=exp.Literal.number(1)),
        )
        return exp.cast(months, "BIGINT")
    seconds: exp.Expr = exp.TimeToUnix(this=local)
    if interval is Interval.WEEK:
        seconds = exp.Add(this=seconds, expression=exp.Literal.number(_WEEK_SHIFT))
    floored = exp.Floor(
        this=exp.Div(
            this=exp.Paren(this=seconds), expression=exp.Literal.number(_SECONDS[interval])
        )
    )
    return exp.cast(floored, "BIGINT")


def index_of(moment: datetime, interval: Interval, timezone: str) -> int:
    """The number of the interval holding ``moment`` (aware), as :func:`interval_index`."""
    local = moment.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
    if interval is Interval.MONTH:
        return 12 * (local.year - 1970) + local.month - 1
    seconds = (local - _EPOCH) // timedelta(seconds=1)
    if interval is Interval.WEEK:
        seconds += _WEEK_SHIFT
    return seconds // _SECONDS[interval]


def start_of(index: int, interval: Interval, timezone: str) -> datetime:
    """The instant (UTC) the interval numbered ``index`` starts: its local wall-clock start
    in ``timezone`` (a start the clocks skip is read with the offset before the change)."""
    if interval is Interval.MONTH:
        year, month = divmod(index, 12)
        local = datetime(1970 + year, month + 1, 1)
    else:
        seconds = index * _SECONDS[interval] - (_WEEK_SHIFT if interval is Interval.WEEK else 0)
        local = _EPOCH + timedelta(seconds=seconds)
    return local.replace(tzinfo=ZoneInfo(timezone)).astimezone(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class EventFilter:
    """Which behaviour events a query reads: any of the listed values of each field (an
    empty list lets every value through). Values are bound parameters, never SQL text."""

    features: tuple[BankingFeature, ...] = ()
    actions: tuple[str, ...] = ()
    devices: tuple[DeviceType, ...] = ()
    platforms: tuple[Platform, ...] = ()

    def __post_init__(self) -> None:
        for name in ("features", "actions", "devices", "platforms"):
            values = tuple(getattr(self, name))
            if len(values) > MAX_FILTER_VALUES:
                raise BehaviorQueryError(f"{name}: at most {MAX_FILTER_VALUES} values")
            object.__setattr__(self, name, values)

    def _fields(self) -> list[tuple[str, Sequence[str]]]:
        pairs: list[tuple[str, Sequence[str]]] = [
            ("feature", self.features),
            ("action", self.actions),
            ("device", self.devices),
            ("platform", self.platforms),
        ]
        return [(name, values) for name, values in pairs if values]

    @property
    def shape(self) -> tuple[int, ...]:
        """What changes the condition's SQL: how many values each field lists."""
        return (len(self.features), len(self.actions), len(self.devices), len(self.platforms))

    @property
    def params(self) -> tuple[str, ...]:
        """The values to bind, in the order :meth:`condition`'s placeholders appear."""
        return tuple(str(v) for _, values in self._fields() for v in values)

    @staticmethod
    def condition(shape: tuple[int, ...]) -> exp.Expr | None:
        """The condition of a filter of this shape (``None``: every event), built from the
        shape alone so a statement's builder can call it."""
        names = ("feature", "action", "device", "platform")
        parts = [
            exp.In(this=column(name), expressions=[exp.Placeholder() for _ in range(count)])
            for name, count in zip(names, shape, strict=True)
            if count
        ]
        return exp.and_(*parts) if parts else None


@dataclass(frozen=True, slots=True, kw_only=True)
class BehaviorQuery:
    """The range, interval, timezone and events every behaviour query has.

    ``date_from``/``date_to`` are the half-open range ``[date_from, date_to)`` (aware
    datetimes; PostHog's names). It may be cut into at most :data:`MAX_INTERVALS`
    intervals. Build one from the spec's ``time_period`` with :meth:`over`.
    """

    date_from: datetime
    date_to: datetime
    interval: Interval = Interval.DAY
    timezone: str = "UTC"
    events: EventFilter = field(default_factory=EventFilter)
    #: What the range was asked as ("30d", ...), echoed in the answer's period; it
    #: changes no figure.
    period_label: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        try:
            window = TimeWindow(self.date_from, self.date_to)
            check_timezone(self.timezone)
            interval = Interval(self.interval)
        except ValueError as error:
            raise BehaviorQueryError(str(error)) from None
        object.__setattr__(self, "date_from", window.start)
        object.__setattr__(self, "date_to", window.end)
        object.__setattr__(self, "interval", interval)
        count = self.last_index - self.first_index + 1
        if count > MAX_INTERVALS:
            raise BehaviorQueryError(
                f"the range holds {count} {interval.value} intervals; at most {MAX_INTERVALS} "
                "(ask a shorter range or a longer interval)"
            )

    @classmethod
    def over(
        cls, time_period: str | TimeWindow, now: datetime | None = None, **fields: Any
    ) -> Self:
        """The query over the spec's ``time_period`` (``"30d"``, ...) ending at ``now``."""
        try:
            window = parse_time_period(time_period, now)
        except QueryError as error:
            raise BehaviorQueryError(str(error)) from None
        return cls(date_from=window.start, date_to=window.end, period_label=window.label, **fields)

    @property
    def window(self) -> TimeWindow:
        return TimeWindow(self.date_from, self.date_to, self.period_label)

    @property
    def first_index(self) -> int:
        """The number of the interval holding the range's start."""
        return index_of(self.date_from, self.interval, self.timezone)

    @property
    def last_index(self) -> int:
        """The number of the interval holding the range's last instant."""
        return index_of(self.date_to - timedelta(microseconds=1), self.interval, self.timezone)

    def interval_starts(self) -> list[datetime]:
        """The start of every interval the range touches (the first may start before it)."""
        return [
            start_of(i, self.interval, self.timezone)
            for i in range(self.first_index, self.last_index + 1)
        ]

    @property
    def params(self) -> tuple[object, ...]:
        """The values :meth:`events` binds: the range, then the event filter's values."""
        return (self.date_from, self.date_to, *self.events.params)

    @staticmethod
    def events_select(
        columns: Sequence[str | exp.Expr], filter_shape: tuple[int, ...]
    ) -> exp.Select:
        """The behaviour events in the range (``[?, ?)``) that pass a filter of this shape,
        with ``columns``: the first part of every behaviour statement (its values are
        :attr:`params`, in that order)."""
        select = (
            sqlglot.select(*(x(c) if isinstance(c, str) else c for c in columns))
            .from_(exp.to_table(BEHAVIOR_TABLE))
            .where(window_condition())
        )
        condition = EventFilter.condition(filter_shape)
        return select.where(condition) if condition is not None else select

    @staticmethod
    def interval_events(
        renderer: Renderer,
        columns: Sequence[str],
        filter_shape: tuple[int, ...],
        interval: Interval,
        timezone: str,
    ) -> exp.Select:
        """:meth:`events_select` with each event's interval number as ``idx``."""
        index = interval_index(renderer, x("occurred_at"), interval, timezone)
        return BehaviorQuery.events_select([*columns, exp.alias_(index, "idx")], filter_shape)
