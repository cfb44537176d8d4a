"""The metric catalogue, and any query over it (metrics x dimensions x window x bucket)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from banking_analytics._facade import BankingPerformanceAnalytics
from banking_analytics.api._audit import audit_per_user_answer, audit_revenue_read
from banking_analytics.api._auth import PolicedRoute, Principal
from banking_analytics.api._models import MetricQueryIn, MetricQueryOut
from banking_analytics.api._problems import ProblemError
from banking_analytics.api.deps import Admitted, Analytics, QueryBudgetOf, ReadAnalytics
from banking_analytics.metrics import CATALOG, LEDGER, QueryBudget, TimeWindow

__all__ = ["answer_metric_query", "router"]

router = APIRouter(prefix="/metrics", tags=["metrics"], route_class=PolicedRoute)


class MetricDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    #: The source it is computed over (a derived metric: its inputs' sources, joined by +).
    source: str
    description: str
    unit: str
    higher_is_better: bool | None
    min_sample: int
    serves: str | None
    dimensions: list[str]


@router.get("", response_model=list[MetricDefinition])
def metric_catalogue(_: ReadAnalytics) -> list[dict[str, Any]]:
    """Every metric that can be queried, with its unit, direction and dimensions."""
    return [
        {
            "name": m.name,
            "source": m.source_name,
            "description": m.description,
            "unit": m.unit.value,
            "higher_is_better": m.higher_is_better,
            "min_sample": m.min_sample,
            "serves": m.serves.value if m.serves else None,
            "dimensions": list(m.dimensions),
        }
        for m in CATALOG.values()
    ]


@router.post("/query", response_model=MetricQueryOut)
def query_metrics(
    body: MetricQueryIn,
    request: Request,
    analytics: Analytics,
    principal: ReadAnalytics,
    budget: QueryBudgetOf,
    _: Admitted,
) -> dict[str, Any]:
    """Any catalogue metrics, cut by dimensions and optionally bucketed in time.

    The window is ``time_period`` ending now, or ``start`` and ``end`` together. An
    answer cut by user or connection, or filtered to some, reads their data, and is
    audited as such (who, which metrics, how many users and connections); so is every
    answer with revenue metrics (MRR, churn, LTV: computed by the subscription ledger).
    A query whose answer could exceed the server's budget of cells answers 422 before
    it runs; ``limit`` asks for the top N dimension-value combinations and an
    ``(other)`` row instead of all of them.
    """
    return answer_metric_query(body, request, analytics, principal, budget)


def answer_metric_query(
    body: MetricQueryIn,
    request: Request,
    analytics: BankingPerformanceAnalytics,
    principal: Principal,
    budget: QueryBudget,
) -> dict[str, Any]:
    """The answer to ``body`` (of POST /metrics/query, and of the event stream), audited."""
    if (body.start is None) != (body.end is None):
        raise ProblemError(
            422, "start and end (body): give both for an explicit window, or neither"
        )
    period: str | TimeWindow = body.time_period
    if body.start is not None and body.end is not None:
        period = TimeWindow(body.start, body.end)
    result = analytics.query_metrics(
        body.metrics,
        period,
        dimensions=body.dimensions,
        bucket=body.bucket,
        filters=body.filters,
        timezone=body.timezone,
        compare=body.compare,
        limit=body.limit,
        budget=budget,
    )
    audit_per_user_answer(request, principal, "query_user_metrics", result)
    revenue = [m.name for m in result.metrics if m.source_name == LEDGER]
    if revenue:
        audit_revenue_read(request, principal, "read_revenue_metrics", metrics=revenue)
    return result.as_dict()
