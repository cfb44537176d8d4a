"""Sessions: how long, how deep, how often people come, per device and platform.

A session is, per user, every event carrying the same client ``session_id``; events
without one are cut into sessions by inactivity, as PostHog does: an event
``gap`` (default 30 minutes) or more after the user's previous such event starts a
new session, one less than ``gap`` after it stays in the same one. Each session's

- **length** = its last event's time - its first event's time + the last event's
  ``duration_s`` (0 when it reports none), in seconds;
- **depth** = its events and its distinct features;
- **bounce** = it has exactly one event;
- **device** and **platform** = those of its first event (PostHog's session
  properties are its first event's);
- **interval** = the interval its first event falls in.

Only events inside the range are read: a session that crosses the range's start or
end is cut there. Events of a user at the same instant are ordered by ``event_id``; an
event without a user is in no session.

With the default gap and no event filter, the sessions are read from those the store
keeps as events arrive (:data:`~banking_analytics.store.BEHAVIOR_SESSIONS`, cut by the
same rule over all time): each stored session inside the range as it is, and the few
crossing its start or end sessionised again from their events inside the range (a
session's events inside the range are one session: each less than the gap after the one
before it). Otherwise every event in the range is sessionised (:func:`sessions_select`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlglot
from sqlglot import exp

from banking_analytics.analytics._shape import Period, Shape
from banking_analytics.analytics.behavior._query import (
    BEHAVIOR_TABLE,
    DEFAULT_SESSION_GAP,
    BehaviorQuery,
    BehaviorQueryError,
    EventFilter,
    Interval,
    interval_index,
    start_of,
    x,
)
from banking_analytics.metrics import MetricService, Renderer, Statement
from banking_analytics.store import BEHAVIOR_SESSIONS
from banking_analytics.vocabulary import DeviceType, Platform

__all__ = [
    "MAX_SESSION_PAGE",
    "SESSIONS_TABLE",
    "SessionCut",
    "SessionFigures",
    "SessionPoint",
    "SessionRecord",
    "Sessions",
    "SessionsQuery",
    "UserSessions",
    "run_sessions",
    "run_user_sessions",
    "sessions_select",
    "with_sessions",
]

Q = TypeVar("Q", bound=exp.Query)
#: The most sessions one page of a user's sessions lists.
MAX_SESSION_PAGE = 1000
_MAX_GAP = timedelta(days=1)
#: The columns of an event sessionisation reads: those the store keeps sessions from.
_EVENT_COLUMNS = BEHAVIOR_SESSIONS.reads
#: The features, in the order of their bits in a session's mask of the features it used:
#: the stored sessions' order.
_FEATURES = BEHAVIOR_SESSIONS.features
#: The sessions the store keeps.
SESSIONS_TABLE = BEHAVIOR_SESSIONS.table.name
#: What a query reading the stored sessions reads: they, and the events of those it cuts.
STORED_SESSION_TABLES = (BEHAVIOR_TABLE, SESSIONS_TABLE)
_DEVICES = tuple(device.value for device in DeviceType)
_PLATFORMS = tuple(platform.value for platform in Platform)
#: A session's device and platform travel as one small integer, ``device_platform`` =
#: d·BASE + p, with d and p their places in the vocabulary (from 1; 0 for none): taking
#: each slice's first event's integer costs the engine about a tenth of the statement less
#: than taking two strings, and grouping by integers less than by strings.
_BASE = len(_PLATFORMS) + 1


def _position(column: str, names: tuple[str, ...]) -> exp.Expr:
    """The place of ``column``'s value in ``names`` (from 1), null for none: one lookup in
    a list, which costs the engine less than comparing with each name in turn."""
    array = exp.Array(expressions=[exp.Literal.string(name) for name in names])
    return exp.ArrayPosition(this=array, expression=x(column))


def _place(column: str, names: tuple[str, ...]) -> exp.Expr:
    """The place of ``column``'s value in ``names`` (from 1), 0 for none."""
    return exp.Coalesce(this=_position(column, names), expressions=[exp.Literal.number(0)])


def _named(place: exp.Expr, names: tuple[str, ...]) -> exp.Expr:
    """The name at ``place`` in ``names`` (from 1; null for 0)."""
    ifs = [
        exp.If(this=exp.Literal.number(i), true=exp.Literal.string(n))
        for i, n in enumerate(names, 1)
    ]
    return exp.Case(this=place, ifs=ifs)


