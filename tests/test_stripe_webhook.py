"""``POST /api/banking-analytics/webhooks/stripe`` over real HTTP, on DuckDB and PostgreSQL."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from api_fixtures import LiveAPI, api_settings
from api_server import running
from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.access import AuditLog
from banking_analytics.analytics.revenue import RevenuePolicy
from banking_analytics.api import ApiSettings, create_app
from banking_analytics.ingest import map_stripe_event, sign_stripe_payload
from banking_analytics.metrics import TimeWindow
from stripe_payloads import (
    BASIL,
    LEGACY,
    MARCH_1,
    basil_invoice,
    coupon,
    discount,
    event,
    item,
    price,
    subscription,
)

PATH = "/api/banking-analytics/webhooks/stripe"
SECRET = "whsec_test_5b1f0e7c2d9a4e6b8c3f1a2d4e6b8c0a"
OLD_SECRET = "whsec_test_old_0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"
COLUMNS = (
    "event_id", "occurred_at", "user_id", "kind", "subscription_id", "plan", "tier",
    "unit_amount", "interval", "interval_count", "quantity", "discount_percent",
    "discount_amount", "discount_duration", "discount_months", "period_end", "currency",
    "status", "amount", "attributed_feature", "attribution_source",
)  # fmt: skip
DAY = 86_400


@pytest.fixture
def stripe_api(analytics: BankingPerformanceAnalytics) -> Iterator[httpx.Client]:
    """The API with two endpoint secrets (a rotation in progress), served over HTTP."""
    # The product's default burst of failed authentications (the shared fixtures raise it).
    settings = api_settings(
        analytics, stripe_webhook_secrets=f"{SECRET},{OLD_SECRET}", auth_failure_burst=20
    )
    with (
        running(settings, analytics=analytics) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        yield client


def post(
    client: httpx.Client, payload: Any, secret: str = SECRET, **headers: str
) -> httpx.Response:
    body = orjson.dumps(payload)
    signature = sign_stripe_payload(body, secret, int(time.time()))
    return client.post(
        PATH,
        content=body,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json", **headers},
    )


def stored(analytics: BankingPerformanceAnalytics) -> list[dict[str, Any]]:
    rows = analytics.engine.query(
        f"SELECT {', '.join(COLUMNS)} FROM subscription_events ORDER BY event_id"
    ).to_pylist()
    return [{**r, "event_id": str(r["event_id"])} for r in rows]


def as_rows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the store should hold for mapped events (timestamps parsed), by event id."""
    rows = []
    for e in events:
        row = {c: e[c] for c in COLUMNS}
        for c in ("occurred_at", "period_end"):
            row[c] = datetime.fromisoformat(e[c]) if e[c] else None
        rows.append(row)
    return sorted(rows, key=lambda r: r["event_id"])


def audit_entries(analytics: BankingPerformanceAnalytics) -> list[Any]:
    return [e for e in AuditLog(analytics.engine).entries() if e.action == "stripe_webhook"]


