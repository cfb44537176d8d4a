"""The pandas reference of the revenue ledger against hand-worked vendor cases.

Each case is a small history of subscription events whose figures were worked out by
hand from the vendors' own examples (ChartMogul, ProfitWell, profitable's table; see
/work/shared/reference/revenue_analytics.md) and the contract's definitions. The same
histories run through our implementation on both engines in tests/test_revenue_vs_pandas.py.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any

import pandas as pd
import pytest

from revenue_reference import (
    MissingRateError,
    Policy,
    bucket_bounds,
    ledger,
    monthly,
    movements,
    points,
    series,
)

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
APR = datetime(2026, 4, 1, tzinfo=UTC)
MAY = datetime(2026, 5, 1, tzinfo=UTC)
_ids = iter(range(10**9))
DEFAULT = Policy()


def event(
    user: str,
    subscription: str,
    at: datetime,
    status: str = "active",
    unit_amount: int = 1000,
    interval: str = "month",
    **fields: Any,
) -> dict[str, Any]:
    """One stored subscription event (a snapshot after it); ids in order of creation."""
    number = next(_ids)
    kinds = {"active": "subscribed", "canceled": "canceled", "trialing": "trial_started"}
    row: dict[str, Any] = {
        "event_id": str(uuid.UUID(int=number)),
        "occurred_at": at,
        "received_at": at + timedelta(seconds=1),
        "user_id": user,
        "kind": kinds.get(status, "payment_failed"),
        "subscription_id": subscription,
        "plan": "premium",
        "tier": "premium",
        "unit_amount": unit_amount,
        "interval": interval,
        "interval_count": 1,
        "quantity": 1,
        "discount_percent": None,
        "discount_amount": None,
        "discount_duration": None,
        "discount_months": None,
        "period_end": None,
        "currency": "USD",
        "status": status,
        "amount": None,
    }
    row |= fields
    if row["period_end"] is not None and "received_at" not in fields:
        # Ingestion refuses a period_end more than 23 h after receipt.
        row["received_at"] = max(row["received_at"], row["period_end"])
    return row


def frame(events: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Events as the store answers them: a column per field, missing values as nulls."""
    return pd.DataFrame(list(events))


def history(events: Sequence[dict[str, Any]], policy: Policy = DEFAULT) -> list[tuple[Any, ...]]:
    """Every customer change as (customer, at, kind, amount), in time order."""
    changes = ledger(frame(events), policy).frame()
    return [(r.customer, r.at.to_pydatetime(), r.kind, r.amount) for r in changes.itertuples()]


def month_point(events: Sequence[dict[str, Any]], start: datetime, policy: Policy = DEFAULT) -> Any:
    end = (pd.Timestamp(start) + pd.DateOffset(months=1)).to_pydatetime()
    (point,) = series(frame(events), start, end, "month", "UTC", policy)
    return point


# -- the vendors' worked examples -------------------------------------------------------------


def gross_and_net_churn_case() -> list[dict[str, Any]]:
    """ChartMogul: $100 at the start of February; in it $10 churn, $10 contraction and
    $10 expansion."""
    return [
        event("a", "a1", JAN, unit_amount=3000),
        event("b", "b1", JAN, unit_amount=3000),
        event("c", "c1", JAN, unit_amount=3000),
        event("d", "d1", JAN, unit_amount=1000),
        event("d", "d1", FEB + timedelta(days=3), "canceled", unit_amount=1000),
        event("a", "a1", FEB + timedelta(days=5), unit_amount=2000, kind="downgraded"),
        event("b", "b1", FEB + timedelta(days=9), unit_amount=4000, kind="upgraded"),
    ]


