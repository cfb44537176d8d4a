"""MRR and its movements, per customer and per period, from the subscription ledger.

``MRR(t)`` is the sum of every customer's MRR after all changes before ``t``.
A period ``[s, e)`` reports ``mrr_start = MRR(s)``, the movements in it by kind
(``contraction`` and ``churn`` negative) and ``mrr_end = MRR(e)``; by
construction ``mrr_start + new + expansion + contraction + churn +
reactivation = mrr_end`` in every period (the ledger's identity).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from banking_analytics.analytics._shape import Period, Shape
from banking_analytics.analytics.revenue._ledger import (
    RATES_TABLE,
    SNAPSHOTS_TABLE,
    LedgerShape,
    combined_query,
    currencies_query,
    missing_rates_query,
    movements_query,
    series_query,
)
from banking_analytics.analytics.revenue._policy import RevenuePolicy, minor_unit_exponent
from banking_analytics.metrics import (
    Bucket,
    DataVersions,
    MetricService,
    QueryError,
    Statement,
    TimeWindow,
    bucket_starts,
    to_records,
)
from banking_analytics.metrics._calendar import bucket_end
from banking_analytics.metrics._statement import Builder

__all__ = [
    "LedgerRequest",
    "Movement",
    "MrrPoint",
    "MrrSeries",
    "RevenueLedger",
    "SeriesRequest",
    "missing_rate_message",
]

MOVEMENT_KINDS = ("new", "expansion", "contraction", "churn", "reactivation")


@dataclass(slots=True, eq=False)
class Movement(Shape):
    """One change of a customer's MRR (minor units of the reporting currency)."""

    customer: str
    at: datetime
    #: new, expansion, contraction, churn or reactivation.
    kind: str
    #: mrr_after - mrr_before: negative for contraction and churn.
    amount: int
    mrr_before: int
    mrr_after: int


@dataclass(slots=True, eq=False)
class MrrPoint(Shape):
    """One period ``[start, end)``: MRR at its start and end, and the movements between.

    ``mrr_start + new + expansion + contraction + churn + reactivation = mrr_end``.
    """

    start: datetime
    end: datetime
    mrr_start: int
    new: int
    expansion: int
    #: Negative (or 0).
    contraction: int
    #: Negative (or 0).
    churn: int
    reactivation: int
    #: new + expansion + contraction + churn + reactivation.
    net_new: int
    mrr_end: int
    customers_start: int
    customers_end: int
    new_customers: int
    reactivated_customers: int
    #: Customers with a churn movement in the period who were paying at its start (all
    #: who churned in it with the ``count_joined_and_churned`` policy).
    churned_customers: int
    #: Of ``mrr_start``: what the customers paying at the start lost by the end, net of
    #: their gains (NRR = 1 - this / mrr_start).
    cohort_net_loss: int
    #: What those customers lost, counting only customers who ended lower (GRR).
    cohort_gross_loss: int


@dataclass(slots=True, eq=False)
class MrrSeries(Shape):
    """MRR per period, with movements; money in minor units of ``currency``."""

    period: Period
    bucket: str
    timezone: str
    currency: str
    points: list[MrrPoint]


class RevenueLedger:
    """Runs the ledger's statements on the metric service (cached per data version)."""

    def __init__(self, metrics: MetricService) -> None:
        self._metrics = metrics

    def _shape(self, policy: RevenuePolicy, versions: DataVersions | None) -> LedgerShape:
        currencies = to_records(
            self._metrics.run_statement(
                Statement(currencies_query, (), (SNAPSHOTS_TABLE,)), versions
            )
        )
        converts = any(row["currency"] != policy.reporting_currency for row in currencies)
        if converts:
            missing = to_records(
                self._metrics.run_statement(
                    Statement(
                        missing_rates_query,
                        (policy.reporting_currency, policy.reporting_currency),
                        (SNAPSHOTS_TABLE, RATES_TABLE),
                    ),
                    versions,
                )
            )
            if missing:
                raise QueryError(missing_rate_message(missing, policy.reporting_currency))
        return (
            policy.churn_recognition.value,
            policy.past_due_grace_days,
            minor_unit_exponent(policy.reporting_currency),
            converts,
            policy.free_customers_are_customers,
        )

    def run(
        self,
        requests: Sequence[LedgerRequest],
        policy: RevenuePolicy,
        versions: DataVersions | None = None,
    ) -> list[pa.Table]:
        """The answers of statements over the ledger, from one statement that computes the
        ledger once (:func:`combined_query`) when there are several."""
        ledger = self._shape(policy, versions)
        converts = ledger[3]
        rates = (policy.reporting_currency,) * 2 if converts else ()
        depends = [SNAPSHOTS_TABLE, *([RATES_TABLE] if converts else [])]
        for request in requests:
            depends += [t for t in request.also_reads if t not in depends]
        if len(requests) == 1:
            [only] = requests
            statement = Statement(
                only.build, (*rates, *only.params), tuple(depends), (*only.shape, *ledger)
            )
            return [self._metrics.run_statement(statement, versions)]
        parts = tuple((r.build, r.shape) for r in requests)
        params = tuple(p for r in requests for p in r.params)
        table = self._metrics.run_statement(
            Statement(combined_query, (*rates, *params), tuple(depends), (parts, *ledger)),
            versions,
        )
        return [_part(table, number) for number in range(len(requests))]

    def movements(
        self,
        window: TimeWindow,
        policy: RevenuePolicy,
        versions: DataVersions | None = None,
    ) -> list[Movement]:
        """Every movement in the window, by customer and time."""
        [table] = self.run(
            [LedgerRequest(movements_query, (window.start, window.end))], policy, versions
        )
        return [
            Movement(
                customer=row["customer"],
                at=row["moment"],
                kind=row["kind"],
                amount=int(row["delta"]),
                mrr_before=int(row["mrr_before"]),
                mrr_after=int(row["mrr_after"]),
            )
            for row in to_records(table)
        ]

    def series(
        self,
        window: TimeWindow,
        bucket: Bucket,
        timezone: str,
        policy: RevenuePolicy,
        versions: DataVersions | None = None,
    ) -> MrrSeries:
        """MRR and movements per bucket; the buckets are whole, from the one holding the
        window's start to the last starting before its end."""
        request = SeriesRequest.of(window, bucket, timezone)
        [table] = self.run([request.ledger], policy, versions)
        return request.series(table, policy)


