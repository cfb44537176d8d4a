"""Notifications, on every engine: grouping, repeat and resolve timing under a controllable
clock, silences and inhibition, retries and the dead letter, state kept across a restart,
and delivery over real HTTP to a receiver on loopback that checks the signature."""

from __future__ import annotations

import ipaddress
import json
import random
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api_fixtures import api_settings
from api_server import running
from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.ingest import verify_stripe_signature
from banking_analytics.monitor import (
    SIGNATURE_HEADER,
    Matcher,
    NotificationPolicy,
    Notifier,
    Receiver,
    RetryPolicy,
    Rule,
    Sender,
    Silence,
    parse_networks,
)
from notify_receiver import Received, receiving
from test_monitor_evaluate import MINUTE, RULE, T0, hand_worked

SECOND = timedelta(seconds=1)
LOOPBACK = parse_networks(["127.0.0.0/8"])
SECRET = "test-signing-secret"
FIRED = T0 + 32 * MINUTE  # RULE's instances fire at the third evaluation (for: 2m)
POLICY = {
    "receiver": "hook",
    "group_by": ["alertname"],
    "group_wait": "30s",
    "group_interval": "5m",
    "repeat_interval": "1h",
}


def notifier(analytics: BankingPerformanceAnalytics, **retry: Any) -> Notifier:
    sender = Sender(allowed=LOOPBACK, rng=random.Random(7), retry=RetryPolicy(**retry))
    return Notifier(analytics.monitor, sender)


def configure(
    analytics: BankingPerformanceAnalytics,
    url: str,
    policy: dict[str, Any] | None = None,
    *,
    send_resolved: bool = True,
) -> None:
    store = analytics.monitor.notifications
    store.put_receiver(Receiver("hook", "webhook", url, SECRET, send_resolved, T0, "test"))
    store.put_policy(NotificationPolicy.from_dict(policy or POLICY), "test", T0)


def fire(analytics: BankingPerformanceAnalytics, *rules: dict[str, Any]) -> None:
    """ins_a (warning) and ins_b (critical) firing at FIRED; ins_c has no data."""
    analytics.ingest(hand_worked())
    analytics.monitor.apply([Rule.from_dict(r) for r in rules or (RULE,)], "test")
    for minute in (30, 31, 32):
        analytics.monitor.evaluate(T0 + minute * MINUTE)


def alerts_in(request: Received) -> list[tuple[str, str, str]]:
    body = json.loads(request.body)
    return [
        (a["labels"]["alertname"], a["labels"]["institution"], a["status"]) for a in body["alerts"]
    ]


def signed_at(request: Received, at: datetime) -> dict[str, Any]:
    """The body, once its signature is checked as a receiver would, at ``at``."""
    header = request.headers[SIGNATURE_HEADER]
    assert header.startswith(f"t={int(at.timestamp())},v1=")
    verify_stripe_signature(request.body, header, [SECRET], now=lambda: at.timestamp())
    body: dict[str, Any] = json.loads(request.body)
    return body


