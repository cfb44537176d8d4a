"""Plaid's webhook signature (``Plaid-Verification: <JWT>``), checked the way Plaid documents it.

Plaid signs every webhook with a JWT in the ``Plaid-Verification`` header
(https://plaid.com/docs/api/webhooks/webhook-verification/). A request is authentic when,
in this order:

1. the JWT's header names ``alg`` ``ES256`` (anything else is refused before a key is
   looked at, so no downgrade to ``none`` or to an HMAC keyed with the public key is
   possible) and a ``kid``;
2. ``kid`` names one of the verification keys (JWKs) the operator configured, and that
   key has not expired (Plaid's own example refuses a key whose ``expired_at`` is set);
3. the ES256 signature verifies under that key;
4. the claim ``iat`` (the signing time, a unix time) is within the tolerance of now
   (Plaid: five minutes). Plaid refuses only old tokens; one signed more than the
   tolerance in the future is refused too, as for Stripe's signatures, so a token cannot
   be kept for later;
5. the claim ``request_body_sha256`` equals the SHA-256 (hex) of the raw body as
   received, compared in constant time. The raw bytes, not re-serialised JSON: Plaid's
   bodies are indented JSON, and any re-serialisation changes the hash.

The keys are never fetched here: the operator gets them once from Plaid's
``/webhook_verification_key/get`` (one call per ``kid``) and configures them
(docs/plaid.md). A webhook signed with a ``kid`` that is not configured is refused with a
reason that names the ``kid`` to fetch.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

__all__ = [
    "DEFAULT_PLAID_TOLERANCE_SECONDS",
    "PlaidKeyError",
    "PlaidSignatureError",
    "PlaidVerification",
    "PlaidVerificationKey",
    "parse_plaid_keys",
    "verify_plaid_webhook",
]

#: Plaid: a webhook whose ``iat`` is more than five minutes old is refused.
DEFAULT_PLAID_TOLERANCE_SECONDS = 300
_ALGORITHM = "ES256"
#: pyjwt's own time checks are off: ``iat`` is checked here, both ways, with its reason.
_DECODE_OPTIONS: Any = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
}


class PlaidSignatureError(ValueError):
    """The ``Plaid-Verification`` header does not prove the body came from Plaid; says why."""


class PlaidKeyError(ValueError):
    """The configured verification keys cannot be read; says which and why."""


@dataclass(frozen=True, slots=True)
class PlaidVerificationKey:
    """One of Plaid's webhook verification keys (a P-256 JWK): its id, public key and
    ``expired_at`` (unix time, None while it is current)."""

    key_id: str
    public_key: EllipticCurvePublicKey
    expired_at: int | None


@dataclass(frozen=True, slots=True)
class PlaidVerification:
    """What a verified signature proves: the key that signed, when, and the body's hash."""

    key_id: str
    issued_at: int
    body_sha256: str


def _jwks(document: object) -> list[Mapping[str, Any]]:
    """The JWKs in a document: one JWK, a list of them, a JWK Set ``{"keys": [...]}``, or
    ``/webhook_verification_key/get``'s answer ``{"key": {...}, "request_id": ...}``."""
    if isinstance(document, Mapping) and isinstance(document.get("keys"), list):
        document = document["keys"]
    elif isinstance(document, Mapping) and isinstance(document.get("key"), Mapping):
        document = [document["key"]]
    elif isinstance(document, Mapping):
        document = [document]
    if not isinstance(document, list) or not all(isinstance(k, Mapping) for k in document):
        raise PlaidKeyError('expected a JWK, a list of JWKs or a JWK Set {"keys": [...]}')
    return list(document)


