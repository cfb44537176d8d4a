"""The subscription ledger as SQL: each customer's MRR changes and their movements.

Every ``subscription`` event is a snapshot of one subscription as it is after
the event. The ledger reads them from the store's ``subscription_changes``: each
subscription's snapshots without those repeating the previous one's terms (a renewal
at an unchanged price), kept by the store as events arrive — a quarter of the events,
and the same ledger. The statements built here (sqlglot, rendered per engine by the
metric layer; docs/revenue.md states each rule with its source):

1. order each subscription's snapshots by ``(occurred_at, received_at, event_id)``;
2. price each snapshot: ``unit_amount * quantity``, less its discount (percent,
   rounded half up to a minor unit, then amount) while the discount lasts,
   normalised to a month in integer minor units rounded half up —
   ``⌊(2·price·N + D) / 2D⌋`` with ``N/D`` = 1/ic (month), 1/12ic (year),
   52/12ic (week), 365/12ic (day) — and converted to the reporting currency
   at the rate valid when the subscription started;
3. a snapshot counts while its status is ``active`` or ``past_due`` (and as the
   policy says for grace periods and cancellations paid through a period end);
   a discount's end, a grace period's end and a paid period's end inside a
   snapshot's span are changes of their own;
4. in one sort per subscription (by time alone; a subscription with two snapshots at
   one instant is sorted again in the exact order), give each snapshot the next one's
   time and the MRR it starts with: a snapshot steps its customer's MRR by its own at
   its time if it is its subscription's first, by the change to the next one's at the
   next one's time, and by the change at each change inside its span; a renewal at an
   unchanged price steps by 0 and goes no further;
5. sum the steps per customer and instant, and classify each change: ``new`` (0 →
   MRR, first time), ``reactivation`` (0 → MRR again), ``expansion``,
   ``contraction``, ``churn`` (MRR → 0).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from functools import lru_cache

import sqlglot
from sqlglot import exp

from banking_analytics.analytics.revenue._policy import (
    MINOR_UNIT_EXPONENTS,
    ChurnRecognition,
)
from banking_analytics.events import SCHEMAS
from banking_analytics.metrics import Bucket, Renderer
from banking_analytics.store import EXCHANGE_RATES, RATE_SCALE, SUBSCRIPTION_CHANGES
from banking_analytics.vocabulary import EventType

__all__ = [
    "EVENTS_TABLE",
    "LEDGER_TABLES",
    "SNAPSHOTS_TABLE",
    "LedgerShape",
    "Part",
    "combined_query",
    "currencies_query",
    "missing_rates_query",
    "movements_query",
    "series_query",
    "with_ledger",
]

EVENTS_TABLE = SCHEMAS[EventType.SUBSCRIPTION].table
#: The snapshots the ledger reads: the subscription events that change a term.
SNAPSHOTS_TABLE = SUBSCRIPTION_CHANGES.table.name
RATES_TABLE = EXCHANGE_RATES.name
#: The column ``interval`` (a keyword, quoted).
_INTERVAL = '"interval"'

#: What changes a ledger statement's SQL: the churn recognition, the grace days (or
#: None), the reporting currency's minor-unit exponent, whether rates are joined, and
#: whether a customer with only $0 subscriptions is a customer.
LedgerShape = tuple[str, int | None, int, bool, bool]


def _x(text: str) -> exp.Expr:
    """An expression in sqlglot's own (engine-neutral) SQL; the renderer writes it per dialect."""
    return sqlglot.parse_one(text)


def _months(start: exp.Expr, count: exp.Expr) -> exp.Expr:
    return exp.DateAdd(this=start, expression=count, unit=exp.var("MONTH"))


def _days(start: exp.Expr, count: exp.Expr) -> exp.Expr:
    return exp.DateAdd(this=start, expression=count, unit=exp.var("DAY"))


def _half_up(
    renderer: Renderer, numerator: exp.Expr, denominator: exp.Expr, *, wide: bool = False
) -> exp.Expr:
    """``⌊numerator / denominator + ½⌋`` of non-negative integers, exactly (in wide integers
    when ``wide``: a price times a rate scaled by 10^9 overflows 64 bits; a price times
    365 does not)."""
    integer = renderer.wide_integer if wide else exp.DataType.build("BIGINT")
    twice = exp.Mul(this=exp.Literal.number(2), expression=exp.cast(numerator, integer.copy()))
    shifted = exp.Add(this=twice, expression=exp.cast(denominator.copy(), integer.copy()))
    divisor = exp.Mul(this=exp.Literal.number(2), expression=exp.cast(denominator, integer.copy()))
    return exp.cast(
        exp.IntDiv(this=exp.Paren(this=shifted), expression=exp.Paren(this=divisor)), "BIGINT"
    )


