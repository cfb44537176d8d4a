"""Subscription revenue analytics. This file holds the revenue-impact names only (branch
``impact``); the lead merges them into the package's namespace."""

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

__all__ = [
    "DEFAULT_ATTRIBUTION_WINDOW",
    "MIN_ADOPTER_CONVERSIONS",
    "ConversionSource",
    "FeatureEffect",
    "FeatureImpact",
    "FeatureRevenue",
    "Money",
    "RevenueImpact",
    "RevenueImpactAnalysis",
    "UpgradeModel",
    "monthly_mrr",
]