def test_a_group_waits_then_notifies_repeats_and_resolves_and_survives_a_restart(
    analytics: BankingPerformanceAnalytics,
) -> None:
    with receiving() as hook:
        configure(analytics, hook.url)
        fire(analytics)
        first = notifier(analytics)
        # group_wait: nothing before 30 s have passed since the group appeared.
        assert first.tick(FIRED) == []
        assert first.tick(FIRED + 29 * SECOND) == []
        [sent] = first.tick(FIRED + 30 * SECOND)
        assert (sent.state, sent.status, sent.attempts, sent.status_code) == (
            "delivered",
            "firing",
            1,
            200,
        )
        [request] = hook.wait_for(1)
        body = signed_at(request, FIRED + 30 * SECOND)
        assert alerts_in(request) == [
            ("success_low", "ins_a", "firing"),
            ("success_low", "ins_b", "firing"),
        ]
        assert (body["status"], body["groupLabels"], body["receiver"]) == (
            "firing",
            {"alertname": "success_low"},
            "hook",
        )
        assert body["commonLabels"] == {"alertname": "success_low", "team": "integrations"}
        assert [a["labels"]["severity"] for a in body["alerts"]] == ["warning", "critical"]
        assert [a["startsAt"] for a in body["alerts"]] == ["2026-11-02T12:32:00Z"] * 2
        assert body["alerts"][1]["endsAt"] == "0001-01-01T00:00:00Z"
        assert body["alerts"][1]["annotations"] == {"summary": "ins_b: 40%"}
        assert (
            body["notificationId"]
            == sent.delivery_id
            == request.headers["X-Banking-Analytics-Delivery"]
        )

        # A restarted dispatcher knows from the store what it sent: nothing again, and the
        # group's next look is group_interval after its flush.
        again = notifier(analytics)
        assert again.tick(FIRED + 31 * SECOND) == []
        assert again.tick(FIRED + 5 * MINUTE + 29 * SECOND) == []
        assert again.tick(FIRED + 5 * MINUTE + 30 * SECOND) == []  # unchanged: not repeated
        # repeat_interval (1h) after the last notification, at the next group_interval look.
        assert again.tick(FIRED + 60 * MINUTE) == []
        [repeated] = again.tick(FIRED + 60 * MINUTE + 30 * SECOND)
        assert repeated.status == "firing"
        assert alerts_in(hook.wait_for(2)[1]) == alerts_in(request)

        # No data in the window any more: the alerts stop firing and resolve, notified at
        # the group's next look (send_resolved).
        assert again.tick(FIRED + 65 * MINUTE + 30 * SECOND) == []
        analytics.monitor.evaluate(T0 + 100 * MINUTE)
        assert again.tick(T0 + 100 * MINUTE) == []
        [resolved] = again.tick(FIRED + 70 * MINUTE + 30 * SECOND)
        body = signed_at(hook.wait_for(3)[2], FIRED + 70 * MINUTE + 30 * SECOND)
        assert (resolved.status, body["status"]) == ("resolved", "resolved")
        assert alerts_in(hook.requests[2]) == [
            ("success_low", "ins_a", "resolved"),
            ("success_low", "ins_b", "resolved"),
        ]
        assert [a["endsAt"] for a in body["alerts"]] == ["2026-11-02T13:40:00Z"] * 2
        # Then the group is gone, and nothing more is sent.
        assert again.tick(FIRED + 80 * MINUTE) == []
        assert analytics.monitor.notifications.dispatch_state() == ([], [])
        assert len(hook.requests) == 3


def test_an_alert_resolved_within_group_wait_is_never_notified(
    analytics: BankingPerformanceAnalytics,
) -> None:
    with receiving() as hook:
        configure(analytics, hook.url, {**POLICY, "group_wait": "10m"})
        fire(analytics)
        dispatcher = notifier(analytics)
        assert dispatcher.tick(FIRED) == []
        analytics.monitor.evaluate(T0 + 100 * MINUTE)  # resolved before group_wait is over
        assert dispatcher.tick(FIRED + 10 * MINUTE) == []
        assert dispatcher.tick(FIRED + 60 * MINUTE) == []
        assert hook.requests == []


def test_without_send_resolved_only_firing_is_notified(
    analytics: BankingPerformanceAnalytics,
) -> None:
    with receiving() as hook:
        configure(analytics, hook.url, {**POLICY, "group_wait": "0"}, send_resolved=False)
        fire(analytics)
        dispatcher = notifier(analytics)
        assert [d.status for d in dispatcher.tick(FIRED)] == ["firing"]
        analytics.monitor.evaluate(T0 + 100 * MINUTE)
        for minutes in (5, 10, 15):
            assert dispatcher.tick(FIRED + minutes * MINUTE) == []
        assert len(hook.requests) == 1