def test_gross_mrr_churn_20_and_net_10_percent() -> None:
    point = month_point(gross_and_net_churn_case(), FEB)
    assert (point.mrr_start, point.churn, point.contraction, point.expansion) == (
        10000,
        -1000,
        -1000,
        1000,
    )
    assert point.mrr_end == point.mrr_start + point.net_new == 9000
    assert point.gross_mrr_churn_rate() == Fraction(20, 100)
    assert point.net_mrr_churn_rate() == Fraction(10, 100)
    # Paying at the start: a 20, b 40, c 30, d 0 at the end; capped at the start: 20, 30, 30.
    assert point.nrr() == Fraction(90, 100)
    assert point.grr() == Fraction(80, 100)
    assert point.quick_ratio() == Fraction(1000, 2000)
    assert (point.customers_start, point.customers_end, point.churned_customers) == (4, 3, 1)
    assert point.customer_churn_rate() == Fraction(1, 4)
    assert point.arpa() == 3000
    assert point.arr() == 108000


def lifecycle_case() -> list[dict[str, Any]]:
    """ChartMogul's lifecycle of a customer: 4 Gold seats yearly at $500 ($2,000), then 2
    Silver seats monthly at $30, Silver cancelled, then Gold, then back on Silver."""
    gold = {"unit_amount": 50000, "interval": "year", "quantity": 4}
    silver = {"unit_amount": 3000, "interval": "month", "quantity": 2}
    return [
        event("syncalytics", "gold", JAN, **gold),
        event("syncalytics", "silver", FEB, **silver),
        event("syncalytics", "silver", MAR, "canceled", **silver),
        event("syncalytics", "gold", APR, "canceled", **gold),
        event("syncalytics", "silver2", MAY, **silver),
    ]


def test_lifecycle_new_expansion_contraction_churn_reactivation() -> None:
    assert history(lifecycle_case()) == [
        ("syncalytics", JAN, "new", 16667),  # 2,000 / 12 = 166.666... -> $166.67
        ("syncalytics", FEB, "expansion", 6000),  # an added subscription
        ("syncalytics", MAR, "contraction", -6000),  # one of two cancelled
        ("syncalytics", APR, "churn", -16667),  # the last one cancelled
        ("syncalytics", MAY, "reactivation", 6000),
    ]


def test_yearly_with_ten_percent_off_is_nine_dollars() -> None:
    """ProfitWell: $120 a year with 10% off is $108 a year, $9 a month."""
    case = [event("p", "p1", JAN, unit_amount=12000, interval="year", discount_percent=10.0)]
    assert history(case) == [("p", JAN, "new", 900)]


def customer_churn_case() -> list[dict[str, Any]]:
    """ChartMogul: 100 customers at the start of February; 11 cancel in it, one of whom
    joined in February."""
    events = [event(f"c{i:03}", f"s{i:03}", JAN + timedelta(hours=i)) for i in range(100)]
    events += [
        event(f"c{i:03}", f"s{i:03}", FEB + timedelta(days=i), "canceled") for i in range(10)
    ]
    events += [
        event("late", "late1", FEB + timedelta(days=2)),
        event("late", "late1", FEB + timedelta(days=20), "canceled"),
    ]
    return events


def test_customer_churn_excludes_those_who_joined_in_the_period_by_default() -> None:
    point = month_point(customer_churn_case(), FEB)
    assert (point.customers_start, point.churned_customers) == (100, 10)
    assert point.customer_churn_rate() == Fraction(10, 100)
    counted = month_point(customer_churn_case(), FEB, Policy(count_joined_and_churned=True))
    assert counted.churned_customers == 11
    assert counted.customer_churn_rate() == Fraction(11, 100)
    assert (point.new_customers, point.churn) == (1, -11000)