#: A subscription's snapshots in order (of the column holding ``occurred_at``).
_ORDER = "ORDER BY {}, received_at, event_id"


def _snapshots(shape: LedgerShape) -> exp.Select:
    """Each event's fields the ledger reads (and, with a grace period, its past-due run)."""
    _, grace_days, _, _, _ = shape
    columns = [
        "user_id AS customer",
        "subscription_id AS sub",
        "occurred_at AS moment",
        "received_at",
        "event_id",
        "status",
        "period_end",
        "currency",
        _INTERVAL,
        "interval_count AS ic",
        "discount_duration",
        "discount_months",
        "unit_amount * COALESCE(quantity, 1) AS gross",
        "COALESCE(discount_percent, 0) AS percent_off",
        "COALESCE(discount_amount, 0) AS amount_off",
        "discount_percent IS NOT NULL OR discount_amount IS NOT NULL AS discounted",
        "discount_percent",
        "discount_amount",
    ]
    # N and D of the monthly normalisation, per interval unit (found once per snapshot).
    ratio = {
        "month": ("1", "interval_count"),
        "year": ("1", "12 * interval_count"),
        "week": ("52", "12 * interval_count"),
        "day": ("365", "12 * interval_count"),
    }
    for name, side in (("n", 0), ("d", 1)):
        cases = " ".join(f"WHEN {_INTERVAL} = '{u}' THEN {nd[side]}" for u, nd in ratio.items())
        columns.append(f"CASE {cases} END AS {name}")
    if grace_days is not None:
        # Consecutive past-due snapshots share the count of other snapshots before them.
        columns.append(
            "SUM(CASE WHEN status = 'past_due' THEN 0 ELSE 1 END) "
            f"OVER (PARTITION BY subscription_id {_ORDER.format('occurred_at')} "
            "ROWS UNBOUNDED PRECEDING) AS run"
        )
    return sqlglot.select(*(_x(c) for c in columns)).from_(exp.to_table(SNAPSHOTS_TABLE))


_DISCOUNT = ("discount_percent", "discount_amount", "discount_duration", "discount_months")


def _discount_starts() -> exp.Select:
    """When each discount that ends began: the first event of its subscription carrying
    it (only ``once`` and ``repeating`` discounts end; few events have one)."""
    return (
        sqlglot.select(
            _x("subscription_id AS discount_sub"),
            *(_x(f"{c} AS started_{c}") for c in _DISCOUNT),
            _x("MIN(occurred_at) AS discount_start"),
        )
        .from_(exp.to_table(SNAPSHOTS_TABLE))
        .where(_x("discount_duration IN ('once', 'repeating')"))
        .group_by("subscription_id", *_DISCOUNT)
    )


