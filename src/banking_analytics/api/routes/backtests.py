"""Backtests: when a rule, as written and not yet saved, would have fired over a past range."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api._problems import ProblemError
from banking_analytics.api._types import QueryDateTime
from banking_analytics.api.deps import Analytics, ReadAnalytics
from banking_analytics.api.routes._versioned import checked_definition
from banking_analytics.monitor import BacktestError, BacktestView, Rule, parse_duration

__all__ = ["router"]

router = APIRouter(prefix="/backtests", tags=["monitoring"], route_class=PolicedRoute)


class BacktestIn(BaseModel):
    """A rule as written (its name may be left out) and the range to replay it over."""

    model_config = ConfigDict(extra="forbid")

    rule: dict[str, Any]
    #: The first moment of the range (ISO-8601; UTC without an offset).
    since: QueryDateTime
    #: The last moment of the range.
    until: QueryDateTime
    #: Evaluate every ``step`` (at least the rule's interval) instead of every interval.
    step: str | None = Field(default=None, examples=["15m"])


_EXAMPLE = {
    "rule": {
        "metric": "sync_success_rate",
        "window": "1h",
        "by": ["institution"],
        "condition": "anomaly",
        "interval": "1h",
        "anomaly": {"direction": "down", "sensitivity": 3.5},
    },
    "since": "2026-11-12T00:00:00Z",
    "until": "2026-11-20T00:00:00Z",
}


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@router.post("", response_model=BacktestView)
def run_backtest(
    analytics: Analytics,
    _: ReadAnalytics,
    body: Annotated[BacktestIn, Body(examples=[_EXAMPLE])],
) -> BacktestView:
    """Replay a rule over ``[since, until]`` at its interval (or ``step``), through the
    same evaluation and state machine as the live evaluator, and answer each instance's
    firing episodes (start, end, peak, severity). Nothing is saved. At most
    2,000 evaluations and 1,000 instances."""
    rule = checked_definition(Rule, {"name": "backtest", **body.rule}, "rule.")
    step = None
    if body.step is not None:
        try:
            step = parse_duration(body.step)
        except ValueError as exc:
            raise ProblemError(422, f"step (body): {exc}") from None
    try:
        return analytics.monitor.backtest(rule, _utc(body.since), _utc(body.until), step)
    except BacktestError as exc:
        raise ProblemError(422, f"{exc}") from None
