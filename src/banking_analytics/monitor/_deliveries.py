"""Notifications as receivers get them, and their delivery: the body of each kind of
receiver, the webhook signature, and sending with retries under the SSRF rule.

A ``webhook`` receiver gets Alertmanager's webhook body (version 4: ``status``,
``groupLabels``, ``commonLabels``, ``commonAnnotations``, ``alerts`` with
``status``, ``labels``, ``annotations``, ``startsAt``, ``endsAt``,
``fingerprint``), plus ``notificationId`` (the same on every retry: receivers
deduplicate on it). It is signed the way Stripe signs its webhooks: the header
``X-Banking-Analytics-Signature: t=<unix time>,v1=<hex>`` carries
``HMAC-SHA256(secret, "<t>.<raw body>")``, so a receiver checks the body and
that ``t`` is recent (a replayed notification is refused).

A ``slack`` receiver gets an incoming webhook's ``{"text": ..., "blocks": [...]}``.

Each try is checked against the SSRF rule (:mod:`._ssrf`) and sent to the
address checked, redirects not followed. 2xx delivers. Network errors, 408, 429
and 5xx are tried again after an exponential backoff with jitter; after the last
try, or at once for an answer that will not change (another 4xx, a redirect, a
URL refused), the notification is dead: kept with its body and every attempt.
"""

from __future__ import annotations

import json
import random
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from banking_analytics import __version__
from banking_analytics.ingest import sign_stripe_payload
from banking_analytics.monitor._notify_store import AlertRecord, Attempt, Delivery, Receiver
from banking_analytics.monitor._ssrf import (
    Network,
    Resolver,
    UnsafeURLError,
    check_url,
    system_resolver,
)

__all__ = [
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "RetryPolicy",
    "Sender",
    "notification_body",
    "sign_notification",
]

SIGNATURE_HEADER = "X-Banking-Analytics-Signature"
DELIVERY_HEADER = "X-Banking-Analytics-Delivery"
#: Alertmanager's ``endsAt`` of an alert still firing.
_NOT_ENDED = "0001-01-01T00:00:00Z"


def sign_notification(body: bytes, secret: str, timestamp: int) -> str:
    """The signature header's value: ``t=<timestamp>,v1=<hex HMAC-SHA256 of "t.body">``
    (Stripe's scheme, so a receiver may verify it with the code it has for Stripe's)."""
    return sign_stripe_payload(body, secret, timestamp)


def _time(at: datetime | None) -> str:
    return _NOT_ENDED if at is None else at.isoformat().replace("+00:00", "Z")