def _priced(renderer: Renderer, shape: LedgerShape, tied: bool) -> exp.Select:
    """Each snapshot's monthly price with and without its discount, in the reporting
    currency, and when its discount (and, with a grace period, its past-due run) ends;
    with ``tied``, only the subscriptions with two snapshots at one instant."""
    _, grace_days, reporting_exponent, converts, _ = shape
    net = _x(
        "GREATEST(gross - CAST(FLOOR(gross * percent_off / 100 + 0.5) AS BIGINT) - amount_off, 0)"
    )

    def monthly(price: exp.Expr) -> exp.Expr:
        normalised = _half_up(renderer, exp.Mul(this=price, expression=_x("n")), _x("d"))
        if not converts:
            return normalised
        # major units: amount · rate; in minor units, scaled by the exponents' difference.
        exponents = [
            exp.If(this=_x(f"currency = '{c}'"), true=exp.Literal.number(10 ** (9 + e)))
            for c, e in sorted(MINOR_UNIT_EXPONENTS.items())
        ]
        scale = exp.Case(ifs=exponents, default=exp.Literal.number(10**11))
        # Subscriptions in the reporting currency join no rate: theirs is 1 (10^9 scaled);
        # every other currency's rate was checked to exist before this runs.
        rate = _x(f"COALESCE(rate_e9, {RATE_SCALE})")
        wide = exp.Mul(
            this=exp.Mul(this=exp.cast(normalised, renderer.wide_integer.copy()), expression=rate),
            expression=exp.Literal.number(10**reporting_exponent),
        )
        return _half_up(renderer, wide, scale, wide=True)

    start = _x("discount_start")
    ic = _x("ic")
    once = exp.Case(
        ifs=[
            exp.If(this=_x(f"{_INTERVAL} = 'month'"), true=_months(start.copy(), ic.copy())),
            exp.If(this=_x(f"{_INTERVAL} = 'year'"), true=_months(start.copy(), _x("12 * ic"))),
            exp.If(this=_x(f"{_INTERVAL} = 'week'"), true=_days(start.copy(), _x("7 * ic"))),
        ],
        default=_days(start.copy(), ic.copy()),
    )
    discount_end = exp.Case(
        ifs=[
            exp.If(this=_x("NOT discounted"), true=exp.null()),
            exp.If(
                this=_x("discount_duration = 'repeating'"),
                true=_months(start.copy(), _x("discount_months")),
            ),
            exp.If(this=_x("discount_duration = 'once'"), true=once),
        ],
        default=exp.null(),
    )
    columns: list[exp.Expr] = [
        _x("customer"),
        _x("sub"),
        _x("moment"),
        _x("received_at"),
        _x("event_id"),
        # The status as the flags read later: narrow rows make the sort per subscription
        # cheaper than a string would.
        _x("status IN ('active', 'past_due') AS live"),
        _x("status = 'past_due' AS past_due"),
        _x("status IN ('canceled', 'unpaid') AS ended"),
        _x("period_end"),
        _x("discounted"),
        exp.alias_(monthly(_x("gross")), "mrr_full"),
        # Only a discounted snapshot has a discounted price (pricing is a fifth of the work).
        exp.alias_(
            exp.Case(ifs=[exp.If(this=_x("discounted"), true=monthly(net))]), "mrr_discounted"
        ),
        exp.alias_(discount_end, "discount_end"),
    ]
    if grace_days is not None:
        since = _x(
            "MIN(CASE WHEN status = 'past_due' THEN moment END) OVER (PARTITION BY sub, run)"
        )
        columns.append(exp.alias_(_days(since, exp.Literal.number(grace_days)), "grace_end"))
    same_discount = exp.and_(
        _x("discount_sub = sub"),
        *(exp.NullSafeEQ(this=_x(c), expression=_x(f"started_{c}")) for c in _DISCOUNT),
    )
    select = (
        sqlglot.select(*columns)
        .from_(exp.to_table("snapshots"))
        .join(exp.to_table("discount_starts"), on=same_discount, join_type="left")
    )
    if converts:
        select = select.join(
            exp.to_table("sub_rates"),
            on=_x("rate_sub = sub AND rate_currency = currency"),
            join_type="left",
        )
    if tied:
        select = select.where(_x("sub IN (SELECT sub FROM tied_subs)"))
    return select


def _sub_rates() -> exp.Select:
    """Each subscription's rate: its currency's latest rate from on or before its start."""
    ranked = _x(
        "ROW_NUMBER() OVER (PARTITION BY s.sub, s.currency "
        "ORDER BY r.valid_from DESC, r.loaded_at DESC)"
    )
    started = (
        sqlglot.select(_x("sub"), _x("currency"), _x("MIN(moment) AS sub_start"))
        .from_("snapshots")
        .where(exp.NEQ(this=_x("currency"), expression=exp.Placeholder()))
        .group_by(_x("sub"), _x("currency"))
        .subquery("s")
    )
    joined = (
        sqlglot.select(
            _x("s.sub AS rate_sub"), _x("s.currency AS rate_currency"), _x("r.rate_e9 AS rate_e9")
        )
        .select(exp.alias_(ranked, "k"))
        .from_(started)
        .join(
            exp.alias_(exp.to_table(RATES_TABLE), "r"),
            on=exp.and_(
                _x("r.currency = s.currency"),
                exp.EQ(this=_x("r.quote"), expression=exp.Placeholder()),
                _x("r.valid_from <= s.sub_start"),
            ),
        )
        .subquery("ranked")
    )
    return sqlglot.select("rate_sub", "rate_currency", "rate_e9").from_(joined).where(_x("k = 1"))


def _value_at(
    when: exp.Expr, shape: LedgerShape, *, just_before: bool = False, counted: bool = False
) -> exp.Expr:
    """The snapshot's MRR at instant ``when`` within its span (or just before it: a change
    at ``when`` has not happened yet); with ``counted``, 1 if it counts as a subscription
    then (whatever its price) and 0 if not."""
    recognition, grace_days, _, _, _ = shape

    def before(limit: str) -> exp.Expr:
        """``when`` is before ``limit`` (at or before, just before ``when``)."""
        compare = exp.LTE if just_before else exp.LT
        return compare(this=when.copy(), expression=_x(limit))

    discount_on = exp.or_(_x("discount_end IS NULL"), before("discount_end"))
    price: exp.Expr = exp.Case(
        ifs=[exp.If(this=exp.and_(_x("discounted"), discount_on), true=_x("mrr_discounted"))],
        default=_x("mrr_full"),
    )
    if counted:
        price = exp.Literal.number(1)
    live: exp.Expr = _x("live")
    if grace_days is not None:
        lapsed = exp.and_(_x("past_due"), exp.Not(this=before("grace_end")))
        live = exp.and_(live, exp.Not(this=exp.Paren(this=lapsed)))
    ifs = [exp.If(this=live, true=price)]
    if recognition == ChurnRecognition.PERIOD_END:
        paid_through = exp.and_(
            _x("ended"),
            _x("period_end > moment"),
            before("period_end"),
        )
        ifs.append(exp.If(this=paid_through, true=price.copy()))
    return exp.Case(ifs=ifs, default=exp.Literal.number(0))


