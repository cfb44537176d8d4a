"""``analytics.behavior``: how people use the banking features, behind one object.

The facade builds it on first use. Each kind of question (sessions, engagement,
stickiness, lifecycle, funnel, retention, paths) is a typed query in its own
module, compiled to SQL through the metric layer and run by its executor. The
typed methods (``sessions(query)``, ...) take a query object; the ``analyze_*``
methods and ``dashboard`` take the spec's ``time_period`` and build the queries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from banking_analytics.analytics._shape import Period, Shape
from banking_analytics.analytics.behavior._devices import Devices, OutcomeCut, run_devices
from banking_analytics.analytics.behavior._engagement import (
    Engagement,
    EngagementPoint,
    EngagementQuery,
    UserEngagement,
    run_engagement,
    run_user_engagement,
)
from banking_analytics.analytics.behavior._funnel import (
    FunnelQuery,
    FunnelResult,
    Funnels,
    FunnelUsers,
)
from banking_analytics.analytics.behavior._lifecycle import Lifecycle, LifecycleQuery, run_lifecycle
from banking_analytics.analytics.behavior._paths import Paths, PathsQuery, PathsResult
from banking_analytics.analytics.behavior._query import (
    DEFAULT_SESSION_GAP,
    BehaviorQueryError,
    EventFilter,
)
from banking_analytics.analytics.behavior._retention import (
    Retention,
    RetentionQuery,
    RetentionResult,
)
from banking_analytics.analytics.behavior._sessions import (
    SessionCut,
    SessionFigures,
    Sessions,
    SessionsQuery,
    UserSessions,
    run_sessions,
    run_user_sessions,
)
from banking_analytics.analytics.behavior._stickiness import (
    Stickiness,
    StickinessQuery,
    run_stickiness,
)
from banking_analytics.metrics import MetricService, QueryExecutor, TimeWindow
from banking_analytics.vocabulary import BankingFeature

__all__ = [
    "BehaviorDashboard",
    "BehaviorHeadline",
    "BehaviorNamespace",
    "SessionAnalysis",
    "UserBehavior",
]


@dataclass(slots=True, eq=False)
class SessionAnalysis(Shape):
    """Sessions and devices over one range."""

    sessions: Sessions
    devices: Devices


@dataclass(slots=True, eq=False)
class UserBehavior(Shape):
    """The spec's behaviour analysis: sessions, devices, engagement, stickiness and
    lifecycle over one range (daily)."""

    period: Period
    sessions: Sessions
    devices: Devices
    engagement: Engagement
    stickiness: Stickiness
    lifecycle: Lifecycle


@dataclass(slots=True, eq=False)
class BehaviorHeadline(Shape):
    """The dashboard's headline figures, at the range's last day or over the range."""

    dau: int
    wau: int
    mau: int
    stickiness: float | None
    """DAU ÷ MAU at the last day."""
    sessions: int
    median_session_length_s: float | None
    bounce_rate: float | None
    multi_device_share: float | None


@dataclass(slots=True, eq=False)
class BehaviorDashboard(Shape):
    """Everything the behaviour dashboard shows over one range."""

    period: Period
    timezone: str
    headline: BehaviorHeadline
    active_users: list[EngagementPoint]
    sessions_by_platform: list[SessionCut]
    power_users: list[int]
    stickiness: Stickiness
    lifecycle: Lifecycle
    weak_spots: list[OutcomeCut]
    """Feature x device/platform cuts whose success rate is below the rest of the
    feature's with 95% confidence (the interval of the difference is below 0)."""