def test_routes_with_continue_group_by_label_and_fall_back_to_the_default_receiver(
    analytics: BankingPerformanceAnalytics,
) -> None:
    with receiving() as hook, receiving() as pager:
        store = analytics.monitor.notifications
        store.put_receiver(Receiver("pager", "webhook", pager.url, SECRET, True, T0, "test"))
        policy = {
            **POLICY,
            "group_wait": "0",
            "routes": [
                {"matchers": ['severity="critical"'], "receiver": "pager", "continue": True},
                {
                    "matchers": ['institution=~"ins_[bc]"'],
                    "receiver": "hook",
                    "group_by": ["institution"],
                },
            ],
        }
        configure(analytics, hook.url, policy)
        fire(analytics)
        sent = notifier(analytics).tick(FIRED)
        assert sorted((d.receiver, d.group_key) for d in sent) == [
            ("hook", '[-1,"hook",[["alertname","success_low"]]]'),
            ("hook", '[1,"hook",[["institution","ins_b"]]]'),
            ("pager", '[0,"pager",[["alertname","success_low"]]]'),
        ]
        assert [alerts_in(r) for r in pager.wait_for(1)] == [[("success_low", "ins_b", "firing")]]
        assert sorted(alerts_in(r)[0][1] for r in hook.wait_for(2)) == ["ins_a", "ins_b"]


WARN_ONLY = {**RULE, "name": "success_warn", "critical": None, "warning": 0.95}


def test_silences_mute_matching_alerts_until_they_end_or_expire(
    analytics: BankingPerformanceAnalytics,
) -> None:
    with receiving() as hook:
        configure(analytics, hook.url, {**POLICY, "group_by": ["institution"], "group_wait": "0"})
        fire(analytics)
        store = analytics.monitor.notifications
        matchers = (Matcher.parse('institution=~"ins_(b|z)"'), Matcher.parse('team="integrations"'))
        store.add_silence(
            Silence("s1", matchers, T0, FIRED + 10 * MINUTE, T0, "ops@example.com", "bank outage")
        )
        dispatcher = notifier(analytics)
        assert [alerts_in(hook.wait_for(1)[0]) for _ in dispatcher.tick(FIRED)] == [
            [("success_low", "ins_a", "firing")]
        ]
        assert dispatcher.tick(FIRED + 5 * MINUTE) == []  # still silenced
        # The silence ends: ins_b is notified at its group's next look.
        [late] = dispatcher.tick(FIRED + 10 * MINUTE)
        assert alerts_in(hook.wait_for(2)[1]) == [("success_low", "ins_b", "firing")]
        assert late.status == "firing"

        # Expired early, a silence stops muting at once, and says who ended it.
        store.add_silence(Silence("s2", matchers[:1], T0, FIRED + 9 * 60 * MINUTE, T0, "a", "x"))
        expired = store.expire_silence("s2", "ops@example.com", FIRED + 11 * MINUTE)
        assert expired is not None
        assert (expired.ends_at, expired.expired_by) == (FIRED + 11 * MINUTE, "ops@example.com")
        assert not expired.active(FIRED + 11 * MINUTE)
        assert store.expire_silence("nope", "a", FIRED) is None


def test_a_critical_alert_inhibits_the_warning_of_the_same_institution(
    analytics: BankingPerformanceAnalytics,
) -> None:
    with receiving() as hook:
        configure(analytics, hook.url, {**POLICY, "group_by": ["institution"], "group_wait": "0"})
        # success_warn: ins_a (0.88) and ins_b (0.40) both breach its warning only.
        fire(analytics, RULE, WARN_ONLY)
        sent = notifier(analytics).tick(FIRED)
        got = sorted(alerts_in(r) for r in hook.wait_for(len(sent)))
        # ins_b's warning is muted by its critical; ins_a has warnings only.
        assert got == [
            [("success_low", "ins_a", "firing"), ("success_warn", "ins_a", "firing")],
            [("success_low", "ins_b", "firing")],
        ]