def lifecycle() -> list[dict[str, Any]]:
    """A customer's year in Stripe events (basil era): a trial, conversion with a 3-month
    coupon, two more seats, a second subscription (2024-06-20 payload), then cancelling
    the first at the period's end and its deletion; an event not mapped, and the first
    invoice."""
    seat = price("price_premium_m", 2000, tier="premium")
    trial = (MARCH_1, MARCH_1 + 14 * DAY)
    paid = (trial[1], trial[1] + 31 * DAY)
    meta = {"user_id": "user_7", "attributed_feature": "goal_setting"}

    def sub(quantity: int, period: tuple[int, int], **kw: Any) -> dict[str, Any]:
        items = [item("si_a", seat, quantity, subscription="sub_1", era=BASIL, period=period)]
        return subscription("sub_1", items, era=BASIL, period=period, metadata=meta, **kw)

    welcome = discount(
        "di_w",
        coupon("WELCOME", percent_off=25.0, duration="repeating", duration_in_months=3),
        BASIL,
        "sub_1",
        trial[1],
    )
    one_seat = {"data": [sub(1, paid)["items"]["data"][0]], "object": "list"}
    addon = subscription(
        "sub_2",
        [
            item(
                "si_z",
                price("price_addon_y", 6000, "year", tier="addon"),
                subscription="sub_2",
                era=LEGACY,
            )
        ],
        era=LEGACY,
        metadata=meta,
    )
    return [
        event("evt_1", "customer.subscription.created", trial[0],
              sub(1, trial, status="trialing", trial=trial), era=BASIL),
        event("evt_2", "customer.subscription.updated", trial[1],
              sub(1, paid, trial=trial, discounts=[welcome]), era=BASIL,
              previous={"status": "trialing", "discounts": []}),
        event("evt_3", "customer.subscription.updated", trial[1] + 5 * DAY,
              sub(3, paid, trial=trial, discounts=[welcome]), era=BASIL,
              previous={"items": one_seat}),
        event("evt_4", "customer.subscription.created", trial[1] + 6 * DAY, addon, era=LEGACY),
        event("evt_5", "customer.subscription.updated", trial[1] + 20 * DAY,
              sub(3, paid, trial=trial, discounts=[welcome], cancel_at_period_end=True),
              era=BASIL, previous={"cancel_at_period_end": False, "cancel_at": None}),
        event("evt_6", "customer.subscription.deleted", paid[1],
              sub(3, paid, trial=trial, discounts=[welcome], status="canceled"), era=BASIL),
        event("evt_7", "customer.created", trial[0], {"id": "cus_NffrFeUfNV2Hib"}, era=BASIL),
        # The first invoice, paid a minute after the trial ends (its discount expanded
        # like the subscription's).
        event("evt_8", "invoice.paid", trial[1] + 60,
              basil_invoice("in_1", sub(1, paid), period=paid, discounts=[welcome],
                            discount_amounts=[{"amount": 500, "discount": "di_w"}]),
              era=BASIL),
    ]  # fmt: skip


def test_signed_events_are_stored_as_their_snapshots(
    stripe_api: httpx.Client, analytics: BankingPerformanceAnalytics
) -> None:
    events = lifecycle()
    answers = [post(stripe_api, e) for e in events]
    assert [a.status_code for a in answers] == [200] * 8
    assert [a.json()["stored"] for a in answers] == [1, 1, 1, 1, 1, 1, 0, 1]
    expected = [e for payload in events for e in map_stripe_event(payload).events]
    assert stored(analytics) == as_rows(expected)
    by_time = sorted(stored(analytics), key=lambda r: (r["occurred_at"], r["subscription_id"]))
    assert [(r["subscription_id"], r["kind"], r["status"], r["quantity"]) for r in by_time] == [
        ("sub_1:si_a", "trial_started", "trialing", 1),
        ("sub_1:si_a", "subscribed", "active", 1),
        ("sub_1:si_a", "payment_succeeded", "active", 1),
        ("sub_1:si_a", "upgraded", "active", 3),
        ("sub_2:si_z", "subscribed", "active", 1),
        ("sub_1:si_a", "canceled", "active", 3),
        ("sub_1:si_a", "canceled", "canceled", 3),
    ]
    assert {r["user_id"] for r in by_time} == {"user_7"}
    ignored = answers[6].json()
    assert ignored["ignored"].startswith("event type customer.created is not mapped")
    (entry,) = audit_entries(analytics)
    assert (entry.actor, entry.outcome, entry.object_type, entry.object_id) == (
        "stripe",
        "ignored",
        "stripe_event",
        "evt_7",
    )
    assert entry.details["type"] == "customer.created"


def test_redelivered_and_shuffled_events_store_the_same_rows(
    stripe_api: httpx.Client, analytics: BankingPerformanceAnalytics
) -> None:
    """Stripe retries and does not keep order: every event twice, in a random order."""
    events = lifecycle()
    deliveries = events * 2
    random.Random(14).shuffle(deliveries)
    answers = [post(stripe_api, e).json() for e in deliveries]
    assert sum(a["stored"] for a in answers) == 7
    assert sum(a["duplicate"] for a in answers) == 7
    expected = [e for payload in events for e in map_stripe_event(payload).events]
    assert stored(analytics) == as_rows(expected)
    # A redelivery's answer says which event it was, and that nothing new was stored.
    again = post(stripe_api, events[0]).json()
    assert (again["stored"], again["duplicate"], again["results"][0]["status"]) == (
        0,
        1,
        "duplicate",
    )