def _changes_inside(shape: LedgerShape) -> list[tuple[str, str]]:
    """The changes a snapshot's MRR may have inside its span: the instant's column, and
    when the snapshot has one."""
    recognition, grace_days, _, _, _ = shape
    changes = [("discount_end", "discounted")]
    if grace_days is not None:
        changes.append(("grace_end", "past_due"))
    if recognition == ChurnRecognition.PERIOD_END:
        changes.append(("period_end", "ended"))
    return changes


def _spans(shape: LedgerShape, tied: bool) -> exp.Select:
    """Each priced snapshot with its MRR at its own time (and, with free customers, 1 if it
    counts then), its span's end (the next snapshot's time), the MRR the next snapshot
    starts with, and whether it is its subscription's first: one sort per subscription,
    over the narrow priced rows.

    Sorting by the time alone is a fifth cheaper than by ``(time, received_at, event_id)``
    and gives the same order where a subscription has no two snapshots at one instant;
    each snapshot says whether the next one shares its instant (column ``tied``), and the
    subscriptions with such a pair are sorted again, from ``priced_tied``, in the exact
    order (argument ``tied``)."""
    free_customers = shape[4]
    order = _ORDER.format("moment") if tied else "ORDER BY moment"
    over = f"OVER (PARTITION BY sub {order})"
    starts = [exp.alias_(_value_at(_x("moment"), shape), "start_value")]
    ahead = [_x(f"LEAD(moment) {over} AS next_at"), _x(f"LEAD(start_value) {over} AS next_value")]
    if free_customers:
        starts.append(exp.alias_(_value_at(_x("moment"), shape, counted=True), "start_counted"))
        ahead.append(_x(f"LEAD(start_counted) {over} AS next_counted"))
    ahead.append(_x(f"LAG(moment) {over} IS NULL AS is_first"))
    if not tied:
        ahead.append(_x(f"LEAD(moment) {over} = moment AS tied"))
    source = "priced_tied" if tied else "priced"
    started = sqlglot.select("*", *starts).from_(source).subquery("started")
    return sqlglot.select("*", *ahead).from_(started)


def _stepped(shape: LedgerShape, tied: bool) -> exp.Select:
    """Each snapshot's steps of its customer's MRR, as columns: at its time, its MRR if it
    is its subscription's first; at the next snapshot's time, the change from its MRR just
    before then to the next one's; at each change inside its span (a discount's, a grace
    period's, a paid period's end), the change there. Summed per customer and instant, the
    steps are the MRR's changes.

    A renewal at an unchanged price steps by 0: :func:`_steps` keeps only the snapshots with
    a step, so the steps summed later are few (about one per movement)."""
    free_customers = shape[4]
    changes = _changes_inside(shape)

    def within(name: str, condition: str) -> exp.Expr:
        """A change at ``name`` falls strictly inside the span, and not at the time of an
        earlier one (one step at an instant holds every change there: two would count the
        change twice)."""
        earlier = [other for other, _ in changes[: [n for n, _ in changes].index(name)]]
        apart = "".join(f" AND {name} IS DISTINCT FROM {other}" for other in earlier)
        return _x(
            f"{condition} AND {name} > moment AND ({name} < next_at OR next_at IS NULL){apart}"
        )

    def steps_of(counted: bool) -> list[exp.Expr]:
        """At the snapshot's time, at the next one's, and at each change inside its span."""
        start, following = (
            ("start_counted", "next_counted") if counted else ("start_value", "next_value")
        )
        steps: list[exp.Expr] = [
            _x(f"CASE WHEN is_first THEN {start} ELSE 0 END"),
            # A snapshot followed by one at its own instant held its MRR for no time: what
            # it leaves is what it started with (the MRR "just before" then would be its
            # own before a change at that instant, e.g. a grace period of 0 days).
            exp.Sub(
                this=_x(following),
                expression=exp.Case(
                    ifs=[exp.If(this=_x("next_at = moment"), true=_x(start))],
                    default=_value_at(_x("next_at"), shape, just_before=True, counted=counted),
                ),
            ),
        ]
        for name, condition in changes:
            at = _x(name)
            step = exp.Sub(
                this=_value_at(at, shape, counted=counted),
                expression=_value_at(at, shape, just_before=True, counted=counted),
            )
            steps.append(exp.Case(ifs=[exp.If(this=within(name, condition), true=step)]))
        return steps

    columns: list[exp.Expr] = [_x("customer"), _x("moment AS at_0"), _x("next_at AS at_1")]
    if not tied:
        columns += [_x("sub"), _x("tied")]
    for number, (name, condition) in enumerate(changes, start=2):
        at = exp.Case(ifs=[exp.If(this=within(name, condition), true=_x(name))])
        columns.append(exp.alias_(at, f"at_{number}"))
    names = [f"step_{n}" for n in range(len(changes) + 2)]
    columns += [exp.alias_(s, n) for s, n in zip(steps_of(False), names, strict=True)]
    if free_customers:
        # How many subscriptions count, whatever their price: a customer with one is one.
        counted = [f"counted_{n}" for n in range(len(changes) + 2)]
        columns += [exp.alias_(s, n) for s, n in zip(steps_of(True), counted, strict=True)]
    return sqlglot.select(*columns).from_("spans_tied" if tied else "spans")