def _common(mappings: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not mappings:
        return {}
    first = mappings[0]
    return {k: v for k, v in sorted(first.items()) if all(m.get(k) == v for m in mappings[1:])}


def notification_body(
    kind: str,
    *,
    receiver: str,
    group_key: str,
    group_labels: Mapping[str, str],
    firing: Sequence[AlertRecord],
    resolved: Sequence[AlertRecord],
    notification_id: str,
) -> dict[str, Any]:
    """The JSON a receiver of ``kind`` gets for a group's firing and resolved alerts."""
    alerts = [*firing, *resolved]
    status = "firing" if firing else "resolved"
    if kind == "slack":
        title = f"[{status.upper()}:{len(firing) or len(resolved)}] " + " ".join(
            f"{k}={v}" for k, v in sorted(group_labels.items())
        )
        lines = [
            f"{'FIRING' if a.ends_at is None else 'RESOLVED'} "
            + (a.annotations.get("summary") or ", ".join(f"{k}={v}" for k, v in a.labels.items()))
            for a in alerts
        ]
        text = "\n".join([title, *lines])
        return {
            "text": text,
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}},
            ],
        }
    return {
        "version": "4",
        "notificationId": notification_id,
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": dict(sorted(group_labels.items())),
        "commonLabels": _common([a.labels for a in alerts]),
        "commonAnnotations": _common([a.annotations for a in alerts]),
        "externalURL": "",
        "alerts": [
            {
                "status": "firing" if a.ends_at is None else "resolved",
                "labels": dict(sorted(a.labels.items())),
                "annotations": dict(sorted(a.annotations.items())),
                "startsAt": _time(a.starts_at),
                "endsAt": _time(a.ends_at),
                "generatorURL": "",
                "fingerprint": a.fingerprint,
            }
            for a in alerts
        ],
    }


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and when a notification is tried: try ``n`` failing is followed by try
    ``n + 1`` after ``min(max_delay, initial_delay * 2^(n-1))`` scaled by a random factor in
    [0.5, 1) ("equal jitter": receivers recovering are not hit by every sender at once)."""

    max_attempts: int = 6
    initial_delay: timedelta = timedelta(seconds=10)
    max_delay: timedelta = timedelta(minutes=10)

    def delay(self, attempt: int, rng: random.Random) -> timedelta:
        full: timedelta = min(self.max_delay, self.initial_delay * 2 ** (attempt - 1))
        return full * (0.5 + rng.random() / 2)


_RETRIED = frozenset({408, 429})


class Sender:
    """Sends notifications (see the module); one HTTP client, kept open."""

    def __init__(
        self,
        *,
        allowed: Sequence[Network] = (),
        resolve: Resolver = system_resolver,
        retry: RetryPolicy = RetryPolicy(),
        rng: random.Random | None = None,
        timeout_seconds: float = 10.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """``verify``: how https receivers' certificates are checked (the system's
        certificate authorities by default; a context trusting a private CA)."""
        self.allowed = tuple(allowed)
        self._resolve = resolve
        self.retry = retry
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)
        # No redirects followed; no proxy from the environment (it would connect elsewhere).
        self._client = httpx.Client(
            follow_redirects=False, trust_env=False, timeout=timeout_seconds, verify=verify
        )

    def close(self) -> None:
        self._client.close()

    def attempt(self, receiver: Receiver | None, delivery: Delivery, now: datetime) -> Attempt:
        """Try ``delivery`` once at ``now``: what happened, and when to try again if at all."""
        n = delivery.attempts + 1
        status, error, again = self._send(receiver, delivery, now)
        if status is not None and 200 <= status < 300:
            return Attempt(delivery.delivery_id, n, now, "delivered", status, None, None)
        if again and n < self.retry.max_attempts:
            next_try = now + self.retry.delay(n, self._rng)
            return Attempt(delivery.delivery_id, n, now, "retry", status, error, next_try)
        return Attempt(delivery.delivery_id, n, now, "dead", status, error, None)

    def _send(
        self, receiver: Receiver | None, delivery: Delivery, now: datetime
    ) -> tuple[int | None, str | None, bool]:
        """The status code (None: no answer), the error, and whether another try may help."""
        if receiver is None:
            return None, f"the receiver {delivery.receiver!r} no longer exists", False
        try:
            target = check_url(receiver.url, self.allowed, resolve=self._resolve)
        except UnsafeURLError as exc:
            return None, f"refused: {exc}", False
        body = delivery.payload.encode()
        headers = {
            "Host": target.host_header,
            "Content-Type": "application/json",
            "User-Agent": f"banking-analytics/{__version__}",
            DELIVERY_HEADER: delivery.delivery_id,
        }
        if receiver.secret is not None:
            headers[SIGNATURE_HEADER] = sign_notification(
                body, receiver.secret, int(now.timestamp())
            )
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            answer = self._client.post(
                target.pinned_url, content=body, headers=headers, extensions=extensions
            )
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}", True
        status = answer.status_code
        if 200 <= status < 300:
            return status, None, False
        if 300 <= status < 400:
            where = answer.headers.get("location", "?")
            return status, f"redirect to {where} not followed", False
        error = f"HTTP {status}: {answer.text[:200]}"
        return status, error, status >= 500 or status in _RETRIED


def dumps(payload: Mapping[str, Any]) -> str:
    """The body as sent: compact JSON."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
