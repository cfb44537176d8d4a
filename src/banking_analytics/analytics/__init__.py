"""Analyses built on the metric layer: bank-integration performance and health."""

from banking_analytics.analytics._activation import (
    ACTIVATION_WITHIN,
    LinkActivation,
    LinkActivations,
)
from banking_analytics.analytics._freshness import (
    DEFAULT_EXPECTED_INTERVAL,
    RefreshState,
    SyncFreshness,
    refresh_state,
    refresh_states,
)
from banking_analytics.analytics._health import (
    PRODUCTS,
    STEP,
    WARM_UP_STEPS,
    HealthState,
    HealthThresholds,
    InstitutionHealth,
    Product,
    judge_steps,
    wilson_upper,
)
from banking_analytics.analytics._performance import PerformanceAnalytics, series_bucket

__all__ = [
    "ACTIVATION_WITHIN",
    "DEFAULT_EXPECTED_INTERVAL",
    "PRODUCTS",
    "STEP",
    "WARM_UP_STEPS",
    "HealthState",
    "HealthThresholds",
    "InstitutionHealth",
    "LinkActivation",
    "LinkActivations",
    "PerformanceAnalytics",
    "Product",
    "RefreshState",
    "SyncFreshness",
    "judge_steps",
    "refresh_state",
    "refresh_states",
    "series_bucket",
    "wilson_upper",
]
