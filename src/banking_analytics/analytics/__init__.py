"""Analyses built on the metric layer: bank-integration performance and health."""

from banking_analytics.analytics._freshness import (
    DEFAULT_EXPECTED_INTERVAL,
    RefreshState,
    SyncFreshness,
    refresh_state,
)
from banking_analytics.analytics._health import (
    PRODUCTS,
    HealthState,
    HealthThresholds,
    InstitutionHealth,
    Product,
    wilson_upper,
)
from banking_analytics.analytics._performance import PerformanceAnalytics, series_bucket

__all__ = [
    "DEFAULT_EXPECTED_INTERVAL",
    "PRODUCTS",
    "HealthState",
    "HealthThresholds",
    "InstitutionHealth",
    "PerformanceAnalytics",
    "Product",
    "RefreshState",
    "SyncFreshness",
    "refresh_state",
    "series_bucket",
    "wilson_upper",
]
