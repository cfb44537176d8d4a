"""banking-analytics: bank-integration health, feature usage and subscription revenue.

The public API is what ``__all__`` lists; everything else is private.
"""

from banking_analytics._facade import (
    BankingPerformanceAnalytics,
    BatchTooLargeError,
    EventRejectedError,
    FileReport,
    PendingBatch,
    PendingEvent,
    StoreInfo,
    TableInfo,
)
from banking_analytics.analytics import HealthState, HealthThresholds, RefreshState
from banking_analytics.ingest import EventError, EventResult, EventStatus, IngestLimits
from banking_analytics.metrics import Bucket, QueryError, QueryResult, TimeWindow
from banking_analytics.store import StoreURLError
from banking_analytics.vocabulary import (
    Aggregator,
    AuthMethod,
    BankingFeature,
    BillingInterval,
    ConnectionFlow,
    DeviceType,
    ErrorCategory,
    EventType,
    Outcome,
    PerformanceMetric,
    Platform,
    ResponsibleParty,
    RevenueMetric,
    SubscriptionEventKind,
    SubscriptionStatus,
    SyncOutcome,
    SyncTrigger,
)

__version__ = "0.1.0"

__all__ = [
    "Aggregator",
    "AuthMethod",
    "BankingFeature",
    "BankingPerformanceAnalytics",
    "BatchTooLargeError",
    "BillingInterval",
    "Bucket",
    "ConnectionFlow",
    "DeviceType",
    "ErrorCategory",
    "EventError",
    "EventRejectedError",
    "EventResult",
    "EventStatus",
    "EventType",
    "FileReport",
    "HealthState",
    "HealthThresholds",
    "IngestLimits",
    "Outcome",
    "PendingBatch",
    "PendingEvent",
    "PerformanceMetric",
    "Platform",
    "QueryError",
    "QueryResult",
    "RefreshState",
    "ResponsibleParty",
    "RevenueMetric",
    "StoreInfo",
    "StoreURLError",
    "SubscriptionEventKind",
    "SubscriptionStatus",
    "SyncOutcome",
    "SyncTrigger",
    "TableInfo",
    "TimeWindow",
    "__version__",
]
