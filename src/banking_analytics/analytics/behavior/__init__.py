"""Behaviour analytics: sessions, devices, engagement, stickiness, lifecycle, funnels,
retention and paths, each a typed query compiled per engine by the metric layer."""

from banking_analytics.analytics.behavior._namespace import BehaviorNamespace

__all__ = ["BehaviorNamespace"]
