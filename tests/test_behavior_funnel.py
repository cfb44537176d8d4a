"""Funnels, hand-worked from PostHog's documentation, on every engine.

One small world holds a user per semantic edge (named after it), in groups 70 days
apart so that each test's range reads its own group; each test asks a funnel and
checks who reaches which step, from the paged drop-off lists and the counts.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.analytics.behavior import (
    EventStep,
    Exclusion,
    FunnelOrder,
    FunnelQuery,
)
from banking_analytics.analytics.behavior._query import BehaviorQueryError
from behavior_flows_fixtures import module_analytics, store  # noqa: F401 (a fixture)

T0 = datetime(2026, 1, 5, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
#: Where each group of events starts.
GROUP = [g * 70 * D for g in range(5)]


def in_group(g: int) -> dict[str, datetime]:
    return {"date_from": T0 + GROUP[g], "date_to": T0 + GROUP[g] + 60 * D}


RANGE = in_group(0)
A = EventStep("behavior", "account_linking", "open")
B = EventStep("behavior", "spending_analysis", "view")
X = EventStep("behavior", "budget_tracking", "open")


def behaviour(user: str, feature: str, action: str, at: timedelta, **fields: Any) -> dict:
    return {
        "event_type": "behavior",
        "event_id": str(uuid.uuid4()),
        "user_id": user,
        "feature": feature,
        "action": action,
        "occurred_at": (T0 + at).isoformat(),
        **fields,
    }


def a(user: str, at: timedelta, **fields: Any) -> dict:
    return behaviour(user, "account_linking", "open", at, **fields)


def b(user: str, at: timedelta, **fields: Any) -> dict:
    return behaviour(user, "spending_analysis", "view", at, **fields)


def x(user: str, at: timedelta) -> dict:
    return behaviour(user, "budget_tracking", "open", at)


def linked(user: str, at: timedelta, outcome: str = "success") -> dict:
    return {
        "event_type": "connection_attempt",
        "event_id": str(uuid.uuid4()),
        "occurred_at": (T0 + at).isoformat(),
        "user_id": user,
        "attempt_id": f"a-{uuid.uuid4().hex[:8]}",
        "aggregator": "plaid",
        "institution_id": "ins_1",
        "feature": "account_linking",
        "flow": "new",
        "started_at": (T0 + at - timedelta(seconds=5)).isoformat(),
        "outcome": outcome,
    }


def synced(user: str, at: timedelta, outcome: str = "success") -> dict:
    return {
        "event_type": "sync_run",
        "event_id": str(uuid.uuid4()),
        "occurred_at": (T0 + at).isoformat(),
        "user_id": user,
        "connection_id": f"item-{user}",
        "aggregator": "plaid",
        "institution_id": "ins_1",
        "feature": "transaction_sync",
        "trigger": "initial",
        "started_at": (T0 + at).isoformat(),
        "outcome": outcome,
    }


def subscribed(user: str, at: timedelta) -> dict:
    return {
        "event_type": "subscription",
        "event_id": str(uuid.uuid4()),
        "occurred_at": (T0 + at).isoformat(),
        "user_id": user,
        "kind": "subscribed",
        "subscription_id": f"sub-{user}",
        "plan": "premium",
        "tier": "premium",
        "unit_amount": 999,
        "interval": "month",
        "currency": "USD",
        "status": "active",
    }


WORLD = [
    # B before A: ordered reaches step 1 only, unordered completes both.
    b("b_before_a", 1 * H),
    a("b_before_a", 2 * H),
    # An event between the steps: ordered converts, strict does not.
    a("between", 1 * H, platform="ios"),
    x("between", 2 * H),
    b("between", 3 * H),
    # Directly after: both convert (3 h apart).
    a("direct", 1 * H, platform="ios"),
    b("direct", 4 * H),
    # The conversion window of 14 days: 13 d 23 h converts, 14 d 1 h does not.
    a("in_window", 1 * H, platform="android"),
    b("in_window", 1 * H + 13 * D + 23 * H),
    a("past_window", 1 * H),
    b("past_window", 1 * H + 14 * D + 1 * H),
    # A later start that converts counts: the first A is too early for B.
    a("second_try", 0 * H, platform="web"),
    a("second_try", 20 * D, platform="android"),
    b("second_try", 21 * D),
]


def reached(analytics: BankingPerformanceAnalytics, query: FunnelQuery) -> dict[int, set[str]]:
    """The users whose path ends at each step, from the paged list (pages of 2)."""
    ends: dict[int, set[str]] = {}
    for step in range(1, len(query.steps) + 1):
        offset: int | None = 0
        found: list[str] = []
        while offset is not None:
            page = analytics.behavior.funnel_users(query, step, limit=2, offset=offset)
            assert page.total >= len(found) + len(page.users)
            found += page.users
            offset = page.next_offset
        assert found == sorted(found)
        ends[step] = set(found)
    return ends


@pytest.fixture(scope="module")
def world(module_analytics: BankingPerformanceAnalytics) -> BankingPerformanceAnalytics:  # noqa: F811
    g1, g2, g3, g4 = GROUP[1:]
    repeated = [
        a("once", g1 + 1 * H),
        b("once", g1 + 2 * H),
        a("twice", g1 + 1 * H),
        a("twice", g1 + 2 * H),
        b("twice", g1 + 3 * H),
        a("twice_no_b", g1 + 1 * H),
        b("twice_no_b", g1 + 2 * H),
        a("twice_no_b", g1 + 3 * H),
    ]
    excluded = [
        a("excluded", g2 + 1 * H),
        x("excluded", g2 + 2 * H),
        b("excluded", g2 + 3 * H),
        a("after_b", g2 + 1 * H),
        b("after_b", g2 + 2 * H),
        x("after_b", g2 + 3 * H),
        a("clean", g2 + 1 * H),
        b("clean", g2 + 2 * H),
    ]
    across = [
        linked("full", g3 + 1 * H),
        synced("full", g3 + 2 * H, "failure"),
        synced("full", g3 + 3 * H),
        b("full", g3 + 4 * H),
        subscribed("full", g3 + 5 * H),
        linked("no_sync", g3 + 1 * H),
        synced("no_sync", g3 + 2 * H, "failure"),
        b("no_sync", g3 + 4 * H),
        subscribed("no_sync", g3 + 5 * H),
        linked("failed_link", g3 + 1 * H, "failure"),
    ]
    sourced = [
        a("paywall", g4 + 1 * H, properties={"source": "paywall"}),
        b("paywall", g4 + 2 * H),
        a("email", g4 + 1 * H, properties={"source": "email"}),
        b("email", g4 + 2 * H),
    ]
    # Events at the same instant, in the order of their ids (UUID(int=n): n orders them);
    # no step 1 of the sourced funnel among them.
    tied = [
        a("tie_ab", g4 + 10 * H, event_id=str(uuid.UUID(int=1))),
        b("tie_ab", g4 + 10 * H, event_id=str(uuid.UUID(int=2))),
        b("tie_ba", g4 + 10 * H, event_id=str(uuid.UUID(int=3))),
        a("tie_ba", g4 + 10 * H, event_id=str(uuid.UUID(int=4))),
        a("tie_x", g4 + 10 * H),
        {**x("tie_x", g4 + 11 * H), "event_id": str(uuid.UUID(int=5))},
        b("tie_x", g4 + 11 * H, event_id=str(uuid.UUID(int=6))),
        a("tie_x_after", g4 + 10 * H),
        b("tie_x_after", g4 + 11 * H, event_id=str(uuid.UUID(int=7))),
        {**x("tie_x_after", g4 + 11 * H), "event_id": str(uuid.UUID(int=8))},
    ]
    store(module_analytics, [*WORLD, *repeated, *excluded, *across, *sourced, *tied])
    return module_analytics


def test_ordered_strict_and_unordered(world: BankingPerformanceAnalytics) -> None:
    ordered = FunnelQuery(steps=(A, B), **RANGE)
    assert reached(world, ordered) == {
        1: {"b_before_a", "past_window"},
        2: {"between", "direct", "in_window", "second_try"},
    }
    strict = FunnelQuery(steps=(A, B), order=FunnelOrder.STRICT, **RANGE)
    assert reached(world, strict) == {
        1: {"b_before_a", "between", "past_window"},
        2: {"direct", "in_window", "second_try"},
    }
    unordered = FunnelQuery(steps=(A, B), order=FunnelOrder.UNORDERED, **RANGE)
    assert reached(world, unordered) == {
        1: {"past_window"},
        2: {"b_before_a", "between", "direct", "in_window", "second_try"},
    }


def test_counts_conversion_and_time_to_convert(world: BankingPerformanceAnalytics) -> None:
    result = world.funnel(FunnelQuery(steps=(A, B), **RANGE))
    (total,) = result.series
    first, second = total.steps
    assert (first.users, second.users, second.dropped) == (6, 4, 2)
    assert second.conversion_from_first == second.conversion_from_previous == 4 / 6
    # Seconds to convert: between 2 h, direct 3 h, second_try 1 d, in_window 13 d 23 h.
    hours = sorted([2, 3, 24, 13 * 24 + 23])
    assert second.mean_seconds_from_previous == pytest.approx(sum(hours) * 3600 / 4)
    # Nearest rank: the smallest value with at least half the values at or below it.
    assert second.median_seconds_from_previous == 3 * 3600
    ttc = total.time_to_convert
    assert ttc.users == 4
    assert ttc.median_seconds == 3 * 3600
    assert ttc.percentiles == {"p10": 7200, "p25": 7200, "p50": 10800, "p75": 86400, "p90": 1206000}
    by_bin = {b.below_seconds: b.users for b in ttc.bins}
    assert by_bin[6 * 3600] == 2  # 2 h and 3 h
    assert by_bin[3 * 86400] == 1  # 1 day
    assert by_bin[None] == 1  # 13 d 23 h
    assert sum(by_bin.values()) == 4


def test_breakdown_is_first_touch_with_other_and_none(world: BankingPerformanceAnalytics) -> None:
    query = FunnelQuery(steps=(A, B), breakdown="platform", breakdown_limit=1, **RANGE)
    series = {s.breakdown_value: [st.users for st in s.steps] for s in world.funnel(query).series}
    # ios: between, direct. second_try converts from its android start (its web start
    # does not reach B): android = in_window + second_try. Two values of two users each:
    # the tie goes to the first by name, so ios is "(other)". No platform: b_before_a
    # and past_window, whose step-1 events carry none.
    assert series == {None: [6, 4], "android": [2, 2], "(other)": [2, 2], "(none)": [2, 0]}


def test_a_repeated_step_needs_a_second_event(world: BankingPerformanceAnalytics) -> None:
    query = FunnelQuery(steps=(A, A, B), **in_group(1))
    assert reached(world, query) == {1: {"once"}, 2: {"twice_no_b"}, 3: {"twice"}}


def test_only_steps_alike_in_their_values_count_as_repeated() -> None:
    """Steps of one shape (a feature and an action each) but other values are not a
    repeated step: on DuckDB they are chained by instant first, not on the exact key alone
    (every funnel of same-shaped steps once went the slow way)."""

    def repeated(steps: tuple[EventStep, ...], *exclusions: Exclusion) -> object:
        return FunnelQuery(steps=steps, exclusions=exclusions, **RANGE)._shape[-1]

    assert repeated((A, B)) is False
    assert repeated((A, B), Exclusion(X, 1, 2)) is False
    assert repeated((A, A, B)) is True
    assert repeated((A, B), Exclusion(A, 1, 2)) is True


def test_an_exclusion_between_steps_drops_the_user(world: BankingPerformanceAnalytics) -> None:
    query = FunnelQuery(steps=(A, B), exclusions=(Exclusion(X, 1, 2),), **in_group(2))
    assert reached(world, query) == {1: set(), 2: {"after_b", "clean"}}
    assert [s.users for s in world.funnel(query).series[0].steps] == [2, 2]


def test_events_at_one_instant_are_ordered_by_id(world: BankingPerformanceAnalytics) -> None:
    query = FunnelQuery(steps=(A, B), **in_group(4))
    converted = {"paywall", "email", "tie_ab", "tie_x_after"}  # A then B, nothing between
    assert reached(world, query) == {1: {"tie_ba"}, 2: {*converted, "tie_x"}}
    # tie_x's excluded event comes before its B (a lower id), tie_x_after's after it.
    excluding = FunnelQuery(steps=(A, B), exclusions=(Exclusion(X, 1, 2),), **in_group(4))
    assert reached(world, excluding) == {1: {"tie_ba"}, 2: converted}


def test_one_funnel_across_event_types(world: BankingPerformanceAnalytics) -> None:
    """Linked a bank → first successful sync → used spending analysis → subscribed."""

    query = FunnelQuery(
        steps=(
            EventStep("connection_attempt", action="success"),
            EventStep("sync_run", action="success"),
            EventStep("behavior", "spending_analysis", "view"),
            EventStep("subscription", action="subscribed"),
        ),
        **in_group(3),
    )
    assert reached(world, query) == {1: {"no_sync"}, 2: set(), 3: set(), 4: {"full"}}
    steps = world.funnel(query).series[0].steps
    assert [s.users for s in steps] == [2, 1, 1, 1]
    # The first successful sync came 2 h after the link (the failed one does not count).
    assert steps[1].median_seconds_from_previous == 2 * 3600


def test_property_filters_and_bad_definitions(world: BankingPerformanceAnalytics) -> None:
    paywall = EventStep("behavior", "account_linking", "open", {"properties.source": "paywall"})
    query = FunnelQuery(steps=(paywall, B), breakdown="properties.source", **in_group(4))
    assert {s.breakdown_value: s.steps[1].users for s in world.funnel(query).series} == {
        None: 1,
        "paywall": 1,
    }
    with pytest.raises(BehaviorQueryError, match="2 to 10 steps"):
        FunnelQuery(steps=(A,) * 11, **RANGE)
    with pytest.raises(BehaviorQueryError, match="not a column"):
        EventStep("behavior", where={"institution_id": "x"})
    with pytest.raises(BehaviorQueryError, match="conversion_window"):
        FunnelQuery(steps=(A, B), conversion_window=timedelta(days=91), **RANGE)
    with pytest.raises(BehaviorQueryError, match="ordered funnels only"):
        FunnelQuery(steps=(A, B), order="strict", exclusions=(Exclusion(X),), **RANGE)