def _steps(shape: LedgerShape, tied: bool) -> exp.Select:
    """The steps of the snapshots with one as rows: their columns laid out as parallel
    arrays unnested together (both engines unnest arrays in a select list side by side).
    Sorted by time alone (not ``tied``), the snapshots followed by one at the same instant
    are kept too, with their subscription: they name the subscriptions taken again."""
    free_customers = shape[4]
    count = len(_changes_inside(shape)) + 2
    kept = [f"step_{n}" for n in range(count)]
    if free_customers:
        kept += [f"counted_{n}" for n in range(count)]

    def unnested(prefix: str, alias: str) -> exp.Expr:
        array = exp.Array(expressions=[_x(f"{prefix}_{n}") for n in range(count)])
        return exp.alias_(exp.Unnest(expressions=[array]), alias)

    columns: list[exp.Expr | str] = [
        "customer",
        unnested("at", "moment"),
        unnested("step", "step"),
    ]
    if free_customers:
        columns.append(unnested("counted", "counted_step"))
    # A step is null where its instant is (the last snapshot has no next one).
    kept_rows = exp.or_(*(_x(f"{name} <> 0") for name in kept))
    if not tied:
        columns += ["sub", "tied"]
        kept_rows = exp.or_(_x("tied"), kept_rows)
    return sqlglot.select(*columns).from_("stepped_tied" if tied else "stepped").where(kept_rows)


def _all_steps(shape: LedgerShape) -> exp.Union:
    """Every step: those of the subscriptions without two snapshots at one instant from
    the sort by time, the others' from the sort in the exact order."""
    names = ["customer", "moment", "step", *(["counted_step"] if shape[4] else [])]
    untied = (
        sqlglot.select(*names)
        .from_("steps_by_time")
        .where(_x("sub NOT IN (SELECT sub FROM tied_subs)"))
    )
    return untied.union(sqlglot.select(*names).from_("steps_tied"), distinct=False)