def test_failed_tries_back_off_with_jitter_then_dead_letter(
    analytics: BankingPerformanceAnalytics,
) -> None:
    with receiving() as hook:
        hook.statuses = [503]
        configure(analytics, hook.url, {**POLICY, "group_wait": "0"})
        fire(analytics)
        dispatcher = notifier(analytics, max_attempts=3, initial_delay=timedelta(seconds=10))
        [first] = dispatcher.tick(FIRED)
        assert (first.state, first.attempts, first.status_code) == ("pending", 1, 503)
        assert first.next_try_at is not None
        wait = first.next_try_at - FIRED
        assert 5 * SECOND <= wait < 10 * SECOND  # 10 s, scaled by [0.5, 1)
        assert dispatcher.tick(first.next_try_at - SECOND) == []
        [second] = dispatcher.tick(first.next_try_at)
        assert second.next_try_at is not None
        assert 10 * SECOND <= second.next_try_at - first.next_try_at < 20 * SECOND
        [last] = dispatcher.tick(second.next_try_at)
        assert (last.state, last.attempts, last.next_try_at) == ("dead", 3, None)
        assert last.error is not None
        assert last.error.startswith("HTTP 503")
        store = analytics.monitor.notifications
        tries = store.attempts(last.delivery_id)
        assert [(a.attempt, a.outcome, a.status_code) for a in tries] == [
            (1, "retry", 503),
            (2, "retry", 503),
            (3, "dead", 503),
        ]
        # The dead letter keeps the notification as it was to be sent: the same body each try.
        assert len({r.body for r in hook.wait_for(3)}) == 1
        assert json.loads(store.delivery(last.delivery_id).payload)["status"] == "firing"  # type: ignore[union-attr]
        assert [d.state for d in store.deliveries(state="dead")] == ["dead"]
        assert dispatcher.tick(second.next_try_at + 30 * MINUTE) == []  # nothing left to try


def test_an_answer_that_will_not_change_is_not_tried_again(
    analytics: BankingPerformanceAnalytics,
) -> None:
    with receiving() as hook:
        hook.statuses = [410]
        configure(analytics, hook.url, {**POLICY, "group_wait": "0"})
        fire(analytics)
        [dead] = notifier(analytics).tick(FIRED)
        assert (dead.state, dead.attempts, dead.status_code) == ("dead", 1, 410)


@pytest.mark.parametrize("status", [429, 500])
def test_throttled_or_failing_receivers_are_tried_again(
    analytics: BankingPerformanceAnalytics, status: int
) -> None:
    with receiving() as hook:
        hook.statuses = [status, 204]
        configure(analytics, hook.url, {**POLICY, "group_wait": "0"})
        fire(analytics)
        dispatcher = notifier(analytics)
        [first] = dispatcher.tick(FIRED)
        assert first.next_try_at is not None
        [second] = dispatcher.tick(first.next_try_at)
        assert (second.state, second.attempts, second.status_code) == ("delivered", 2, 204)
        # Each try is signed at its own time.
        signed_at(hook.wait_for(2)[1], first.next_try_at)


def test_a_redirect_is_not_followed_even_to_an_allowed_address(
    analytics: BankingPerformanceAnalytics,
) -> None:
    with receiving() as hook, receiving() as elsewhere:
        hook.statuses, hook.location = [302], elsewhere.url
        configure(analytics, hook.url, {**POLICY, "group_wait": "0"})
        fire(analytics)
        [dead] = notifier(analytics).tick(FIRED)
        assert (dead.state, dead.status_code) == ("dead", 302)
        assert dead.error == f"redirect to {elsewhere.url} not followed"
        assert elsewhere.requests == []


def test_a_url_refused_at_send_time_is_dead_with_the_reason(
    analytics: BankingPerformanceAnalytics,
) -> None:
    with receiving() as hook:
        configure(analytics, hook.url, {**POLICY, "group_wait": "0"})
        fire(analytics)
        # No allow-list: loopback is refused when the notification is sent.
        [dead] = Notifier(analytics.monitor, Sender()).tick(FIRED)
        assert (dead.state, dead.status_code) == ("dead", None)
        assert dead.error is not None
        assert dead.error.startswith("refused: 127.0.0.1 is a loopback address")
        assert hook.requests == []