@dataclass(frozen=True, slots=True)
class LedgerRequest:
    """A statement over the ledger: ``build(renderer, *shape, *ledger shape)`` with its
    ``params`` (after the ledger's own), reading ``also_reads`` besides the ledger's tables."""

    build: Builder
    params: tuple[object, ...]
    shape: tuple[Hashable, ...] = ()
    also_reads: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SeriesRequest:
    """The MRR series of whole buckets: from the one holding the window's start to the
    last that starts before its end."""

    window: TimeWindow
    bucket: Bucket
    timezone: str
    starts: tuple[datetime, ...]
    last_end: datetime
    #: Where the ledger statement starts cutting buckets: the first start, or an earlier
    #: bucket start when a longer series' statement answers this one too (see
    #: :meth:`within`).
    cut: datetime | None = None

    @classmethod
    def of(cls, window: TimeWindow, bucket: Bucket, timezone: str) -> SeriesRequest:
        starts = bucket_starts(window, bucket, timezone)
        if not starts:
            raise QueryError("the window holds no whole bucket")
        return cls(
            window, bucket, timezone, tuple(starts), bucket_end(starts[-1], bucket, timezone)
        )

    def within(self, longer: SeriesRequest) -> SeriesRequest:
        """This series read from the statement of ``longer``, a series of the same buckets
        ending with it and starting no later: one pass over the ledger answers both (the
        buckets before this one's first are part of its opening balance)."""
        same = (longer.bucket, longer.timezone, longer.last_end)
        if same != (self.bucket, self.timezone, self.last_end) or longer.starts[0] > self.starts[0]:
            raise ValueError(f"{longer} does not hold {self}")
        return replace(self, cut=longer.starts[0])

    @property
    def ledger(self) -> LedgerRequest:
        first = self.cut or self.starts[0]
        return LedgerRequest(
            series_query, (*(first,) * 4, self.last_end), (self.bucket.value, self.timezone)
        )

    def series(self, table: pa.Table, policy: RevenuePolicy) -> MrrSeries:
        return _series(
            table,
            self.window,
            self.bucket,
            self.timezone,
            policy,
            list(self.starts),
            self.last_end,
        )


def _part(table: pa.Table, number: int) -> pa.Table:
    """One part's rows of a combined answer, under its own column names."""
    prefix = f"p{number}_"
    rows = table.filter(pc.is_valid(table[f"{prefix}part"]))
    names = [n for n in table.column_names if n.startswith(prefix) and n != f"{prefix}part"]
    return rows.select(names).rename_columns([n.removeprefix(prefix) for n in names])


def _series(
    table: pa.Table,
    window: TimeWindow,
    bucket: Bucket,
    timezone: str,
    policy: RevenuePolicy,
    starts: list[datetime],
    last_end: datetime,
) -> MrrSeries:
    rows = {row["bucket_start"]: row for row in to_records(table)}
    # Before the first bucket (the statement's opening row, and its buckets before this
    # series' first when it answers a longer one too), MRR is the sum of every movement.
    opening = [row for key, row in rows.items() if key is None or key < starts[0]]
    mrr = sum(int(row.get(k, 0) or 0) for row in opening for k in MOVEMENT_KINDS)
    customers = sum(int(row.get("customers_change", 0) or 0) for row in opening)
    churned_key = (
        "churned_customers_all" if policy.count_joined_and_churned else "churned_customers"
    )
    points: list[MrrPoint] = []
    for i, start in enumerate(starts):
        row = rows.get(start, {})
        moved = {k: int(row.get(k, 0) or 0) for k in MOVEMENT_KINDS}
        net_new = sum(moved.values())
        change = int(row.get("customers_change", 0) or 0)
        points.append(
            MrrPoint(
                start=start,
                end=starts[i + 1] if i + 1 < len(starts) else last_end,
                mrr_start=mrr,
                **moved,
                net_new=net_new,
                mrr_end=mrr + net_new,
                customers_start=customers,
                customers_end=customers + change,
                new_customers=int(row.get("new_customers", 0) or 0),
                reactivated_customers=int(row.get("reactivated_customers", 0) or 0),
                churned_customers=int(row.get(churned_key, 0) or 0),
                cohort_net_loss=int(row.get("cohort_net_loss", 0) or 0),
                cohort_gross_loss=int(row.get("cohort_gross_loss", 0) or 0),
            )
        )
        mrr += net_new
        customers += change
    return MrrSeries(
        period=Period.of(window),
        bucket=bucket.value,
        timezone=timezone,
        currency=policy.reporting_currency,
        points=points,
    )


def missing_rate_message(missing: list[dict[str, object]], reporting_currency: str) -> str:
    """Which currencies lack a rate to the reporting currency, and from which date."""
    parts = [f"{row['currency']} from {row['first_unrated']:%Y-%m-%d}" for row in missing]
    return (
        f"no exchange rate to {reporting_currency} for {', '.join(parts)}: load rates "
        "(banking-analytics rates load FILE.csv) covering those dates"
    )
