"""Stripe's webhook signature (``Stripe-Signature: t=<unix time>,v1=<hex>,...``), checked
the way Stripe signs it.

Stripe signs ``f"{t}.{raw body}"`` with HMAC-SHA256 under the endpoint's secret
(``whsec_...``) and sends the hex digest as ``v1``; while a secret is being rolled
it sends one ``v1`` per live secret. A request is authentic when ANY ``v1`` equals
the digest under ANY configured secret (compared in constant time). ``v0`` is a
test-mode decoy and every scheme but ``v1`` is ignored, so a downgrade to a weaker
scheme is impossible. As in stripe-python (``stripe/_webhook.py``) the header is
split on ``,`` then on ``=``, the timestamp is read as an integer and written back
with ``%d``, and the signature is checked before the timestamp.

One difference, on purpose: stripe-python refuses only timestamps older than the
tolerance (300 s); this check also refuses ones more than the tolerance in the
future, as Stripe's manual-verification guide (a difference either way) describes: a
signature made for a future time would otherwise stay replayable until then.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Sequence

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "StripeSignatureError",
    "sign_stripe_payload",
    "verify_stripe_signature",
]

#: Stripe's default: a signature is valid for five minutes either side of its time.
DEFAULT_TOLERANCE_SECONDS = 300
_SCHEME = "v1"


class StripeSignatureError(ValueError):
    """The ``Stripe-Signature`` header does not prove the body came from Stripe; says why."""


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = b"%d." % timestamp + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign_stripe_payload(body: bytes, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header Stripe would send for ``body`` (for tests and tools)."""
    return f"t={timestamp},{_SCHEME}={_digest(secret, timestamp, body)}"


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise StripeSignatureError(f"the timestamp t={value!r} is not an integer") from None
        elif name == _SCHEME:
            signatures.append(value)
    if timestamp is None:
        raise StripeSignatureError("the Stripe-Signature header has no timestamp (t=...)")
    if not signatures:
        raise StripeSignatureError(
            "the Stripe-Signature header has no v1 signature (other schemes are not accepted)"
        )
    return timestamp, signatures


def verify_stripe_signature(
    body: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: Callable[[], float] = time.time,
) -> int:
    """Check a webhook's raw ``body`` against its ``Stripe-Signature`` header; returns the
    signed timestamp, or raises :class:`StripeSignatureError` saying what failed.

    Valid when some ``v1`` equals ``hex(HMAC_SHA256(secret, b"%d." % t + body))`` for
    some secret, and ``|now - t| <= tolerance``.
    """
    if not secrets:
        raise ValueError("no endpoint secret to verify against")
    if not header:
        raise StripeSignatureError("the Stripe-Signature header is missing")
    timestamp, signatures = _parse(header)
    expected = [_digest(secret, timestamp, body).encode() for secret in secrets]
    # Every pair is compared, so the time taken says nothing about which one matched.
    given = [s.encode("utf-8", "replace") for s in signatures]
    matches = [hmac.compare_digest(e, g) for e in expected for g in given]
    if not any(matches):
        raise StripeSignatureError(
            "no v1 signature matches the body under the configured endpoint secrets"
        )
    skew = now() - timestamp
    if abs(skew) > tolerance:
        when = "old" if skew > 0 else "in the future"
        raise StripeSignatureError(
            f"the signature's timestamp is {abs(skew):.0f} s {when} "
            f"(more than the {tolerance} s tolerance)"
        )
    return timestamp