#: (unit_amount, interval, interval_count, quantity) -> MRR in cents, worked by hand.
NORMALISATION = [
    ((9900, "month", 1, 1), 9900),  # monthly
    ((29700, "month", 3, 1), 9900),  # quarterly
    ((118800, "year", 1, 1), 9900),  # yearly
    ((12000, "year", 1, 3), 3000),  # yearly x 3 seats: 36,000 / 12
    ((10000, "year", 1, 1), 833),  # 833.33
    ((10000, "year", 2, 1), 417),  # 416.67
    ((2500, "week", 1, 1), 10833),  # 2,500 x 52 / 12 = 10,833.33
    ((1000, "week", 2, 1), 2167),  # 1,000 x 52 / 24 = 2,166.67
    ((100, "day", 1, 1), 3042),  # 100 x 365 / 12 = 3,041.67
    ((700, "day", 7, 1), 3042),  # 700 x 365 / 84 = 3,041.67
    ((1000, "month", 1, 5), 5000),  # 5 seats
    ((6, "year", 1, 1), 1),  # 0.5: half up
    ((18, "year", 1, 1), 2),  # 1.5: half up
    ((30, "year", 1, 1), 3),  # 2.5: half up, not to even
    ((1, "month", 2, 1), 1),  # 0.5
    ((3, "week", 13, 1), 1),  # 3 x 52 / 156 = 1.0 exactly
]


@pytest.mark.parametrize(("price", "mrr"), NORMALISATION, ids=[str(p) for p, _ in NORMALISATION])
def test_normalisation_table(price: tuple[int, str, int, int], mrr: int) -> None:
    unit, interval, count, quantity = price
    assert monthly(unit * quantity, interval, count) == mrr
    case = [
        event(
            "n",
            "n1",
            JAN,
            unit_amount=unit,
            interval=interval,
            interval_count=count,
            quantity=quantity,
        )
    ]
    assert history(case) == [("n", JAN, "new", mrr)]


def test_mixed_intervals_add_up_per_customer() -> None:
    """profitable: $50 a month and $120 a year for one customer is $60 a month."""
    case = [
        event("m", "monthly", JAN, unit_amount=5000),
        event("m", "yearly", JAN, unit_amount=12000, interval="year"),
    ]
    assert history(case) == [("m", JAN, "new", 6000)]  # one instant: one change


# -- discounts ------------------------------------------------------------------------------


def discount_case() -> list[dict[str, Any]]:
    """$10 a month: 10% off for 3 months from 15 Jan; 50% off once from 31 Jan (a monthly
    period: ends 28 Feb); $2 off forever; $20 a year 25% off once (a year)."""
    start = JAN + timedelta(days=14)
    return [
        event(
            "r",
            "r1",
            start,
            discount_percent=10.0,
            discount_duration="repeating",
            discount_months=3,
        ),
        # A later snapshot of the same discount keeps its start (15 Jan).
        event(
            "r",
            "r1",
            FEB,
            quantity=2,
            discount_percent=10.0,
            discount_duration="repeating",
            discount_months=3,
        ),
        event("o", "o1", JAN + timedelta(days=30), discount_percent=50.0, discount_duration="once"),
        event("f", "f1", JAN, discount_amount=200),
        event(
            "y",
            "y1",
            JAN,
            unit_amount=2400,
            interval="year",
            discount_percent=25.0,
            discount_duration="once",
        ),
    ]


def test_discount_expiry_is_an_expansion() -> None:
    changes = history(discount_case())
    assert ("r", JAN + timedelta(days=14), "new", 900) in changes
    assert ("r", FEB, "expansion", 900) in changes  # 2 seats at 10% off: 1,800
    assert ("r", APR + timedelta(days=14), "expansion", 200) in changes  # 15 Jan + 3 months
    assert ("o", JAN + timedelta(days=30), "new", 500) in changes
    assert ("o", datetime(2026, 2, 28, tzinfo=UTC), "expansion", 500) in changes
    assert ("f", JAN, "new", 800) in changes
    assert ("y", JAN, "new", 150) in changes  # 1,800 a year
    assert ("y", datetime(2027, 1, 1, tzinfo=UTC), "expansion", 50) in changes
    assert len(changes) == 8  # the forever discount never ends


