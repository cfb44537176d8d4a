"""Stripe events mapped to our ``subscription`` snapshots (pure: no store, no HTTP).

Payloads are in the shape of Stripe's published fixtures (see stripe_payloads.py), in
both API eras; every expected snapshot is written out by hand.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from banking_analytics.ingest import StripeEventError, map_stripe_event
from stripe_payloads import (
    APRIL_1,
    BASIL,
    LEGACY,
    MARCH_1,
    basil_invoice,
    coupon,
    discount,
    event,
    invoice,
    invoice_line,
    item,
    price,
    subscription,
)

MARCH_1_ISO = "2026-03-01T00:00:00+00:00"
APRIL_1_ISO = "2026-04-01T00:00:00+00:00"
MID_MARCH = MARCH_1 + 14 * 86_400
MID_MARCH_ISO = "2026-03-15T00:00:00+00:00"
DAY = 86_400
NAMESPACE = uuid.UUID("6f1c3f43-3d55-5c3e-9a55-57a1b5e0c0de")


def snapshot(event_id: str, item_id: str, **fields: Any) -> dict[str, Any]:
    """The snapshot expected for item ``item_id`` of ``sub_1`` from Stripe event ``event_id``
    (defaults: a 20.00 USD monthly premium seat, active, no discount), with ``fields``."""
    era = fields.pop("era", BASIL)
    etype = fields.pop("etype", "customer.subscription.created")
    sub = fields.pop("sub", "sub_1")
    base: dict[str, Any] = {
        "event_type": "subscription",
        "event_id": str(uuid.uuid5(NAMESPACE, f"{event_id}:{item_id}")),
        "occurred_at": MARCH_1_ISO,
        "user_id": "cus_NffrFeUfNV2Hib",
        "kind": "subscribed",
        "subscription_id": f"{sub}:{item_id}",
        "plan": "price_premium_m",
        "tier": "premium",
        "unit_amount": 2000,
        "interval": "month",
        "interval_count": 1,
        "quantity": 1,
        "discount_percent": None,
        "discount_amount": None,
        "discount_duration": None,
        "discount_months": None,
        "period_end": APRIL_1_ISO,
        "currency": "USD",
        "status": "active",
        "amount": None,
        "attributed_feature": None,
        "attribution_source": None,
        "properties": {
            "source": "stripe",
            "stripe_event_id": event_id,
            "stripe_event_type": etype,
            "stripe_api_version": era,
            "stripe_subscription_id": sub,
            "stripe_item_id": item_id,
        },
    }
    assert set(fields) <= set(base), set(fields) - set(base)
    return {**base, **fields}


def premium(era: str, quantity: int = 1, **kwargs: Any) -> dict[str, Any]:
    return item(
        "si_a",
        price("price_premium_m", 2000, tier="premium"),
        quantity,
        subscription="sub_1",
        era=era,
        **kwargs,
    )


def contract_mrr(e: dict[str, Any]) -> int:
    """MRR of a snapshot by the revenue contract's rules 2 and 4 (an independent reading
    of the mapped fields; integer arithmetic, half up)."""
    gross = e["unit_amount"] * e["quantity"]
    percent_off = (2 * gross * int(e["discount_percent"] or 0) + 100) // 200
    net = max(gross - percent_off - (e["discount_amount"] or 0), 0)
    ic = e["interval_count"]
    n, d = {"month": (1, ic), "year": (1, 12 * ic), "week": (52, 12 * ic), "day": (365, 12 * ic)}[
        e["interval"]
    ]
    return (2 * net * n + d) // (2 * d)


# -- created, both eras -------------------------------------------------------------------


@pytest.mark.parametrize("era", [LEGACY, BASIL])
def test_a_created_subscription_is_one_snapshot_per_item_in_both_eras(era: str) -> None:
    sub = subscription("sub_1", [premium(era)], era=era)
    mapped = map_stripe_event(
        event("evt_1", "customer.subscription.created", MARCH_1, sub, era=era)
    )
    assert mapped.ignored is None
    assert mapped.warnings == ()
    assert list(mapped.events) == [snapshot("evt_1", "si_a", era=era)]


def test_yearly_seats_and_a_legacy_discount_give_the_vendors_figures() -> None:
    """4 yearly seats at $500 -> $166.67 MRR; $120 a year with 10% off -> $9 (2024-06-20:
    the period on the subscription, the singular ``discount``)."""
    seats = item(
        "si_seats",
        price("price_team_y", 50000, "year", tier="team"),
        4,
        subscription="sub_1",
        era=LEGACY,
    )
    sub = subscription("sub_1", [seats], era=LEGACY, period=(MARCH_1, MARCH_1 + 365 * 86_400))
    (seats_event,) = map_stripe_event(
        event("evt_seats", "customer.subscription.created", MARCH_1, sub, era=LEGACY)
    ).events
    assert seats_event == snapshot(
        "evt_seats",
        "si_seats",
        era=LEGACY,
        plan="price_team_y",
        tier="team",
        unit_amount=50000,
        interval="year",
        quantity=4,
        period_end="2027-03-01T00:00:00+00:00",
    )
    assert contract_mrr(seats_event) == 16667

    ten_off = discount("di_10", coupon("TENOFF", percent_off=10.0), LEGACY, "sub_2", MARCH_1)
    basic = item(
        "si_b", price("price_basic_y", 12000, "year", tier="plus"), subscription="sub_2", era=LEGACY
    )
    sub2 = subscription("sub_2", [basic], era=LEGACY, legacy_discount=ten_off)
    mapped = map_stripe_event(
        event("evt_b", "customer.subscription.created", MARCH_1, sub2, era=LEGACY)
    )
    assert mapped.warnings == ()  # the listed id of the singular discount is not "unreadable"
    (basic_event,) = mapped.events
    assert (
        basic_event["discount_percent"],
        basic_event["discount_amount"],
        basic_event["discount_duration"],
        basic_event["discount_months"],
    ) == (10.0, None, "forever", None)
    assert contract_mrr(basic_event) == 900


def test_several_items_are_several_ledger_subscriptions_and_share_an_amount_off() -> None:
    """Items of 10000 and 5000 a month and a subscription-level 30.00 off: the amount is
    split 2:1 (2000 and 1000), so the items still sum to the invoice."""
    a = item("si_a", price("price_core", 10000, tier="premium"), subscription="sub_1", era=BASIL)
    b = item("si_b", price("price_addon", 2500, tier="addon"), 2, subscription="sub_1", era=BASIL)
    off = discount(
        "di_30",
        coupon("THIRTY", amount_off=3000, duration="repeating", duration_in_months=3),
        BASIL,
        "sub_1",
        MARCH_1,
    )
    sub = subscription("sub_1", [a, b], era=BASIL, discounts=[off])
    events = map_stripe_event(
        event("evt_2", "customer.subscription.created", MARCH_1, sub, era=BASIL)
    ).events
    shared = {"discount_duration": "repeating", "discount_months": 3}
    assert list(events) == [
        snapshot(
            "evt_2", "si_a", plan="price_core", unit_amount=10000, discount_amount=2000, **shared
        ),
        snapshot(
            "evt_2",
            "si_b",
            plan="price_addon",
            tier="addon",
            unit_amount=2500,
            quantity=2,
            discount_amount=1000,
            **shared,
        ),
    ]
    assert sum(contract_mrr(e) for e in events) == 15000 - 3000


def test_an_uneven_amount_off_gives_the_odd_cents_to_the_largest_remainders() -> None:
    items = [
        item(f"si_{n}", price(f"price_{n}", 1000), subscription="sub_1", era=BASIL) for n in "xyz"
    ]
    off = discount("di_1", coupon("TEN", amount_off=1000), BASIL, "sub_1", MARCH_1)
    sub = subscription("sub_1", items, era=BASIL, discounts=[off])
    events = map_stripe_event(
        event("evt_3", "customer.subscription.created", MARCH_1, sub, era=BASIL)
    ).events
    assert [e["discount_amount"] for e in events] == [334, 333, 333]


def test_item_level_discounts_come_first_and_unexpanded_ones_are_warned_about() -> None:
    own = discount(
        "di_item", coupon("HALF", percent_off=50.0, duration="once"), BASIL, "sub_1", MARCH_1
    )
    sub = subscription(
        "sub_1",
        [premium(BASIL, discounts=[own])],
        era=BASIL,
        discounts=["di_unexpanded"],
    )
    mapped = map_stripe_event(
        event("evt_4", "customer.subscription.created", MARCH_1, sub, era=BASIL)
    )
    assert list(mapped.events) == [
        snapshot("evt_4", "si_a", discount_percent=50.0, discount_duration="once")
    ]
    assert len(mapped.warnings) == 1
    assert "di_unexpanded is not expanded" in mapped.warnings[0]


def test_metered_tiered_and_decimal_prices() -> None:
    metered = item(
        "si_m", price("price_api", 5, usage_type="metered"), subscription="sub_1", era=BASIL
    )
    tiered = item(
        "si_t", price("price_tier", None, billing_scheme="tiered"), subscription="sub_1", era=BASIL
    )
    decimal = item(
        "si_d",
        price("price_dec", None, unit_amount_decimal="1999.5", tier="plus"),
        subscription="sub_1",
        era=BASIL,
    )
    sub = subscription("sub_1", [metered, tiered, decimal], era=BASIL)
    mapped = map_stripe_event(
        event("evt_5", "customer.subscription.created", MARCH_1, sub, era=BASIL)
    )
    assert list(mapped.events) == [
        snapshot("evt_5", "si_d", plan="price_dec", tier="plus", unit_amount=2000)
    ]
    assert [w.split(":")[0] for w in mapped.warnings] == ["item si_m skipped", "item si_t skipped"]

    only_metered = subscription("sub_1", [metered], era=BASIL)
    mapped = map_stripe_event(
        event("evt_6", "customer.subscription.created", MARCH_1, only_metered, era=BASIL)
    )
    assert mapped.events == ()
    assert mapped.ignored == "the subscription has no licensed per-unit price (no MRR)"


def test_metadata_names_the_user_and_the_attribution_when_valid() -> None:
    metadata = {
        "user_id": "user_981",
        "attributed_feature": "budget_tracking",
        "attribution_source": "paywall",
    }
    sub = subscription("sub_1", [premium(BASIL)], era=BASIL, metadata=metadata)
    (e,) = map_stripe_event(
        event("evt_7", "customer.subscription.created", MARCH_1, sub, era=BASIL)
    ).events
    assert (e["user_id"], e["attributed_feature"], e["attribution_source"]) == (
        "user_981",
        "budget_tracking",
        "paywall",
    )
    bad = {"user_id": "has spaces", "attributed_feature": "crypto_trading"}
    sub = subscription("sub_1", [premium(BASIL)], era=BASIL, metadata=bad)
    mapped = map_stripe_event(
        event("evt_8", "customer.subscription.created", MARCH_1, sub, era=BASIL)
    )
    (e,) = mapped.events
    assert (e["user_id"], e["attributed_feature"]) == ("cus_NffrFeUfNV2Hib", None)
    assert mapped.warnings == (
        "metadata.attributed_feature 'crypto_trading' is not a banking feature",
    )


# -- lifecycle ----------------------------------------------------------------------------


def _updated(
    event_id: str,
    after: dict[str, Any],
    previous: dict[str, Any],
    at: int = MID_MARCH,
    era: str = BASIL,
) -> list[dict[str, Any]]:
    return list(
        map_stripe_event(
            event(event_id, "customer.subscription.updated", at, after, era=era, previous=previous)
        ).events
    )


UPDATED = {"etype": "customer.subscription.updated", "occurred_at": MID_MARCH_ISO}


def test_a_trial_starts_then_converts() -> None:
    trial = (MARCH_1, MID_MARCH)
    sub = subscription(
        "sub_1", [premium(BASIL, period=trial)], era=BASIL, status="trialing", trial=trial
    )
    (started,) = map_stripe_event(
        event("evt_t", "customer.subscription.created", MARCH_1, sub, era=BASIL)
    ).events
    assert started == snapshot(
        "evt_t", "si_a", kind="trial_started", status="trialing", period_end=MID_MARCH_ISO
    )
    paid = subscription(
        "sub_1",
        [premium(BASIL, period=(MID_MARCH, MID_MARCH + 31 * 86_400))],
        era=BASIL,
        trial=trial,
    )
    assert _updated("evt_c", paid, {"status": "trialing"}) == [
        snapshot(
            "evt_c", "si_a", kind="subscribed", period_end="2026-04-15T00:00:00+00:00", **UPDATED
        )
    ]


@pytest.mark.parametrize("era", [LEGACY, BASIL])
def test_more_seats_is_an_upgrade_and_a_cheaper_price_a_downgrade(era: str) -> None:
    before_items = {"data": [premium(era, 1)], "object": "list"}
    after = subscription("sub_1", [premium(era, 3)], era=era)
    assert _updated("evt_u", after, {"items": before_items}, era=era) == [
        snapshot("evt_u", "si_a", kind="upgraded", quantity=3, era=era, **UPDATED)
    ]
    cheaper = item("si_a", price("price_plus_m", 900, tier="plus"), subscription="sub_1", era=era)
    after = subscription("sub_1", [cheaper], era=era)
    assert _updated("evt_d", after, {"items": before_items}, era=era) == [
        snapshot(
            "evt_d",
            "si_a",
            kind="downgraded",
            plan="price_plus_m",
            tier="plus",
            unit_amount=900,
            era=era,
            **UPDATED,
        )
    ]


def test_a_monthly_to_yearly_switch_compares_monthly_values() -> None:
    """2000 a month (2000/month) to 21600 a year (1800/month): a downgrade."""
    yearly = item(
        "si_a",
        price("price_premium_y", 21600, "year", tier="premium"),
        subscription="sub_1",
        era=BASIL,
    )
    after = subscription("sub_1", [yearly], era=BASIL)
    (e,) = _updated("evt_y", after, {"items": {"data": [premium(BASIL)], "object": "list"}})
    assert (e["kind"], e["unit_amount"], e["interval"]) == ("downgraded", 21600, "year")


def test_a_removed_item_is_sent_once_more_as_canceled() -> None:
    addon = item("si_b", price("price_addon", 500, tier="addon"), subscription="sub_1", era=BASIL)
    after = subscription("sub_1", [premium(BASIL)], era=BASIL)
    events = _updated(
        "evt_r", after, {"items": {"data": [premium(BASIL), addon], "object": "list"}}
    )
    assert events == [
        snapshot("evt_r", "si_a", kind="downgraded", **UPDATED),
        snapshot(
            "evt_r",
            "si_b",
            kind="downgraded",
            plan="price_addon",
            tier="addon",
            unit_amount=500,
            status="canceled",
            **UPDATED,
        ),
    ]


def test_a_renewal_or_a_metadata_change_is_ignored() -> None:
    after = subscription(
        "sub_1", [premium(BASIL, period=(APRIL_1, APRIL_1 + 30 * 86_400))], era=BASIL
    )
    previous = {"items": {"data": [premium(BASIL)], "object": "list"}, "latest_invoice": "in_1"}
    mapped = map_stripe_event(
        event(
            "evt_n", "customer.subscription.updated", APRIL_1, after, era=BASIL, previous=previous
        )
    )
    assert mapped.events == ()
    assert (
        mapped.ignored
        == "no field the revenue ledger reads changed (changed: items, latest_invoice)"
    )


@pytest.mark.parametrize("era", [LEGACY, BASIL])
def test_cancel_at_period_end_is_a_cancellation_still_active_until_then(era: str) -> None:
    ending = subscription("sub_1", [premium(era)], era=era, cancel_at_period_end=True)
    assert _updated(
        "evt_x", ending, {"cancel_at_period_end": False, "cancel_at": None}, era=era
    ) == [snapshot("evt_x", "si_a", kind="canceled", status="active", era=era, **UPDATED)]
    kept = subscription("sub_1", [premium(era)], era=era)
    assert _updated(
        "evt_k", kept, {"cancel_at_period_end": True, "cancel_at": APRIL_1}, era=era
    ) == [snapshot("evt_k", "si_a", kind="reactivated", era=era, **UPDATED)]


def test_deleted_is_canceled() -> None:
    gone = subscription("sub_1", [premium(BASIL)], era=BASIL, status="canceled")
    (e,) = map_stripe_event(
        event("evt_del", "customer.subscription.deleted", APRIL_1, gone, era=BASIL)
    ).events
    assert e == snapshot(
        "evt_del", "si_a", kind="canceled", status="canceled", occurred_at=APRIL_1_ISO,
        etype="customer.subscription.deleted",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("was", "now", "kind", "status"),
    [
        ("active", "past_due", "payment_failed", "past_due"),
        ("past_due", "active", "payment_succeeded", "active"),
        ("past_due", "unpaid", "payment_failed", "unpaid"),
        ("unpaid", "active", "reactivated", "active"),
        ("active", "paused", "canceled", "paused"),
        ("paused", "active", "reactivated", "active"),
        ("incomplete", "active", "subscribed", "active"),
        ("incomplete", "incomplete_expired", "canceled", "canceled"),
    ],
)
def test_status_changes(was: str, now: str, kind: str, status: str) -> None:
    after = subscription("sub_1", [premium(BASIL)], era=BASIL, status=now)
    assert _updated("evt_s", after, {"status": was}) == [
        snapshot("evt_s", "si_a", kind=kind, status=status, **UPDATED)
    ]


def test_an_incomplete_subscription_is_created_unpaid() -> None:
    """Created before its first payment (``incomplete``): no MRR until it is paid."""
    sub = subscription("sub_1", [premium(BASIL)], era=BASIL, status="incomplete")
    (e,) = map_stripe_event(
        event("evt_i", "customer.subscription.created", MARCH_1, sub, era=BASIL)
    ).events
    assert e == snapshot("evt_i", "si_a", status="unpaid")


def test_a_zero_quantity_item_is_sent_canceled() -> None:
    after = subscription("sub_1", [premium(BASIL, 0)], era=BASIL)
    previous = {"items": {"data": [premium(BASIL, 2)], "object": "list"}}
    assert _updated("evt_0", after, previous) == [
        snapshot("evt_0", "si_a", kind="downgraded", status="canceled", **UPDATED)
    ]


def test_event_ids_are_stable_and_distinct_per_item() -> None:
    b = item("si_b", price("price_addon", 500), subscription="sub_1", era=BASIL)
    sub = subscription("sub_1", [premium(BASIL), b], era=BASIL)
    payload = event("evt_same", "customer.subscription.created", MARCH_1, sub, era=BASIL)
    first = [e["event_id"] for e in map_stripe_event(payload).events]
    again = [e["event_id"] for e in map_stripe_event(copy.deepcopy(payload)).events]
    assert first == again
    assert len(set(first)) == 2


# -- invoices, refunds, others ------------------------------------------------------------


def _legacy_premium_sub() -> dict[str, Any]:
    twenty = discount("di_20", coupon("TWENTY", percent_off=20.0), LEGACY, "sub_1", MARCH_1)
    return subscription("sub_1", [premium(LEGACY)], era=LEGACY, legacy_discount=twenty)


def test_a_paid_invoice_is_a_payment_with_the_amount_after_discounts() -> None:
    sub = _legacy_premium_sub()
    line = invoice_line(
        "il_1",
        sub["items"]["data"][0],
        amount=2000,
        discount_amounts=[{"amount": 400, "discount": "di_20"}],
    )
    paid = invoice("in_1", sub, amount_paid=1600, lines=[line], legacy_discount=sub["discount"])
    mapped = map_stripe_event(event("evt_p", "invoice.paid", MARCH_1 + 3600, paid, era=LEGACY))
    assert list(mapped.events) == [
        snapshot(
            "evt_p", "si_a", era=LEGACY, etype="invoice.paid", kind="payment_succeeded",
            occurred_at="2026-03-01T01:00:00+00:00", amount=1600,
            discount_percent=20.0, discount_duration="forever",
        )
    ]  # fmt: skip
    legacy_name = map_stripe_event(
        event("evt_q", "invoice.payment_succeeded", MARCH_1 + 3600, paid, era=LEGACY)
    )
    assert [e["kind"] for e in legacy_name.events] == ["payment_succeeded"]


def test_invoices_that_could_contradict_the_subscription_are_ignored() -> None:
    sub = _legacy_premium_sub()
    line = invoice_line("il_1", sub["items"]["data"][0], amount=0)
    trial_start = invoice(
        "in_0", sub, amount_paid=0, lines=[line], billing_reason="subscription_create"
    )
    mapped = map_stripe_event(event("evt_0", "invoice.paid", MARCH_1, trial_start, era=LEGACY))
    assert mapped.events == ()
    assert mapped.ignored is not None
    assert mapped.ignored.startswith("an invoice paid with 0")

    old = invoice_line(
        "il_2", sub["items"]["data"][0], amount=2000, period=(MARCH_1 - 31 * 86_400, MARCH_1)
    )
    late = invoice("in_2", sub, amount_paid=2000, lines=[old])
    mapped = map_stripe_event(event("evt_l", "invoice.paid", MID_MARCH, late, era=LEGACY))
    assert mapped.ignored == "no line of the invoice is a priced subscription item of its period"
    assert mapped.warnings == ("line il_2 skipped: its period does not cover the invoice's event",)

    proration = invoice_line("il_3", sub["items"]["data"][0], amount=700, proration=True)
    prorated = invoice("in_3", sub, amount_paid=700, lines=[proration])
    mapped = map_stripe_event(event("evt_pr", "invoice.paid", MID_MARCH, prorated, era=LEGACY))
    assert (mapped.events, mapped.warnings) == ((), ("line il_3 skipped: a proration",))


def basil_paid(period: tuple[int, int], metadata: dict[str, str]) -> dict[str, Any]:
    sub = subscription("sub_1", [premium(BASIL)], era=BASIL, metadata=metadata)
    return basil_invoice("in_9", sub, period=period)


FEB_28 = MARCH_1 - DAY


@pytest.mark.parametrize(
    ("period", "interval", "count", "period_end"),
    [
        ((MARCH_1, APRIL_1), "month", 1, APRIL_1_ISO),
        # Anchored on the 31st: 28 Feb to 31 Mar is one month.
        ((FEB_28, MARCH_1 + 30 * DAY), "month", 1, "2026-03-31T00:00:00+00:00"),
        ((MARCH_1, MARCH_1 + 92 * DAY), "month", 3, "2026-06-01T00:00:00+00:00"),
        ((MARCH_1, MARCH_1 + 365 * DAY), "year", 1, "2027-03-01T00:00:00+00:00"),
        ((MARCH_1, MARCH_1 + 14 * DAY), "week", 2, MID_MARCH_ISO),
        ((MARCH_1, MARCH_1 + 10 * DAY), "day", 10, "2026-03-11T00:00:00+00:00"),
    ],
)
def test_a_basil_invoice_line_has_the_interval_of_its_period(
    period: tuple[int, int], interval: str, count: int, period_end: str
) -> None:
    paid = basil_paid(period, {"tier": "premium"})
    mapped = map_stripe_event(event("evt_9", "invoice.paid", MARCH_1 + 60, paid, era=BASIL))
    assert list(mapped.events) == [
        snapshot(
            "evt_9", "si_a", etype="invoice.paid", kind="payment_succeeded",
            occurred_at="2026-03-01T00:01:00+00:00", amount=2000, interval=interval,
            interval_count=count, period_end=period_end,
        )
    ]  # fmt: skip


def test_a_basil_invoice_naming_its_coupon_by_id_carries_no_discount() -> None:
    """As the subscription's own webhook snapshots cannot read it either: the two agree
    (MRR overstated by the coupon, said in a warning), and the amount is what was paid."""
    sub = subscription("sub_1", [premium(BASIL)], era=BASIL, discounts=["di_w"])
    (created,) = map_stripe_event(
        event("evt_1", "customer.subscription.created", MARCH_1, sub, era=BASIL)
    ).events
    paid = basil_invoice(
        "in_1",
        sub,
        period=(MARCH_1, APRIL_1),
        discount_amounts=[{"amount": 500, "discount": "di_w"}],
    )
    mapped = map_stripe_event(event("evt_9", "invoice.paid", MARCH_1 + 60, paid, era=BASIL))
    (e,) = mapped.events
    fields = ("unit_amount", "discount_percent", "discount_amount", "discount_duration")
    assert [e[f] for f in fields] == [created[f] for f in fields] == [2000, None, None, None]
    assert e["amount"] == 1500
    assert [w.split(":")[0] for w in mapped.warnings] == [
        "discount di_w is not expanded in the payload"
    ]


def test_a_basil_invoice_line_without_a_whole_period_is_skipped() -> None:
    paid = basil_paid((MARCH_1, MARCH_1 + 36 * 3600), {})
    mapped = map_stripe_event(event("evt_9", "invoice.paid", MARCH_1 + 60, paid, era=BASIL))
    assert mapped.events == ()
    assert mapped.warnings == (
        "line il_in_9 skipped: its price is named by id only and its period is not a whole "
        "number of days, weeks, months or years",
    )
    # Without a tier in the subscription's metadata, the product id stands for it.
    paid = basil_paid((MARCH_1, APRIL_1), {})
    (e,) = map_stripe_event(event("evt_9", "invoice.paid", MARCH_1 + 60, paid, era=BASIL)).events
    assert e["tier"] == "prod_N1bs61kegmuiNY"


@pytest.mark.parametrize(
    ("reason", "retry", "status"),
    [("subscription_cycle", MID_MARCH, "past_due"), ("subscription_create", MID_MARCH, "unpaid")],
)
def test_a_failed_payment_with_a_retry_ahead(reason: str, retry: int, status: str) -> None:
    sub = _legacy_premium_sub()
    line = invoice_line("il_1", sub["items"]["data"][0], amount=2000)
    failed = invoice(
        "in_f",
        sub,
        amount_paid=0,
        lines=[line],
        status="open",
        billing_reason=reason,
        next_payment_attempt=retry,
    )
    (e,) = map_stripe_event(
        event("evt_f", "invoice.payment_failed", MARCH_1 + 60, failed, era=LEGACY)
    ).events
    assert (e["kind"], e["status"], e["amount"], e["subscription_id"]) == (
        "payment_failed",
        status,
        None,
        "sub_1:si_a",
    )


def test_the_last_failure_and_refunds_and_other_types_are_ignored_with_a_reason() -> None:
    sub = _legacy_premium_sub()
    line = invoice_line("il_1", sub["items"]["data"][0], amount=2000)
    final = invoice(
        "in_f", sub, amount_paid=0, lines=[line], status="open", next_payment_attempt=None
    )
    mapped = map_stripe_event(event("evt_f", "invoice.payment_failed", MARCH_1, final, era=LEGACY))
    assert mapped.ignored is not None
    assert "no retry is left" in mapped.ignored
    charge = {
        "id": "ch_1",
        "object": "charge",
        "amount": 2000,
        "amount_refunded": 2000,
        "currency": "usd",
    }
    mapped = map_stripe_event(event("evt_r", "charge.refunded", MARCH_1, charge, era=LEGACY))
    assert mapped.ignored is not None
    assert mapped.ignored.startswith("a refund is not MRR")
    mapped = map_stripe_event(
        event("evt_c", "customer.created", MARCH_1, {"id": "cus_1"}, era=LEGACY)
    )
    assert mapped.ignored is not None
    assert mapped.ignored.startswith("event type customer.created is not mapped")
    assert (mapped.stripe_event_id, mapped.stripe_type, mapped.events) == (
        "evt_c",
        "customer.created",
        (),
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "a Stripe event is a JSON object"),
        ({"type": "invoice.paid", "created": 1, "data": {"object": {}}}, "string id and type"),
        ({"id": "evt_1", "type": "invoice.paid", "created": "x", "data": {}}, "created"),
        ({"id": "evt_1", "type": "invoice.paid", "created": 1, "data": {}}, "data.object"),
        (
            {"id": "evt_1", "type": "customer.subscription.created", "created": 1,
             "data": {"object": {"id": "sub_1", "object": "subscription", "status": "weird"}}},
            "unknown subscription status 'weird'",
        ),
    ],
)  # fmt: skip
def test_what_is_not_a_stripe_event_is_an_error(payload: Any, message: str) -> None:
    with pytest.raises(StripeEventError, match=message):
        map_stripe_event(payload)
