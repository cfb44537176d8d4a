"""``analytics.behavior``: how people use the banking features, behind one object.

The facade builds it on first use. Each kind of question (sessions, engagement,
stickiness, lifecycle, funnel, retention, paths) is a typed query in its own
module, compiled to SQL through the metric layer and run by its executor.
"""

from __future__ import annotations

from banking_analytics.analytics.behavior._funnel import (
    FunnelQuery,
    FunnelResult,
    Funnels,
    FunnelUsers,
)
from banking_analytics.analytics.behavior._paths import Paths, PathsQuery, PathsResult
from banking_analytics.analytics.behavior._retention import (
    Retention,
    RetentionQuery,
    RetentionResult,
)
from banking_analytics.metrics import MetricService, QueryExecutor

__all__ = ["BehaviorNamespace"]


class BehaviorNamespace:
    """Sessions, devices, engagement, stickiness, lifecycle, funnels, retention, paths."""

    def __init__(self, metrics: MetricService, queries: QueryExecutor) -> None:
        self._metrics = metrics
        self._queries = queries

    # -- funnels, retention and paths --------------------------------------------------------

    def funnel(self, query: FunnelQuery) -> FunnelResult:
        """Users through ordered, strict or unordered steps, conversion and time to convert."""
        return Funnels(self._metrics).run(query)

    def funnel_users(
        self, query: FunnelQuery, step: int, *, limit: int = 100, offset: int = 0
    ) -> FunnelUsers:
        """A page of the users whose path ends at ``step`` (dropped off there, or converted)."""
        return Funnels(self._metrics).users(query, step, limit=limit, offset=offset)

    def retention(self, query: RetentionQuery) -> RetentionResult:
        """The cohort grid of users returning after a start event (first-time or recurring)."""
        return Retention(self._metrics).run(query)

    def paths(self, query: PathsQuery) -> PathsResult:
        """The most frequent transitions between features or actions within sessions."""
        return Paths(self._metrics).run(query)