def test_a_discount_added_later_is_a_contraction_and_an_expired_one_is_not_reapplied() -> None:
    case = [
        event("d", "d1", JAN),
        event(
            "d", "d1", FEB, discount_percent=20.0, discount_duration="repeating", discount_months=1
        ),
        # Still carrying the expired discount: the price is the full one.
        event(
            "d",
            "d1",
            APR,
            quantity=2,
            discount_percent=20.0,
            discount_duration="repeating",
            discount_months=1,
        ),
    ]
    assert history(case) == [
        ("d", JAN, "new", 1000),
        ("d", FEB, "contraction", -200),
        ("d", MAR, "expansion", 200),
        ("d", APR, "expansion", 1000),
    ]


def test_a_discount_never_takes_mrr_below_zero() -> None:
    case = [event("z", "z1", JAN, discount_amount=5000), event("z", "z2", FEB, unit_amount=700)]
    assert history(case) == [("z", FEB, "new", 700)]  # the first is free: no customer yet


# -- statuses and policies --------------------------------------------------------------------


def past_due_case() -> list[dict[str, Any]]:
    """$50 a month, past due from 1 Feb (two failed retries), cancelled 1 Mar; another
    customer past due from 1 Feb who pays on 20 Feb."""
    return [
        event("p", "p1", JAN, unit_amount=5000),
        event("p", "p1", FEB, "past_due", unit_amount=5000),
        event("p", "p1", FEB + timedelta(days=3), "past_due", unit_amount=5000),
        event("p", "p1", MAR, "canceled", unit_amount=5000),
        event("q", "q1", JAN, unit_amount=2000),
        event("q", "q1", FEB, "past_due", unit_amount=2000),
        event("q", "q1", FEB + timedelta(days=19), unit_amount=2000, kind="payment_succeeded"),
    ]


def test_past_due_keeps_mrr_until_cancelled_by_default() -> None:
    assert history(past_due_case()) == [
        ("p", JAN, "new", 5000),
        ("q", JAN, "new", 2000),
        ("p", MAR, "churn", -5000),
    ]


def test_past_due_grace_churns_after_n_days_of_the_run() -> None:
    grace = Policy(past_due_grace_days=7)
    assert history(past_due_case(), grace) == [
        ("p", JAN, "new", 5000),
        ("q", JAN, "new", 2000),
        ("p", FEB + timedelta(days=7), "churn", -5000),  # from the run's start, not the retry
        ("q", FEB + timedelta(days=7), "churn", -2000),
        ("q", FEB + timedelta(days=19), "reactivation", 2000),
    ]
    assert history(past_due_case(), Policy(past_due_grace_days=0))[2] == ("p", FEB, "churn", -5000)


def period_end_case() -> list[dict[str, Any]]:
    """Cancelled on 20 Jan, paid to 1 Feb; cancelled with its period already over; a
    subscription marked unpaid, paid to 10 Feb, renewed on 5 Feb."""
    return [
        event("e", "e1", JAN),
        event("e", "e1", JAN + timedelta(days=19), "canceled", period_end=FEB),
        event("g", "g1", JAN),
        event("g", "g1", JAN + timedelta(days=19), "canceled", period_end=JAN + timedelta(days=5)),
        event("u", "u1", JAN, unit_amount=3000),
        event(
            "u",
            "u1",
            JAN + timedelta(days=25),
            "unpaid",
            unit_amount=3000,
            period_end=FEB + timedelta(days=9),
        ),
        event("u", "u1", FEB + timedelta(days=4), unit_amount=4000),
    ]


def test_churn_is_recognised_at_cancellation_by_default() -> None:
    assert history(period_end_case()) == [
        ("e", JAN, "new", 1000),
        ("g", JAN, "new", 1000),
        ("u", JAN, "new", 3000),
        ("e", JAN + timedelta(days=19), "churn", -1000),
        ("g", JAN + timedelta(days=19), "churn", -1000),
        ("u", JAN + timedelta(days=25), "churn", -3000),
        ("u", FEB + timedelta(days=4), "reactivation", 4000),
    ]


