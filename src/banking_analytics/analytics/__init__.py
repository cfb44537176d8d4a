"""Analyses built on the metric layer, one domain namespace at a time.

Names load on first use: importing one (``PerformanceNamespace``) imports its
domain's modules and not the others', so the facade's namespaces load only
what is used.
"""

from typing import TYPE_CHECKING

from banking_analytics._lazy import lazy_names

if TYPE_CHECKING:
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
    from banking_analytics.analytics._institutions import (
        CatalogueEntry,
        InstitutionCatalogue,
        display_name,
    )
    from banking_analytics.analytics._performance import (
        AggregatorCut,
        CategoryErrors,
        ConnectionCut,
        ConnectionPerformance,
        ErrorRates,
        ExcludedAttempts,
        FeatureCut,
        FeatureFigures,
        FeatureUsage,
        InstitutionCut,
        Latency,
        LatencyFigures,
        LinkConversion,
        PerformanceAnalytics,
        Series,
        SeriesPoint,
        SourceErrors,
        SuccessBreakdown,
        SuccessRate,
        series_bucket,
    )
    from banking_analytics.analytics._performance_namespace import PerformanceNamespace
    from banking_analytics.analytics._shape import Period, Shape

_MODULES = {
    "banking_analytics.analytics._activation": (
        "ACTIVATION_WITHIN",
        "LinkActivation",
        "LinkActivations",
    ),
    "banking_analytics.analytics._freshness": (
        "DEFAULT_EXPECTED_INTERVAL",
        "RefreshState",
        "SyncFreshness",
        "refresh_state",
        "refresh_states",
    ),
    "banking_analytics.analytics._health": (
        "PRODUCTS",
        "STEP",
        "WARM_UP_STEPS",
        "HealthState",
        "HealthThresholds",
        "InstitutionHealth",
        "Product",
        "display_name",
        "judge_steps",
        "wilson_upper",
    ),
    "banking_analytics.analytics._institutions": (
        "CatalogueEntry",
        "InstitutionCatalogue",
        "display_name",
    ),
    "banking_analytics.analytics._performance": (
        "AggregatorCut",
        "CategoryErrors",
        "ConnectionCut",
        "ConnectionPerformance",
        "ErrorRates",
        "ExcludedAttempts",
        "FeatureCut",
        "FeatureFigures",
        "FeatureUsage",
        "InstitutionCut",
        "Latency",
        "LatencyFigures",
        "LinkConversion",
        "PerformanceAnalytics",
        "Series",
        "SeriesPoint",
        "SourceErrors",
        "SuccessBreakdown",
        "SuccessRate",
        "series_bucket",
    ),
    "banking_analytics.analytics._performance_namespace": ("PerformanceNamespace",),
    "banking_analytics.analytics._shape": ("Period", "Shape"),
}
_HOMES = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "ACTIVATION_WITHIN",
    "DEFAULT_EXPECTED_INTERVAL",
    "PRODUCTS",
    "STEP",
    "WARM_UP_STEPS",
    "AggregatorCut",
    "CatalogueEntry",
    "CategoryErrors",
    "ConnectionCut",
    "ConnectionPerformance",
    "ErrorRates",
    "ExcludedAttempts",
    "FeatureCut",
    "FeatureFigures",
    "FeatureUsage",
    "HealthState",
    "HealthThresholds",
    "InstitutionCatalogue",
    "InstitutionCut",
    "InstitutionHealth",
    "Latency",
    "LatencyFigures",
    "LinkActivation",
    "LinkActivations",
    "LinkConversion",
    "PerformanceAnalytics",
    "PerformanceNamespace",
    "Period",
    "Product",
    "RefreshState",
    "Series",
    "SeriesPoint",
    "Shape",
    "SourceErrors",
    "SuccessBreakdown",
    "SuccessRate",
    "SyncFreshness",
    "display_name",
    "judge_steps",
    "refresh_state",
    "refresh_states",
    "series_bucket",
    "wilson_upper",
]

__getattr__, __dir__ = lazy_names(__name__, _HOMES, __all__)