def test_the_checked_address_is_the_one_connected_to(
    analytics: BankingPerformanceAnalytics,
) -> None:
    """A name is resolved once, by the check; the request goes to that address with the
    name as Host (no second lookup a rebinding DNS server could answer differently)."""
    with receiving() as hook:
        port = hook.url.split(":")[2].split("/")[0]
        url = f"http://alerts.receiver.test:{port}/hook"
        configure(analytics, url, {**POLICY, "group_wait": "0"})
        fire(analytics)
        lookups: list[str] = []

        def resolve(host: str, _: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
            lookups.append(host)
            return [ipaddress.ip_address("127.0.0.1")]

        sender = Sender(allowed=LOOPBACK, resolve=resolve)
        [sent] = Notifier(analytics.monitor, sender).tick(FIRED)
        assert sent.state == "delivered"
        assert lookups == ["alerts.receiver.test"]
        assert hook.wait_for(1)[0].headers["Host"] == f"alerts.receiver.test:{port}"


def test_slack_receivers_get_an_incoming_webhook_body(
    analytics: BankingPerformanceAnalytics,
) -> None:
    with receiving() as hook:
        store = analytics.monitor.notifications
        store.put_receiver(Receiver("chat", "slack", hook.url, None, True, T0, "test"))
        store.put_policy(
            NotificationPolicy.from_dict({**POLICY, "receiver": "chat", "group_wait": "0"}),
            "test",
            T0,
        )
        fire(analytics)
        [sent] = notifier(analytics).tick(FIRED)
        [request] = hook.wait_for(1)
        assert SIGNATURE_HEADER not in request.headers
        body = json.loads(request.body)
        assert body["text"].splitlines() == [
            "[FIRING:2] alertname=success_low",
            "FIRING ins_a: 88%",
            "FIRING ins_b: 40%",
        ]
        assert [b["type"] for b in body["blocks"]] == ["header", "section"]
        assert sent.state == "delivered"


def test_a_served_api_notifies_in_the_background(analytics: BankingPerformanceAnalytics) -> None:
    """The server's evaluator runs by the wall clock: events and rule lie around now, and
    the notification is awaited as it arrives (not for a time to pass)."""
    now = datetime.now(UTC)
    events = [{**e, "occurred_at": (now - 5 * MINUTE).isoformat()} for e in hand_worked()]
    analytics.ingest(events)
    analytics.monitor.apply([Rule.from_dict({**RULE, "for": "0"})], "test")
    settings = api_settings(
        analytics, evaluate_rules=True, notify_allowed_networks=["127.0.0.1/32"]
    )
    with receiving() as hook:
        configure(analytics, hook.url, {**POLICY, "group_wait": "0"})
        with running(settings, analytics=analytics):
            [request] = hook.wait_for(1)
    header = request.headers[SIGNATURE_HEADER]
    verify_stripe_signature(request.body, header, [SECRET])  # signed just now
    assert alerts_in(request) == [
        ("success_low", "ins_a", "firing"),
        ("success_low", "ins_b", "firing"),
    ]
    [delivered] = analytics.monitor.notifications.deliveries()
    assert (delivered.state, delivered.attempts) == ("delivered", 1)


def certificate(name: str, folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` and its key, as PEM files in ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.mark.parametrize("store_url", ["duckdb"], indirect=True)
@pytest.mark.parametrize(
    ("served", "trusted"), [("alerts.receiver.test", True), ("other.test", False)]
)
def test_https_is_verified_against_the_name_while_connecting_to_the_checked_address(
    analytics: BankingPerformanceAnalytics, tmp_path: Path, served: str, trusted: bool
) -> None:
    """The request goes to the address checked, and TLS still verifies the URL's name: a
    certificate for another name is refused."""
    cert_file, key_file = certificate(served, tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    with receiving(tls) as hook:
        port = hook.url.split(":")[2].split("/")[0]
        configure(
            analytics, f"https://alerts.receiver.test:{port}/hook", {**POLICY, "group_wait": "0"}
        )
        fire(analytics)

        def resolve(host: str, _: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
            return [ipaddress.ip_address("127.0.0.1")]

        sender = Sender(allowed=LOOPBACK, resolve=resolve, verify=client)
        [sent] = Notifier(analytics.monitor, sender).tick(FIRED)
    if trusted:
        assert (sent.state, sent.status_code) == ("delivered", 200)
        assert hook.requests[0].headers["Host"] == f"alerts.receiver.test:{port}"
    else:
        assert (sent.state, sent.status_code) == ("pending", None)
        assert sent.error is not None
        assert "certificate" in sent.error.lower()
        assert hook.requests == []
