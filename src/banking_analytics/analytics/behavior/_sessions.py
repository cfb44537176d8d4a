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
end is cut there. Events of a user at the same instant are ordered by ``event_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

from banking_analytics.analytics._shape import Period, Shape
from banking_analytics.analytics.behavior._query import (
    BEHAVIOR_TABLE,
    DEFAULT_SESSION_GAP,
    BehaviorQuery,
    BehaviorQueryError,
    Interval,
    interval_index,
    start_of,
    x,
)
from banking_analytics.metrics import MetricService, Renderer, Statement
from banking_analytics.vocabulary import BankingFeature

__all__ = [
    "MAX_SESSION_PAGE",
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
]

#: The most sessions one page of a user's sessions lists.
MAX_SESSION_PAGE = 1000
_MAX_GAP = timedelta(days=1)
_EVENT_COLUMNS = (
    "user_id",
    "session_id",
    "occurred_at",
    "event_id",
    "feature",
    "duration_s",
    "device",
    "platform",
)
#: A distinct feature's bit in a session's mask of the features it used.
_FEATURE_BITS = {feature.value: 1 << i for i, feature in enumerate(BankingFeature)}


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionsQuery(BehaviorQuery):
    """Sessions in the range, cut by client ``session_id`` or by ``gap`` of inactivity."""

    gap: timedelta = DEFAULT_SESSION_GAP

    def __post_init__(self) -> None:
        BehaviorQuery.__post_init__(self)
        if not timedelta(minutes=1) <= self.gap <= _MAX_GAP:
            raise BehaviorQueryError(f"gap: from 1 minute to {_MAX_GAP}, got {self.gap}")

    @property
    def session_params(self) -> tuple[object, ...]:
        """The values :func:`sessions_select` binds, in order."""
        return (*self.params, *self.gap_params)

    @property
    def gap_params(self) -> tuple[object, ...]:
        """The gap, as :func:`sessions_select` binds it after the events' values: in whole
        microseconds (the width of a slice), then as an interval."""
        return (self.gap // timedelta(microseconds=1), self.gap)


def _heads(renderer: Renderer) -> exp.Query:
    """Each slice with ``head``, the slice that started its session: the latest slice at
    or before it that starts one (an as-of join of the slices that do not, where the
    engine has it; else a running maximum over every slice)."""
    if not renderer.asof_join:
        return sqlglot.select(
            "*",
            x(
                "MAX(CASE WHEN starts = 1 THEN b END) OVER (PARTITION BY user_id, session_id "
                "ORDER BY b ROWS UNBOUNDED PRECEDING) AS head"
            ),
        ).from_("marked")
    joined = sqlglot.parse_one(
        "SELECT *, b AS head FROM marked WHERE starts = 1 UNION ALL "
        "SELECT m.*, h.b AS head FROM marked AS m ASOF JOIN "
        "(SELECT user_id, b FROM marked WHERE starts = 1 AND session_id IS NULL) AS h "
        "ON m.user_id = h.user_id AND m.b > h.b WHERE m.starts = 0",
        read="duckdb",
    )
    assert isinstance(joined, exp.Query)
    return joined


def sessions_select(
    renderer: Renderer, filter_shape: tuple[int, ...], *, one_user: bool = False
) -> exp.Select:
    """Each session of the range's events (see the module docs) as a row: ``user_id``,
    ``session_id``, ``started_at``, ``last_at``, ``length_s``, ``events``, ``features``,
    ``device``, ``platform``. Binds :attr:`SessionsQuery.session_params` (with
    ``one_user``, the user id after the filter's values and before the gaps).

    No window runs over the events, which would sort them all: they are aggregated by
    hashing. A user's events without a session id are cut into slices of ``gap``
    (``⌊epoch µs / gap⌋``): within a slice every event is less than ``gap`` after the
    one before it, so a slice lies in one session, and only its first event can start
    one: it does unless the previous slice holds an event less than ``gap`` before it.
    A session is then a slice that starts one and the slices that follow it without a
    start (:func:`_heads`, over a fraction of the events' rows). A client
    session is one slice. Each slice's figures merge into its session's: its first
    event's device and platform, its last event's duration, its features as bits.
    """
    events = BehaviorQuery.events_select(_EVENT_COLUMNS, filter_shape)
    if one_user:
        events = events.where(exp.EQ(this=x("user_id"), expression=exp.Placeholder()))
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
    bits = exp.Case(
        this=x("feature"),
        ifs=[
            exp.If(this=exp.Literal.string(name), true=exp.Literal.number(bit))
            for name, bit in _FEATURE_BITS.items()
        ],
        default=exp.Literal.number(0),
    )
    cut = sqlglot.select("*", exp.alias_(slice_of, "b"), exp.alias_(bits, "bits")).from_("events")
    order = [x("occurred_at"), x("event_id")]
    slices = (
        sqlglot.select(
            "user_id",
            "session_id",
            "b",
            x("MIN(occurred_at) AS first_at"),
            x("MAX(occurred_at) AS last_at"),
            x("COUNT(*) AS events"),
            x("BIT_OR(bits) AS bits"),
            exp.alias_(renderer.value_at(x("device"), order), "device"),
            exp.alias_(renderer.value_at(x("platform"), order), "platform"),
            exp.alias_(renderer.value_at(x("duration_s"), order, last=True), "last_duration_s"),
        )
        .from_("cut")
        .group_by("user_id", "session_id", "b")
    )
    # A slice starts a session unless it continues the user's previous slice (no id).
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
    chained = _heads(renderer)
    features = " + ".join(f"((bits >> {i}) & 1)" for i in range(len(_FEATURE_BITS)))
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
            x("MAX(CASE WHEN starts = 1 THEN device END) AS device"),
            x("MAX(CASE WHEN starts = 1 THEN platform END) AS platform"),
        )
        .from_("chained")
        .group_by("user_id", "session_id", "head")
    )
    length = exp.Add(
        this=exp.Sub(
            this=exp.TimeToUnix(this=x("last_at")), expression=exp.TimeToUnix(this=x("started_at"))
        ),
        expression=x("COALESCE(last_duration_s, 0)"),
    )
    return (
        sqlglot.select(
            "user_id",
            "session_id",
            "started_at",
            "last_at",
            exp.alias_(length, "length_s"),
            "events",
            x(f"{features} AS features"),
            "device",
            "platform",
        )
        .from_("grouped")
        .with_("events", events)
        .with_("cut", cut)
        .with_("slices", slices)
        .with_("marked", marked)
        .with_("chained", chained)
        .with_("grouped", grouped)
    )