def test_the_ledger_reads_the_snapshots_as_stripe_bills_them(
    stripe_api: httpx.Client, analytics: BankingPerformanceAnalytics
) -> None:
    """The lifecycle, delivered shuffled and twice, by hand (minor units, USD):
    15 Mar the trial converts, 1 seat at 20.00 with 25% off: new 1500; 20 Mar three
    seats, 6000 - 1500: expansion 3000; 21 Mar a yearly add-on of 60.00 (2024-06-20
    payload), 6000 / 12: expansion 500; 4 Apr cancel at the period's end: still paying,
    no movement; 15 Apr the period ends and Stripe deletes it: contraction -4500, the
    add-on's 500 left. The first invoice (15 Mar, a minute after the conversion) carries
    the same coupon: it moves nothing."""
    deliveries = lifecycle() * 2
    random.Random(7).shuffle(deliveries)
    for payload in deliveries:
        assert post(stripe_api, payload).status_code == 200
    window = TimeWindow(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC))
    moves = [
        (m.customer, m.at.date().isoformat(), m.kind, m.amount, m.mrr_before, m.mrr_after)
        for m in analytics.revenue.movements(window)
    ]
    assert moves == [
        ("user_7", "2026-03-15", "new", 1500, 0, 1500),
        ("user_7", "2026-03-20", "expansion", 3000, 1500, 4500),
        ("user_7", "2026-03-21", "expansion", 500, 4500, 5000),
        ("user_7", "2026-04-15", "contraction", -4500, 5000, 500),
    ]
    by_period_end = analytics.revenue.movements(
        window, policy=RevenuePolicy(churn_recognition="period_end")
    )
    assert [(m.at.date().isoformat(), m.amount) for m in by_period_end] == [
        (at, amount) for _, at, _, amount, _, _ in moves
    ]


def test_an_immediate_cancellation_keeps_the_paid_period_under_the_period_end_policy(
    stripe_api: httpx.Client, analytics: BankingPerformanceAnalytics
) -> None:
    """Deleted on 1 Apr, paid until 15 Apr (the item's ``current_period_end``): the
    default policy drops the 4500 on 1 Apr, ``period_end`` on 15 Apr."""
    deleted = copy.deepcopy(lifecycle()[5])
    deleted["id"], deleted["created"] = "evt_now", MARCH_1 + 31 * DAY
    deleted["data"]["object"]["cancel_at"] = None
    for payload in [*lifecycle()[:4], deleted]:
        assert post(stripe_api, payload).json()["stored"] == 1
    window = TimeWindow(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC))
    at_cancel = analytics.revenue.movements(window)[-1]
    at_end = analytics.revenue.movements(
        window, policy=RevenuePolicy(churn_recognition="period_end")
    )[-1]
    assert (at_cancel.at.date().isoformat(), at_cancel.amount) == ("2026-04-01", -4500)
    assert (at_end.at.date().isoformat(), at_end.amount) == ("2026-04-15", -4500)


def test_a_secret_being_rolled_still_verifies(
    stripe_api: httpx.Client, analytics: BankingPerformanceAnalytics
) -> None:
    response = post(stripe_api, lifecycle()[0], secret=OLD_SECRET)
    assert response.status_code == 200
    assert response.json()["stored"] == 1


