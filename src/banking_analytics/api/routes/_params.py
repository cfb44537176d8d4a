"""Query parameters shared by several routes."""

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Header, Query

from banking_analytics.analytics.revenue import ChurnRecognition, RevenuePolicy
from banking_analytics.api._problems import ProblemError
from banking_analytics.api._types import QueryBool, QueryDateTime
from banking_analytics.api.deps import Analytics, Settings
from banking_analytics.metrics import QueryError, TimeWindow

__all__ = [
    "IdempotencyKey",
    "Lookback",
    "LookbackEnd",
    "PageLimit",
    "PageOffset",
    "Period7d",
    "Period24h",
    "Period30d",
    "Period90d",
    "Period365d",
    "RevenuePolicyOf",
    "Timezone",
    "offset_query",
    "page_limit",
    "window",
]

Lookback = Annotated[
    str, Query(max_length=32, description="How far back to look, e.g. 7d", examples=["7d"])
]
Timezone = Annotated[
    str, Query(max_length=64, description="IANA timezone for day boundaries", examples=["UTC"])
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retry-safe key: the same key and request return the first response again",
    ),
]

#: Beyond any list the store holds, and within the engines' 64-bit OFFSET (a larger number
#: would be a database error, a 500, rather than an empty page).
MAX_OFFSET = 10**9


def offset_query(description: str = "How many to skip first: the items of the pages before") -> Any:
    """A route's ``offset``: from 0 to :data:`MAX_OFFSET`, described in the route's words."""
    return Query(ge=0, le=MAX_OFFSET, description=description)


PageOffset = Annotated[int, offset_query()]


def page_limit(default: int, description: str = "At most this many") -> Callable[..., int]:
    """A dependency reading ``limit``: from 1 to the server's ``max_page_size``
    (``BA_MAX_PAGE_SIZE``, a setting, hence checked here rather than in the schema), a 422
    problem above it. Unsaid, it is the route's ``default``, or the page size if smaller: a
    server with small pages still answers a request that names no limit."""

    def read_page_limit(
        settings: Settings,
        limit: Annotated[
            int | None,
            Query(ge=1, description=f"{description} (default {default}, or the page size)"),
        ] = None,
    ) -> int:
        if limit is None:
            return min(default, settings.max_page_size)
        if limit > settings.max_page_size:
            raise ProblemError(422, f"limit (query): at most {settings.max_page_size}")
        return limit

    return read_page_limit


#: The usual page: 100 unless ``limit`` says otherwise.
PageLimit = Annotated[int, Depends(page_limit(100))]


def window(default: str) -> Callable[..., str | TimeWindow]:
    """A dependency reading ``time_period`` (ending now), or ``start`` and ``end`` together."""

    def read_window(
        time_period: Annotated[
            str,
            Query(
                max_length=32,
                description="1h, 6h, 24h, 7d, 30d, 90d or any <n>h / <n>d, ending now",
                examples=[default],
            ),
        ] = default,
        start: Annotated[
            QueryDateTime | None,
            Query(description="With end: an explicit window (ISO-8601 with offset)"),
        ] = None,
        end: Annotated[
            QueryDateTime | None, Query(description="End of the explicit window")
        ] = None,
    ) -> str | TimeWindow:
        if start is None and end is None:
            return time_period
        if start is None or end is None:
            raise ProblemError(422, "start and end (query): give both, or neither")
        try:
            return TimeWindow(start, end)
        except QueryError as exc:
            raise ProblemError(422, f"start/end (query): {exc}") from None

    return read_window


def read_lookback_end(
    end: Annotated[
        QueryDateTime | None,
        Query(description="When the lookback ends (ISO-8601 with offset); default: now"),
    ] = None,
) -> datetime | None:
    """The ``end`` of a lookback: a moment with an offset, between 1970 and 2200."""
    if end is None:
        return None
    if end.tzinfo is None:
        raise ProblemError(422, "end (query): give a UTC offset, e.g. 2026-11-24T12:00:00Z")
    return end


Period24h = Annotated[str | TimeWindow, Depends(window("24h"))]
Period90d = Annotated[str | TimeWindow, Depends(window("90d"))]
Period365d = Annotated[str | TimeWindow, Depends(window("365d"))]
Period7d = Annotated[str | TimeWindow, Depends(window("7d"))]
Period30d = Annotated[str | TimeWindow, Depends(window("30d"))]
LookbackEnd = Annotated[datetime | None, Depends(read_lookback_end)]


def read_revenue_policy(
    analytics: Analytics,
    churn_recognition: Annotated[
        ChurnRecognition,
        Query(
            description="cancellation (default) or period_end: when an ended "
            "subscription leaves MRR"
        ),
    ] = ChurnRecognition.CANCELLATION,
    past_due_grace_days: Annotated[
        int | None,
        Query(ge=0, le=365, description="Days a past-due subscription keeps its MRR"),
    ] = None,
    count_joined_and_churned: Annotated[
        QueryBool,
        Query(description="Count customers who joined and churned in a period as churned"),
    ] = False,
    free_customers_are_customers: Annotated[
        QueryBool,
        Query(description="Count customers whose subscriptions are all $0 as customers"),
    ] = False,
) -> RevenuePolicy:
    """The policies vendors differ on, per request (docs/revenue.md, "Policies")."""
    return RevenuePolicy(
        reporting_currency=analytics.limits.reporting_currency or "USD",
        churn_recognition=churn_recognition,
        past_due_grace_days=past_due_grace_days,
        count_joined_and_churned=count_joined_and_churned,
        free_customers_are_customers=free_customers_are_customers,
    )


RevenuePolicyOf = Annotated[RevenuePolicy, Depends(read_revenue_policy)]
