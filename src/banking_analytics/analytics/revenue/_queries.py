"""Statements over the ledger and the events beside it: conversions, cohorts, attribution.

Each builds on the ledger's common table expressions (``movements``, see
:mod:`._ledger`) and is cut by the same buckets as the MRR series. Bucket
columns: ``bucket_key`` groups, ``bucket_start`` is its start instant.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from banking_analytics.analytics.revenue._ledger import EVENTS_TABLE, LedgerShape, _x, with_ledger
from banking_analytics.events import SCHEMAS
from banking_analytics.metrics import Bucket, Renderer
from banking_analytics.vocabulary import EventType

__all__ = [
    "ACTIVITY_TABLE",
    "cohort_query",
    "conversion_query",
    "feature_revenue_query",
    "trial_query",
]

ACTIVITY_TABLE = SCHEMAS[EventType.BEHAVIOR].table


def _bucketed(renderer: Renderer, bucket: str, timezone: str, time: str) -> list[exp.Expr]:
    cut = renderer.bucket(_x(time), Bucket(bucket), timezone)
    return [exp.alias_(cut.key, "bucket_key"), exp.alias_(cut.start, "bucket_start")]


def _in_window(time: str) -> exp.Expr:
    """``time`` in ``[?, ?)``."""
    return exp.and_(
        exp.GTE(this=_x(time), expression=exp.Placeholder()),
        exp.LT(this=_x(time), expression=exp.Placeholder()),
    )


def _spells() -> exp.Select:
    """Each time a customer pays: from a new or reactivation movement until the churn
    that ends it (null while it lasts)."""
    lasting = (
        sqlglot.select(
            "customer",
            "kind",
            _x("moment AS paid_from"),
            _x("LEAD(moment) OVER (PARTITION BY customer ORDER BY moment) AS paid_until"),
        )
        .from_("movements")
        .where(_x("kind IN ('new', 'reactivation', 'churn')"))
    )
    return (
        sqlglot.select("customer", "paid_from", "paid_until")
        .from_(lasting.subquery("spell_edges"))
        .where(_x("kind <> 'churn'"))
    )


def conversion_query(
    renderer: Renderer, bucket: str, timezone: str, by_feature: bool, *ledger: object
) -> exp.Select:
    """Free -> paid conversion per bucket of ``[?, ?)`` (params: start, end after the
    ledger's): users active in the bucket (a behaviour event; of a feature, with
    ``by_feature``) who were not paying at its start, and how many of them started
    paying (a new or reactivation movement) in it."""
    shape: LedgerShape = ledger  # type: ignore[assignment]
    columns = [_x("user_id AS user_id"), *_bucketed(renderer, bucket, timezone, "occurred_at")]
    if by_feature:
        columns.append(_x("feature"))
    active = (
        sqlglot.select(*columns)
        .distinct()
        .from_(exp.to_table(ACTIVITY_TABLE))
        .where(_in_window("occurred_at"))
    )
    # Paying at the bucket's start: a spell that began before it and had not ended.
    paying = exp.Exists(
        this=sqlglot.select("1")
        .from_("spells")
        .where(
            _x(
                "spells.customer = active.user_id AND spells.paid_from < active.bucket_start "
                "AND (spells.paid_until IS NULL OR spells.paid_until >= active.bucket_start)"
            )
        )
    )
    started_key = renderer.bucket(_x("spells.paid_from"), Bucket(bucket), timezone).key
    started = exp.Exists(
        this=sqlglot.select("1")
        .from_("spells")
        .where(
            exp.and_(
                _x("spells.customer = active.user_id"),
                exp.EQ(this=started_key, expression=_x("active.bucket_key")),
            )
        )
    )
    group = ["bucket_key", "bucket_start", *(["feature"] if by_feature else [])]
    final = (
        sqlglot.select(
            *group[1:],
            _x("COUNT(*) AS free_users"),
            exp.alias_(
                exp.Sum(this=exp.Case(ifs=[exp.If(this=started, true=_x("1"))], default=_x("0"))),
                "converted_users",
            ),
        )
        .from_(exp.alias_(exp.to_table("active"), "active"))
        .where(exp.Not(this=paying))
        .group_by(*group)
    )
    query = with_ledger(renderer, shape, final)
    return query.with_("spells", as_=_spells(), copy=False).with_("active", as_=active, copy=False)


def trial_query(
    renderer: Renderer, bucket: str, timezone: str, within_days: int | None
) -> exp.Select:
    """Trials started per bucket of ``[?, ?)`` (params: start, end) and how many of them
    later paid (a successful payment of more than 0 on the same subscription after the
    trial started; within ``within_days`` days of it when given)."""
    trials = (
        sqlglot.select(
            _x("subscription_id AS trial_sub"),
            _x("MIN(occurred_at) AS trial_at"),
        )
        .from_(exp.to_table(EVENTS_TABLE))
        .where(exp.and_(_x("kind = 'trial_started'"), _in_window("occurred_at")))
        .group_by("subscription_id")
    )
    paid = [
        _x("p.subscription_id = trials.trial_sub"),
        _x("p.kind = 'payment_succeeded'"),
        _x("p.amount > 0"),
        _x("p.occurred_at >= trials.trial_at"),
    ]
    if within_days is not None:
        limit = exp.DateAdd(
            this=_x("trials.trial_at"),
            expression=exp.Literal.number(within_days),
            unit=exp.var("DAY"),
        )
        paid.append(exp.LT(this=_x("p.occurred_at"), expression=limit))
    converted = exp.Exists(
        this=sqlglot.select("1")
        .from_(exp.alias_(exp.to_table(EVENTS_TABLE), "p"))
        .where(exp.and_(*paid))
    )
    return (
        sqlglot.select(
            *(e for e in _bucketed(renderer, bucket, timezone, "trial_at")),
            _x("COUNT(*) AS trials"),
            exp.alias_(
                exp.Sum(this=exp.Case(ifs=[exp.If(this=converted, true=_x("1"))], default=_x("0"))),
                "converted_trials",
            ),
        )
        .from_(trials.subquery("trials"))
        .group_by(_x("bucket_key"), _x("bucket_start"))
    )


def feature_revenue_query(
    renderer: Renderer, bucket: str, timezone: str, *ledger: object
) -> exp.Select:
    """MRR gained per bucket of ``[?, ?)`` (params: start, end after the ledger's) by new,
    expansion and reactivation movements, per feature the host app credited with the
    subscription event at the movement's instant (``attributed_feature``)."""
    shape: LedgerShape = ledger  # type: ignore[assignment]
    credited = (
        sqlglot.select(
            _x("user_id AS credited_user"),
            _x("occurred_at AS credited_at"),
            _x("MIN(attributed_feature) AS feature"),
        )
        .from_(exp.to_table(EVENTS_TABLE))
        .where(_x("attributed_feature IS NOT NULL"))
        .group_by("user_id", "occurred_at")
    )
    final = (
        sqlglot.select(
            _x("bucket_start"),
            _x("feature"),
            _x("SUM(delta) AS feature_revenue"),
            _x("COUNT(*) AS movements"),
        )
        .from_(
            sqlglot.select(*_bucketed(renderer, bucket, timezone, "moment"), "delta", "feature")
            .from_("movements")
            .join(
                "credited",
                on=_x(
                    "credited.credited_user = movements.customer AND "
                    "credited.credited_at = movements.moment"
                ),
            )
            .where(exp.and_(_x("delta > 0"), _in_window("moment")))
            .subquery("gains")
        )
        .group_by(_x("bucket_key"), _x("bucket_start"), _x("feature"))
    )
    return with_ledger(renderer, shape, final).with_("credited", as_=credited, copy=False)


def cohort_query(renderer: Renderer, timezone: str, *ledger: object) -> exp.Select:
    """Per cohort starting in ``[?, ?)`` (the calendar month of a customer's ``new``
    movement) and calendar month: its customers and starting MRR (the new movements), and
    the month's change in the cohort's MRR, in its MRR capped per customer at their
    starting MRR (gross retention), and in its paying customers. Cumulated month by
    month, these give the retention tables."""
    shape: LedgerShape = ledger  # type: ignore[assignment]
    month = renderer.bucket(_x("moment"), Bucket.MONTH, timezone)
    cohorts = (
        sqlglot.select(
            _x("customer AS cohort_customer"),
            exp.alias_(month.start.copy(), "cohort_start"),
            _x("delta AS cohort_mrr"),
        )
        .from_("movements")
        .where(_x("kind = 'new'"))
    )
    customer_change = _x(
        "CASE WHEN kind IN ('new', 'reactivation') THEN 1 WHEN kind = 'churn' THEN -1 ELSE 0 END"
    )
    monthly = (
        sqlglot.select(
            "customer",
            exp.alias_(month.key, "month_key"),
            exp.alias_(month.start, "month_start"),
            _x("SUM(delta) AS net_change"),
            exp.alias_(exp.Sum(this=customer_change), "customer_change"),
            _x("SUM(CASE WHEN kind = 'new' THEN delta ELSE 0 END) AS starting_mrr"),
            _x("SUM(CASE WHEN kind = 'new' THEN 1 ELSE 0 END) AS customers"),
        )
        .from_("movements")
        .group_by("customer", _x("month_key"), _x("month_start"))
    )
    running = (
        sqlglot.select(
            "*",
            _x(
                "SUM(net_change) OVER (PARTITION BY customer ORDER BY month_key "
                "ROWS UNBOUNDED PRECEDING) AS mrr_after"
            ),
        )
        .from_("monthly")
        .join("cohorts", on=_x("cohort_customer = customer"))
    )
    # The capped MRR's change in the month: capped after it less capped before it (the
    # running MRR before the month is after it less its change; 0 before the first, and
    # LEAST(0, starting MRR) is 0). One pass per customer, no second one for a LAG.
    capped = sqlglot.select(
        "*",
        _x(
            "LEAST(mrr_after, cohort_mrr) - LEAST(mrr_after - net_change, cohort_mrr) "
            "AS capped_change"
        ),
    ).from_("cohort_running")
    final = (
        sqlglot.select(
            "cohort_start",
            "month_start",
            _x("SUM(net_change) AS net_change"),
            _x("SUM(capped_change) AS capped_change"),
            _x("SUM(customer_change) AS customer_change"),
            _x("SUM(starting_mrr) AS starting_mrr"),
            _x("SUM(customers) AS customers"),
        )
        .from_("capped_changes")
        .where(_in_window("cohort_start"))
        .group_by("cohort_start", "month_start")
    )
    query = with_ledger(renderer, shape, final)
    for name, cte in (
        ("cohorts", cohorts),
        ("monthly", monthly),
        ("cohort_running", running),
        ("capped_changes", capped),
    ):
        query = query.with_(name, as_=cte, copy=False)
    return query