def test_churn_at_period_end_moves_it_into_the_next_month() -> None:
    policy = Policy(churn_recognition="period_end")
    assert history(period_end_case(), policy) == [
        ("e", JAN, "new", 1000),
        ("g", JAN, "new", 1000),
        ("u", JAN, "new", 3000),
        ("g", JAN + timedelta(days=19), "churn", -1000),  # its period had ended
        ("e", FEB, "churn", -1000),
        ("u", FEB + timedelta(days=4), "expansion", 1000),  # renewed before its period ended
    ]
    january, february = series(frame(period_end_case()), JAN, MAR, "month", "UTC", policy)
    assert (january.churn, february.churn, february.expansion) == (-1000, -1000, 1000)
    # g joined on 1 Jan itself: not paying at the start of January (MRR before it).
    assert (january.churned_customers, february.churned_customers) == (0, 1)


def test_trials_paused_and_unpaid_carry_no_mrr() -> None:
    case = [
        event("t", "t1", JAN, "trialing"),
        event("t", "t1", FEB, kind="subscribed"),
        event("t", "t1", MAR, "paused"),
        event("t", "t1", APR),
        event("v", "v1", JAN, "unpaid"),
    ]
    assert history(case) == [
        ("t", FEB, "new", 1000),
        ("t", MAR, "churn", -1000),
        ("t", APR, "reactivation", 1000),
    ]


# -- order, ties and duplicates ---------------------------------------------------------------


def test_ties_are_broken_by_receipt_then_event_id_and_duplicates_count_once() -> None:
    at = JAN + timedelta(hours=5)
    later = event("x", "x1", at, unit_amount=3000, received_at=at + timedelta(minutes=2))
    earlier = event("x", "x1", at, unit_amount=2000, received_at=at + timedelta(minutes=1))
    same_receipt = [
        event(
            "y",
            "y1",
            at,
            unit_amount=500,
            received_at=at,
            event_id="00000000-0000-4000-8000-00000000000b",
        ),
        event(
            "y",
            "y1",
            at,
            unit_amount=700,
            received_at=at,
            event_id="00000000-0000-4000-8000-00000000000a",
        ),
    ]
    case = [later, earlier, *same_receipt, later]  # shuffled, and a duplicate
    assert history(case) == [("x", at, "new", 3000), ("y", at, "new", 500)]


def test_changes_of_one_customer_at_one_instant_are_one_change() -> None:
    """Moving to another subscription at once: one expansion, not a churn and a new."""
    case = [
        event("s", "old", JAN),
        event("s", "old", FEB, "canceled"),
        event("s", "new", FEB, unit_amount=2500),
    ]
    assert history(case) == [("s", JAN, "new", 1000), ("s", FEB, "expansion", 1500)]


# -- currencies ----------------------------------------------------------------------------


#: Rates to USD (one major unit of the currency in dollars) from a date.
RATES = (
    ("EUR", date(2025, 12, 1), "1.08"),
    ("EUR", date(2026, 2, 1), "1.10"),
    ("EUR", date(2026, 7, 1), "1.1234"),
    ("JPY", date(2025, 1, 1), "0.0067"),
    ("BHD", date(2025, 1, 1), "2.65"),
)
PRICED = Policy(rates=RATES)


def currency_case() -> list[dict[str, Any]]:
    return [
        event("eu", "eu1", JAN + timedelta(days=9), currency="EUR"),
        event("eu", "eu1", MAR, unit_amount=2000, currency="EUR"),  # still at 1.08
        event("jp", "jp1", JAN, unit_amount=1000, currency="JPY"),  # 1,000 yen, no minor unit
        event("bh", "bh1", JAN, unit_amount=10000, currency="BHD"),  # 10.000 dinar, fils
    ]


