"""Retention, hand-worked from PostHog's documentation, on every engine.

Start event A (linking opened), return event B (spending analysis viewed), daily
periods. The users of the first world (June 2026, day ``d`` at 10:00 UTC):

* ``p``: A on day 0, B on day 2 (not day 1): a later period higher than an earlier one;
* ``q``: A on day 0, B on days 1 and 2;
* ``s``: A on days 0 and 2, B on day 3: in two cohorts when recurring, one when first-time;
* ``t``: A five days before the range and on day 1, B on day 2: a first start before the
  range puts them in no first-time cohort.

The range ends at noon on day 3, so day 3 is still in progress.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.analytics.behavior import (
    EventStep,
    RetentionCriterion,
    RetentionKind,
    RetentionQuery,
    RetentionResult,
)
from banking_analytics.analytics.behavior._query import BehaviorQueryError
from behavior_flows_fixtures import module_analytics, store  # noqa: F401 (a fixture)

T0 = datetime(2026, 6, 1, tzinfo=UTC)
A = EventStep("behavior", "account_linking", "open")
B = EventStep("behavior", "spending_analysis", "view")


def event(user: str, step: EventStep, at: datetime) -> dict[str, object]:
    assert step.feature is not None
    return {
        "event_type": "behavior",
        "event_id": str(uuid.uuid4()),
        "user_id": user,
        "feature": step.feature.value,
        "action": step.action,
        "occurred_at": at.isoformat(),
    }


def day(d: int) -> datetime:
    return T0 + timedelta(days=d, hours=10)


WORLD = [
    event("p", A, day(0)),
    event("p", B, day(2)),
    event("q", A, day(0)),
    event("q", B, day(1)),
    event("q", B, day(2)),
    event("s", A, day(0)),
    event("s", A, day(2)),
    event("s", B, day(3)),
    event("t", A, day(-5)),
    event("t", A, day(1)),
    event("t", B, day(2)),
]

# Europe/London moves its clocks forward at 01:00 UTC on 29 March 2026: from then on a
# London day starts at 23:00 UTC the day before. Each user starts on 28 March and
# returns late on 29 March UTC, which is already 30 March in London.
DST = [
    event("late", A, datetime(2026, 3, 28, 12, tzinfo=UTC)),
    event("late", B, datetime(2026, 3, 29, 23, 30, tzinfo=UTC)),
    event("early", A, datetime(2026, 3, 28, 23, 30, tzinfo=UTC)),
    event("early", B, datetime(2026, 3, 29, 23, 15, tzinfo=UTC)),
]


@pytest.fixture(scope="module")
def world(module_analytics: BankingPerformanceAnalytics) -> BankingPerformanceAnalytics:  # noqa: F811
    store(module_analytics, [*WORLD, *DST])
    return module_analytics


def grid(result: RetentionResult) -> list[tuple[int, list[int]]]:
    return [(c.users, [cell.users for cell in c.cells]) for c in result.cohorts]


def ask(analytics: BankingPerformanceAnalytics, **options: object) -> RetentionResult:
    return analytics.retention(
        RetentionQuery(
            date_from=T0,
            date_to=T0 + timedelta(days=3, hours=12),
            interval="day",
            start_event=A,
            return_event=B,
            **options,  # type: ignore[arg-type]
        )
    )


def test_recurring_on(world: BankingPerformanceAnalytics) -> None:
    result = ask(world)
    # Day 0: p, q, s; q returns day 1; p and q day 2 (higher than day 1); s day 3.
    assert grid(result) == [(3, [3, 1, 2, 1]), (1, [1, 1, 0]), (1, [1, 1]), (0, [0])]
    assert [c.percentage for c in result.cohorts[0].cells] == [1.0, 1 / 3, 2 / 3, 1 / 3]
    assert [[cell.in_progress for cell in c.cells] for c in result.cohorts] == [
        [False, False, False, True],
        [False, False, True],
        [False, True],
        [True],
    ]
    starts = [c.start for c in result.cohorts]
    assert starts == [T0 + timedelta(days=d) for d in range(4)]
    # Weighted over complete cells: period 1 = (1 + 1) / (3 + 1); period 2: day 0 only.
    assert [(m.percentage, m.cohorts) for m in result.mean] == [
        (1.0, 3),
        (0.5, 2),
        (2 / 3, 1),
        (None, 0),
    ]


def test_on_or_after_never_rises(world: BankingPerformanceAnalytics) -> None:
    result = ask(world, criterion=RetentionCriterion.ON_OR_AFTER)
    assert grid(result) == [(3, [3, 3, 3, 1]), (1, [1, 1, 0]), (1, [1, 1]), (0, [0])]


def test_first_time_cohorts(world: BankingPerformanceAnalytics) -> None:
    on = ask(world, kind=RetentionKind.FIRST_TIME)
    # s joins day 0 only; t's first start was before the range: no cohort.
    assert grid(on) == [(3, [3, 1, 2, 1]), (0, [0, 0, 0]), (0, [0, 0]), (0, [0])]
    after = ask(world, kind="first_time", criterion="on_or_after")
    assert grid(after) == [(3, [3, 3, 3, 1]), (0, [0, 0, 0]), (0, [0, 0]), (0, [0])]


def test_days_in_a_timezone_at_a_clock_change(world: BankingPerformanceAnalytics) -> None:
    def dst(timezone: str) -> RetentionResult:
        london = datetime(2026, 3, 28, tzinfo=UTC)  # midnight in London (GMT) too
        return world.retention(
            RetentionQuery(
                date_from=london,
                date_to=datetime(2026, 3, 30, 23, tzinfo=UTC),  # London's 31 March
                interval="day",
                timezone=timezone,
                start_event=A,
                return_event=B,
            )
        )

    london = dst("Europe/London")
    # Both returned on London's 30 March: two days after the cohort.
    assert grid(london) == [(2, [2, 0, 2]), (0, [0, 0]), (0, [0])]
    assert [c.start for c in london.cohorts] == [
        datetime(2026, 3, 28, tzinfo=UTC),
        datetime(2026, 3, 29, tzinfo=UTC),
        datetime(2026, 3, 29, 23, tzinfo=UTC),  # after the change: 23 h later
    ]
    assert not london.cohorts[0].cells[2].in_progress
    utc = dst("UTC")
    # In UTC both returned on 29 March, the next day.
    assert grid(utc)[0] == (2, [2, 2, 0])


def test_bad_definitions_are_refused() -> None:
    with pytest.raises(BehaviorQueryError, match="intervals"):
        RetentionQuery(
            date_from=T0,
            date_to=T0 + timedelta(days=30),
            interval="hour",
            start_event=A,
            return_event=B,
        )
    with pytest.raises(ValueError, match="sometimes"):
        RetentionQuery(
            date_from=T0,
            date_to=T0 + timedelta(days=3),
            start_event=A,
            return_event=B,
            criterion="sometimes",  # type: ignore[arg-type]
        )
