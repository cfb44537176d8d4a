"""Stripe event payloads in the shape of Stripe's published fixtures (stripe/openapi,
``openapi/fixtures3.json``, resources ``subscription``, ``subscription_item``, ``price``,
``discount``, ``invoice``), for the two API eras the connector reads:

* ``LEGACY`` (2024-06-20): ``current_period_start/end`` on the subscription, the
  singular ``discount`` object (and ``discounts`` listing discount ids);
* ``BASIL`` (2025-03-31.basil and later): ``current_period_start/end`` on each item,
  ``discounts[]`` on the subscription and on items, no singular ``discount``;
  discounts point at their coupon through ``source.coupon`` (2025-09-30.clover).

The fixtures' own numbers are synthetic (interval_count 797691627...): the numbers
here are made up to be realistic, and each test works its expected values by hand.
"""

from __future__ import annotations

import copy
from typing import Any

LEGACY = "2024-06-20"
BASIL = "2025-09-30.clover"

# 2026-03-01T00:00:00Z and a month later: the period the subscriptions below are in.
MARCH_1 = 1_772_323_200
APRIL_1 = MARCH_1 + 31 * 86_400


def price(
    price_id: str,
    unit_amount: int | None,
    interval: str = "month",
    interval_count: int = 1,
    *,
    tier: str | None = None,
    lookup_key: str | None = None,
    usage_type: str = "licensed",
    billing_scheme: str = "per_unit",
    unit_amount_decimal: str | None = None,
    currency: str = "usd",
) -> dict[str, Any]:
    return {
        "active": True,
        "billing_scheme": billing_scheme,
        "created": MARCH_1 - 86_400 * 90,
        "currency": currency,
        "custom_unit_amount": None,
        "id": price_id,
        "livemode": False,
        "lookup_key": lookup_key,
        "metadata": {"tier": tier} if tier else {},
        "nickname": None,
        "object": "price",
        "product": "prod_N1bs61kegmuiNY",
        "recurring": {
            "aggregate_usage": None,
            "interval": interval,
            "interval_count": interval_count,
            "meter": None,
            "usage_type": usage_type,
        },
        "tax_behavior": "unspecified",
        "tiers_mode": "graduated" if billing_scheme == "tiered" else None,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": unit_amount,
        "unit_amount_decimal": (
            unit_amount_decimal if unit_amount_decimal is not None else str(unit_amount)
        ),
    }


def coupon(
    coupon_id: str,
    *,
    percent_off: float | None = None,
    amount_off: int | None = None,
    duration: str = "forever",
    duration_in_months: int | None = None,
    currency: str | None = "usd",
) -> dict[str, Any]:
    return {
        "amount_off": amount_off,
        "created": MARCH_1 - 86_400 * 30,
        "currency": currency if amount_off is not None else None,
        "duration": duration,
        "duration_in_months": duration_in_months,
        "id": coupon_id,
        "livemode": False,
        "max_redemptions": None,
        "metadata": {},
        "name": None,
        "object": "coupon",
        "percent_off": percent_off,
        "redeem_by": None,
        "times_redeemed": 1,
        "valid": True,
    }


def discount(
    discount_id: str, the_coupon: dict[str, Any], era: str, subscription: str, start: int
) -> dict[str, Any]:
    """A Discount object: its coupon under ``coupon`` (legacy) or ``source.coupon``."""
    found: dict[str, Any] = {
        "checkout_session": None,
        "customer": "cus_NffrFeUfNV2Hib",
        "end": None,
        "id": discount_id,
        "invoice": None,
        "invoice_item": None,
        "object": "discount",
        "promotion_code": None,
        "start": start,
        "subscription": subscription,
        "subscription_item": None,
    }
    if era == LEGACY:
        found["coupon"] = the_coupon
    else:
        found["source"] = {"coupon": the_coupon, "type": "coupon"}
    return found


def item(
    item_id: str,
    the_price: dict[str, Any],
    quantity: int = 1,
    *,
    subscription: str,
    era: str,
    period: tuple[int, int] = (MARCH_1, APRIL_1),
    discounts: list[Any] | None = None,
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "billing_thresholds": None,
        "created": period[0],
        "id": item_id,
        "metadata": {},
        "object": "subscription_item",
        "price": the_price,
        "quantity": quantity,
        "subscription": subscription,
        "tax_rates": [],
    }
    if era != LEGACY:
        found["current_period_start"], found["current_period_end"] = period
        found["discounts"] = discounts or []
    return found