def _ledger(renderer: Renderer, shape: LedgerShape) -> exp.Select:
    """``movements``: per customer and instant of change, the MRR before and after, the
    change and its kind (see the module docs), as a query over common table expressions."""
    free_customers = shape[4]
    if free_customers:
        changes = (
            sqlglot.select(
                "customer",
                "moment",
                _x("SUM(step) AS delta"),
                _x("SUM(counted_step) AS counted_delta"),
            )
            .from_("steps")
            .where(_x("moment IS NOT NULL AND (step <> 0 OR counted_step <> 0)"))
            .group_by("customer", "moment")
            .having(_x("SUM(step) <> 0 OR SUM(counted_step) <> 0"))
        )
    else:
        changes = (
            sqlglot.select("customer", "moment", _x("SUM(step) AS delta"))
            .from_("steps")
            .where(_x("moment IS NOT NULL AND step <> 0"))
            .group_by("customer", "moment")
            .having(_x("SUM(step) <> 0"))
        )
    over = "OVER (PARTITION BY customer ORDER BY moment ROWS UNBOUNDED PRECEDING)"
    running = sqlglot.select(
        "customer",
        "moment",
        "delta",
        _x(f"SUM(delta) {over} AS mrr_after"),
        *(
            [_x("counted_delta"), _x(f"SUM(counted_delta) {over} AS counted_after")]
            if free_customers
            else []
        ),
        _x("LAG(moment) OVER (PARTITION BY customer ORDER BY moment) AS previous_moment"),
        _x("LEAD(moment) OVER (PARTITION BY customer ORDER BY moment) AS next_moment"),
    ).from_("changes")
    # A customer is one while paying (MRR > 0). With free customers (ChartMogul's
    # default), a customer who has paid stays one while a subscription of theirs counts,
    # at $0 too (moving to a free plan is then a contraction); who never paid is a lead.
    source = "running"
    first_paid = "previous_moment IS NULL"
    present_after, present_before = "mrr_after > 0", "mrr_after - delta > 0"
    if free_customers:
        source = "paid"
        first_paid = "COALESCE(paid_before, 0) = 0"
        present_after = "(mrr_after > 0 OR (counted_after > 0 AND COALESCE(paid_before, 0) > 0))"
        present_before = (
            "(mrr_after - delta > 0 OR "
            "(counted_after - counted_delta > 0 AND COALESCE(paid_before, 0) > 0))"
        )
    kind = _x(
        f"CASE WHEN NOT {present_before} AND {present_after} THEN "
        f"CASE WHEN {first_paid} THEN 'new' ELSE 'reactivation' END "
        f"WHEN {present_before} AND NOT {present_after} THEN 'churn' "
        "WHEN delta > 0 THEN 'expansion' WHEN delta < 0 THEN 'contraction' END"
    )
    movements = sqlglot.select(
        "customer",
        "moment",
        "delta",
        _x("mrr_after - delta AS mrr_before"),
        "mrr_after",
        exp.alias_(kind, "kind"),
        _x(f"CASE WHEN {present_before} THEN 1 ELSE 0 END AS present_before"),
        _x(f"CASE WHEN {present_after} THEN 1 ELSE 0 END AS present_after"),
        "previous_moment",
        "next_moment",
    ).from_(source)
    paid = sqlglot.select(
        "*",
        _x(
            "MAX(mrr_after) OVER (PARTITION BY customer ORDER BY moment "
            "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS paid_before"
        ),
    ).from_("running")
    query = sqlglot.select("*").from_("movements")
    converts = shape[3]
    ctes: list[tuple[str, exp.Query]] = [("snapshots", _snapshots(shape))]
    if converts:
        ctes.append(("sub_rates", _sub_rates()))
    ctes += [
        ("discount_starts", _discount_starts()),
        ("priced", _priced(renderer, shape, tied=False)),
        ("spans", _spans(shape, tied=False)),
        ("stepped", _stepped(shape, tied=False)),
        ("steps_by_time", _steps(shape, tied=False)),
        ("tied_subs", sqlglot.select("sub").distinct().from_("steps_by_time").where("tied")),
        ("priced_tied", _priced(renderer, shape, tied=True)),
        ("spans_tied", _spans(shape, tied=True)),
        ("stepped_tied", _stepped(shape, tied=True)),
        ("steps_tied", _steps(shape, tied=True)),
        ("steps", _all_steps(shape)),
        ("changes", changes),
        ("running", running),
        *([("paid", paid)] if free_customers else []),
        ("movements", movements),
    ]
    for name, cte in ctes:
        # Read twice (by the sort by time and the exact one): computed where read, not
        # written out whole first.
        materialized = False if name == "snapshots" else None
        query = query.with_(name, as_=cte, materialized=materialized, copy=False)
    return query


@lru_cache(maxsize=32)
def _ledger_tables(renderer: Renderer, shape: LedgerShape) -> exp.With:
    """The ledger's tables, built once per renderer and shape: a combined statement's
    parts each read them (building them is most of rendering such a statement)."""
    with_: exp.With = _ledger(renderer, shape).args["with_"]
    return with_


def with_ledger(renderer: Renderer, shape: LedgerShape, final: exp.Select) -> exp.Select:
    """``final`` reading ``movements``, with the ledger's tables before it (a copy of
    its own: statements change their trees as they are combined)."""
    final.set("with_", _ledger_tables(renderer, shape).copy())
    return final


#: The common table expressions of the ledger, shared by every part of a combined query.
LEDGER_TABLES = frozenset(
    (
        "snapshots",
        "sub_rates",
        "discount_starts",
        "priced",
        "spans",
        "stepped",
        "steps_by_time",
        "tied_subs",
        "priced_tied",
        "spans_tied",
        "stepped_tied",
        "steps_tied",
        "steps",
        "changes",
        "running",
        "paid",
    )
)
#: What reads the ledger's movements: a builder and the shape it is built with (before
#: the ledger's own), as :class:`~banking_analytics.metrics.Statement` builds are.
Part = tuple[Callable[..., exp.Select], tuple[Hashable, ...]]


