"""Behaviour insights on hand-worked event sets, each edge as PostHog's docs define it.

One store per engine holds every case; each case has users of its own and a range of
its own (sessions in May, lifecycle in June, engagement in August, a DST change in
March), so the cases do not see each other's events.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from statsmodels.stats.proportion import confint_proportions_2indep

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.analytics.behavior import (
    MAX_INTERVALS,
    BehaviorQueryError,
    EngagementQuery,
    EventFilter,
    Interval,
    LifecycleQuery,
    SessionsQuery,
    StickinessQuery,
    newcombe_interval,
)
from banking_analytics.analytics.behavior._query import index_of, start_of
from banking_analytics.vocabulary import BankingFeature
from behavior_stores import module_store
from conftest import ENGINES

MAY4 = datetime(2026, 5, 4, tzinfo=UTC)
MAY5 = datetime(2026, 5, 5, tzinfo=UTC)
MAY6 = datetime(2026, 5, 6, tzinfo=UTC)
JUNE1 = datetime(2026, 6, 1, tzinfo=UTC)
AUG10 = datetime(2026, 8, 10, tzinfo=UTC)
#: Europe/London's clocks go forward at 01:00 UTC on 29 March 2026.
MARCH28 = datetime(2026, 3, 28, tzinfo=UTC)


def _event(
    user: str, at: datetime, feature: str = "budget_tracking", **fields: object
) -> dict[str, object]:
    return {
        "event_type": "behavior",
        "event_id": str(uuid.uuid4()),
        "user_id": user,
        "feature": feature,
        "action": "open",
        "occurred_at": at.isoformat(),
        **fields,
    }


def _hours(day: datetime, h: float) -> datetime:
    return day + timedelta(hours=h)


EVENTS = [
    # Sessions on 4 May. "split": 09:00, then exactly 30 minutes later (a new session),
    # then 29:59 later (the same session).
    _event("split", _hours(MAY4, 9), duration_s=5, device="phone", platform="ios", success=True),
    _event(
        "split", _hours(MAY4, 9.5), duration_s=7, device="desktop", platform="web", success=False
    ),
    _event(
        "split",
        _hours(MAY4, 9.5) + timedelta(minutes=29, seconds=59),
        "goal_setting",
        duration_s=2,
        device="desktop",
        platform="web",
    ),
    # "client": one client session three hours long, and an event without a session id.
    _event(
        "client",
        _hours(MAY4, 10),
        session_id="s-1",
        device="phone",
        platform="android",
        success=True,
    ),
    _event(
        "client",
        _hours(MAY4, 13),
        session_id="s-1",
        duration_s=1,
        device="phone",
        platform="android",
        success=True,
    ),
    _event("client", _hours(MAY4, 11), success=False),
    # On 5 May, "chain": five events 25 minutes apart (one session crossing several
    # 30-minute marks), then two at the same instant: the lower event id comes first.
    *(
        _event("chain", _hours(MAY5, 9) + timedelta(minutes=25 * i), duration_s=i, device="phone")
        for i in range(5)
    ),
    _event(
        "chain", _hours(MAY5, 12), event_id=str(uuid.UUID(int=2)), duration_s=4, device="desktop"
    ),
    _event(
        "chain", _hours(MAY5, 12), event_id=str(uuid.UUID(int=1)), duration_s=3, device="tablet"
    ),
    # On 6 May, "lasttie": 09:10 on a tablet, 09:35, then two at 09:50 (a slice after the
    # first's), the lower event id stored first: the higher one is the last, lasting 7 s.
    _event("lasttie", _hours(MAY6, 9 + 10 / 60), device="tablet", platform="ios"),
    _event("lasttie", _hours(MAY6, 9 + 35 / 60), device="phone", duration_s=1),
    _event("lasttie", _hours(MAY6, 9 + 50 / 60), event_id=str(uuid.UUID(int=9)), duration_s=2),
    _event("lasttie", _hours(MAY6, 9 + 50 / 60), event_id=str(uuid.UUID(int=10)), duration_s=7),
    # Lifecycle in June (days 0-4 from 1 June, noon): "a" days 0, 1, 3; "b" first seen on
    # day 2; "c" seen the day before the range and on day 0; "d" first seen on day 0 with
    # one feature, then on day 1 with another.
    *(_event("a", _hours(JUNE1, 12 + 24 * d)) for d in (0, 1, 3)),
    _event("b", _hours(JUNE1, 12 + 48)),
    *(_event("c", _hours(JUNE1, 12 + 24 * d)) for d in (-1, 0, 0)),
    _event("d", _hours(JUNE1, 12), "goal_setting"),
    _event("d", _hours(JUNE1, 36), "bill_reminders"),
    # Engagement, 10-15 August (a Monday to a Saturday), all at 09:00 UTC.
    _event("e1", _hours(AUG10, 9)),
    _event("e1", _hours(AUG10, 24 + 9), "goal_setting"),
    _event("e1", _hours(AUG10, 72 + 9)),
    _event("e2", _hours(AUG10, 48 + 9), "goal_setting"),
    _event("e3", _hours(AUG10, -24 + 9)),
    _event("e3", _hours(AUG10, 9)),
    _event("e3", _hours(AUG10, 9), "bill_reminders"),
    # DST: 23:30 UTC on 28 March is 23:30 on the 28th in London; 23:30 UTC on the 29th is
    # 00:30 BST on the 30th.
    _event("dst", _hours(MARCH28, 23.5)),
    _event("dst", _hours(MARCH28, 24 + 23.5)),
]


@pytest.fixture(scope="module", params=ENGINES)
def analytics(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BankingPerformanceAnalytics]:
    """One store per engine holding every hand-worked case."""
    for opened in module_store(request, tmp_path_factory):
        results = opened.ingest(EVENTS)
        assert all(r.status == "accepted" for r in results), results
        yield opened


def _day(start: datetime, days: int = 1, **fields: object) -> dict[str, object]:
    return {"date_from": start, "date_to": start + timedelta(days=days), **fields}


# -- sessions -------------------------------------------------------------------------------


def test_a_gap_of_exactly_30_minutes_splits_and_less_merges(
    analytics: BankingPerformanceAnalytics,
) -> None:
    page = analytics.behavior.user_sessions("split", SessionsQuery(**_day(MAY4)))
    assert page.total == 2
    later, first = page.sessions
    assert (first.started_at, first.events, first.length_s, first.bounce) == (
        _hours(MAY4, 9),
        1,
        5.0,
        True,
    )
    # 29:59 from first to last event, plus the last event's 2 s.
    assert (later.started_at, later.events, later.features, later.length_s) == (
        _hours(MAY4, 9.5),
        2,
        2,
        29 * 60 + 59 + 2.0,
    )
    # A gap of an hour merges all three.
    merged = SessionsQuery(**_day(MAY4), gap=timedelta(hours=1))
    assert analytics.behavior.user_sessions("split", merged).total == 1


def test_a_client_session_id_holds_its_events_whatever_the_gap(
    analytics: BankingPerformanceAnalytics,
) -> None:
    page = analytics.behavior.user_sessions("client", SessionsQuery(**_day(MAY4)))
    by_id = {s.session_id: s for s in page.sessions}
    assert by_id["s-1"].length_s == 3 * 3600 + 1.0
    assert by_id["s-1"].events == 2
    # The event without an id is a session of its own (duration unknown: 0).
    assert (by_id[None].events, by_id[None].length_s, by_id[None].bounce) == (1, 0.0, True)


def test_a_session_runs_on_across_many_gaps_and_ties_go_by_event_id(
    analytics: BankingPerformanceAnalytics,
) -> None:
    later, first = analytics.behavior.user_sessions("chain", SessionsQuery(**_day(MAY5))).sessions
    # 09:00 to 10:40, each event 25 minutes after the one before; the last lasts 4 s.
    assert (first.started_at, first.events, first.length_s, first.device) == (
        _hours(MAY5, 9),
        5,
        100 * 60 + 4.0,
        "phone",
    )
    # At 12:00 the tablet's event (id ...01) comes first, the desktop's (id ...02) last.
    assert (later.events, later.length_s, later.device, later.bounce) == (2, 4.0, "tablet", False)


def test_a_tie_at_a_later_slices_last_instant_goes_by_event_id(
    analytics: BankingPerformanceAnalytics,
) -> None:
    (session,) = analytics.behavior.user_sessions("lasttie", SessionsQuery(**_day(MAY6))).sessions
    # 09:10 to 09:50 across the 09:30 mark: the first event's device; the last event by
    # (time, event id) is id ...0a, which lasted 7 s (id ...09 lasted 2 s).
    assert (session.events, session.length_s, session.device, session.platform) == (
        4,
        40 * 60 + 7.0,
        "tablet",
        "ios",
    )
    overall = analytics.behavior.sessions(SessionsQuery(**_day(MAY6))).overall
    assert (overall.sessions, overall.users, overall.mean_length_s) == (1, 1, 40 * 60 + 7.0)


def test_session_figures_overall_and_per_device_and_platform(
    analytics: BankingPerformanceAnalytics,
) -> None:
    sessions = analytics.behavior.sessions(SessionsQuery(**_day(MAY4)))
    overall = sessions.overall
    # Lengths 5, 1801, 10801 and 0 s; depths 1, 2, 2, 1 events.
    assert (overall.sessions, overall.users) == (4, 2)
    assert overall.mean_length_s == pytest.approx((5 + 1801 + 10801 + 0) / 4)
    assert (overall.median_length_s, overall.p90_length_s) == (5.0, 10801.0)
    assert overall.mean_events == 1.5
    assert overall.bounce_rate == 0.5
    devices = {c.value: c.figures.sessions for c in sessions.by_device}
    assert devices == {"phone": 2, "desktop": 1, None: 1}
    platforms = {c.value: c.figures.mean_length_s for c in sessions.by_platform}
    assert platforms == {"ios": 5.0, "web": 1801.0, "android": 10801.0, None: 0.0}
    assert [(p.start, p.sessions) for p in sessions.series] == [(MAY4, 4)]


def test_multi_device_users_and_outcomes_per_device(
    analytics: BankingPerformanceAnalytics,
) -> None:
    devices = analytics.behavior.devices(SessionsQuery(**_day(MAY4)))
    # "split" used a phone and a desktop; "client" only a phone.
    assert (devices.users_with_device, devices.multi_device_users) == (2, 1)
    assert {(m.device, m.sessions, m.share) for m in devices.multi_device_session_mix} == {
        ("phone", 1, 0.5),
        ("desktop", 1, 0.5),
    }
    cuts = {(c.feature, c.by, c.value): c for c in devices.outcomes}
    # budget_tracking: on phones 3 of 3 succeeded; elsewhere 0 of 2.
    phone = cuts[("budget_tracking", "device", "phone")]
    assert (phone.success_rate, phone.rest_success_rate, phone.difference) == (1.0, 0.0, 1.0)
    low, high = confint_proportions_2indep(3, 3, 0, 2, method="newcomb", compare="diff")
    assert (phone.difference_low, phone.difference_high) == pytest.approx((low, high))
    desktop = cuts[("budget_tracking", "device", "desktop")]
    assert (desktop.interactions, desktop.success_rate, desktop.mean_duration_s) == (1, 0.0, 7.0)


def test_answers_echo_the_time_period_asked(analytics: BankingPerformanceAnalytics) -> None:
    """The spec's ``time_period`` comes back as the answer's period label (a range given
    by its bounds is "custom")."""
    now = MAY4 + timedelta(days=2)
    behavior = analytics.analyze_user_behavior("7d", now=now)
    assert (behavior.period.label, behavior.period.end) == ("7d", now)
    assert analytics.analyze_engagement("30d", now=now).period.label == "30d"
    assert analytics.behavior.sessions(SessionsQuery(**_day(MAY4))).period.label == "custom"


def test_newcombe_interval_matches_statsmodels() -> None:
    for s1, n1, s2, n2 in [(40, 50, 30, 50), (1, 20, 9, 25), (0, 10, 10, 10)]:
        want = confint_proportions_2indep(s1, n1, s2, n2, method="newcomb", compare="diff")
        assert newcombe_interval(s1, n1, s2, n2) == pytest.approx(want)


# -- lifecycle and stickiness ----------------------------------------------------------------


def test_lifecycle_new_returning_resurrecting_dormant(
    analytics: BankingPerformanceAnalytics,
) -> None:
    lifecycle = analytics.lifecycle(LifecycleQuery(**_day(JUNE1, 5)))
    got = [(p.new, p.returning, p.resurrecting, p.dormant) for p in lifecycle.points]
    assert got == [
        (2, 1, 0, 0),  # day 0: a and d new; c returning (active the day before)
        (0, 2, 0, -1),  # day 1: a and d returning; c dormant
        (1, 0, 0, -2),  # day 2: b new; a and d dormant
        (0, 0, 1, -1),  # day 3: a resurrecting; b dormant
        (0, 0, 0, -1),  # day 4: a dormant
    ]
    assert [p.start for p in lifecycle.points] == [JUNE1 + timedelta(days=d) for d in range(5)]


def test_lifecycle_new_is_the_first_event_ever_whatever_the_filter(
    analytics: BankingPerformanceAnalytics,
) -> None:
    only = EventFilter(features=(BankingFeature.BILL_REMINDERS,))
    lifecycle = analytics.lifecycle(LifecycleQuery(**_day(JUNE1, 3), events=only))
    # d first used bill reminders on day 1, but was created on day 0: resurrecting.
    got = [(p.new, p.returning, p.resurrecting, p.dormant) for p in lifecycle.points]
    assert got == [(0, 0, 0, 0), (0, 0, 1, 0), (0, 0, 0, -1)]


def test_stickiness_exact_and_cumulative(analytics: BankingPerformanceAnalytics) -> None:
    stickiness = analytics.stickiness(StickinessQuery(**_day(JUNE1, 5)))
    # a: 3 days; b, c: 1 day; d: 2 days.
    assert stickiness.intervals == 5
    assert [(p.intervals, p.users, p.cumulative_users) for p in stickiness.points] == [
        (1, 2, 4),
        (2, 1, 2),
        (3, 1, 1),
        (4, 0, 0),
        (5, 0, 0),
    ]
    weekly = analytics.stickiness(StickinessQuery(**_day(JUNE1, 5), interval=Interval.WEEK))
    # 1 June 2026 is a Monday: days 0-4 are one week.
    assert [(p.users, p.cumulative_users) for p in weekly.points] == [(4, 4)]


def test_dst_change_in_a_timezone(analytics: BankingPerformanceAnalytics) -> None:
    london = {"timezone": "Europe/London"}
    start = datetime(2026, 3, 28, tzinfo=UTC)  # London midnight (GMT)
    end = datetime(2026, 3, 30, 23, tzinfo=UTC)  # London midnight on the 31st (BST)
    lifecycle = analytics.lifecycle(LifecycleQuery(date_from=start, date_to=end, **london))
    # Local days 28, 29 (23 hours long) and 30: active on the 28th and the 30th.
    assert [p.start for p in lifecycle.points] == [
        start,
        start + timedelta(days=1),
        start + timedelta(days=2, hours=-1),
    ]
    got = [(p.new, p.returning, p.resurrecting, p.dormant) for p in lifecycle.points]
    assert got == [(1, 0, 0, 0), (0, 0, 0, -1), (0, 0, 1, 0)]
    # In UTC the same events fall on consecutive days: new, then returning.
    utc = analytics.lifecycle(LifecycleQuery(date_from=start, date_to=start + timedelta(days=2)))
    assert [(p.new, p.returning) for p in utc.points] == [(1, 0), (0, 1)]
    heat = analytics.behavior.engagement(EngagementQuery(date_from=start, date_to=end, **london))
    # 23:30 GMT on Saturday the 28th; 00:30 BST on Monday the 30th.
    assert [(c.weekday, c.hour, c.events) for c in heat.heat_map] == [(1, 0, 1), (6, 23, 1)]
    assert [p.dau for p in heat.series] == [1, 0, 1]


def test_interval_numbers_round_trip_across_dst() -> None:
    for interval in Interval:
        for moment in (MARCH28 + timedelta(hours=h) for h in range(0, 72, 5)):
            index = index_of(moment, interval, "Europe/London")
            assert start_of(index, interval, "Europe/London") <= moment
            assert moment < start_of(index + 1, interval, "Europe/London")


# -- engagement -----------------------------------------------------------------------------


def test_engagement_active_users_power_users_and_patterns(
    analytics: BankingPerformanceAnalytics,
) -> None:
    engagement = analytics.behavior.engagement(EngagementQuery(**_day(AUG10, 6)))
    assert engagement.users == 3
    assert [(p.dau, p.wau, p.mau) for p in engagement.series] == [
        (2, 2, 2),  # 10th: e1, e3 (e3 also on the 9th)
        (1, 2, 2),
        (1, 3, 3),  # 12th: e2 joins
        (1, 3, 3),
        (0, 3, 3),
        (0, 3, 3),
    ]
    assert engagement.series[0].stickiness == 1.0
    # L28 (19 July - 15 August): e1 3 days, e2 1 day, e3 2 days (the 9th and the 10th).
    assert engagement.power_users[:4] == [1, 1, 1, 0]
    assert sum(engagement.power_users) == 3
    features = {f.feature: f for f in engagement.by_feature}
    assert features["budget_tracking"].power_users[:2] == [0, 2]
    assert features["goal_setting"].power_users[:1] == [2]
    assert (features["budget_tracking"].users, features["budget_tracking"].mau) == (2, 2)
    # Lift: both · N / (n_a · n_b).
    lifts = {(c.feature_a, c.feature_b): (c.users_both, c.lift) for c in engagement.co_usage}
    assert lifts == {
        ("bill_reminders", "budget_tracking"): (1, 1 * 3 / (1 * 2)),
        ("budget_tracking", "goal_setting"): (1, 1 * 3 / (2 * 2)),
    }
    # 10 August 2026 is a Monday.
    assert [(c.weekday, c.hour, c.events, c.users) for c in engagement.heat_map] == [
        (1, 9, 3, 2),
        (2, 9, 1, 1),
        (3, 9, 1, 1),
        (4, 9, 1, 1),
    ]
    # First use: e1 budget then goal (24 h later); e2 goal; e3 bill and budget at once
    # (ties by name: bill first).
    first = {u.feature: u for u in engagement.first_use}
    assert (first["budget_tracking"].users, first["budget_tracking"].mean_position) == (2, 1.5)
    assert first["goal_setting"].first_share == pytest.approx(1 / 3)
    assert first["bill_reminders"].mean_position == 1.0
    assert first["goal_setting"].median_hours_after_first_event == 0.0


def test_one_users_engagement(analytics: BankingPerformanceAnalytics) -> None:
    mine = analytics.behavior.user_engagement("e1", EngagementQuery(**_day(AUG10, 6)))
    assert (mine.days, mine.active_days, mine.events) == (6, 3, 3)
    assert [(f.feature, f.events, f.active_days) for f in mine.features] == [
        ("budget_tracking", 2, 2),
        ("goal_setting", 1, 1),
    ]


# -- bounds ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"date_to": JUNE1 + timedelta(days=MAX_INTERVALS + 1)}, "at most 400"),
        ({"interval": Interval.HOUR, "date_to": JUNE1 + timedelta(days=17)}, "hour intervals"),
        ({"timezone": "Mars/Olympus"}, "not an IANA timezone"),
        ({"date_to": JUNE1}, "must be after start"),
    ],
)
def test_out_of_bounds_queries_say_which_part(fields: dict[str, object], message: str) -> None:
    with pytest.raises(BehaviorQueryError, match=message):
        StickinessQuery(**{**_day(JUNE1), **fields})  # type: ignore[arg-type]


def test_session_gap_and_engagement_interval_are_bounded() -> None:
    with pytest.raises(BehaviorQueryError, match="gap"):
        SessionsQuery(**_day(JUNE1), gap=timedelta(seconds=10))
    with pytest.raises(BehaviorQueryError, match="by day"):
        EngagementQuery(**_day(JUNE1), interval=Interval.WEEK)