class BehaviorNamespace:
    """Sessions, devices, engagement, stickiness, lifecycle, funnels, retention, paths."""

    def __init__(self, metrics: MetricService, queries: QueryExecutor) -> None:
        self._metrics = metrics
        self._queries = queries

    # -- typed queries ---------------------------------------------------------------------

    def sessions(self, query: SessionsQuery) -> Sessions:
        """Session count, length, depth and bounce overall, per device, per platform and
        per interval."""
        return run_sessions(self._metrics, query)

    def devices(self, query: SessionsQuery) -> Devices:
        """Multi-device users and each feature's outcomes per device type and platform."""
        return run_devices(self._metrics, self._queries, query)

    def user_sessions(
        self, user_id: str, query: SessionsQuery, *, limit: int = 100, offset: int = 0
    ) -> UserSessions:
        """A page of one user's sessions, the latest first."""
        return run_user_sessions(self._metrics, query, user_id, limit=limit, offset=offset)

    def engagement(self, query: EngagementQuery) -> Engagement:
        """DAU/WAU/MAU, stickiness, power users, co-usage, heat map, first-use order."""
        return run_engagement(self._metrics, self._queries, query)

    def user_engagement(self, user_id: str, query: EngagementQuery) -> UserEngagement:
        """One user's active days, events and feature use."""
        return run_user_engagement(self._metrics, query, user_id)

    def stickiness(self, query: StickinessQuery) -> Stickiness:
        """Users by how many intervals of the range they were active in (PostHog's)."""
        return run_stickiness(self._metrics, query)

    def lifecycle(self, query: LifecycleQuery) -> Lifecycle:
        """New, returning, resurrecting and dormant users per interval (PostHog's)."""
        return run_lifecycle(self._metrics, query)

    # -- the spec's analyses ---------------------------------------------------------------

    def analyze_sessions(
        self,
        time_period: str | TimeWindow = "30d",
        feature: BankingFeature | str | None = None,
        *,
        now: datetime | None = None,
        timezone: str = "UTC",
        gap: timedelta = DEFAULT_SESSION_GAP,
    ) -> SessionAnalysis:
        """Sessions and devices over ``time_period`` (optionally one feature's events)."""
        query = SessionsQuery.over(
            time_period, now, timezone=timezone, gap=gap, events=_only(feature)
        )
        calls: list[Callable[[], Any]] = [lambda: self.sessions(query), lambda: self.devices(query)]
        sessions, devices = self._queries.gather(calls)
        return SessionAnalysis(sessions, devices)

    def analyze_engagement(
        self,
        time_period: str | TimeWindow = "30d",
        feature: BankingFeature | str | None = None,
        *,
        now: datetime | None = None,
        timezone: str = "UTC",
    ) -> Engagement:
        """Engagement over ``time_period`` (optionally of one feature), by day."""
        return self.engagement(
            EngagementQuery.over(time_period, now, timezone=timezone, events=_only(feature))
        )

    def analyze_user_behavior(
        self,
        time_period: str | TimeWindow = "30d",
        feature: BankingFeature | str | None = None,
        *,
        now: datetime | None = None,
        timezone: str = "UTC",
    ) -> UserBehavior:
        """Sessions, devices, engagement, stickiness and lifecycle over ``time_period``,
        daily (optionally of one feature's events)."""
        fields = {"timezone": timezone, "events": _only(feature)}
        sessions = SessionsQuery.over(time_period, now, **fields)
        engagement = EngagementQuery.over(time_period, now, **fields)
        sticky = StickinessQuery.over(time_period, now, **fields)
        life = LifecycleQuery.over(time_period, now, **fields)
        calls: list[Callable[[], Any]] = [
            lambda: self.sessions(sessions),
            lambda: self.devices(sessions),
            lambda: self.engagement(engagement),
            lambda: self.stickiness(sticky),
            lambda: self.lifecycle(life),
        ]
        s, d, e, st, lc = self._queries.gather(calls)
        return UserBehavior(Period.of(sessions.window), s, d, e, st, lc)

    def dashboard(
        self,
        time_period: str | TimeWindow = "30d",
        *,
        now: datetime | None = None,
        timezone: str = "UTC",
    ) -> BehaviorDashboard:
        """The behaviour dashboard: headline, active users, sessions per platform, power
        users, stickiness, lifecycle and the features that fail more somewhere."""
        behavior = self.analyze_user_behavior(time_period, now=now, timezone=timezone)
        engagement, sessions = behavior.engagement, behavior.sessions
        last = engagement.series[-1] if engagement.series else None
        overall: SessionFigures = sessions.overall
        headline = BehaviorHeadline(
            dau=last.dau if last else 0,
            wau=last.wau if last else 0,
            mau=last.mau if last else 0,
            stickiness=last.stickiness if last else None,
            sessions=overall.sessions,
            median_session_length_s=overall.median_length_s,
            bounce_rate=overall.bounce_rate,
            multi_device_share=behavior.devices.multi_device_share,
        )
        weak = [
            cut
            for cut in behavior.devices.outcomes
            if cut.difference_high is not None and cut.difference_high < 0
        ]
        return BehaviorDashboard(
            period=behavior.period,
            timezone=timezone,
            headline=headline,
            active_users=engagement.series,
            sessions_by_platform=sessions.by_platform,
            power_users=engagement.power_users,
            stickiness=behavior.stickiness,
            lifecycle=behavior.lifecycle,
            weak_spots=sorted(weak, key=lambda c: c.difference or 0.0),
        )

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


def _only(feature: BankingFeature | str | None) -> EventFilter:
    """The events of one feature, or all."""
    if feature is None:
        return EventFilter()
    try:
        return EventFilter(features=(BankingFeature(feature),))
    except ValueError:
        raise BehaviorQueryError(f"feature {feature!r} is not a banking feature") from None
