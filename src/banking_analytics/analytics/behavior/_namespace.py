"""``analytics.behavior``: how people use the banking features, behind one object.

The facade builds it on first use. Each kind of question (sessions, engagement,
stickiness, lifecycle, funnel, retention, paths) is a typed query in its own
module, compiled to SQL through the metric layer and run by its executor.
"""

from __future__ import annotations

from banking_analytics.metrics import MetricService, QueryExecutor

__all__ = ["BehaviorNamespace"]


class BehaviorNamespace:
    """Sessions, devices, engagement, stickiness, lifecycle, funnels, retention, paths."""

    def __init__(self, metrics: MetricService, queries: QueryExecutor) -> None:
        self._metrics = metrics
        self._queries = queries