def _device_platform() -> exp.Expr:
    """An event's (or a stored session's) ``device_platform`` code."""
    device = exp.Mul(this=_place("device", _DEVICES), expression=exp.Literal.number(_BASE))
    return exp.Add(this=device, expression=_place("platform", _PLATFORMS))


def _device_place(code: exp.Expr) -> exp.Expr:
    """The device's place in :class:`DeviceType` of a ``device_platform`` code."""
    return exp.IntDiv(this=code, expression=exp.Literal.number(_BASE))


def _platform_place(code: exp.Expr) -> exp.Expr:
    """The platform's place in :class:`Platform` of a ``device_platform`` code."""
    # Not ``%``: a driver taking ``%s`` placeholders (psycopg) reads it as one.
    devices = exp.Mul(this=_device_place(code.copy()), expression=exp.Literal.number(_BASE))
    return exp.Sub(this=code, expression=devices)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionsQuery(BehaviorQuery):
    """Sessions in the range, cut by client ``session_id`` or by ``gap`` of inactivity."""

    gap: timedelta = DEFAULT_SESSION_GAP

    def __post_init__(self) -> None:
        BehaviorQuery.__post_init__(self)
        if not timedelta(minutes=1) <= self.gap <= _MAX_GAP:
            raise BehaviorQueryError(f"gap: from 1 minute to {_MAX_GAP}, got {self.gap}")

    @property
    def reads_stored(self) -> bool:
        """Whether the sessions are read from those the store keeps: cut by their gap,
        every event counted."""
        unfiltered = EventFilter.condition(self.events.shape) is None
        return self.gap == BEHAVIOR_SESSIONS.gap and unfiltered

    def params_for(self, *, stored: bool, user_id: str | None = None) -> tuple[object, ...]:
        """The values :func:`sessions_select` binds, in order, with ``stored``; for one
        user's sessions with ``user_id``."""
        user = () if user_id is None else (user_id,)
        if not stored:
            return (*self.params, *user, *self.gap_params)
        start, end = self.date_from, self.date_to
        crossing = (end, start, start, end, *user)
        whole = (start, end, *user)
        return (*crossing, *self.params, *user, *self.gap_params, *whole)

    @property
    def gap_params(self) -> tuple[object, ...]:
        """The gap, as :func:`sessions_select` binds it after the events' values: in whole
        microseconds (the width of a slice), then as an interval."""
        return (self.gap // timedelta(microseconds=1), self.gap)


#: A row id is below 2^63: a time in microseconds times this plus a row id (or minus it)
#: is a 128-bit integer ordered by the time, then by the row id (or against it).
_ROW_SCALE = 2**63
_SLICE_KEYS = ("user_id", "session_id", "b")
_READ_TWICE = frozenset({"events", "cut"})


def _per_slice(
    renderer: Renderer, source: str, order: list[exp.Expr], *extra: exp.Expr
) -> exp.Select:
    """The figures of each slice of ``source``'s events, its first and last event taken
    by ``order``."""
    return (
        sqlglot.select(
            *_SLICE_KEYS,
            x("MIN(occurred_at) AS first_at"),
            x("MAX(occurred_at) AS last_at"),
            x("COUNT(*) AS events"),
            x("BIT_OR(bits) AS bits"),
            exp.alias_(renderer.value_at(x("device_platform"), order), "device_platform"),
            exp.alias_(renderer.value_at(x("duration_s"), order, last=True), "last_duration_s"),
            *extra,
        )
        .from_(source)
        .group_by(*_SLICE_KEYS)
    )


def _slices(renderer: Renderer) -> dict[str, exp.Query]:
    """``slices`` (with the common table expressions it reads), from ``cut``: each slice's
    first event by (``occurred_at``, ``event_id``) and its last.

    Where the engine numbers its rows (:meth:`Renderer.row_id`), the slices are first
    taken by time alone (an aggregate keyed by one integer, where a composite key costs
    the engine a sort key per row), with ``tied`` saying whether the first or the last
    instant holds more than one event: keyed by time·2^63 ± row id, the least and the
    greatest row id at that instant are the minimums' remainders, equal only for one
    event. The few tied slices are taken again, ordered by ``event_id`` too."""
    exact = [x("occurred_at"), x("event_id")]
    if renderer.row_id() is None:
        return {"slices": _per_slice(renderer, "cut", exact)}

    def scaled(at: str) -> exp.Expr:
        micros = exp.cast(renderer.epoch_micros(x(at)), renderer.wide_integer)
        return exp.Mul(this=micros, expression=exp.Literal.number(_ROW_SCALE))

    def least_and_greatest_differ(aggregate: str, at: str) -> exp.Expr:
        by_least = x(f"{aggregate}(scaled + row_id)")
        by_greatest = x(f"{aggregate}(scaled - row_id)")
        instant = scaled(at)
        return exp.NEQ(
            this=exp.Paren(this=exp.Sub(this=by_least, expression=instant)),
            expression=exp.Paren(this=exp.Sub(this=instant.copy(), expression=by_greatest)),
        )

    tied = exp.or_(
        least_and_greatest_differ("MIN", "MIN(occurred_at)"),
        least_and_greatest_differ("MAX", "MAX(occurred_at)"),
    )
    timed = sqlglot.select("*", exp.alias_(scaled("occurred_at"), "scaled")).from_("cut")
    rough = _per_slice(renderer, "timed", [x("occurred_at")], exp.alias_(tied, "tied"))
    same_slice = (
        "e.user_id = t.user_id AND e.b = t.b AND e.session_id IS NOT DISTINCT FROM t.session_id"
    )
    tied_events = (
        sqlglot.select(x("e.*"))
        .from_(exp.alias_(exp.to_table("cut"), "e"))
        .join(
            sqlglot.select(*_SLICE_KEYS).from_("rough").where("tied").subquery("t"),
            on=x(same_slice),
        )
    )
    figures = ["first_at", "last_at", "events", "bits"]
    taken = ["device_platform", "last_duration_s"]
    slices = sqlglot.union(
        sqlglot.select(*_SLICE_KEYS, *figures, *taken).from_("rough").where("NOT tied"),
        sqlglot.select(*(f"t.{c}" for c in (*_SLICE_KEYS, *figures)), *(f"e.{c}" for c in taken))
        .from_(exp.alias_(exp.to_table("rough"), "t"))
        .join(exp.alias_(exp.to_table("retaken"), "e"), on=x(same_slice))
        .where("t.tied"),
        distinct=False,
    )
    return {
        "timed": timed,
        "rough": rough,
        "tied_events": tied_events,
        "retaken": _per_slice(renderer, "tied_events", exact),
        "slices": slices,
    }


def _merged_runs(renderer: Renderer) -> dict[str, exp.Query]:
    """``grouped``, a row per session from ``slices``, where the engine hashes joins
    (:attr:`Renderer.hash_joins`): the slices continuing their predecessor (``links``)
    fall in runs of consecutive slices, each merged into the slice before its first."""
    carried = ["last_at", "events", "bits", "last_duration_s"]
    # A slice without an id continuing its predecessor: less than ``gap`` after it.
    links = (
        sqlglot.select(*(f"c.{c}" for c in ("user_id", "b", *carried)))
        .from_(exp.alias_(exp.to_table("slices"), "c"))
        .join(
            exp.alias_(exp.to_table("slices"), "p"),
            on=x("p.user_id = c.user_id AND p.b = c.b - 1"),
        )
        .where(
            x(
                "c.session_id IS NULL AND p.session_id IS NULL "
                "AND c.first_at < p.last_at + CAST(? AS INTERVAL)"
            )
        )
    )
    runs = sqlglot.select(
        "*", x("b - ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY b) AS run")
    ).from_("links")
    # Each run's figures, keyed by its head slice; and each link, to be left out as a row.
    tails = sqlglot.union(
        sqlglot.select(
            "user_id",
            x("MIN(b) - 1 AS b"),
            x("MAX(last_at) AS last_at"),
            x("SUM(events) AS events"),
            x("BIT_OR(bits) AS bits"),
            exp.alias_(
                renderer.value_at(x("last_duration_s"), [x("b")], last=True), "last_duration_s"
            ),
            x("0 AS continues"),
        )
        .from_("runs")
        .group_by("user_id", "run"),
        sqlglot.select("user_id", "b", *(exp.null() for _ in carried), x("1 AS continues")).from_(
            "links"
        ),
        distinct=False,
    )
    client_sessions = (
        sqlglot.select(
            "user_id",
            "session_id",
            x("first_at AS started_at"),
            "last_at",
            "last_duration_s",
            "events",
            "bits",
            "device_platform",
        )
        .from_("slices")
        .where("session_id IS NOT NULL")
    )
    gap_sessions = (
        sqlglot.select(
            "s.user_id",
            "s.session_id",
            x("s.first_at AS started_at"),
            x("COALESCE(t.last_at, s.last_at) AS last_at"),
            x(
                "CASE WHEN t.b IS NULL THEN s.last_duration_s ELSE t.last_duration_s END "
                "AS last_duration_s"
            ),
            x("s.events + COALESCE(t.events, 0) AS events"),
            x("s.bits | COALESCE(t.bits, 0) AS bits"),
            "s.device_platform",
        )
        .from_(exp.alias_(exp.to_table("slices"), "s"))
        .join(
            exp.alias_(exp.to_table("tails"), "t"),
            on=x("t.user_id = s.user_id AND t.b = s.b"),
            join_type="LEFT",
        )
        .where(x("s.session_id IS NULL AND COALESCE(t.continues, 0) = 0"))
    )
    grouped = sqlglot.union(client_sessions, gap_sessions, distinct=False)
    return {"links": links, "runs": runs, "tails": tails, "grouped": grouped}


def _merged_by_window(renderer: Renderer) -> dict[str, exp.Query]:
    """``grouped``, a row per session from ``slices``, with windows: each slice marked
    whether it starts a session, its head the latest start at or before it (a running
    maximum over every slice), the slices grouped by head."""
    marked = (
        sqlglot.select(
            x("c.*"),
            x(
                "CASE WHEN c.session_id IS NULL AND c.first_at < p.last_at + CAST(? AS INTERVAL) "
                "THEN 0 ELSE 1 END AS starts"
            ),
        )
        .from_(exp.alias_(exp.to_table("slices"), "c"))
        .join(
            exp.alias_(exp.to_table("slices"), "p"),
            on=x(
                "p.user_id = c.user_id AND p.b = c.b - 1 AND p.session_id IS NULL "
                "AND c.session_id IS NULL"
            ),
            join_type="LEFT",
        )
    )
    chained = sqlglot.select(
        "*",
        x(
            "MAX(CASE WHEN starts = 1 THEN b END) OVER (PARTITION BY user_id, session_id "
            "ORDER BY b ROWS UNBOUNDED PRECEDING) AS head"
        ),
    ).from_("marked")
    grouped = (
        sqlglot.select(
            "user_id",
            "session_id",
            x("MIN(first_at) AS started_at"),
            x("MAX(last_at) AS last_at"),
            exp.alias_(
                renderer.value_at(x("last_duration_s"), [x("b")], last=True), "last_duration_s"
            ),
            x("SUM(events) AS events"),
            x("BIT_OR(bits) AS bits"),
            x("MAX(CASE WHEN starts = 1 THEN device_platform END) AS device_platform"),
        )
        .from_("chained")
        .group_by("user_id", "session_id", "head")
    )
    return {"marked": marked, "chained": chained, "grouped": grouped}


def _crossing(one_user: bool) -> exp.Select:
    """The stored sessions that cross the range's start or end (binds the end, the start
    twice, the end; then with ``one_user`` the user id), their columns named apart from
    the events'."""
    crossing = (
        sqlglot.select(
            x("user_id AS c_user"),
            x("session_id AS c_session"),
            x("started_at AS c_start"),
            x("last_at AS c_end"),
        )
        .from_(exp.to_table(SESSIONS_TABLE))
        .where(x("started_at < ? AND last_at >= ? AND (started_at < ? OR last_at >= ?)"))
    )
    return crossing.where(x("user_id = ?")) if one_user else crossing


#: An event belongs to a crossing session: the user's, of its client session (or of none,
#: for one cut by gaps), inside its span. A join, not a semi-join: with no crossing
#: session the engine reads no event (a semi-join read all 10M: 1.5 s more).
_IN_CROSSING = (
    "c_user = user_id AND COALESCE(c_session, '') = COALESCE(session_id, '') "
    "AND occurred_at BETWEEN c_start AND c_end"
)


def _whole(one_user: bool) -> exp.Select:
    """The stored sessions inside the range, as ``grouped`` rows (binds the start, the end;
    then with ``one_user`` the user id)."""
    whole = (
        sqlglot.select(
            "user_id",
            "session_id",
            "started_at",
            "last_at",
            "last_duration_s",
            "events",
            x("features AS bits"),
            exp.alias_(_device_platform(), "device_platform"),
        )
        .from_(exp.to_table(SESSIONS_TABLE))
        .where(x("started_at >= ? AND last_at < ?"))
    )
    return whole.where(x("user_id = ?")) if one_user else whole


def sessions_select(
    renderer: Renderer,
    filter_shape: tuple[int, ...],
    *,
    one_user: bool = False,
    stored: bool = False,
) -> exp.Select:
    """Each session of the range's events (see the module docs) as a row: ``user_id``,
    ``session_id``, ``started_at``, ``last_at``, ``length_s``, ``events``, ``features``,
    ``device``, ``platform``. Binds :meth:`SessionsQuery.params_for` (with ``one_user``,
    one user's sessions).

    With ``stored``, the store's sessions inside the range are read as they are, and only
    the events of those crossing its start or end are sessionised, as follows.

    No window runs over the events, which would sort them all: they are aggregated by
    hashing. A user's events without a session id are cut into slices of ``gap``
    (``⌊epoch µs / gap⌋``): within a slice every event is less than ``gap`` after the
    one before it, so a slice lies in one session, and only its first event can start
    one: it does unless the previous slice holds an event less than ``gap`` before it
    (a self-join of the slices finds those that continue their predecessor, the
    ``links``: a fraction of the slices). A client session is one slice. A run of
    consecutive links continues the slice before its first (``b`` - its row number
    among the user's links is constant along a run: a window over the links alone);
    each run's figures are merged into that head slice's by one join: its last event's
    time and duration, its events, its features as bits. The head keeps its first
    event's device and platform (:func:`_slices`: by time, ties by ``event_id``). Where
    the engine may loop over a join it wrongly thinks small (PostgreSQL), each slice's
    head is a running maximum over every slice instead (:func:`_merged_by_window`).
    """
    row_id = renderer.row_id()
    columns: list[str | exp.Expr] = [
        *_EVENT_COLUMNS,
        exp.alias_(_device_platform(), "device_platform"),
    ]
    if row_id is not None:
        columns.append(exp.alias_(row_id, "row_id"))
    # Sessions are a user's: an event without a user is in none.
    events = BehaviorQuery.events_select(columns, filter_shape).where(x("user_id IS NOT NULL"))
    if one_user:
        events = events.where(exp.EQ(this=x("user_id"), expression=exp.Placeholder()))
    if stored:
        events = events.join(exp.to_table("crossing"), on=x(_IN_CROSSING))
    slice_of = exp.Case(
        ifs=[
            exp.If(
                this=x("session_id IS NULL"),
                true=exp.IntDiv(
                    this=renderer.epoch_micros(x("occurred_at")), expression=exp.Placeholder()
                ),
            )
        ],
        default=exp.Literal.number(0),
    )
    # A feature's bit is 2^(its place in the vocabulary - 1).
    place = _position("feature", _FEATURES)
    bit = exp.BitwiseLeftShift(
        this=exp.Literal.number(1),
        expression=exp.Paren(this=exp.Sub(this=place, expression=exp.Literal.number(1))),
    )
    bits = exp.Coalesce(this=bit, expressions=[exp.Literal.number(0)])
    cut = sqlglot.select("*", exp.alias_(slice_of, "b"), exp.alias_(bits, "bits")).from_("events")
    features = " + ".join(f"((bits >> {i}) & 1)" for i in range(len(_FEATURES)))
    length = exp.Add(
        this=exp.Sub(
            this=exp.TimeToUnix(this=x("last_at")), expression=exp.TimeToUnix(this=x("started_at"))
        ),
        expression=x("COALESCE(last_duration_s, 0)"),
    )
    query = sqlglot.select(
        "user_id",
        "session_id",
        "started_at",
        "last_at",
        exp.alias_(length, "length_s"),
        "events",
        x(f"{features} AS features"),
        exp.alias_(_named(_device_place(x("device_platform")), _DEVICES), "device"),
        exp.alias_(_named(_platform_place(x("device_platform")), _PLATFORMS), "platform"),
        "device_platform",
    ).from_("every_session" if stored else "grouped")
    ctes: dict[str, exp.Query] = {"crossing": _crossing(one_user)} if stored else {}
    ctes |= {"events": events, "cut": cut, **_slices(renderer)}
    merged = _merged_runs if renderer.hash_joins else _merged_by_window
    ctes |= merged(renderer)
    if stored:
        ctes["every_session"] = sqlglot.union(
            sqlglot.select("*").from_("grouped"), _whole(one_user), distinct=False
        )
    for name, body in ctes.items():
        # The events are read again for the tied slices: never written out in between.
        query = query.with_(name, body, materialized=False if name in _READ_TWICE else None)
    return query


def with_sessions(query: Q, sessions: exp.Select) -> Q:
    """``query`` with ``sessions`` (from :func:`sessions_select`) as the common table
    expression ``sessions``, after those it reads (``events``, the range's events, among
    them), kept as they are: some must not be materialized."""
    ctes = sessions.args["with_"]
    sessions.set("with_", None)
    query.set("with_", ctes)
    return query.with_("sessions", sessions)


_GROUPING_SETS = "GROUPING SETS ((), (device_place), (platform_place), (idx))"
#: Percentiles of session length the answer gives.
_QUANTILES = (0.5, 0.9)


def _summary(
    renderer: Renderer,
    filter_shape: tuple[int, ...],
    interval: Interval,
    timezone: str,
    stored: bool,
) -> exp.Query:
    """Session figures overall, per device, per platform and per interval, in one pass
    over the sessions (grouping sets; ``part`` says which)."""
    with_index = sqlglot.select(
        "*",
        exp.alias_(interval_index(renderer, x("started_at"), interval, timezone), "idx"),
        exp.alias_(_device_place(x("device_platform")), "device_place"),
        exp.alias_(_platform_place(x("device_platform")), "platform_place"),
    ).from_("sessions")
    # Grouped by the places (integers), named once per group.
    figures: list[exp.Expr | str] = [
        x("GROUPING(device_place, platform_place, idx) AS part"),
        exp.alias_(_named(x("device_place"), _DEVICES), "device"),
        exp.alias_(_named(x("platform_place"), _PLATFORMS), "platform"),
        "idx",
        x("COUNT(*) AS sessions"),
        x("COUNT(DISTINCT user_id) AS users"),
        x("AVG(length_s) AS mean_length_s"),
        exp.alias_(renderer.percentiles(x("length_s"), _QUANTILES), "length_q"),
        x("AVG(events) AS mean_events"),
        x("AVG(features) AS mean_features"),
        x("SUM(CASE WHEN events = 1 THEN 1 ELSE 0 END) AS bounces"),
    ]
    query = sqlglot.select(*figures).from_("indexed")
    query.set("group", x(f"SELECT 1 GROUP BY {_GROUPING_SETS}").args["group"])
    sessions = sessions_select(renderer, filter_shape, stored=stored)
    return with_sessions(query, sessions).with_("indexed", with_index)


@dataclass(slots=True, eq=False)
class SessionFigures(Shape):
    """Figures over a set of sessions."""

    sessions: int
    users: int
    mean_length_s: float | None
    """Mean session length: last event - first event + the last event's duration."""
    median_length_s: float | None
    p90_length_s: float | None
    mean_events: float | None
    """Mean depth in events."""
    mean_features: float | None
    """Mean depth in distinct features."""
    bounce_rate: float | None
    """Sessions of exactly one event ÷ sessions."""


@dataclass(slots=True, eq=False)
class SessionCut(Shape):
    """The figures of the sessions that started on one device type or platform."""

    value: str | None
    """The device type or platform (``None``: the first event did not say)."""
    figures: SessionFigures


@dataclass(slots=True, eq=False)
class SessionPoint(Shape):
    """Sessions started in one interval."""

    start: datetime
    sessions: int
    users: int


@dataclass(slots=True, eq=False)
class Sessions(Shape):
    """Sessions in a period: overall, per device, per platform, and per interval."""

    period: Period
    interval: str
    timezone: str
    gap_s: float
    overall: SessionFigures
    by_device: list[SessionCut]
    by_platform: list[SessionCut]
    series: list[SessionPoint]


def _number(value: object) -> float | None:
    """A figure as a float (engines answer averages as decimals or doubles)."""
    return None if value is None else float(value)  # type: ignore[arg-type]


def _figures(row: dict[str, Any]) -> SessionFigures:
    sessions = int(row["sessions"])
    median, p90 = row["length_q"] or (None, None)
    return SessionFigures(
        sessions=sessions,
        users=int(row["users"]),
        mean_length_s=_number(row["mean_length_s"]),
        median_length_s=_number(median),
        p90_length_s=_number(p90),
        mean_events=_number(row["mean_events"]),
        mean_features=_number(row["mean_features"]),
        bounce_rate=int(row["bounces"]) / sessions if sessions else None,
    )


_EMPTY = SessionFigures(0, 0, None, None, None, None, None, None)
#: ``GROUPING(device_place, platform_place, idx)`` of each grouping set: a bit per column left out.
_OVERALL, _BY_DEVICE, _BY_PLATFORM, _BY_INTERVAL = 0b111, 0b011, 0b101, 0b110


def run_sessions(metrics: MetricService, query: SessionsQuery) -> Sessions:
    """The :class:`Sessions` of ``query``, from one statement."""
    stored = query.reads_stored
    shape = (query.events.shape, query.interval, query.timezone, stored)
    depends = STORED_SESSION_TABLES if stored else (BEHAVIOR_TABLE,)
    params = query.params_for(stored=stored)
    rows = metrics.run_statement(Statement(_summary, params, depends, shape)).to_pylist()
    overall = next((_figures(r) for r in rows if r["part"] == _OVERALL), _EMPTY)
    by_part: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_part.setdefault(int(row["part"]), []).append(row)
    counted = {
        int(r["idx"]): (int(r["sessions"]), int(r["users"])) for r in by_part.get(_BY_INTERVAL, [])
    }

    def cuts(part: int, name: str) -> list[SessionCut]:
        found = [SessionCut(r[name], _figures(r)) for r in by_part.get(part, [])]
        return sorted(found, key=lambda c: (-c.figures.sessions, c.value or ""))

    series = [
        SessionPoint(start_of(i, query.interval, query.timezone), *counted.get(i, (0, 0)))
        for i in range(query.first_index, query.last_index + 1)
    ]
    return Sessions(
        period=Period.of(query.window),
        interval=query.interval.value,
        timezone=query.timezone,
        gap_s=query.gap.total_seconds(),
        overall=overall,
        by_device=cuts(_BY_DEVICE, "device"),
        by_platform=cuts(_BY_PLATFORM, "platform"),
        series=series,
    )


@dataclass(slots=True, eq=False)
class SessionRecord(Shape):
    """One session of one user."""

    session_id: str | None
    """The client's session id (``None``: cut by inactivity)."""
    started_at: datetime
    last_event_at: datetime
    length_s: float
    events: int
    features: int
    device: str | None
    platform: str | None
    bounce: bool


@dataclass(slots=True, eq=False)
class UserSessions(Shape):
    """A page of one user's sessions in a period, the latest first."""

    user_id: str
    period: Period
    total: int
    """The user's sessions in the period, all pages (read from the page's rows: 0 for a
    page past the last)."""
    sessions: list[SessionRecord]


def _user_page(renderer: Renderer, filter_shape: tuple[int, ...], stored: bool) -> exp.Query:
    sessions = sessions_select(renderer, filter_shape, one_user=True, stored=stored)
    total = x("COUNT(*) OVER () AS total")
    return (
        sessions.select(total)
        .order_by("started_at DESC", "session_id")
        .limit(exp.Placeholder())
        .offset(exp.Placeholder())
    )


def run_user_sessions(
    metrics: MetricService, query: SessionsQuery, user_id: str, *, limit: int, offset: int
) -> UserSessions:
    """One page of ``user_id``'s sessions in ``query``'s range, the latest first."""
    if not 1 <= limit <= MAX_SESSION_PAGE or offset < 0:
        raise BehaviorQueryError(f"limit: 1 to {MAX_SESSION_PAGE}; offset: 0 or more")
    stored = query.reads_stored
    depends = STORED_SESSION_TABLES if stored else (BEHAVIOR_TABLE,)
    params = (*query.params_for(stored=stored, user_id=user_id), limit, offset)
    statement = Statement(_user_page, params, depends, (query.events.shape, stored))
    table = metrics.run_statement(statement)
    rows = table.to_pylist()
    records = [
        SessionRecord(
            session_id=r["session_id"],
            started_at=r["started_at"],
            last_event_at=r["last_at"],
            length_s=float(r["length_s"]),
            events=int(r["events"]),
            features=int(r["features"]),
            device=r["device"],
            platform=r["platform"],
            bounce=r["events"] == 1,
        )
        for r in rows
    ]
    total = int(rows[0]["total"]) if rows else 0
    return UserSessions(user_id, Period.of(query.window), total, records)
