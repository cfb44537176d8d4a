"""Stripe events as our ``subscription`` events: one snapshot per subscription item.

:func:`map_stripe_event` is pure: a Stripe event (the JSON of a webhook or of an
export, as a dict) in, zero or more ``subscription`` event dicts out, or the reason
it maps to none. Nothing is fetched from Stripe, so only what the payload holds is
used.

Why one snapshot per ITEM. The revenue ledger keys snapshots by ``subscription_id``
and a snapshot has one price. A Stripe subscription has several items (a seat price
and an add-on), each with its own price and quantity, so each item is a ledger
subscription of its own, ``subscription_id = "{sub_id}:{item_id}"``, always (even
for one item: an item added later must not leave a stale whole-subscription
snapshot behind). The customer-level ledger sums a customer's subscriptions, so the
customer's MRR is the sum of the items, as Stripe's own. An item removed by an
update is sent once more with status ``canceled``. Metered and tiered items (and
one-off prices) are skipped: Stripe leaves them out of MRR.

Fields:

* ``plan`` = the price's id (the one name of a price that every payload, invoice lines
  included, carries); ``tier`` = the price's ``metadata.tier``, else the product's
  (when expanded), else the subscription's, else the product id.
* ``unit_amount`` = ``price.unit_amount`` (else ``unit_amount_decimal`` rounded half
  up), ``quantity`` = the item's (a quantity of 0 is sent as a canceled item: the
  schema's quantity is at least 1), ``interval``/``interval_count`` = ``price.recurring``.
* ``period_end`` = the item's ``current_period_end`` (API versions from
  2025-03-31.basil), else the subscription's (older versions); with
  ``cancel_at_period_end`` (or ``cancel_at``) set, the time it ends.
* Discounts: the item's ``discounts[]``, then the subscription's ``discounts[]``,
  then the legacy singular ``discount``; the coupon is ``discount.coupon`` or
  ``discount.source.coupon``. The first usable one is carried (``percent_off`` ->
  ``discount_percent``, ``amount_off`` -> ``discount_amount``, ``duration``,
  ``duration_in_months``); more are reported as warnings. A subscription-level
  ``amount_off`` is per invoice: it is split across the items in proportion to
  their price x quantity (largest remainders get the odd cents), so the items
  still sum to the invoice. Webhook payloads name discounts in ``discounts[]`` by
  id only (unexpanded): such a discount cannot be read, and a warning says so.
* ``status``: Stripe's, with ``incomplete`` -> ``unpaid`` (not yet paid, no MRR)
  and ``incomplete_expired`` -> ``canceled``.
* ``user_id`` = the subscription's ``metadata.user_id`` when it is a valid
  identifier (the host app's own user id), else the Stripe customer id.
  ``attributed_feature`` / ``attribution_source`` from the same metadata, when valid.
* ``occurred_at`` = the event's ``created``; ``event_id`` = UUID5 of
  ``"{event id}:{item id}"``, so a redelivered event is a duplicate in the store,
  and the ledger orders snapshots by ``occurred_at``, so the order of delivery
  does not matter.

Kinds: ``created`` -> ``trial_started`` (status trialing) or ``subscribed``;
``deleted`` -> ``canceled``. ``updated`` compares the subscription before
(``data.previous_attributes`` laid over it) and after, in this order: becoming
canceled or paused -> ``canceled``; becoming trialing -> ``trial_started``; leaving
trialing or incomplete for active or past_due -> ``subscribed``; leaving canceled,
unpaid or paused for active or past_due -> ``reactivated``; past_due -> active ->
``payment_succeeded``; becoming past_due or unpaid -> ``payment_failed``;
``cancel_at_period_end`` turned on -> ``canceled`` (status still active,
``period_end`` = when it ends), turned off -> ``reactivated``; otherwise the
monthly value after discounts (sum over items of net price / period in months)
rising or staying -> ``upgraded``, falling -> ``downgraded``. An update changing
nothing a snapshot carries (a renewal moving the period, metadata) is ignored.

Invoices: ``invoice.paid`` (and the legacy ``invoice.payment_succeeded``) ->
``payment_succeeded`` with status active and ``amount`` = the line's amount after
discounts; ``invoice.payment_failed`` -> ``payment_failed`` with status past_due
(unpaid for a first invoice: the subscription is incomplete), one snapshot per
subscription line, prorations skipped. From API version basil a line names its price
by id: its interval is then read off the line's period (one billing period, as
licensed prices are billed in advance), and its tier from the subscription's
metadata, else the product id. An invoice says nothing of the subscription's status,
so what could contradict the subscription's own events is ignored: a paid invoice of
0 (trial start, 100% off), a line whose period does not cover the payment (an old
invoice paid late, or usage billed in arrears), a failure with no retry left (the
subscription event that follows says what became of it), and a basil line whose
period is not whole days, weeks, months or years.

``charge.refunded`` is ignored with its reason: a charge names neither the
subscription nor its price (since basil not even the invoice), and a refund is not
MRR; the snapshot it would need cannot be built from the payload.
"""