def combined_query(renderer: Renderer, parts: tuple[Part, ...], *ledger: object) -> exp.Select:
    """Several queries over the ledger as one: the movements are computed once (a
    materialised table) and each part's rows come out with its columns named
    ``p<number>_<column>`` and ``p<number>_part`` set (null in the other parts' rows).

    Each part's placeholders keep their order, parts in order, after the ledger's own.
    """
    ledger_with: exp.With | None = None
    ctes: list[exp.CTE] = []
    branches: list[tuple[int, list[str]]] = []
    for number, (build, shape) in enumerate(parts):
        query = build(renderer, *shape, *ledger)
        with_ = query.args.pop("with_")
        own = [c for c in with_.expressions if c.alias not in LEDGER_TABLES | {"movements"}]
        if ledger_with is None:
            ledger_with = with_
            ledger_with.set("expressions", [c for c in with_.expressions if c not in own])
        renamed = {c.alias: f"p{number}_{c.alias}" for c in own}
        for node in [*own, query]:
            for table in list(node.find_all(exp.Table)):
                if table.name in renamed:
                    if not table.alias:
                        table.set("alias", exp.TableAlias(this=exp.to_identifier(table.name)))
                    table.set("this", exp.to_identifier(renamed[table.name]))
        for cte in own:
            cte.set("alias", exp.TableAlias(this=exp.to_identifier(renamed[cte.alias])))
            ctes.append(cte)
        ctes.append(exp.CTE(this=query, alias=exp.TableAlias(this=exp.to_identifier(f"p{number}"))))
        branches.append((number, list(query.named_selects)))
    assert ledger_with is not None
    for cte in ledger_with.expressions:
        if cte.alias == "movements":
            cte.set("materialized", True)
    ledger_with.set("expressions", [*ledger_with.expressions, *ctes])
    # Side by side, never matched: each part's rows with the others' columns null. (A
    # union would need the nulls typed: PostgreSQL takes an untyped null for text.)
    sides = [
        sqlglot.select(
            exp.alias_(exp.Literal.number(number), f"p{number}_part"),
            *(exp.alias_(_x(name), f"p{number}_{name}") for name in names),
        )
        .from_(f"p{number}")
        .subquery(f"s{number}")
        for number, names in branches
    ]
    final = sqlglot.select("*").from_(sides[0])
    for side in sides[1:]:
        final = final.join(side, on=exp.false(), join_type="full")
    final.set("with_", ledger_with)
    return final


def movements_query(renderer: Renderer, *shape_values: object) -> exp.Select:
    """Every movement with ``at`` in ``[?, ?)``, by customer and time. Params: (the
    reporting currency twice when rates are joined,) the window's start and end."""
    shape: LedgerShape = shape_values  # type: ignore[assignment]
    final = (
        sqlglot.select("customer", "moment", "kind", "delta", "mrr_before", "mrr_after")
        .from_("movements")
        .where(_x("kind IS NOT NULL"))
        .where(exp.GTE(this=_x("moment"), expression=exp.Placeholder()))
        .where(exp.LT(this=_x("moment"), expression=exp.Placeholder()))
        .order_by("customer", "moment")
    )
    return with_ledger(renderer, shape, final)