_GROUPING_SETS = "GROUPING SETS ((), (device), (platform), (idx))"
#: Percentiles of session length the answer gives.
_QUANTILES = (0.5, 0.9)


def _summary(
    renderer: Renderer, filter_shape: tuple[int, ...], interval: Interval, timezone: str
) -> exp.Query:
    """Session figures overall, per device, per platform and per interval, in one pass
    over the sessions (grouping sets; ``part`` says which)."""
    sized = sessions_select(renderer, filter_shape)
    with_index = sqlglot.select(
        "*",
        exp.alias_(interval_index(renderer, x("started_at"), interval, timezone), "idx"),
    ).from_("sessions")
    figures: list[exp.Expr | str] = [
        x("GROUPING(device, platform, idx) AS part"),
        "device",
        "platform",
        "idx",
        x("COUNT(*) AS sessions"),
        x("COUNT(DISTINCT user_id) AS users"),
        x("AVG(length_s) AS mean_length_s"),
        exp.alias_(renderer.percentiles(x("length_s"), _QUANTILES), "length_q"),
        x("AVG(events) AS mean_events"),
        x("AVG(features) AS mean_features"),
        x("SUM(CASE WHEN events = 1 THEN 1 ELSE 0 END) AS bounces"),
    ]
    ctes = {cte.alias: cte.this for cte in sized.args["with_"].expressions}
    sized.set("with_", None)
    query = sqlglot.select(*figures).from_("indexed")
    query.set("group", x(f"SELECT 1 GROUP BY {_GROUPING_SETS}").args["group"])
    for name, body in ctes.items():
        query = query.with_(name, body)
    return query.with_("sessions", sized).with_("indexed", with_index)


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
#: ``GROUPING(device, platform, idx)`` of each grouping set: a bit per column left out.
_OVERALL, _BY_DEVICE, _BY_PLATFORM, _BY_INTERVAL = 0b111, 0b011, 0b101, 0b110


def run_sessions(metrics: MetricService, query: SessionsQuery) -> Sessions:
    """The :class:`Sessions` of ``query``, from one statement."""
    table = metrics.run_statement(
        Statement(
            _summary,
            query.session_params,
            (BEHAVIOR_TABLE,),
            (query.events.shape, query.interval, query.timezone),
        )
    )
    rows = table.to_pylist()
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


def _user_page(renderer: Renderer, filter_shape: tuple[int, ...]) -> exp.Query:
    sessions = sessions_select(renderer, filter_shape, one_user=True)
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
    params = (*query.params, user_id, *query.gap_params, limit, offset)
    table: pa.Table = metrics.run_statement(
        Statement(_user_page, params, (BEHAVIOR_TABLE,), (query.events.shape,))
    )
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