def subscription(
    sub_id: str,
    items: list[dict[str, Any]],
    *,
    era: str,
    status: str = "active",
    customer: str = "cus_NffrFeUfNV2Hib",
    period: tuple[int, int] = (MARCH_1, APRIL_1),
    legacy_discount: dict[str, Any] | None = None,
    discounts: list[Any] | None = None,
    cancel_at_period_end: bool = False,
    metadata: dict[str, str] | None = None,
    trial: tuple[int, int] | None = None,
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"enabled": False, "liability": None},
        "billing_cycle_anchor": period[0],
        "billing_thresholds": None,
        "cancel_at": period[1] if cancel_at_period_end else None,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": period[0],
        "currency": "usd",
        "customer": customer,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": discounts or [],
        "ended_at": None,
        "id": sub_id,
        "items": {
            "data": items,
            "has_more": False,
            "object": "list",
            "url": f"/v1/subscription_items?subscription={sub_id}",
        },
        "latest_invoice": None,
        "livemode": False,
        "metadata": metadata or {},
        "next_pending_invoice_item_invoice": None,
        "object": "subscription",
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": period[0],
        "status": status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": trial[1] if trial else None,
        "trial_start": trial[0] if trial else None,
    }
    if era == LEGACY:
        found["current_period_start"], found["current_period_end"] = period
        found["discount"] = legacy_discount
        if legacy_discount is not None:
            found["discounts"] = [legacy_discount["id"], *found["discounts"]]
    return found


def event(
    event_id: str,
    event_type: str,
    created: int,
    obj: dict[str, Any],
    *,
    era: str,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"object": copy.deepcopy(obj)}
    if previous is not None:
        data["previous_attributes"] = copy.deepcopy(previous)
    return {
        "api_version": era,
        "created": created,
        "data": data,
        "id": event_id,
        "livemode": False,
        "object": "event",
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def invoice(
    invoice_id: str,
    sub: dict[str, Any],
    *,
    amount_paid: int,
    lines: list[dict[str, Any]],
    status: str = "paid",
    billing_reason: str = "subscription_cycle",
    next_payment_attempt: int | None = None,
    legacy_discount: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An invoice of the 2024-06-20 shape (lines carry their whole price)."""
    return {
        "amount_due": sum(line["amount"] for line in lines),
        "amount_paid": amount_paid,
        "amount_remaining": 0 if status == "paid" else sum(line["amount"] for line in lines),
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "created": MARCH_1,
        "currency": "usd",
        "customer": sub["customer"],
        "discount": legacy_discount,
        "discounts": [legacy_discount["id"]] if legacy_discount else [],
        "id": invoice_id,
        "lines": {"data": lines, "has_more": False, "object": "list", "url": "/v1/invoices/x"},
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": next_payment_attempt,
        "object": "invoice",
        "paid": status == "paid",
        "period_end": MARCH_1,
        "period_start": MARCH_1,
        "status": status,
        "subscription": sub["id"],
        "subscription_details": {"metadata": sub["metadata"]},
        "total": sum(line["amount"] for line in lines),
    }


def invoice_line(
    line_id: str,
    sub_item: dict[str, Any],
    *,
    amount: int,
    discount_amounts: list[dict[str, Any]] | None = None,
    period: tuple[int, int] = (MARCH_1, APRIL_1),
    proration: bool = False,
) -> dict[str, Any]:
    return {
        "amount": amount,
        "currency": "usd",
        "discount_amounts": discount_amounts or [],
        "discountable": True,
        "discounts": [],
        "id": line_id,
        "livemode": False,
        "metadata": {},
        "object": "line_item",
        "period": {"end": period[1], "start": period[0]},
        "price": sub_item["price"],
        "proration": proration,
        "quantity": sub_item["quantity"],
        "subscription": sub_item["subscription"],
        "subscription_item": sub_item["id"],
        "type": "subscription",
    }


def basil_invoice(
    invoice_id: str,
    sub: dict[str, Any],
    *,
    period: tuple[int, int],
    discount_amounts: list[dict[str, Any]] | None = None,
    discounts: list[Any] | None = None,
) -> dict[str, Any]:
    """A paid invoice of ``sub``'s first item, in the basil shape: the line names its price
    by id with its unit amount; subscription and item ids under ``parent``; the invoice's
    ``discounts`` by id unless given (expanded, as in an export that expands them)."""
    first = sub["items"]["data"][0]
    off = sum(d["amount"] for d in discount_amounts or [])
    line = invoice_line(
        "il_" + invoice_id,
        first,
        amount=first["price"]["unit_amount"] * first["quantity"],
        discount_amounts=discount_amounts,
        period=period,
    )
    del line["price"], line["subscription_item"], line["subscription"], line["type"]
    line["discounts"] = [d["discount"] for d in discount_amounts or []]
    line["pricing"] = {
        "price_details": {"price": first["price"]["id"], "product": first["price"]["product"]},
        "type": "price_details",
        "unit_amount_decimal": str(first["price"]["unit_amount"]),
    }
    line["parent"] = {
        "invoice_item_details": None,
        "subscription_item_details": {
            "invoice_item": None,
            "proration": False,
            "proration_details": {"credited_items": None},
            "subscription": sub["id"],
            "subscription_item": first["id"],
        },
        "type": "subscription_item_details",
    }
    paid = invoice(invoice_id, sub, amount_paid=line["amount"] - off, lines=[line])
    del paid["subscription"], paid["subscription_details"], paid["discount"]
    paid["discounts"] = discounts if discounts is not None else line["discounts"]
    paid["parent"] = {
        "quote_details": None,
        "subscription_details": {"metadata": sub["metadata"], "subscription": sub["id"]},
        "type": "subscription_details",
    }
    return paid
