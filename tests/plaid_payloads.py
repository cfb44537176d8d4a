"""Plaid webhook bodies in Plaid's documented shapes (the OpenAPI spec's x-examples, ids
varied), and the ``Plaid-Verification`` JWT Plaid would send with them, made with an
EC P-256 key generated here (Plaid's own keys are, of course, not ours to sign with)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

KEY_ID = "bfbd5111-8e33-4643-8ced-b2e642a72f3c"
USER = "usr_9nSp2KuZ2x4JDw"


def private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _b64url(number: int) -> str:
    return base64.urlsafe_b64encode(number.to_bytes(32, "big")).rstrip(b"=").decode()


def jwk(
    key: ec.EllipticCurvePrivateKey, kid: str = KEY_ID, expired_at: int | None = None
) -> dict[str, Any]:
    """The public key as ``/webhook_verification_key/get`` answers it (its ``key`` member)."""
    numbers = key.public_key().public_numbers()
    return {
        "alg": "ES256",
        "created_at": 1560466143,
        "crv": "P-256",
        "expired_at": expired_at,
        "kid": kid,
        "kty": "EC",
        "use": "sig",
        "x": _b64url(numbers.x),
        "y": _b64url(numbers.y),
    }


def body(payload: dict[str, Any]) -> bytes:
    """The raw body as Plaid sends it: JSON indented by two spaces."""
    return json.dumps(payload, indent=2).encode()


def sign(
    raw: bytes,
    key: ec.EllipticCurvePrivateKey,
    *,
    kid: str = KEY_ID,
    iat: int | None = None,
    body_sha256: str | None = None,
) -> str:
    """The ``Plaid-Verification`` header for ``raw``: an ES256 JWT with ``iat`` and the
    body's ``request_body_sha256``."""
    claims = {
        "iat": int(time.time()) if iat is None else iat,
        "request_body_sha256": body_sha256 or hashlib.sha256(raw).hexdigest(),
    }
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})


# -- ITEM ---------------------------------------------------------------------------------


def item_error(
    item_id: str, code: str = "ITEM_LOGIN_REQUIRED", error_type: str = "ITEM_ERROR"
) -> dict[str, Any]:
    return {
        "webhook_type": "ITEM",
        "webhook_code": "ERROR",
        "item_id": item_id,
        "user_id": USER,
        "error": {
            "display_message": None,
            "error_code": code,
            "error_code_reason": None,
            "error_message": "the login details of this item have changed (credentials, MFA, or "
            "required user action) and a user login is required to update this information. "
            "use Link's update mode to restore the item to a good state",
            "error_type": error_type,
            "status": 400,
        },
        "environment": "production",
    }


def pending_expiration(item_id: str, expires: str = "2020-01-15T13:25:17.766Z") -> dict[str, Any]:
    return {
        "webhook_type": "ITEM",
        "webhook_code": "PENDING_EXPIRATION",
        "item_id": item_id,
        "user_id": USER,
        "consent_expiration_time": expires,
        "environment": "production",
    }


def pending_disconnect(item_id: str, when: str = "2020-01-15T13:25:17.766Z") -> dict[str, Any]:
    return {
        "webhook_type": "ITEM",
        "webhook_code": "PENDING_DISCONNECT",
        "item_id": item_id,
        "user_id": USER,
        "reason": "INSTITUTION_MIGRATION",
        "disconnect_time": when,
        "environment": "production",
    }


def login_repaired(item_id: str) -> dict[str, Any]:
    return {
        "webhook_type": "ITEM",
        "webhook_code": "LOGIN_REPAIRED",
        "item_id": item_id,
        "user_id": USER,
        "environment": "production",
    }


def new_accounts_available(item_id: str) -> dict[str, Any]:
    return {
        "webhook_type": "ITEM",
        "webhook_code": "NEW_ACCOUNTS_AVAILABLE",
        "item_id": item_id,
        "user_id": USER,
        "error": None,
        "environment": "production",
    }


# -- TRANSACTIONS -------------------------------------------------------------------------


def sync_updates_available(item_id: str) -> dict[str, Any]:
    return {
        "webhook_type": "TRANSACTIONS",
        "webhook_code": "SYNC_UPDATES_AVAILABLE",
        "item_id": item_id,
        "user_id": USER,
        "initial_update_complete": True,
        "historical_update_complete": False,
        "environment": "production",
    }


def default_update(item_id: str, new_transactions: int = 3) -> dict[str, Any]:
    return {
        "webhook_type": "TRANSACTIONS",
        "webhook_code": "DEFAULT_UPDATE",
        "item_id": item_id,
        "error": None,
        "new_transactions": new_transactions,
        "environment": "production",
    }


# -- LINK ---------------------------------------------------------------------------------


def link_event(name: str, at: str, event_id: str, **metadata: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_name": name,
        "timestamp": at,
        "event_metadata": {"request_id": "8C7jNbDScC24THu", **metadata},
    }


def link_events(session: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "webhook_type": "LINK",
        "webhook_code": "EVENTS",
        "link_session_id": session,
        "link_token": "link-sandbox-af1a0311-da53-4636-b754-dd15cc058176",
        "events": events,
    }


def chase_session(
    session: str, end: str = "HANDOFF", error_code: str | None = None
) -> dict[str, Any]:
    """A Link session at Chase: opened 00:17:54, Chase chosen, credentials submitted
    00:18:10, ended at 00:18:40 (``end``: HANDOFF, or EXIT with ``error_code``)."""
    chase = {"institution_id": "ins_56", "institution_name": "Chase"}
    events = [
        link_event("OPEN", "2026-12-01T00:17:54Z", f"{session}-1", view_name="CONSENT"),
        link_event("SELECT_INSTITUTION", "2026-12-01T00:18:01Z", f"{session}-2", **chase),
        link_event("SUBMIT_CREDENTIALS", "2026-12-01T00:18:10Z", f"{session}-3", **chase),
    ]
    if error_code is not None:
        events.append(
            link_event(
                "ERROR",
                "2026-12-01T00:18:30Z",
                f"{session}-4",
                error_code=error_code,
                error_type="INSTITUTION_ERROR",
                error_message="this institution is not currently responding to this request",
                **chase,
            )
        )
    if end:
        events.append(link_event(end, "2026-12-01T00:18:40Z", f"{session}-5", **chase))
    return link_events(session, events)


def session_finished(session: str) -> dict[str, Any]:
    return {
        "webhook_type": "LINK",
        "webhook_code": "SESSION_FINISHED",
        "status": "SUCCESS",
        "link_session_id": session,
        "link_token": "link-sandbox-af1a0311-da53-4636-b754-dd15cc058176",
        "public_tokens": ["public-sandbox-b0e2c4ee-a763-4df5-bfe9-46a46bce993d"],
        "environment": "sandbox",
    }


def auth_verified(item_id: str) -> dict[str, Any]:
    """A webhook this system does not map (Auth's automated micro-deposits)."""
    return {
        "webhook_type": "AUTH",
        "webhook_code": "AUTOMATICALLY_VERIFIED",
        "item_id": item_id,
        "account_id": "dVzbVMLjrxTnLjX4G66XUp5GLklm4oiZy88yK",
        "environment": "production",
    }