def _key(jwk: Mapping[str, Any]) -> PlaidVerificationKey:
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise PlaidKeyError("a verification key has no kid")
    if (
        jwk.get("kty") != "EC"
        or jwk.get("crv") != "P-256"
        or jwk.get("alg", _ALGORITHM) != _ALGORITHM
    ):
        raise PlaidKeyError(f"key {kid}: not an ES256 key (kty EC, crv P-256)")
    expired_at = jwk.get("expired_at")
    if expired_at is not None and (not isinstance(expired_at, int) or isinstance(expired_at, bool)):
        raise PlaidKeyError(f"key {kid}: expired_at is neither null nor a unix time")
    # Plaid's extra members (created_at, expired_at) are not JWK members: left out.
    public = {k: jwk[k] for k in ("kty", "crv", "x", "y", "kid") if k in jwk}
    try:
        key = jwt.PyJWK(public, algorithm=_ALGORITHM).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
        raise PlaidKeyError(f"key {kid}: {exc}") from None
    if not isinstance(key, EllipticCurvePublicKey):
        raise PlaidKeyError(f"key {kid}: not a public key")
    return PlaidVerificationKey(kid, key, expired_at)


def parse_plaid_keys(text: str | bytes) -> dict[str, PlaidVerificationKey]:
    """The verification keys in a JSON document (see :func:`_jwks` for the forms), by ``kid``."""
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise PlaidKeyError(f"not JSON: {exc}") from None
    keys: dict[str, PlaidVerificationKey] = {}
    for jwk in _jwks(document):
        key = _key(jwk)
        if key.key_id in keys:
            raise PlaidKeyError(f"key {key.key_id} is given twice")
        keys[key.key_id] = key
    if not keys:
        raise PlaidKeyError("no verification key")
    return keys


def _header(token: str) -> tuple[str, str]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise PlaidSignatureError(f"the Plaid-Verification header is not a JWT ({exc})") from None
    algorithm = header.get("alg")
    if algorithm != _ALGORITHM:
        raise PlaidSignatureError(f"the JWT's alg is {algorithm!r}; only ES256 is accepted")
    key_id = header.get("kid")
    if not isinstance(key_id, str) or not key_id:
        raise PlaidSignatureError("the JWT's header has no kid")
    return algorithm, key_id


def verify_plaid_webhook(
    body: bytes,
    header: str | None,
    keys: Mapping[str, PlaidVerificationKey],
    *,
    tolerance: int = DEFAULT_PLAID_TOLERANCE_SECONDS,
    now: Callable[[], float] = time.time,
) -> PlaidVerification:
    """Check a webhook's raw ``body`` against its ``Plaid-Verification`` JWT (the steps are
    the module's); returns what it proves, or raises :class:`PlaidSignatureError` saying
    which step failed."""
    if not keys:
        raise ValueError("no verification key to verify against")
    if not header:
        raise PlaidSignatureError("the Plaid-Verification header is missing")
    algorithm, key_id = _header(header)
    key = keys.get(key_id)
    if key is None:
        raise PlaidSignatureError(
            f"the JWT was signed with key {key_id}, which is not configured: fetch it with "
            "/webhook_verification_key/get and add it (docs/plaid.md)"
        )
    if key.expired_at is not None:
        raise PlaidSignatureError(f"key {key_id} expired at {key.expired_at} (unix time)")
    try:
        claims = jwt.decode(header, key.public_key, algorithms=[algorithm], options=_DECODE_OPTIONS)
    except jwt.PyJWTError as exc:
        raise PlaidSignatureError(
            f"the JWT's signature does not verify under key {key_id} ({exc})"
        ) from None
    issued_at = claims.get("iat")
    if not isinstance(issued_at, int) or isinstance(issued_at, bool):
        raise PlaidSignatureError("the JWT has no iat (issued-at unix time) claim")
    skew = now() - issued_at
    if abs(skew) > tolerance:
        when = "old" if skew > 0 else "in the future"
        raise PlaidSignatureError(
            f"the JWT's iat is {abs(skew):.0f} s {when} (more than the {tolerance} s tolerance)"
        )
    claimed = claims.get("request_body_sha256")
    if not isinstance(claimed, str):
        raise PlaidSignatureError("the JWT has no request_body_sha256 claim")
    actual = hashlib.sha256(body).hexdigest()
    if not hmac.compare_digest(actual.encode(), claimed.encode("utf-8", "replace")):
        raise PlaidSignatureError("the body's SHA-256 does not equal the JWT's request_body_sha256")
    return PlaidVerification(key_id, issued_at, actual)