def test_currencies_convert_at_the_rate_of_the_first_event_with_their_exponents() -> None:
    assert history(currency_case(), PRICED) == [
        ("bh", JAN, "new", 2650),  # 10 x 2.65 = $26.50
        ("jp", JAN, "new", 670),  # 1,000 x 0.0067 = $6.70
        ("eu", JAN + timedelta(days=9), "new", 1080),
        ("eu", MAR, "expansion", 1080),  # 2,160: no movement from the rate of March
    ]


def test_a_missing_rate_names_the_currency_and_the_date() -> None:
    case = [event("ch", "ch1", JAN, currency="CHF")]
    with pytest.raises(MissingRateError, match=r"CHF on 2026-01-01"):
        history(case, PRICED)
    early = [event("eu", "eu1", datetime(2025, 11, 30, 23, tzinfo=UTC), currency="EUR")]
    with pytest.raises(MissingRateError, match=r"EUR on 2025-11-30"):
        history(early, PRICED)


# -- periods --------------------------------------------------------------------------------


def test_every_period_starts_where_the_last_ended_and_movements_add_up() -> None:
    """The identity over weeks in New York: start + movements = end, for every customer."""
    events = frame(lifecycle_case() + gross_and_net_churn_case() + past_due_case())
    book = ledger(events)
    bounds = bucket_bounds(JAN, datetime(2026, 6, 1, tzinfo=UTC), "week", "America/New_York")
    assert bounds[0][0] == pd.Timestamp("2025-12-29 05:00", tz="UTC")  # a Monday, local midnight
    assert all(e == s for (_, e), (s, _) in itertools.pairwise(bounds))
    series_ = points(book, bounds)
    for point in series_:
        assert point.mrr_start + point.net_new == point.mrr_end
        for customer, changes in book.changes.items():
            moved = sum(
                after - before for at, before, after, _ in changes if point.start <= at < point.end
            )
            assert book.mrr_before(customer, point.start) + moved == book.mrr_before(
                customer, point.end
            )
    assert sum(p.net_new for p in series_) == series_[-1].mrr_end > 0


def test_a_movement_at_a_bucket_boundary_belongs_to_the_bucket_it_starts() -> None:
    case = frame([event("b", "b1", FEB)])
    january, february = series(case, JAN, MAR, "month")
    assert (january.new, january.mrr_end, february.mrr_start, february.new) == (0, 0, 0, 1000)
    assert len(movements(case, FEB, MAR)) == 1
    assert movements(case, JAN, FEB).empty


def test_month_buckets_follow_the_local_calendar() -> None:
    bounds = bucket_bounds(JAN, APR, "month", "Asia/Kolkata")
    assert [s.isoformat() for s, _ in bounds] == [
        "2025-12-31T18:30:00+00:00",
        "2026-01-31T18:30:00+00:00",
        "2026-02-28T18:30:00+00:00",
        "2026-03-31T18:30:00+00:00",
    ]


def free_case() -> list[dict[str, Any]]:
    """A customer on a free plan, one with 100% off, one paying; the free plan is left."""
    return [
        event("free", "f1", JAN, unit_amount=0),
        event("coupon", "c1", JAN, discount_percent=100.0),
        event("paying", "p1", JAN),
        event("free", "f1", FEB + timedelta(days=3), "canceled", unit_amount=0),
    ]


def test_free_customers_count_only_with_the_policy_and_never_move_mrr() -> None:
    assert history(free_case()) == [("paying", JAN, "new", 1000)]
    assert history(free_case(), Policy(free_customers_are_customers=True)) == history(free_case())
    default = month_point(free_case(), FEB)
    counted = month_point(free_case(), FEB, Policy(free_customers_are_customers=True))
    assert (default.customers_start, default.customers_end) == (1, 1)
    assert (counted.customers_start, counted.customers_end) == (3, 2)
    assert (
        (default.mrr_start, default.mrr_end) == (counted.mrr_start, counted.mrr_end) == (1000, 1000)
    )
