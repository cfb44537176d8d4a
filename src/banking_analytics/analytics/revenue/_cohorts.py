"""Revenue cohorts: customers grouped by the calendar month they first paid.

For a cohort with ``n`` customers starting at MRR ``S`` (the sum of their new
movements), the cell ``k`` months on (the end of the k-th month after the
cohort's month; 0 is the cohort's own month) is:

* customer retention: cohort customers paying at its end ÷ ``n``;
* net MRR retention: the cohort's MRR at its end ÷ ``S`` (expansion,
  contraction, churn and reactivation all count; can exceed 1);
* gross MRR retention: ``Σ min(MRR_c, S_c) ÷ S`` at its end, each customer's MRR
  capped at their starting MRR ``S_c``: expansion and reactivation above the start
  left out, so it never exceeds 1 (ChartMogul's gross MRR retention).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from banking_analytics.analytics._shape import Period, Shape
from banking_analytics.analytics.revenue._mrr import LedgerRequest
from banking_analytics.analytics.revenue._policy import RevenuePolicy
from banking_analytics.analytics.revenue._queries import cohort_query
from banking_analytics.metrics import (
    Bucket,
    QueryError,
    TimeWindow,
    bucket_starts,
    to_records,
)

__all__ = ["Cohort", "CohortTable", "cohort_request", "cohort_table"]


@dataclass(slots=True, eq=False)
class Cohort(Shape):
    """One cohort's row: its size, starting MRR and retention ``k`` months on."""

    start: datetime
    customers: int
    starting_mrr: int
    #: Paying customers at the end of each month from the cohort's own (index 0).
    customers_retained: list[int]
    customer_retention: list[float | None]
    #: The cohort's MRR at the end of each month.
    mrr: list[int]
    net_mrr_retention: list[float | None]
    gross_mrr_retention: list[float | None]


@dataclass(slots=True, eq=False)
class CohortTable(Shape):
    """Cohorts by first-paid month in the period, each followed up to the period's end."""

    period: Period
    timezone: str
    currency: str
    cohorts: list[Cohort]


def cohort_request(window: TimeWindow, timezone: str) -> LedgerRequest:
    """The ledger statement behind the cohorts of the months starting in the window."""
    months = bucket_starts(window, Bucket.MONTH, timezone)
    if not months:
        raise QueryError("the period holds no whole month")
    return LedgerRequest(cohort_query, (months[0], window.end), (timezone,))


def cohort_table(
    table: pa.Table, window: TimeWindow, timezone: str, policy: RevenuePolicy
) -> CohortTable:
    """The cohort tables from the answer to :func:`cohort_request`."""
    months = bucket_starts(window, Bucket.MONTH, timezone)
    cells: dict[datetime, dict[datetime, dict[str, int]]] = {}
    for row in to_records(table):
        cells.setdefault(row["cohort_start"], {})[row["month_start"]] = {
            k: int(row[k])
            for k in ("net_change", "capped_change", "customer_change", "starting_mrr", "customers")
        }
    cohorts = []
    for i, start in enumerate(months):
        found = cells.get(start)
        if not found:
            continue
        n = sum(c["customers"] for c in found.values())
        starting = sum(c["starting_mrr"] for c in found.values())
        mrr = customers = kept = 0
        row_customers: list[int] = []
        row_mrr: list[int] = []
        gross: list[float | None] = []
        for month in months[i:]:
            cell = found.get(month, {})
            mrr += cell.get("net_change", 0)
            customers += cell.get("customer_change", 0)
            kept += cell.get("capped_change", 0)
            row_customers.append(customers)
            row_mrr.append(mrr)
            gross.append(kept / starting if starting else None)
        cohorts.append(
            Cohort(
                start=start,
                customers=n,
                starting_mrr=starting,
                customers_retained=row_customers,
                customer_retention=[c / n if n else None for c in row_customers],
                mrr=row_mrr,
                net_mrr_retention=[m / starting if starting else None for m in row_mrr],
                gross_mrr_retention=gross,
            )
        )
    return CohortTable(
        period=Period.of(window),
        timezone=timezone,
        currency=policy.reporting_currency,
        cohorts=cohorts,
    )
