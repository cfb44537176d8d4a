"""Behaviour analytics: sessions, devices, engagement, stickiness, lifecycle, funnels,
retention and paths, each a typed query compiled per engine by the metric layer."""

from banking_analytics.analytics.behavior._funnel import (
    EventStep,
    Exclusion,
    FunnelOrder,
    FunnelQuery,
    FunnelResult,
    FunnelSeries,
    FunnelStepResult,
    FunnelUsers,
    TimeBin,
    TimeToConvert,
)
from banking_analytics.analytics.behavior._namespace import BehaviorNamespace
from banking_analytics.analytics.behavior._paths import (
    PathNode,
    PathsQuery,
    PathsResult,
    Transition,
)
from banking_analytics.analytics.behavior._retention import (
    RetentionCell,
    RetentionCohort,
    RetentionCriterion,
    RetentionKind,
    RetentionMean,
    RetentionQuery,
    RetentionResult,
)

__all__ = [
    "BehaviorNamespace",
    # funnels, retention and paths
    "EventStep",
    "Exclusion",
    "FunnelOrder",
    "FunnelQuery",
    "FunnelResult",
    "FunnelSeries",
    "FunnelStepResult",
    "FunnelUsers",
    "PathNode",
    "PathsQuery",
    "PathsResult",
    "RetentionCell",
    "RetentionCohort",
    "RetentionCriterion",
    "RetentionKind",
    "RetentionMean",
    "RetentionQuery",
    "RetentionResult",
    "TimeBin",
    "TimeToConvert",
    "Transition",
]
