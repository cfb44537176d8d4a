"""Revenue impact of the banking features: the analysis, recommendations and ROI.

Revenue is sensitive: admins and analysts only (ingest keys and end users get 403),
and every answer is written to the audit log, as admin reads are.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Self

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from banking_analytics.analytics.revenue import (
    DEFAULT_DISCOUNT_RATE,
    DEFAULT_HORIZON_MONTHS,
    Recommendations,
    RevenueImpact,
    RoiProjection,
)
from banking_analytics.api._audit import audit_revenue_read
from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api._problems import ProblemError
from banking_analytics.api._types import QueryDateTime
from banking_analytics.api.deps import Admitted, Analytics, ReadAnalytics
from banking_analytics.api.routes._params import window
from banking_analytics.metrics import QueryError, TimeWindow
from banking_analytics.vocabulary import BankingFeature

__all__ = ["RoiIn", "router"]

router = APIRouter(prefix="/revenue", tags=["revenue"], route_class=PolicedRoute)

Period90d = Annotated[str | TimeWindow, Depends(window("90d"))]


def _window(period: str | TimeWindow) -> str:
    return (
        period
        if isinstance(period, str)
        else f"{period.start.isoformat()}/{period.end.isoformat()}"
    )


class RoiIn(BaseModel):
    """A feature improvement to appraise: give ``adoption_points`` or ``success_rate_to``."""

    model_config = ConfigDict(extra="forbid")

    feature: BankingFeature
    cost: int = Field(gt=0, le=10**15, description="What the improvement costs, minor units")
    adoption_points: float | None = Field(
        None, gt=0, le=100, description="Points of active users' adoption gained"
    )
    success_rate_to: float | None = Field(
        None, gt=0, le=1, description="The feature's connection success rate raised to this"
    )
    horizon_months: int = Field(DEFAULT_HORIZON_MONTHS, ge=1, le=60)
    discount_rate: Decimal = Field(
        DEFAULT_DISCOUNT_RATE, ge=0, le=1, description="Annual rate the cash is discounted at"
    )
    time_period: str = Field("90d", max_length=32, description="The history the model reads")
    start: QueryDateTime | None = Field(None, description="With end: an explicit history window")
    end: QueryDateTime | None = None

    @model_validator(mode="after")
    def one_improvement(self) -> Self:
        if (self.adoption_points is None) == (self.success_rate_to is None):
            raise ValueError("give exactly one of adoption_points and success_rate_to")
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither")
        return self

    def history(self) -> str | TimeWindow:
        """The window the model reads: ``start``-``end``, else ``time_period`` ending now."""
        if self.start is None or self.end is None:
            return self.time_period
        try:
            return TimeWindow(self.start, self.end)
        except QueryError as exc:
            raise ProblemError(422, f"start/end (body): {exc}") from None


@router.get("/impact", response_model=RevenueImpact)
def revenue_impact(
    request: Request,
    analytics: Analytics,
    principal: ReadAnalytics,
    _admitted: Admitted,
    period: Period90d,
    feature: BankingFeature | None = None,
) -> RevenueImpact:
    """Revenue, adoption, feature revenue (host-attributed, first- and last-touch),
    conversion sources, and each feature's causal effect on upgrading."""
    impact = analytics.analyze_revenue_impact(period, feature)
    audit_revenue_read(
        request,
        principal,
        "read_revenue_impact",
        window=_window(period),
        feature=feature.value if feature else None,
    )
    return impact


@router.get("/recommendations", response_model=Recommendations)
def recommendations(
    request: Request,
    analytics: Analytics,
    principal: ReadAnalytics,
    _admitted: Admitted,
    period: Period90d,
) -> Recommendations:
    """Ranked feature actions with their expected MRR gain and the evidence behind them."""
    answer = analytics.get_revenue_optimization_recommendations(period)
    audit_revenue_read(request, principal, "read_revenue_recommendations", window=_window(period))
    return answer


@router.post("/roi", response_model=RoiProjection)
def roi(
    body: RoiIn,
    request: Request,
    analytics: Analytics,
    principal: ReadAnalytics,
    _admitted: Admitted,
) -> RoiProjection:
    """Projected MRR uplift, payback, ROI and NPV of improving a feature."""
    projection = analytics.project_feature_roi(
        body.feature,
        cost=body.cost,
        adoption_points=body.adoption_points,
        success_rate_to=body.success_rate_to,
        horizon_months=body.horizon_months,
        discount_rate=body.discount_rate,
        time_period=body.history(),
    )
    audit_revenue_read(
        request, principal, "read_revenue_roi", feature=body.feature.value, cost=body.cost
    )
    return projection
