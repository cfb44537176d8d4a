"""Response models: the exact shape of every answer, so the OpenAPI document is complete.

They mirror the dictionaries the analytics layer returns (see its docstrings
for the formulas); a figure resting on too few events is ``null`` with status
``insufficient_data``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from banking_analytics.access import AuditEntry, Role
from banking_analytics.api._event_models import any_event_schema
from banking_analytics.api._types import QueryDateTime

__all__ = [
    "AuditPage",
    "BatchIn",
    "BatchOut",
    "ConnectionPerformance",
    "ErrorRates",
    "EventResultOut",
    "FeatureUsage",
    "InstitutionHealthOut",
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


class Window(_Out):
    label: str
    start: datetime
    end: datetime


# -- performance -------------------------------------------------------------------------


class SuccessBreakdown(_Out):
    success: float | None
    error_institution: float | None
    error_aggregator: float | None


class ExcludedAttempts(_Out):
    user_errors: int | None
    abandoned: int | None
    pending: int | None
    client_errors: int | None
    unattributed_failures: int | None


class SuccessRate(_Out):
    average: float | None = Field(description="Plaid bank-health success rate")
    status: str
    sample_size: int | None
    breakdown: SuccessBreakdown
    excluded: ExcludedAttempts
    previous_period: float | None
    change: float | None
    definition: str


class LatencyFigures(_Out):
    average_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    sample_size: int | None
    status: str


class Latency(LatencyFigures):
    success_only: LatencyFigures


class LinkConversion(_Out):
    rate: float | None
    status: str
    sessions: int | None
    abandonment_rate: float | None


class ConnectionCut(_Out):
    model_config = ConfigDict(extra="allow")

    success_rate: float | None
    status: str
    attempts: int | None
    sample_size: int | None
    error_institution: float | None
    error_aggregator: float | None
    latency_p95_ms: float | None


class SeriesPoint(_Out):
    start: str | None
    connection_success_rate: float | None
    connection_attempts: int | None
    connection_latency_p95_ms: float | None


class Series(_Out):
    bucket: str
    points: list[SeriesPoint]


class ConnectionPerformance(_Out):
    time_period: Window
    attempts: int | None
    success_rate: SuccessRate
    latency: Latency
    link_conversion: LinkConversion
    by_aggregator: list[ConnectionCut]
    by_institution: list[ConnectionCut]
    by_feature: list[ConnectionCut]
    time_series: Series


class FeatureFigures(_Out):
    usage_count: int | None
    unique_users: int | None
    sessions: int | None
    success_rate: float | None
    success_rate_status: str
    mean_duration_s: float | None
    previous_usage_count: int | None


class FeatureUsage(_Out):
    time_period: Window
    feature_usage: dict[str, FeatureFigures]


class CategoryErrors(_Out):
    count: int
    rate: float | None
    responsible_party: str


class SourceErrors(_Out):
    total: int
    failures: int
    error_rate: float | None
    by_category: dict[str, CategoryErrors]
    uncategorised: int


class ErrorRates(_Out):
    time_period: Window
    connection: SourceErrors
    sync: SourceErrors


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
    aggregator: str
    state: str
    worst_product: str


class InstitutionHealthOut(_Out):
    time_period: Window
    thresholds: dict[str, Any]
    products: list[ProductHealth]
    institutions: list[InstitutionRollUp]


class FreshnessGroup(_Out):
    institution_id: str
    aggregator: str
    feature: str
    NORMAL: int
    DELAYED: int
    STOPPED: int
    refresh_interval: str


class StaleConnection(_Out):
    connection_id: str
    institution_id: str
    aggregator: str
    feature: str
    state: str
    last_successful_sync: str | None
    freshness_s: float | None
    expected_interval_s: float


class SyncFreshnessOut(_Out):
    time_period: Window
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
    window: Window
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
    bucket: str | None = Field(default=None, max_length=16)
    filters: dict[str, str | list[str]] = Field(default_factory=dict, max_length=10)
    timezone: str = Field(default="UTC", max_length=64)
    compare: StrictBool = False


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
