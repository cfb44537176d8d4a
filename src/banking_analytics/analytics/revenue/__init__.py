"""Subscription revenue: the ledger, MRR and its movements, revenue metrics, cohorts."""

from banking_analytics.analytics.revenue._cohorts import Cohort, CohortTable
from banking_analytics.analytics.revenue._effect_model import MIN_ADOPTER_CONVERSIONS
from banking_analytics.analytics.revenue._impact import (
    DEFAULT_ATTRIBUTION_WINDOW,
    ConversionSource,
    FeatureEffect,
    FeatureImpact,
    FeatureRevenue,
    Money,
    RevenueImpact,
    RevenueImpactAnalysis,
    UpgradeModel,
    monthly_mrr,
)
from banking_analytics.analytics.revenue._metrics import RevenueMetricsResult, RevenueRow
from banking_analytics.analytics.revenue._mrr import Movement, MrrPoint, MrrSeries, RevenueLedger
from banking_analytics.analytics.revenue._namespace import RevenueDashboard, RevenueNamespace
from banking_analytics.analytics.revenue._policy import ChurnRecognition, RevenuePolicy
from banking_analytics.analytics.revenue._recommend import (
    POOR_SUCCESS_RATE,
    RECOMMENDED_ADOPTION_POINTS,
    Evidence,
    Recommendation,
    Recommendations,
    RevenueOptimization,
)
from banking_analytics.analytics.revenue._roi import (
    DEFAULT_DISCOUNT_RATE,
    DEFAULT_HORIZON_MONTHS,
    RoiAssumptions,
    RoiProjection,
    appraise,
    uplift_path,
)
from banking_analytics.metrics import (
    REVENUE_METRICS,
    SPEC_REVENUE_METRICS,
    RevenueMetricDefinition,
)

__all__ = [
    "DEFAULT_ATTRIBUTION_WINDOW",
    "DEFAULT_DISCOUNT_RATE",
    "DEFAULT_HORIZON_MONTHS",
    "MIN_ADOPTER_CONVERSIONS",
    "POOR_SUCCESS_RATE",
    "RECOMMENDED_ADOPTION_POINTS",
    "REVENUE_METRICS",
    "SPEC_REVENUE_METRICS",
    "ChurnRecognition",
    "Cohort",
    "CohortTable",
    "ConversionSource",
    "Evidence",
    "FeatureEffect",
    "FeatureImpact",
    "FeatureRevenue",
    "Money",
    "Movement",
    "MrrPoint",
    "MrrSeries",
    "Recommendation",
    "Recommendations",
    "RevenueDashboard",
    "RevenueImpact",
    "RevenueImpactAnalysis",
    "RevenueLedger",
    "RevenueMetricDefinition",
    "RevenueMetricsResult",
    "RevenueNamespace",
    "RevenueOptimization",
    "RevenuePolicy",
    "RevenueRow",
    "RoiAssumptions",
    "RoiProjection",
    "UpgradeModel",
    "appraise",
    "monthly_mrr",
    "uplift_path",
]
