"""Subscription revenue: the ledger, MRR and its movements, revenue metrics."""

from banking_analytics.analytics.revenue._mrr import Movement, MrrPoint, MrrSeries, RevenueLedger
from banking_analytics.analytics.revenue._namespace import RevenueNamespace
from banking_analytics.analytics.revenue._policy import ChurnRecognition, RevenuePolicy

__all__ = [
    "ChurnRecognition",
    "Movement",
    "MrrPoint",
    "MrrSeries",
    "RevenueLedger",
    "RevenueNamespace",
    "RevenuePolicy",
]