MISMATCH = "no v1 signature matches"
BAD_SIGNATURES = {
    "wrong secret": (lambda b, t: sign_stripe_payload(b, "whsec_wrong", t), MISMATCH),
    "stale": (lambda b, t: sign_stripe_payload(b, SECRET, t - 400), "s old"),
    "future": (lambda b, t: sign_stripe_payload(b, SECRET, t + 400), "s in the future"),
    "v0 only": (lambda b, t: f"t={t},v0={'0' * 64}", "no v1 signature"),
    "body altered": (lambda b, t: sign_stripe_payload(b + b" ", SECRET, t), MISMATCH),
    "malformed": (lambda b, t: "t=,v1=", "not an integer"),
    "missing": (lambda b, t: None, "header is missing"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_SIGNATURES)
def test_a_bad_signature_is_400_audited_and_changes_nothing(
    stripe_api: httpx.Client, analytics: BankingPerformanceAnalytics, case: str
) -> None:
    signature, reason = BAD_SIGNATURES[case]
    assert post(stripe_api, lifecycle()[0]).json()["stored"] == 1
    before = stored(analytics)
    body = orjson.dumps(lifecycle()[5])  # the deletion, forged: it must change nothing
    header = signature(body, int(time.time()))
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Stripe-Signature"] = header
    response = stripe_api.post(PATH, content=body, headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert reason in response.json()["detail"]
    assert response.json()["detail"].startswith("Stripe-Signature (header): ")
    assert stored(analytics) == before
    (entry,) = audit_entries(analytics)
    assert (entry.actor, entry.actor_role, entry.outcome) == (
        "address:127.0.0.1",
        "anonymous",
        "denied",
    )
    assert reason in entry.details["reason"]
    assert entry.details["body_bytes"] == len(body)


def test_repeated_bad_signatures_are_rate_limited(
    stripe_api: httpx.Client, analytics: BankingPerformanceAnalytics
) -> None:
    """A bad signature counts as a failed authentication of the address (burst 20)."""
    statuses = [
        post(stripe_api, lifecycle()[0], secret="whsec_wrong").status_code for _ in range(21)
    ]
    assert statuses == [400] * 20 + [429]
    refused = post(stripe_api, lifecycle()[0])
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1


def test_signed_but_unreadable_bodies_are_400_and_audited(
    stripe_api: httpx.Client, analytics: BankingPerformanceAnalytics
) -> None:
    for body, detail in ((b"{not json", "not JSON"), (b'{"id": "evt_x"}', "string id and type")):
        signature = sign_stripe_payload(body, SECRET, int(time.time()))
        response = stripe_api.post(PATH, content=body, headers={"Stripe-Signature": signature})
        assert response.status_code == 400
        assert detail in response.json()["detail"]
    assert [e.outcome for e in audit_entries(analytics)] == ["rejected", "rejected"]
    assert stored(analytics) == []


def test_a_snapshot_failing_validation_is_quarantined_and_answered_200(
    stripe_api: httpx.Client, analytics: BankingPerformanceAnalytics
) -> None:
    """Stripe would retry a 4xx for days, to the same end: the answer says it, the
    quarantine keeps it, the audit log records it."""
    payload = lifecycle()[0]
    payload["data"]["object"]["currency"] = "usdollars"
    response = post(stripe_api, payload)
    assert response.status_code == 200
    answer = response.json()
    assert (answer["stored"], answer["rejected"]) == (0, 1)
    assert answer["results"][0]["errors"][0]["field"] == "currency"
    assert stored(analytics) == []
    assert analytics.info().quarantined == 1
    (entry,) = audit_entries(analytics)
    assert entry.outcome == "rejected"
    assert "currency" in entry.details["reasons"][0]


def test_the_gate_lets_webhooks_through_without_an_api_key(
    stripe_api: httpx.Client, analytics: BankingPerformanceAnalytics
) -> None:
    """No key (Stripe cannot send one); a stray Authorization header changes nothing;
    every other route still needs a key."""
    access = create_app().openapi()["paths"][PATH]["post"]["x-access"]
    assert access == {"authenticated": False, "roles": [], "end_user_own_objects": False}
    assert post(stripe_api, lifecycle()[0], Authorization="Bearer nonsense").status_code == 200
    assert stripe_api.post(PATH + "/other", content=b"{}").status_code == 401
    assert stripe_api.get("/api/banking-analytics/events/batch").status_code == 401


def test_a_body_over_the_size_limit_is_413(analytics: BankingPerformanceAnalytics) -> None:
    settings = api_settings(analytics, stripe_webhook_secrets=SECRET, max_body_bytes=2048)
    with running(settings, analytics=analytics) as url, httpx.Client(base_url=url) as client:
        response = post(client, {**lifecycle()[0], "padding": "x" * 4096})
    assert response.status_code == 413
    assert stored(analytics) == []


def test_without_a_secret_the_endpoint_does_not_exist(live_api: LiveAPI) -> None:
    response = post(live_api.client, lifecycle()[0])
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "BA_STRIPE_WEBHOOK_SECRETS" in response.json()["detail"]


def test_secrets_are_read_comma_separated_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BA_STRIPE_WEBHOOK_SECRETS", f" {SECRET} ,{OLD_SECRET},")
    secrets = ApiSettings().stripe_webhook_secrets
    assert [s.get_secret_value() for s in secrets] == [SECRET, OLD_SECRET]
    assert SECRET not in repr(secrets)
    monkeypatch.setenv("BA_STRIPE_WEBHOOK_SECRETS", "changeme")
    with pytest.raises(ValueError, match="template default"):
        ApiSettings()
