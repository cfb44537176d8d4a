"""The statements behind revenue impact, built with sqlglot and run by the metric layer.

*Days* of the upgrade model are the 24-hour periods counted from the window's start:
``day(t) = floor((epoch_seconds(t) - epoch_seconds(start)) / 86400)``, so a window of N
days holds N whole days (calendar days would cut a window that does not start at
midnight into a partial first and last day, whose at-risk time a full day would
overstate).

*The upgrade model's risk set.* A user enters it when their first successful new
link (a ``connection_attempt`` with ``flow = new`` and ``outcome = success``)
falls inside the window: users linked before it are left out, since their
adoption history and subscription state at the window's start are unknown. A
user whose first subscription event is anything but a conversion start
(``trial_started``, ``subscribed``) was paying before the data begins and is left
out too. The user is at risk on each day from the day after the link up to the
first of: the day of their first conversion (``trial_started`` or ``subscribed``,
the event) and the last day they were seen (any behaviour, sync run or
subscription event): a user who left stops being at risk.

*Adoption* of a feature: from the day after the user's first behaviour event of
that feature after the link (in the window). The link flow itself (opening the
aggregator's widget, a behaviour event of account linking) is what puts a user in
the risk set, not a use of account linking: it precedes the link's success and so
does not count. *Engagement*: the user's behaviour events in the seven days before
the day. *Tenure*: days since the link.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from banking_analytics.events import SCHEMAS
from banking_analytics.metrics import Renderer, window_condition
from banking_analytics.store.statements import column
from banking_analytics.vocabulary import EventType, SubscriptionEventKind

__all__ = [
    "ATTRIBUTION_KINDS",
    "BEHAVIOR",
    "CONVERSION_KINDS",
    "MAX_MODEL_DAYS",
    "SUBSCRIPTIONS",
    "adoption_counts",
    "attributed_upgrades",
    "connection_users",
    "model_cells",
    "model_users",
    "payments",
]

BEHAVIOR = SCHEMAS[EventType.BEHAVIOR].table
SUBSCRIPTIONS = SCHEMAS[EventType.SUBSCRIPTION].table
_ATTEMPTS = SCHEMAS[EventType.CONNECTION_ATTEMPT].table
_SYNCS = SCHEMAS[EventType.SYNC_RUN].table

_K = SubscriptionEventKind
#: Converting to a paid plan: a trial of it, or a subscription (the event of the model).
CONVERSION_KINDS = (_K.TRIAL_STARTED.value, _K.SUBSCRIBED.value)
#: Events that bring money a feature may be credited with: a paid subscription or a plan
#: upgrade (a trial brings none until it converts, which is a ``subscribed`` event).
ATTRIBUTION_KINDS = (_K.SUBSCRIBED.value, _K.UPGRADED.value)
#: The day grid covers at most this many days after a link (10 x 10 x 10 digits).
MAX_MODEL_DAYS = 1000
_SECONDS_PER_DAY = 86_400


def _day(timestamp: exp.Expr) -> exp.Expr:
    """The model's day number of a timestamp: whole days since the window's start, read
    from the ``origin`` relation (which must be in the query's FROM)."""
    seconds = exp.paren(
        exp.Sub(
            this=exp.TimeToUnix(this=timestamp),
            expression=exp.TimeToUnix(this=_q("origin", "start_at")),
        )
    )
    return exp.cast(
        exp.Floor(this=exp.Div(this=seconds, expression=exp.Literal.number(_SECONDS_PER_DAY))),
        exp.DataType.Type.BIGINT,
    )


def _q(relation: str, name: str) -> exp.Column:
    return exp.column(name, relation, quoted=True)


def _in(name: str, values: tuple[str, ...]) -> exp.Expr:
    return column(name).isin(*(exp.Literal.string(v) for v in values))


def _when(condition: exp.Expr, then: exp.Expr, default: exp.Expr | None = None) -> exp.Case:
    case = exp.Case().when(condition, then)
    return case.else_(default) if default is not None else case


def _feature_alias(index: int) -> str:
    return f"f{index}"


def _risk_set(features: tuple[str, ...]) -> list[tuple[str, exp.Query]]:
    """The CTEs of the at-risk users (``at_risk``: user_id, link_day, stop_day, conv_day,
    and each feature's first-use day ``f0``, ``f1``, ...) and the window's start
    (``origin``). Placeholders, in order: the window's start (the origin of days); its end
    and start (links: read before the end, first link at or after the start); start and
    end three times (last seen); the end (subscription events); start and end (first
    uses)."""
    origin = sqlglot.select(
        exp.cast(exp.Placeholder(), exp.DataType.Type.TIMESTAMPTZ).as_("start_at")
    )
    links = (
        sqlglot.select(column("user_id"), exp.Min(this=column("occurred_at")).as_("link_at"))
        .from_(_ATTEMPTS)
        .where(
            column("occurred_at") < exp.Placeholder(),
            _in("flow", ("new",)),
            _in("outcome", ("success",)),
            column("user_id").is_(exp.null()).not_(),
        )
        .group_by(column("user_id"))
        .having(exp.Min(this=column("occurred_at")) >= exp.Placeholder())
    )
    seen_parts = [
        sqlglot.select(column("user_id"), column("occurred_at")).from_(t).where(window_condition())
        for t in (BEHAVIOR, _SYNCS, SUBSCRIPTIONS)
    ]
    seen_union: exp.Query = seen_parts[0]
    for part in seen_parts[1:]:
        seen_union = exp.union(seen_union, part, distinct=False)
    seen = (
        sqlglot.select(column("user_id"), exp.Max(this=column("occurred_at")).as_("last_at"))
        .from_(seen_union.subquery("seen_events"))
        .group_by(column("user_id"))
    )
    converting = _in("kind", CONVERSION_KINDS)
    subs = (
        sqlglot.select(
            column("user_id"),
            exp.Min(this=_when(converting, column("occurred_at"))).as_("conv_at"),
            exp.Min(this=column("occurred_at")).as_("first_at"),
        )
        .from_(SUBSCRIPTIONS)
        .where(column("occurred_at") < exp.Placeholder())
        .group_by(column("user_id"))
    )
    used_at = _q("b", "occurred_at")
    firsts = (
        sqlglot.select(
            _q("b", "user_id"),
            *(
                exp.Min(
                    this=_when(_q("b", "feature").eq(exp.Literal.string(f)), used_at.copy())
                ).as_(_feature_alias(i))
                for i, f in enumerate(features)
            ),
        )
        .from_(exp.alias_(exp.to_identifier(BEHAVIOR), "b"))
        .join("links", on=_q("links", "user_id").eq(_q("b", "user_id")))
        .where(
            window_condition().transform(
                lambda node: used_at.copy() if isinstance(node, exp.Column) else node
            ),
            used_at.copy() > _q("links", "link_at"),
        )
        .group_by(_q("b", "user_id"))
    )
    last_day = _day(_q("seen", "last_at"))
    at_risk = (
        sqlglot.select(
            _q("links", "user_id"),
            _day(_q("links", "link_at")).as_("link_day"),
            exp.Least(
                this=last_day,
                expressions=[
                    exp.Coalesce(this=_day(_q("subs", "conv_at")), expressions=[last_day.copy()])
                ],
            ).as_("stop_day"),
            _day(_q("subs", "conv_at")).as_("conv_day"),
            *(
                _day(_q("firsts", _feature_alias(i))).as_(_feature_alias(i))
                for i in range(len(features))
            ),
        )
        .from_("links")
        .join("origin", join_type="cross")
        .join("seen", on=_q("seen", "user_id").eq(_q("links", "user_id")))
        .join("subs", on=_q("subs", "user_id").eq(_q("links", "user_id")), join_type="left")
        .join("firsts", on=_q("firsts", "user_id").eq(_q("links", "user_id")), join_type="left")
        .where(
            exp.or_(
                _q("subs", "first_at").is_(exp.null()),
                _q("subs", "conv_at").eq(_q("subs", "first_at")),
            )
        )
    )
    return [
        ("origin", origin),
        ("links", links),
        ("seen", seen),
        ("subs", subs),
        ("firsts", firsts),
        ("at_risk", at_risk),
    ]


def _with(query: exp.Select, ctes: list[tuple[str, exp.Query]]) -> exp.Select:
    for name, cte in ctes:
        query = query.with_(name, as_=cte, copy=False)
    return query


def _digits(alias: str) -> exp.Expr:
    return exp.values([(exp.Literal.number(n),) for n in range(10)], alias=alias, columns=["n"])


def _grid(features: tuple[str, ...]) -> exp.Select:
    """One row per at-risk user-day: ``user_id``, ``day``, ``tenure``, ``event`` and the
    adoption flags ``a0``, ``a1``, ... Day ``link_day + 1 + k`` for k = 100h + 10t + o,
    each digit joined only while the day can still be at most ``stop_day``."""
    span = exp.Sub(
        this=exp.Sub(this=_q("at_risk", "stop_day"), expression=_q("at_risk", "link_day")),
        expression=exp.Literal.number(1),
    )
    hundreds = exp.Mul(this=exp.column("n", "h"), expression=exp.Literal.number(100))
    tens = exp.Add(
        this=hundreds,
        expression=exp.Mul(this=exp.column("n", "t"), expression=exp.Literal.number(10)),
    )
    offset = exp.Add(this=tens.copy(), expression=exp.column("n", "o"))
    day = exp.Add(
        this=exp.Add(this=_q("at_risk", "link_day"), expression=exp.Literal.number(1)),
        expression=offset,
    )
    one, zero = exp.Literal.number(1), exp.Literal.number(0)
    return (
        sqlglot.select(
            _q("at_risk", "user_id"),
            day.as_("day"),
            exp.Sub(this=day.copy(), expression=_q("at_risk", "link_day")).as_("tenure"),
            _when(_q("at_risk", "conv_day").eq(day.copy()), one, zero.copy()).as_("event"),
            *(
                _when(_q("at_risk", _feature_alias(i)) < day.copy(), one.copy(), zero.copy()).as_(
                    f"a{i}"
                )
                for i in range(len(features))
            ),
        )
        .from_("at_risk")
        .join(_digits("h"), on=hundreds.copy() <= span.copy())
        .join(_digits("t"), on=tens.copy() <= span.copy())
        .join(_digits("o"), on=offset.copy() <= span.copy())
    )


#: Upper bounds of the tenure buckets (days since the link; the last is open).
TENURE_BOUNDS = (7, 30)
#: Upper bounds of the engagement buckets (behaviour events in the previous 7 days).
ENGAGEMENT_BOUNDS = (0, 3, 9)


def _bucket(value: exp.Expr, bounds: tuple[int, ...]) -> exp.Expr:
    """0 for ``value <= bounds[0]``, 1 up to ``bounds[1]``, ..., ``len(bounds)`` above."""
    case = exp.Case()
    for index, bound in enumerate(bounds):
        case = case.when(value.copy() <= exp.Literal.number(bound), exp.Literal.number(index))
    return case.else_(exp.Literal.number(len(bounds)))


def model_cells(renderer: Renderer, features: tuple[str, ...]) -> exp.Select:
    """The model's cells: per covariate pattern (adoption flags ``a0``..., ``tenure``
    bucket, ``engagement`` bucket) the at-risk user-days (``days``) and conversions
    (``events``). Placeholders: those of the risk set, then the window (daily counts)."""
    event_day = _day(column("occurred_at"))
    daily = (
        sqlglot.select(column("user_id"), event_day.as_("day"), exp.Count(this=exp.Star()).as_("n"))
        .from_(BEHAVIOR)
        .join("origin", join_type="cross")
        .where(window_condition())
        .group_by(column("user_id"), event_day.copy())
    )
    recent = sqlglot.parse_one(
        'COALESCE(SUM("daily"."n") OVER (PARTITION BY "grid"."user_id" ORDER BY "grid"."day" '
        "ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING), 0)"
    )
    flags = [column(f"a{i}") for i in range(len(features))]
    engaged = (
        sqlglot.select(
            *(_q("grid", f"a{i}") for i in range(len(features))),
            _q("grid", "tenure"),
            _q("grid", "event"),
            recent.as_("recent"),
        )
        .from_("grid")
        .join(
            "daily",
            on=exp.and_(
                _q("daily", "user_id").eq(_q("grid", "user_id")),
                _q("daily", "day").eq(_q("grid", "day")),
            ),
            join_type="left",
        )
    )
    tenure = _bucket(column("tenure"), TENURE_BOUNDS)
    engagement = _bucket(column("recent"), ENGAGEMENT_BOUNDS)
    query = (
        sqlglot.select(
            *flags,
            tenure.as_("tenure_bucket"),
            engagement.as_("engagement_bucket"),
            exp.Count(this=exp.Star()).as_("days"),
            exp.Sum(this=column("event")).as_("events"),
        )
        .from_("engaged")
        .group_by(*(f.copy() for f in flags), tenure.copy(), engagement.copy())
    )
    ctes = [*_risk_set(features), ("grid", _grid(features)), ("daily", daily), ("engaged", engaged)]
    return _with(query, ctes)


def model_users(renderer: Renderer, features: tuple[str, ...]) -> exp.Select:
    """Users with at least one at-risk day (``users``), and per feature those who had
    adopted it on one of them (``adopters0``, ...). Placeholders: the risk set's."""
    stop, link = _q("at_risk", "stop_day"), _q("at_risk", "link_day")
    one, zero = exp.Literal.number(1), exp.Literal.number(0)
    query = (
        sqlglot.select(
            exp.Count(this=exp.Star()).as_("users"),
            *(
                exp.Sum(
                    this=_when(
                        _q("at_risk", _feature_alias(i)) < stop.copy(), one.copy(), zero.copy()
                    )
                ).as_(f"adopters{i}")
                for i in range(len(features))
            ),
        )
        .from_("at_risk")
        .where(stop > link)
    )
    return _with(query, _risk_set(features))


def payments(renderer: Renderer) -> exp.Select:
    """Per currency in a window ``[?, ?)``: successful payments (``payments``, their
    ``paid`` amount) and ``refunded`` amounts."""
    paid = _in("kind", (_K.PAYMENT_SUCCEEDED.value,))
    refunded = _in("kind", (_K.REFUNDED.value,))
    amount = exp.Coalesce(this=column("amount"), expressions=[exp.Literal.number(0)])
    zero = exp.Literal.number(0)
    return (
        sqlglot.select(
            column("currency"),
            exp.Sum(this=_when(paid, exp.Literal.number(1), zero)).as_("payments"),
            exp.Sum(this=_when(paid.copy(), amount, zero.copy())).as_("paid"),
            exp.Sum(this=_when(refunded, amount.copy(), zero.copy())).as_("refunded"),
        )
        .from_(SUBSCRIPTIONS)
        .where(window_condition(), _in("kind", (_K.PAYMENT_SUCCEEDED.value, _K.REFUNDED.value)))
        .group_by(column("currency"))
    )


def adoption_counts(renderer: Renderer) -> exp.Query:
    """Distinct users with behaviour events in a window ``[?, ?)``, per ``feature`` and (the
    row whose feature is null) of any feature. Placeholders: the window twice."""
    users = exp.Count(this=exp.Distinct(expressions=[column("user_id")])).as_("users")
    per_feature = (
        sqlglot.select(column("feature"), users)
        .from_(BEHAVIOR)
        .where(window_condition())
        .group_by(column("feature"))
    )
    any_feature = (
        sqlglot.select(exp.cast(exp.null(), exp.DataType.Type.VARCHAR).as_("feature"), users.copy())
        .from_(BEHAVIOR)
        .where(window_condition())
    )
    return exp.union(per_feature, any_feature, distinct=False)


#: The subscription columns an attributed upgrade carries (what its MRR is computed from).
UPGRADE_COLUMNS = (
    "event_id",
    "user_id",
    "occurred_at",
    "kind",
    "currency",
    "unit_amount",
    "quantity",
    "interval",
    "interval_count",
    "discount_percent",
    "discount_amount",
    "attributed_feature",
    "attribution_source",
)


def attributed_upgrades(renderer: Renderer) -> exp.Select:
    """Each paid conversion or plan upgrade (``ATTRIBUTION_KINDS``) in a window ``[?, ?)``
    with its :data:`UPGRADE_COLUMNS` and the ``first_touch`` / ``last_touch`` feature: the
    feature of the user's first / last behaviour event in ``[t - lookback, t)`` before the
    upgrade at ``t`` (ties by event id). Placeholders: the window; the lookback in seconds;
    the window's start minus the lookback and its end (behaviour events read)."""
    upgrades = (
        sqlglot.select(*(column(c) for c in UPGRADE_COLUMNS))
        .from_(SUBSCRIPTIONS)
        .where(window_condition(), _in("kind", ATTRIBUTION_KINDS))
    )
    at = exp.TimeToUnix(this=_q("u", "occurred_at"))
    used = exp.TimeToUnix(this=_q("b", "occurred_at"))
    order_first = [exp.Ordered(this=_q("b", "occurred_at")), exp.Ordered(this=_q("b", "event_id"))]
    order_last = [
        exp.Ordered(this=_q("b", "occurred_at"), desc=True),
        exp.Ordered(this=_q("b", "event_id"), desc=True),
    ]

    def rank(order: list[exp.Ordered]) -> exp.Window:
        return exp.Window(
            this=exp.RowNumber(),
            partition_by=[_q("u", "event_id")],
            order=exp.Order(expressions=order),
        )

    touches = (
        sqlglot.select(
            _q("u", "event_id"),
            _q("b", "feature"),
            rank(order_first).as_("first_rank"),
            rank(order_last).as_("last_rank"),
        )
        .from_(exp.alias_(exp.to_identifier("upgrades"), "u"))
        .join(
            exp.alias_(exp.to_identifier(BEHAVIOR), "b"),
            on=exp.and_(
                _q("b", "user_id").eq(_q("u", "user_id")),
                used >= exp.Sub(this=at, expression=exp.Placeholder()),
                _q("b", "occurred_at") < _q("u", "occurred_at"),
                window_condition().transform(
                    lambda node: _q("b", "occurred_at") if isinstance(node, exp.Column) else node
                ),
            ),
        )
    )

    def touch(alias: str, rank_column: str) -> exp.Expr:
        return exp.and_(
            _q(alias, "event_id").eq(_q("upgrades", "event_id")),
            _q(alias, rank_column).eq(exp.Literal.number(1)),
        )

    query = (
        sqlglot.select(
            *(_q("upgrades", c) for c in UPGRADE_COLUMNS),
            _q("ft", "feature").as_("first_touch"),
            _q("lt", "feature").as_("last_touch"),
        )
        .from_("upgrades")
        .join(
            exp.alias_(exp.to_identifier("touches"), "ft"),
            on=touch("ft", "first_rank"),
            join_type="left",
        )
        .join(
            exp.alias_(exp.to_identifier("touches"), "lt"),
            on=touch("lt", "last_rank"),
            join_type="left",
        )
    )
    return _with(query, [("upgrades", upgrades), ("touches", touches)])


def connection_users(renderer: Renderer) -> exp.Select:
    """Distinct users with a connection attempt per ``feature`` in a window ``[?, ?)``."""
    return (
        sqlglot.select(
            column("feature"),
            exp.Count(this=exp.Distinct(expressions=[column("user_id")])).as_("users"),
        )
        .from_(_ATTEMPTS)
        .where(window_condition())
        .group_by(column("feature"))
    )