def series_query(
    renderer: Renderer, bucket: str, timezone: str, *shape_values: object
) -> exp.Select:
    """Per bucket of ``[start, end)`` (params: (rates' currency twice,) start four times,
    end),
    and for everything before ``start`` (the bucket key null): sums of movements by kind,
    distinct customers by kind, the change in paying customers, and the MRR the start
    cohort lost (net, for NRR; drops only, for GRR)."""
    shape: LedgerShape = shape_values  # type: ignore[assignment]
    cut = renderer.bucket(_x("moment"), Bucket(bucket), timezone)

    def bucket_of(moment: exp.Expr) -> exp.Expr:
        """The key of a movement's bucket: null for the movements before ``start`` (which
        all make the opening balance)."""
        key = renderer.bucket(moment.copy(), Bucket(bucket), timezone).key
        opening = exp.LT(this=moment, expression=exp.Placeholder())
        return exp.Case(ifs=[exp.If(this=opening, true=exp.null())], default=key)

    before = exp.LT(this=_x("moment"), expression=exp.Placeholder())
    start = exp.Case(ifs=[exp.If(this=before, true=exp.null())], default=cut.start)
    # Placeholders bind in SQL order: the neighbours' and the movement's bucket keys (each
    # comparing with the start), the bucket's start (the same), then the end.
    bucketed = (
        sqlglot.select(
            "customer",
            "moment",
            "kind",
            "delta",
            "mrr_before",
            "mrr_after",
            "present_before",
            "present_after",
            "previous_moment",
            "next_moment",
            exp.alias_(bucket_of(_x("previous_moment")), "previous_key"),
            exp.alias_(bucket_of(_x("next_moment")), "next_key"),
            exp.alias_(bucket_of(_x("moment")), "bucket_key"),
            exp.alias_(start, "bucket_start"),
        )
        .from_("movements")
        .where(exp.LT(this=_x("moment"), expression=exp.Placeholder()))
    )
    # A customer's MRR at a bucket's start is the MRR before their first movement in it;
    # at its end, after their last: told by the neighbouring movements' buckets (found in
    # the ledger's own pass over each customer's movements), where ranking the movements
    # per bucket would sort them twice more.
    first = "(previous_moment IS NULL OR previous_key IS DISTINCT FROM bucket_key)"
    last = "(next_moment IS NULL OR next_key IS DISTINCT FROM bucket_key)"

    def total(kind: str) -> str:
        return f"SUM(CASE WHEN kind = '{kind}' THEN delta ELSE 0 END) AS {kind}"

    def flag(kind: str) -> str:
        return f"MAX(CASE WHEN kind = '{kind}' THEN 1 ELSE 0 END) AS is_{kind}"

    kinds = ("new", "expansion", "contraction", "churn", "reactivation")
    per_customer = (
        sqlglot.select(
            "bucket_key",
            # One start per key: taken, not grouped by (hashing it too costs a tenth).
            _x("MIN(bucket_start) AS bucket_start"),
            "customer",
            *(_x(total(k)) for k in kinds),
            *(_x(flag(k)) for k in ("new", "reactivation", "churn")),
            _x(f"MAX(CASE WHEN {first} THEN mrr_before END) AS mrr_start"),
            _x(f"MAX(CASE WHEN {last} THEN mrr_after END) AS mrr_end"),
            _x(f"MAX(CASE WHEN {first} THEN present_before END) AS present_start"),
            _x(f"MAX(CASE WHEN {last} THEN present_after END) AS present_end"),
        )
        .from_("bucketed")
        .group_by("bucket_key", "customer")
    )
    final = (
        sqlglot.select(
            _x("MIN(bucket_start) AS bucket_start"),
            *(_x(f"SUM({k}) AS {k}") for k in kinds),
            _x("SUM(is_new) AS new_customers"),
            _x("SUM(is_reactivation) AS reactivated_customers"),
            _x(
                "SUM(CASE WHEN is_churn = 1 AND present_start = 1 THEN 1 ELSE 0 END) "
                "AS churned_customers"
            ),
            _x("SUM(is_churn) AS churned_customers_all"),
            _x("SUM(present_end - present_start) AS customers_change"),
            _x(
                "SUM(CASE WHEN mrr_start > 0 THEN mrr_start - mrr_end ELSE 0 END) "
                "AS cohort_net_loss"
            ),
            _x(
                "SUM(CASE WHEN mrr_start > mrr_end THEN mrr_start - mrr_end ELSE 0 END) "
                "AS cohort_gross_loss"
            ),
        )
        .from_("per_customer")
        .group_by("bucket_key")
    )
    query = with_ledger(renderer, shape, final)
    for name, cte in (("bucketed", bucketed), ("per_customer", per_customer)):
        query = query.with_(name, as_=cte, copy=False)
    return query


def currencies_query(renderer: Renderer) -> exp.Select:
    """The currencies subscriptions are in."""
    return sqlglot.select("currency").distinct().from_(exp.to_table(SNAPSHOTS_TABLE))


def missing_rates_query(renderer: Renderer) -> exp.Select:
    """Subscriptions in another currency than the reporting one (param) with no rate to
    it (param) from on or before their start: currency and earliest start date."""
    starts = (
        sqlglot.select(
            _x("subscription_id AS sub"), "currency", _x("MIN(occurred_at) AS sub_start")
        )
        .from_(exp.to_table(SNAPSHOTS_TABLE))
        .where(exp.NEQ(this=_x("currency"), expression=exp.Placeholder()))
        .group_by("subscription_id", "currency")
        .subquery("s")
    )
    rated = exp.Exists(
        this=sqlglot.select("1")
        .from_(exp.alias_(exp.to_table(RATES_TABLE), "r"))
        .where(
            exp.and_(
                _x("r.currency = s.currency"),
                exp.EQ(this=_x("r.quote"), expression=exp.Placeholder()),
                _x("r.valid_from <= s.sub_start"),
            )
        )
    )
    return (
        sqlglot.select(_x("s.currency AS currency"), _x("MIN(s.sub_start) AS first_unrated"))
        .from_(starts)
        .where(exp.Not(this=rated))
        .group_by(_x("s.currency"))
        .order_by(_x("s.currency"))
    )