from __future__ import annotations

import re
import uuid
from calendar import monthrange
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from banking_analytics.events import IDENTIFIER_PATTERN
from banking_analytics.vocabulary import (
    BankingFeature,
    BillingInterval,
    DiscountDuration,
    SubscriptionEventKind,
    SubscriptionStatus,
)

__all__ = [
    "MAPPED_STRIPE_TYPES",
    "STRIPE_EVENT_NAMESPACE",
    "StripeEventError",
    "StripeMapping",
    "map_stripe_event",
]

#: The namespace of the UUID5 event ids made from Stripe's event ids (fixed for ever:
#: changing it would store every redelivered event again).
STRIPE_EVENT_NAMESPACE = uuid.UUID("6f1c3f43-3d55-5c3e-9a55-57a1b5e0c0de")

_K = SubscriptionEventKind
_S = SubscriptionStatus
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
_STATUSES = {s.value: s for s in _S} | {"incomplete": _S.UNPAID, "incomplete_expired": _S.CANCELED}
_PAYING = (_S.ACTIVE, _S.PAST_DUE)
#: Months in one interval, for comparing values across intervals (week 52/12, day 365/12).
_MONTHS = {
    "day": Fraction(12, 365),
    "week": Fraction(12, 52),
    "month": Fraction(1),
    "year": Fraction(12),
}
_FEATURES = {f.value for f in BankingFeature}
_INTERVALS = {i.value for i in BillingInterval}
_DURATIONS = {d.value for d in DiscountDuration}


class StripeEventError(ValueError):
    """The payload is not a Stripe event this module can read (says what is wrong)."""


@dataclass(frozen=True, slots=True)
class StripeMapping:
    """What one Stripe event became: ``events`` to store, or the reason it was ``ignored``
    (then ``events`` is empty); ``warnings`` name what of it could not be carried."""

    stripe_event_id: str
    stripe_type: str
    events: tuple[dict[str, Any], ...] = ()
    ignored: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Discount:
    key: str
    percent: float | None
    amount: int | None
    duration: str
    months: int | None
    subscription_level: bool


@dataclass(frozen=True, slots=True)
class _Item:
    """One item's snapshot fields (those the ledger reads, but period_end)."""

    item_id: str
    plan: str
    tier: str
    unit_amount: int
    interval: str
    interval_count: int
    quantity: int
    discount: _Discount | None = None
    discount_amount: int | None = None
    period_end: int | None = None
    amount: int | None = None

    @property
    def gross(self) -> int:
        return self.unit_amount * self.quantity

    def monthly(self) -> Fraction:
        """Net price per month: ``max(gross - percent_off - amount_off, 0) / months``."""
        percent = self.discount.percent if self.discount else None
        off = Decimal(self.gross) * Decimal(str(percent or 0)) / 100
        net = max(
            self.gross - int(off.to_integral_value(ROUND_HALF_UP)) - (self.discount_amount or 0), 0
        )
        return Fraction(net) / (_MONTHS[self.interval] * self.interval_count)

    def carried(self) -> tuple[object, ...]:
        """What a snapshot of this item says, but the period's end and the amount paid."""
        return (*(getattr(self, f) for f in _CARRIED), self.discount_fields())

    def discount_fields(self) -> tuple[object, ...]:
        d = self.discount
        if d is None:
            return (None, None, None, None)
        return (d.percent, self.discount_amount, d.duration, d.months)


_CARRIED = ("item_id", "plan", "tier", "unit_amount", "interval", "interval_count", "quantity")


