"""Behaviour analytics: sessions, devices, engagement, stickiness and lifecycle.

Admins and analysts only (an end user reaches their own sessions and engagement
under ``/users/{id}``). Sessions, devices and engagement take the window as query
parameters (``time_period`` ending now, or ``start`` and ``end``); stickiness and
lifecycle take their query's definition as a JSON body, PostHog's way. Every query is
bounded (range, intervals, listed values) and answers 422 beyond its bounds.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from banking_analytics.analytics.behavior import (
    MAX_FILTER_VALUES,
    BehaviorQuery,
    Devices,
    Engagement,
    EngagementQuery,
    EventFilter,
    Interval,
    Lifecycle,
    LifecycleQuery,
    Sessions,
    SessionsQuery,
    Stickiness,
    StickinessQuery,
    UserBehavior,
)
from banking_analytics.api._auth import PolicedRoute
from banking_analytics.api._types import QueryDateTime
from banking_analytics.api.deps import Admitted, Analytics, ReadAnalytics
from banking_analytics.api.routes._params import Period30d, Timezone
from banking_analytics.metrics import TimeWindow
from banking_analytics.vocabulary import BankingFeature, DeviceType, Platform

__all__ = ["BehaviorQueryIn", "router"]

router = APIRouter(prefix="/behavior", tags=["behavior"], route_class=PolicedRoute)

_MAX_LISTED = MAX_FILTER_VALUES


class EventFilterIn(BaseModel):
    """Which behaviour events a query reads: any of the listed values of each field."""

    model_config = ConfigDict(extra="forbid")

    features: list[BankingFeature] = Field(default_factory=list, max_length=_MAX_LISTED)
    actions: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=_MAX_LISTED
    )
    devices: list[DeviceType] = Field(default_factory=list, max_length=_MAX_LISTED)
    platforms: list[Platform] = Field(default_factory=list, max_length=_MAX_LISTED)

    def build(self) -> EventFilter:
        return EventFilter(
            features=tuple(self.features),
            actions=tuple(self.actions),
            devices=tuple(self.devices),
            platforms=tuple(self.platforms),
        )


class BehaviorQueryIn(BaseModel):
    """A stickiness or lifecycle query: the range ``[date_from, date_to)``, the interval
    it is cut by, the timezone of the cut and the events it reads."""

    model_config = ConfigDict(extra="forbid")

    date_from: QueryDateTime
    date_to: QueryDateTime
    interval: Interval = Interval.DAY
    timezone: str = Field("UTC", max_length=64)
    events: EventFilterIn = Field(default_factory=EventFilterIn)


def _events(
    feature: Annotated[list[BankingFeature] | None, Query(max_length=_MAX_LISTED)] = None,
    device: Annotated[list[DeviceType] | None, Query(max_length=_MAX_LISTED)] = None,
    platform: Annotated[list[Platform] | None, Query(max_length=_MAX_LISTED)] = None,
) -> EventFilter:
    """The event filter of a GET query (each parameter repeatable)."""
    return EventFilter(
        features=tuple(feature or ()), devices=tuple(device or ()), platforms=tuple(platform or ())
    )


Events = Annotated[EventFilter, Depends(_events)]
IntervalParam = Annotated[Interval, Query(description="hour, day, week or month")]
GapMinutes = Annotated[
    int, Query(ge=1, le=1440, description="Inactivity that ends a session, in minutes")
]


def _sessions_query(
    period: str | TimeWindow, interval: Interval, timezone: str, gap: int, events: EventFilter
) -> SessionsQuery:
    return SessionsQuery.over(
        period, interval=interval, timezone=timezone, gap=timedelta(minutes=gap), events=events
    )


@router.get("/sessions", response_model=Sessions)
def sessions(
    analytics: Analytics,
    _: ReadAnalytics,
    _admitted: Admitted,
    period: Period30d,
    events: Events,
    interval: IntervalParam = Interval.DAY,
    timezone: Timezone = "UTC",
    gap_minutes: GapMinutes = 30,
) -> Sessions:
    """Session count, length, depth and bounce overall, per device, platform and interval."""
    query = _sessions_query(period, interval, timezone, gap_minutes, events)
    return analytics.behavior.sessions(query)


@router.get("/devices", response_model=Devices)
def devices(
    analytics: Analytics,
    _: ReadAnalytics,
    _admitted: Admitted,
    period: Period30d,
    events: Events,
    timezone: Timezone = "UTC",
    gap_minutes: GapMinutes = 30,
) -> Devices:
    """Multi-device users, and each feature's success rate and duration per device type
    and platform with the difference from the rest and its 95% interval."""
    query = _sessions_query(period, Interval.DAY, timezone, gap_minutes, events)
    return analytics.behavior.devices(query)


@router.get("/engagement", response_model=Engagement)
def engagement(
    analytics: Analytics,
    _: ReadAnalytics,
    _admitted: Admitted,
    period: Period30d,
    events: Events,
    timezone: Timezone = "UTC",
) -> Engagement:
    """DAU/WAU/MAU and DAU/MAU per day, L28 power users, per feature; co-usage lift,
    hour x weekday heat map and first-use order."""
    query = EngagementQuery.over(period, timezone=timezone, events=events)
    return analytics.behavior.engagement(query)


@router.get("/analysis", response_model=UserBehavior)
def analysis(
    analytics: Analytics,
    _: ReadAnalytics,
    _admitted: Admitted,
    period: Period30d,
    feature: BankingFeature | None = None,
    timezone: Timezone = "UTC",
) -> UserBehavior:
    """The spec's behaviour analysis: sessions, devices, engagement, stickiness, lifecycle."""
    return analytics.analyze_user_behavior(period, feature, timezone=timezone)


Q = TypeVar("Q", bound=BehaviorQuery)


def _query(kind: type[Q], body: BehaviorQueryIn) -> Q:
    return kind(
        date_from=body.date_from,
        date_to=body.date_to,
        interval=body.interval,
        timezone=body.timezone,
        events=body.events.build(),
    )


@router.post("/stickiness", response_model=Stickiness)
def stickiness(
    body: BehaviorQueryIn, analytics: Analytics, _: ReadAnalytics, _admitted: Admitted
) -> Stickiness:
    """Users by how many intervals of the range they were active in (exact and cumulative)."""
    return analytics.stickiness(_query(StickinessQuery, body))


@router.post("/lifecycle", response_model=Lifecycle)
def lifecycle(
    body: BehaviorQueryIn, analytics: Analytics, _: ReadAnalytics, _admitted: Admitted
) -> Lifecycle:
    """New, returning, resurrecting and (negative) dormant users per interval."""
    return analytics.lifecycle(_query(LifecycleQuery, body))
