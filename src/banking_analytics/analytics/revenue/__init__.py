"""Subscription revenue: the ledger, MRR and its movements, revenue metrics, cohorts."""

from banking_analytics.analytics.revenue._cohorts import Cohort, CohortTable
from banking_analytics.analytics.revenue._metrics import (
    REVENUE_METRICS,
    SPEC_REVENUE_METRICS,
    RevenueMetricDefinition,
    RevenueMetricsResult,
    RevenueRow,
)
from banking_analytics.analytics.revenue._mrr import Movement, MrrPoint, MrrSeries, RevenueLedger
from banking_analytics.analytics.revenue._namespace import RevenueDashboard, RevenueNamespace
from banking_analytics.analytics.revenue._policy import ChurnRecognition, RevenuePolicy

__all__ = [
    "REVENUE_METRICS",
    "SPEC_REVENUE_METRICS",
    "ChurnRecognition",
    "Cohort",
    "CohortTable",
    "Movement",
    "MrrPoint",
    "MrrSeries",
    "RevenueDashboard",
    "RevenueLedger",
    "RevenueMetricDefinition",
    "RevenueMetricsResult",
    "RevenueNamespace",
    "RevenuePolicy",
    "RevenueRow",
]