@dataclass(slots=True)
class _Context:
    """The event being mapped, and what was noticed along the way."""

    event_id: str
    event_type: str
    created: int
    api_version: str | None
    warnings: list[str] = field(default_factory=list)

    def notes(self) -> tuple[str, ...]:
        """The warnings, each once (a discount listed on an invoice and on its line...)."""
        return tuple(dict.fromkeys(self.warnings))


# -- reading the payload ------------------------------------------------------------------


def _identifier(value: object, max_length: int) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= max_length and _IDENTIFIER.match(value):
        return value
    return None


def _id_of(value: object) -> str | None:
    """An expandable field's id: the string itself, or the expanded object's ``id``."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    if isinstance(value, Mapping):  # a Stripe list object: {"object": "list", "data": [...]}
        value = value.get("data")
    return list(value) if isinstance(value, list) else []


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _timestamp(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat()


def _amount(price: Mapping[str, Any]) -> int | None:
    """``unit_amount``, else ``unit_amount_decimal`` rounded half up to whole minor units."""
    amount = _int(price.get("unit_amount"))
    if amount is not None:
        return amount
    text = price.get("unit_amount_decimal")
    if not isinstance(text, str):
        return None
    try:
        return int(Decimal(text).to_integral_value(ROUND_HALF_UP))
    except InvalidOperation:
        return None


def _coupon(discount: Mapping[str, Any]) -> Mapping[str, Any] | None:
    coupon = discount.get("coupon") or _mapping(discount.get("source")).get("coupon")
    return coupon if isinstance(coupon, Mapping) else None


def _discounts(
    entries: Sequence[object], subscription_level: bool, currency: str, ctx: _Context
) -> list[_Discount]:
    """The readable discounts among ``entries`` (Discount objects or ids), in order."""
    found: list[_Discount] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            ctx.warnings.append(
                f"discount {entry} is not expanded in the payload: its coupon cannot be read, "
                "so the snapshot carries no discount for it"
            )
            continue
        coupon = _coupon(entry)
        if coupon is None:
            ctx.warnings.append(f"discount {_id_of(entry)} has no readable coupon")
            continue
        percent = coupon.get("percent_off")
        amount_off = _int(coupon.get("amount_off"))
        if amount_off is not None and str(coupon.get("currency", "")).upper() != currency:
            ctx.warnings.append(
                f"coupon {coupon.get('id')} is {amount_off} {coupon.get('currency')} off a "
                f"{currency} subscription: not carried"
            )
            continue
        duration = coupon.get("duration")
        months = _int(coupon.get("duration_in_months"))
        found.append(
            _Discount(
                key=str(_id_of(entry) or coupon.get("id")),
                percent=float(percent) if isinstance(percent, int | float) else None,
                amount=amount_off,
                duration=duration if duration in _DURATIONS else DiscountDuration.FOREVER.value,
                months=months if duration == DiscountDuration.REPEATING else None,
                subscription_level=subscription_level,
            )
        )
    return found


def _subscription_discounts(
    holder: Mapping[str, Any], currency: str, ctx: _Context
) -> list[_Discount]:
    """A subscription's (or invoice's) own discounts: ``discounts[]``, then the legacy
    singular ``discount`` (older API versions send both: the list by id, the singular
    one expanded; an id the singular one covers is not reported as unreadable)."""
    legacy = holder.get("discount")
    listed = _list(holder.get("discounts"))
    if legacy is not None:
        listed = [d for d in listed if _id_of(d) != _id_of(legacy)] + [legacy]
    return _discounts(listed, True, currency, ctx)


def _tier(price: Mapping[str, Any], metadata: Mapping[str, Any]) -> str:
    product = price.get("product")
    for candidate in (
        _mapping(price.get("metadata")).get("tier"),
        _mapping(_mapping(product).get("metadata")).get("tier"),
        metadata.get("tier"),
        _id_of(product),
    ):
        tier = _identifier(candidate, 32)
        if tier is not None:
            return tier
    return "stripe"


def _item(
    item_id: str,
    price: Mapping[str, Any],
    quantity: object,
    metadata: Mapping[str, Any],
    ctx: _Context,
) -> _Item | None:
    """The snapshot fields of a priced line, or None (with a warning) when it is no MRR."""
    recurring = _mapping(price.get("recurring"))
    why_not = None
    if price.get("type") == "one_time" or not recurring:
        why_not = "a one-off price"
    elif price.get("billing_scheme") == "tiered":
        why_not = "a tiered price (Stripe leaves tiered prices out of MRR)"
    elif recurring.get("usage_type") == "metered" or recurring.get("meter"):
        why_not = "a metered price (Stripe leaves usage-based prices out of MRR)"
    elif recurring.get("interval") not in _INTERVALS:
        why_not = f"an unknown interval {recurring.get('interval')!r}"
    amount = _amount(price)
    if why_not is None and amount is None:
        why_not = "a price without a unit amount"
    if why_not is not None or amount is None:
        ctx.warnings.append(f"item {item_id} skipped: {why_not}")
        return None
    plan = _identifier(price.get("id"), 64) or "stripe"
    return _Item(
        item_id=item_id,
        plan=plan,
        tier=_tier(price, metadata),
        unit_amount=amount,
        interval=str(recurring["interval"]),
        interval_count=_int(recurring.get("interval_count")) or 1,
        quantity=q if (q := _int(quantity)) is not None else 1,
    )


def _split(amount: int, weights: Sequence[int]) -> list[int]:
    """``amount`` in whole units, in proportion to ``weights``, largest remainders first."""
    total = sum(weights)
    if total <= 0:
        return [amount] + [0] * (len(weights) - 1)
    shares = [amount * w // total for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(amount * weights[i] % total), i))
    for i in order[: amount - sum(shares)]:
        shares[i] += 1
    return shares


def _with_discounts(
    items: list[tuple[_Item, list[_Discount]]], shared: list[_Discount], ctx: _Context
) -> list[_Item]:
    """Each item with its first discount (its own, then the shared ones); a shared
    amount off is split across the items that take it (see the module)."""
    chosen: list[_Item] = []
    for item, own in items:
        usable = own + shared
        if len(usable) > 1:
            ctx.warnings.append(
                f"item {item.item_id} has {len(usable)} discounts; only the first "
                f"({usable[0].key}) is carried"
            )
        first = usable[0] if usable else None
        amount = first.amount if first else None
        chosen.append(replace(item, discount=first, discount_amount=amount))
    for discount in {i.discount for i in chosen if i.discount and i.discount.subscription_level}:
        if discount.amount is None:
            continue
        at = [n for n, i in enumerate(chosen) if i.discount == discount]
        shares = _split(discount.amount, [chosen[n].gross for n in at])
        for n, share in zip(at, shares, strict=True):
            chosen[n] = replace(chosen[n], discount_amount=share)
    return chosen


# -- subscriptions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _State:
    """A subscription as the ledger sees it, at one moment."""

    status: str  # Stripe's own
    items: dict[str, _Item]
    cancel_at_period_end: bool
    cancel_at: int | None

    @property
    def ending(self) -> bool:
        """Whether the subscription is set to end (at the period's end, or at ``cancel_at``)."""
        return self.cancel_at_period_end or self.cancel_at is not None

    @property
    def ours(self) -> SubscriptionStatus:
        return _STATUSES[self.status]

    def monthly(self) -> Fraction:
        return sum((i.monthly() for i in self.items.values()), Fraction(0))


def _state(sub: Mapping[str, Any], currency: str, ctx: _Context) -> _State:
    status = sub.get("status")
    if status not in _STATUSES:
        raise StripeEventError(f"data.object.status: unknown subscription status {status!r}")
    metadata = _mapping(sub.get("metadata"))
    sub_period_end = _int(sub.get("current_period_end"))
    priced: list[tuple[_Item, list[_Discount]]] = []
    for raw in _list(sub.get("items")):
        raw = _mapping(raw)
        item_id = _id_of(raw)
        if item_id is None:
            raise StripeEventError("data.object.items: an item has no id")
        item = _item(item_id, _mapping(raw.get("price")), raw.get("quantity"), metadata, ctx)
        if item is not None:
            period_end = _int(raw.get("current_period_end")) or sub_period_end
            own = _discounts(_list(raw.get("discounts")), False, currency, ctx)
            priced.append((replace(item, period_end=period_end), own))
    shared = _subscription_discounts(sub, currency, ctx)
    items = _with_discounts(priced, shared, ctx)
    return _State(
        status=str(status),
        items={i.item_id: i for i in items},
        cancel_at_period_end=sub.get("cancel_at_period_end") is True,
        cancel_at=_int(sub.get("cancel_at")),
    )


def _update_kind(before: _State, after: _State) -> SubscriptionEventKind | None:
    """The kind of an update (see the module), or None when nothing carried changed."""
    was, now = before.ours, after.ours
    if before.status != after.status:
        if now in (_S.CANCELED, _S.PAUSED):
            return _K.CANCELED
        if now is _S.TRIALING:
            return _K.TRIAL_STARTED
        if now in _PAYING and before.status in ("trialing", "incomplete"):
            return _K.SUBSCRIBED
        if now in _PAYING and was in (_S.CANCELED, _S.UNPAID, _S.PAUSED):
            return _K.REACTIVATED
        if was is _S.PAST_DUE and now is _S.ACTIVE:
            return _K.PAYMENT_SUCCEEDED
        if now in (_S.PAST_DUE, _S.UNPAID):
            return _K.PAYMENT_FAILED
    if after.ending != before.ending:
        return _K.CANCELED if after.ending else _K.REACTIVATED
    carried = {k: i.carried() for k, i in after.items.items()}
    if before.status == after.status and carried == {
        k: i.carried() for k, i in before.items.items()
    }:
        return None
    return _K.UPGRADED if after.monthly() >= before.monthly() else _K.DOWNGRADED


def _subscription_events(
    obj: Mapping[str, Any], previous: Mapping[str, Any], ctx: _Context
) -> StripeMapping:
    sub_id = _id_of(obj)
    currency = str(obj.get("currency") or "").upper()
    if sub_id is None or obj.get("object", "subscription") != "subscription":
        raise StripeEventError("data.object: not a subscription")
    after = _state(obj, currency, ctx)
    removed: dict[str, _Item] = {}
    if ctx.event_type.endswith(".created"):
        kind = _K.TRIAL_STARTED if after.ours is _S.TRIALING else _K.SUBSCRIBED
    elif ctx.event_type.endswith(".deleted"):
        kind = _K.CANCELED
    else:
        # The state before: the changed attributes' old values over the new object
        # (Stripe sends the whole old ``items`` list when items changed).
        quiet = _Context(ctx.event_id, ctx.event_type, ctx.created, ctx.api_version)
        before = _state({**obj, **previous}, currency, quiet)
        update = _update_kind(before, after)
        if update is None:
            changed = ", ".join(sorted(previous)) or "nothing"
            return _ignored(ctx, f"no field the revenue ledger reads changed (changed: {changed})")
        kind = update
        removed = {k: i for k, i in before.items.items() if k not in after.items}
    if not after.items and not removed:
        return _ignored(ctx, "the subscription has no licensed per-unit price (no MRR)")
    events = [
        _event(
            ctx,
            obj,
            sub_id,
            item,
            kind,
            _S.CANCELED if item.quantity == 0 else after.ours,
            after.cancel_at or item.period_end,
            currency,
        )
        for item in after.items.values()
    ]
    events += [
        _event(ctx, obj, sub_id, item, kind, _S.CANCELED, item.period_end, currency)
        for item in removed.values()
    ]
    return StripeMapping(ctx.event_id, ctx.event_type, tuple(events), None, ctx.notes())


def _event(
    ctx: _Context,
    holder: Mapping[str, Any],
    sub_id: str,
    item: _Item,
    kind: SubscriptionEventKind,
    status: SubscriptionStatus,
    period_end: int | None,
    currency: str,
) -> dict[str, Any]:
    """Our ``subscription`` event for one item. ``holder`` is the subscription (or the
    invoice's subscription details) whose customer and metadata name the user."""
    metadata = _mapping(holder.get("metadata"))
    user = _identifier(metadata.get("user_id"), 128) or _identifier(
        _id_of(holder.get("customer")), 128
    )
    feature = metadata.get("attributed_feature")
    if feature is not None and feature not in _FEATURES:
        ctx.warnings.append(f"metadata.attributed_feature {feature!r} is not a banking feature")
        feature = None
    d = item.discount
    return {
        "event_type": "subscription",
        "event_id": str(uuid.uuid5(STRIPE_EVENT_NAMESPACE, f"{ctx.event_id}:{item.item_id}")),
        "occurred_at": _timestamp(ctx.created),
        "user_id": user,
        "kind": kind.value,
        "subscription_id": f"{sub_id}:{item.item_id}",
        "plan": item.plan,
        "tier": item.tier,
        "unit_amount": item.unit_amount,
        "interval": item.interval,
        "interval_count": item.interval_count,
        "quantity": max(item.quantity, 1),
        "discount_percent": d.percent if d else None,
        "discount_amount": item.discount_amount if d else None,
        "discount_duration": d.duration if d else None,
        "discount_months": d.months if d else None,
        "period_end": _timestamp(period_end) if period_end else None,
        "currency": currency,
        "status": status.value,
        "amount": item.amount,
        "attributed_feature": feature,
        "attribution_source": _identifier(metadata.get("attribution_source"), 128),
        "properties": {
            "source": "stripe",
            "stripe_event_id": ctx.event_id,
            "stripe_event_type": ctx.event_type,
            "stripe_api_version": ctx.api_version,
            "stripe_subscription_id": sub_id,
            "stripe_item_id": item.item_id,
        },
    }


# -- invoices -----------------------------------------------------------------------------


def _invoice_events(obj: Mapping[str, Any], ctx: _Context) -> StripeMapping:
    paid = ctx.event_type != "invoice.payment_failed"
    details = _mapping(_mapping(obj.get("parent")).get("subscription_details"))
    sub_id = _id_of(obj.get("subscription")) or _id_of(details.get("subscription"))
    if sub_id is None:
        return _ignored(ctx, "the invoice is not for a subscription")
    if paid and not _int(obj.get("amount_paid")):
        return _ignored(
            ctx,
            "an invoice paid with 0 (a trial's start, a 100% discount) says nothing about "
            "whether the subscription pays: its customer.subscription events say",
        )
    if not paid and obj.get("next_payment_attempt") is None:
        return _ignored(
            ctx,
            "no retry is left after this failure: the customer.subscription event that "
            "follows says what became of the subscription",
        )
    currency = str(obj.get("currency") or "").upper()
    metadata = _mapping(obj.get("subscription_details")).get("metadata") or details.get("metadata")
    user_metadata = _mapping(metadata)
    holder = {"customer": obj.get("customer"), "metadata": user_metadata}
    priced: list[tuple[_Item, list[_Discount]]] = []
    for raw in _list(obj.get("lines")):
        raw = _mapping(raw)
        line = _invoice_line(raw, user_metadata, paid, ctx)
        if line is not None:
            priced.append((line, _discounts(_list(raw.get("discounts")), False, currency, ctx)))
    if not priced:
        return _ignored(ctx, "no line of the invoice is a priced subscription item of its period")
    items = _with_discounts(priced, _subscription_discounts(obj, currency, ctx), ctx)
    if paid:
        kind, status = _K.PAYMENT_SUCCEEDED, _S.ACTIVE
    else:
        kind = _K.PAYMENT_FAILED
        first = obj.get("billing_reason") == "subscription_create"
        status = _S.UNPAID if first else _S.PAST_DUE
    events = [
        _event(ctx, holder, sub_id, item, kind, status, item.period_end, currency) for item in items
    ]
    return StripeMapping(ctx.event_id, ctx.event_type, tuple(events), None, ctx.notes())


def _invoice_line(
    line: Mapping[str, Any], metadata: Mapping[str, Any], paid: bool, ctx: _Context
) -> _Item | None:
    """A subscription line's item snapshot (its amount after discounts when ``paid``)."""
    parent = _mapping(_mapping(line.get("parent")).get("subscription_item_details"))
    item_id = _id_of(line.get("subscription_item")) or _id_of(parent.get("subscription_item"))
    if item_id is None:
        return None  # an invoice item, not a subscription's line
    if line.get("proration") is True or parent.get("proration") is True:
        ctx.warnings.append(f"line {line.get('id')} skipped: a proration")
        return None
    period = _mapping(line.get("period"))
    start, end = _int(period.get("start")), _int(period.get("end"))
    if start is None or end is None or not start <= ctx.created < end:
        # Also what keeps usage billed in arrears (metered prices) out: its period ends
        # when the invoice is made.
        ctx.warnings.append(
            f"line {line.get('id')} skipped: its period does not cover the invoice's event"
        )
        return None
    price = line.get("price") or _priced_by_id(line, start, end)
    if not isinstance(price, Mapping):
        ctx.warnings.append(
            f"line {line.get('id')} skipped: its price is named by id only and its period "
            "is not a whole number of days, weeks, months or years"
        )
        return None
    item = _item(item_id, price, line.get("quantity"), metadata, ctx)
    if item is None:
        return None
    discounted = sum(
        _int(d.get("amount")) or 0 for d in map(_mapping, line.get("discount_amounts") or [])
    )
    amount = (_int(line.get("amount")) or 0) - discounted if paid else None
    return replace(item, period_end=end, amount=amount)


def _add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus calendar months, the day clamped to the month's last."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    last = monthrange(year, month + 1)[1]
    return moment.replace(year=year, month=month + 1, day=min(moment.day, last))


def _interval_of(start: int, end: int) -> tuple[str, int] | None:
    """The billing interval whose one period is ``[start, end)``: calendar months (years
    when a multiple of 12; a period anchored on a month's last days, 29 to 31, may end
    on a shorter month's last day), else whole weeks, else whole days (UTC)."""
    first, last = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
    first_month_end = first.day == monthrange(first.year, first.month)[1]
    for months in range(1, 12 * 3 + 1):
        stepped = _add_months(first, months)
        # Anchored on day 29 to 31, a period may start on a shorter month's last day and
        # end on the anchor day (28 Feb to 31 Mar).
        anchored = (
            first_month_end and last.day > stepped.day and last.replace(day=stepped.day) == stepped
        )
        if stepped == last or anchored:
            return ("year", months // 12) if months % 12 == 0 else ("month", months)
    days, rest = divmod(end - start, 86_400)
    if rest or not 1 <= days <= 366:
        return None
    return ("week", days // 7) if days % 7 == 0 else ("day", days)


def _priced_by_id(line: Mapping[str, Any], start: int, end: int) -> dict[str, Any] | None:
    """From API version 2025-03-31.basil an invoice line names its price by id, with its
    unit amount, and no interval: the interval is read off the line's period, which for a
    price billed in advance is one billing period. No price metadata: the tier comes from
    the subscription's metadata, else the product id."""
    pricing = _mapping(line.get("pricing"))
    details = _mapping(pricing.get("price_details"))
    interval = _interval_of(start, end)
    if interval is None or _id_of(details.get("price")) is None:
        return None
    return {
        "id": _id_of(details.get("price")),
        "product": _id_of(details.get("product")),
        "type": "recurring",
        "billing_scheme": "per_unit",
        "unit_amount_decimal": pricing.get("unit_amount_decimal"),
        "recurring": {"interval": interval[0], "interval_count": interval[1]},
    }


# -- events -------------------------------------------------------------------------------


def _ignored(ctx: _Context, reason: str) -> StripeMapping:
    return StripeMapping(ctx.event_id, ctx.event_type, (), reason, ctx.notes())


_SUBSCRIPTION_TYPES = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
)
_INVOICE_TYPES = ("invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed")
#: The Stripe event types mapped to snapshots (``charge.refunded`` is read, and ignored
#: with its reason: see the module).
MAPPED_STRIPE_TYPES = (*_SUBSCRIPTION_TYPES, *_INVOICE_TYPES)


def map_stripe_event(event: Mapping[str, Any]) -> StripeMapping:
    """Our ``subscription`` events for one Stripe event (see the module for the rules).

    Raises :class:`StripeEventError` when the payload is not a Stripe event (no ``id``,
    ``type``, ``created`` or ``data.object``, or a subscription in an unknown status);
    an event of a type that is not mapped is not an error: it comes back ``ignored``.
    """
    if not isinstance(event, Mapping):
        raise StripeEventError("a Stripe event is a JSON object")
    event_id, event_type, created = event.get("id"), event.get("type"), _int(event.get("created"))
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
        raise StripeEventError("a Stripe event has a string id and type")
    if created is None:
        raise StripeEventError(f"{event_id}: created is not a unix time")
    data = _mapping(event.get("data"))
    obj = data.get("object")
    if not isinstance(obj, Mapping):
        raise StripeEventError(f"{event_id}: data.object is not an object")
    version = event.get("api_version")
    ctx = _Context(event_id, event_type, created, version if isinstance(version, str) else None)
    if event_type in _SUBSCRIPTION_TYPES:
        return _subscription_events(obj, _mapping(data.get("previous_attributes")), ctx)
    if event_type in _INVOICE_TYPES:
        return _invoice_events(obj, ctx)
    if event_type == "charge.refunded":
        return _ignored(
            ctx,
            "a refund is not MRR, and a charge names neither the subscription nor its "
            "price, so no subscription snapshot can be made from it",
        )
    return _ignored(
        ctx, f"event type {event_type} is not mapped (mapped: {', '.join(MAPPED_STRIPE_TYPES)})"
    )
