"""banking-analytics: bank-integration health, feature usage and subscription revenue.

The public API is what ``__all__`` lists; everything else is private.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from banking_analytics._lazy import lazy_names
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

if TYPE_CHECKING:
    from banking_analytics._facade import BankingPerformanceAnalytics, StoreInfo, TableInfo
    from banking_analytics._recording import (
        BatchTooLargeError,
        EventRejectedError,
        FileReport,
        PendingBatch,
        PendingEvent,
    )
    from banking_analytics.analytics import HealthState, HealthThresholds, RefreshState
    from banking_analytics.ingest import EventError, EventResult, EventStatus, IngestLimits
    from banking_analytics.metrics import Bucket, QueryError, QueryResult, TimeWindow
    from banking_analytics.store import StoreURLError

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

#: Where each public name beyond the vocabulary lives. They are imported on first use:
#: a process that needs only part of the package (a worker decoding a file, the CLI's
#: ``--help``) does not load the query compiler, the analyses and what they import.
_LAZY = {
    "BankingPerformanceAnalytics": "banking_analytics._facade",
    "BatchTooLargeError": "banking_analytics._recording",
    "EventRejectedError": "banking_analytics._recording",
    "FileReport": "banking_analytics._recording",
    "PendingBatch": "banking_analytics._recording",
    "PendingEvent": "banking_analytics._recording",
    "StoreInfo": "banking_analytics._facade",
    "TableInfo": "banking_analytics._facade",
    "HealthState": "banking_analytics.analytics",
    "HealthThresholds": "banking_analytics.analytics",
    "RefreshState": "banking_analytics.analytics",
    "EventError": "banking_analytics.ingest",
    "EventResult": "banking_analytics.ingest",
    "EventStatus": "banking_analytics.ingest",
    "IngestLimits": "banking_analytics.ingest",
    "Bucket": "banking_analytics.metrics",
    "QueryError": "banking_analytics.metrics",
    "QueryResult": "banking_analytics.metrics",
    "TimeWindow": "banking_analytics.metrics",
    "StoreURLError": "banking_analytics.store",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)
