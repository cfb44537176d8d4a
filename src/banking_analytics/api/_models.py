"""Request and response models: the exact shape of every body, so the OpenAPI document is complete.

The analyses' answers are described by their own result shapes (typed data of
the analytics layer, e.g. :class:`ConnectionPerformance`), used here and by the
routes as they are; the models below cover the rest. A figure resting on too
few events is ``null`` with status ``insufficient_data``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from banking_analytics.access import AuditEntry, Role
from banking_analytics.analytics import ConnectionPerformance, ErrorRates, Period
from banking_analytics.api._event_models import any_event_schema
from banking_analytics.api._types import QueryDateTime
from banking_analytics.metrics import MAX_LIMIT, Bucket

__all__ = [
    "AuditPage",
    "BatchIn",
    "BatchOut",
    "EventResultOut",
    "InstitutionHealthOut",
    "InstitutionHealthPage",
    "IssuedKeyOut",
    "KeyIn",
    "KeyOut",
    "MetricQueryIn",
    "MetricQueryOut",
    "PerformanceDashboard",
    "RecordedOut",
    "SyncFreshnessOut",
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# -- institution health and sync freshness (dictionaries of the analytics layer) -----------


class HealthTransition(_Out):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    at: str
    from_: str = Field(alias="from")
    to: str


class HealthStep(_Out):
    at: str
    seen: str
    state: str


class ProductHealth(_Out):
    institution_id: str
    institution_name: str | None
    aggregator: str
    product: str
    state: str
    last_state_change: str | None
    window_sample_size: int
    window_success_rate: float | None
    history: list[HealthStep] | None = None
    changes: list[HealthTransition] | None = None


class InstitutionRollUp(_Out):
    institution_id: str
    institution_name: str | None
    aggregator: str
    state: str
    worst_product: str


class InstitutionHealthOut(_Out):
    time_period: Period
    thresholds: dict[str, Any]
    products: list[ProductHealth]
    institutions: list[InstitutionRollUp]


class InstitutionHealthPage(InstitutionHealthOut):
    """A page of ``products`` (worst first), from ``offset``; ``institutions`` whole."""

    total_products: int
    next_offset: int | None


class FreshnessGroup(_Out):
    institution_id: str
    institution_name: str | None
    aggregator: str
    feature: str
    NORMAL: int
    DELAYED: int
    STOPPED: int
    refresh_interval: str


class StaleConnection(_Out):
    connection_id: str
    institution_id: str
    institution_name: str | None
    aggregator: str
    feature: str
    state: str
    last_successful_sync: str | None
    freshness_s: float | None
    expected_interval_s: float


class SyncFreshnessOut(_Out):
    time_period: Period
    connections: int
    states: dict[str, int]
    by_institution: list[FreshnessGroup]
    stalest: list[StaleConnection]


# -- generic metric query ----------------------------------------------------------------


class MetricValueOut(_Out):
    value: float | int | str | None
    sample_size: int | None
    status: str


class MetricInfo(_Out):
    name: str
    unit: str
    higher_is_better: bool | None


class MetricRow(_Out):
    bucket: str | None
    dimensions: dict[str, str | None]
    values: dict[str, MetricValueOut]
    previous: dict[str, MetricValueOut] | None = None


class MetricQueryOut(_Out):
    window: Period
    bucket: str | None
    timezone: str
    dimensions: list[str]
    metrics: list[MetricInfo]
    rows: list[MetricRow]


class PerformanceDashboard(_Out):
    connection: ConnectionPerformance
    hourly: MetricQueryOut
    errors: ErrorRates
    institution_health: InstitutionHealthOut
    sync_freshness: SyncFreshnessOut


class MetricQueryIn(_In):
    metrics: list[str] = Field(min_length=1, max_length=50)
    time_period: str = Field(default="24h", max_length=32)
    start: QueryDateTime | None = Field(default=None, description="With end: an explicit window")
    end: QueryDateTime | None = None
    dimensions: list[str] = Field(default_factory=list, max_length=5)
    bucket: str | None = Field(
        default=None,
        max_length=16,
        description=f"One of {', '.join(Bucket)}; none for one row per dimension combination",
    )
    filters: dict[str, str | list[str]] = Field(default_factory=dict, max_length=10)
    timezone: str = Field(default="UTC", max_length=64)
    compare: StrictBool = False
    limit: int | None = Field(
        default=None,
        ge=1,
        le=MAX_LIMIT,
        description=(
            "Only the N dimension-value combinations with the most events, and an "
            '"(other)" row for the rest (metrics that add up: counts, sums, their ratios)'
        ),
    )


# -- events ------------------------------------------------------------------------------


class EventErrorOut(_Out):
    field: str | None
    code: str
    message: str


class EventResultOut(_Out):
    position: int
    status: str
    event_id: str | None
    event_type: str | None
    errors: list[EventErrorOut] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)


class BatchIn(_In):
    events: list[dict[str, Any]] = Field(
        min_length=1,
        json_schema_extra={"items": any_event_schema()},
        description=(
            "Events of any types, each with its `event_type` and the fields of its schema "
            "(docs/events.md). Each is validated on its own: a bad event is rejected and "
            "quarantined without affecting the others."
        ),
    )


class BatchOut(_Out):
    accepted: int
    duplicate: int
    rejected: int
    results: list[EventResultOut]


class RecordedOut(_Out):
    """A single recorded event: its id (the spec's ``metric_id``) and whether it was new."""

    metric_id: str
    event_id: str
    status: str
    flags: list[str]


# -- administration ----------------------------------------------------------------------


class KeyIn(_In):
    name: str = Field(min_length=1, max_length=100)
    role: Role
    expires_at: QueryDateTime | None = Field(default=None, description="In the future; none: never")


class KeyOut(_Out):
    key_id: str
    name: str
    role: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_by: str | None


class IssuedKeyOut(KeyOut):
    secret: str = Field(description="The API key itself. Shown once; store it now.")


class AuditPage(_Out):
    entries: list[AuditEntry]
    next_before_seq: int | None = Field(description="Pass as before_seq for the next page")
