"""Plaid's webhooks as our events and as changes to an Item's connection state.

:func:`read_plaid_webhook` checks a body's shape; :func:`map_plaid_webhook` is pure: a
webhook, the time it counts from and what is known of its Item in, events and an
:class:`ItemChange` out, or the reason it maps to none. Nothing is fetched from Plaid.

Plaid's bodies carry no id and no time. A delivery is named by ``delivery_id`` (the
body's SHA-256 and the time of its first delivery, given by the caller: see
``_plaid_items``) and happens ``at`` that first delivery's signing time, so a retry
makes the same events (the same ids: duplicates in the store) at the same time.

What each webhook becomes (``item`` = what is known of the Item: its institution, from
an earlier webhook or from the host app's own ``sync_run`` events with
``connection_id`` = the Item id):

=====================================  ==================================================
ITEM ``ERROR``                         ``sync_run`` failure (feature ``transaction_sync``,
                                       trigger ``webhook``, the error's code and type);
                                       state ``login_required`` for the codes the user must
                                       fix (ITEM_LOGIN_REQUIRED, ...), else ``error``; a
                                       not-ready code (PRODUCT_NOT_READY) is a
                                       ``not_ready`` run and leaves the state
ITEM ``PENDING_EXPIRATION``            state ``pending_expiration`` until
                                       ``consent_expiration_time``
ITEM ``PENDING_DISCONNECT``            state ``pending_disconnect`` until ``disconnect_time``
ITEM ``USER_PERMISSION_REVOKED``,      state ``disconnected``
``USER_ACCOUNT_REVOKED``
ITEM ``LOGIN_REPAIRED``                state ``healthy``
ITEM ``NEW_ACCOUNTS_AVAILABLE``,       last webhook only
``WEBHOOK_UPDATE_ACKNOWLEDGED``
TRANSACTIONS ``SYNC_UPDATES_AVAILABLE``  ``sync_run`` success (trigger ``webhook``); state
``INITIAL_UPDATE``,                    ``healthy``; the legacy three carry
``HISTORICAL_UPDATE``,                 ``new_transactions`` as ``records_added`` and fail
``DEFAULT_UPDATE``                     when their ``error`` is set
LINK ``EVENTS``                        one ``connection_attempt`` per finished Link session
                                       (below)
LINK ``SESSION_FINISHED``              ignored: it names no institution; the session's
                                       ``EVENTS`` webhook makes its attempt
anything else                          ignored, with the reason
=====================================  ==================================================

A ``sync_run`` needs the Item's institution: while it is unknown the state still changes
and the webhook answers with a warning that its event was not stored.

Link sessions. ``EVENTS`` carries the session's Link events (``OPEN``,
``SELECT_INSTITUTION``, ``SUBMIT_CREDENTIALS``, ``OPEN_OAUTH``, ``ERROR``, ``EXIT``,
``HANDOFF``, ...). The attempt (``attempt_id`` = ``link_session_id``, feature
``account_linking``) has ``started_at`` = ``OPEN`` (else the first event),
``credentials_submitted_at`` = the first ``SUBMIT_CREDENTIALS`` or ``OPEN_OAUTH``,
``ended_at`` = ``HANDOFF`` or ``EXIT``, the institution of the last event naming one,
``auth_method`` ``oauth`` when ``OPEN_OAUTH`` occurred, else ``credentials`` when
credentials were submitted. Outcome: ``HANDOFF`` -> success; ``EXIT`` after an error
(its own ``error_code``, else the last ``ERROR`` event's) -> failure with that error;
``EXIT`` without -> abandoned. A session not ended yet, or that never chose an
institution, is ignored with the reason. Plaid may send a session's ``EVENTS`` more than
once, each with all its events so far: the attempt's id is made from the session id, so
the first finished one is kept and later ones are duplicates.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from banking_analytics.events import IDENTIFIER_PATTERN
from banking_analytics.events._error_codes import CODE_CATEGORIES, TYPE_CATEGORIES
from banking_analytics.vocabulary import (
    Aggregator,
    AuthMethod,
    BankingFeature,
    ConnectionFlow,
    ErrorCategory,
    Outcome,
    SyncOutcome,
    SyncTrigger,
)

__all__ = [
    "PLAID_EVENT_NAMESPACE",
    "ItemChange",
    "ItemOrigin",
    "ItemState",
    "PlaidMapping",
    "PlaidWebhook",
    "PlaidWebhookError",
    "error_category",
    "link_institutions",
    "map_plaid_webhook",
    "read_plaid_webhook",
]

#: The namespace of the UUID5 event ids made from deliveries (fixed for ever: changing
#: it would store every redelivered webhook again).
PLAID_EVENT_NAMESPACE = uuid.UUID("0b6f8f0e-9c1d-5a57-8d3e-2f4a9c6d1e70")
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
_NAME_LENGTH = 256


class ItemState(StrEnum):
    """An Item's connection state, as its webhooks tell it."""

    HEALTHY = "healthy"
    LOGIN_REQUIRED = "login_required"
    PENDING_EXPIRATION = "pending_expiration"
    PENDING_DISCONNECT = "pending_disconnect"
    DISCONNECTED = "disconnected"
    ERROR = "error"


class PlaidWebhookError(ValueError):
    """The body is not a Plaid webhook this module can read (says what is wrong)."""


@dataclass(frozen=True, slots=True)
class PlaidWebhook:
    """A webhook's envelope (every Plaid webhook has ``webhook_type`` and ``webhook_code``)
    and its whole body."""

    webhook_type: str
    webhook_code: str
    item_id: str | None
    environment: str | None
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ItemOrigin:
    """What is known of an Item from elsewhere: its institution and the host app's user."""

    institution_id: str
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class ItemChange:
    """What a webhook says of its Item: the new ``state`` (None: unchanged), the error it
    reports, and until when a pending expiry or disconnection runs."""

    item_id: str
    state: ItemState | None
    error_code: str | None = None
    error_type: str | None = None
    error_category: ErrorCategory | None = None
    expires_at: str | None = None


@dataclass(frozen=True, slots=True)
class PlaidMapping:
    """What one webhook became: ``events`` to store, the Item's ``change``, institutions
    named (id, name) for the catalogue, or the reason it was ``ignored``; ``warnings``
    name what of it could not be carried."""

    webhook_type: str
    webhook_code: str
    item_id: str | None = None
    events: tuple[dict[str, Any], ...] = ()
    change: ItemChange | None = None
    institutions: tuple[tuple[str, str], ...] = ()
    ignored: str | None = None
    warnings: tuple[str, ...] = ()


def _identifier(value: object) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= 128 and _IDENTIFIER.match(value):
        return value
    return None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def error_category(code: str | None, error_type: str | None) -> ErrorCategory:
    """Who must act on a Plaid error: by its code first, then its type (as ingestion
    derives ``error_category``: see events/_error_codes.py)."""
    return (
        CODE_CATEGORIES.get(code or "")
        or TYPE_CATEGORIES.get(error_type or "")
        or ErrorCategory.UNKNOWN
    )


def read_plaid_webhook(body: object) -> PlaidWebhook:
    """The webhook in a decoded body; :class:`PlaidWebhookError` when it is not one."""
    if not isinstance(body, Mapping):
        raise PlaidWebhookError("a Plaid webhook is a JSON object")
    webhook_type, webhook_code = body.get("webhook_type"), body.get("webhook_code")
    if not isinstance(webhook_type, str) or not isinstance(webhook_code, str):
        raise PlaidWebhookError("a Plaid webhook has a string webhook_type and webhook_code")
    item_id = body.get("item_id")
    if item_id is not None and _identifier(item_id) is None:
        raise PlaidWebhookError(f"item_id {item_id!r} is not an identifier")
    if (webhook_type, webhook_code) == ("LINK", "EVENTS") and not _identifier(
        body.get("link_session_id")
    ):
        raise PlaidWebhookError("a LINK EVENTS webhook has a link_session_id")
    environment = body.get("environment")
    return PlaidWebhook(
        webhook_type,
        webhook_code,
        item_id,
        environment if isinstance(environment, str) else None,
        body,
    )


# -- Items --------------------------------------------------------------------------------

_ITEM_STATES = {
    "PENDING_EXPIRATION": (ItemState.PENDING_EXPIRATION, "consent_expiration_time"),
    "PENDING_DISCONNECT": (ItemState.PENDING_DISCONNECT, "disconnect_time"),
    "USER_PERMISSION_REVOKED": (ItemState.DISCONNECTED, None),
    "USER_ACCOUNT_REVOKED": (ItemState.DISCONNECTED, None),
    "LOGIN_REPAIRED": (ItemState.HEALTHY, None),
    "NEW_ACCOUNTS_AVAILABLE": (None, None),
    "WEBHOOK_UPDATE_ACKNOWLEDGED": (None, None),
}
_LEGACY_TRIGGERS = {
    "INITIAL_UPDATE": SyncTrigger.INITIAL,
    "HISTORICAL_UPDATE": SyncTrigger.HISTORICAL,
    "DEFAULT_UPDATE": SyncTrigger.WEBHOOK,
}
_TRANSACTIONS_CODES = ("SYNC_UPDATES_AVAILABLE", *_LEGACY_TRIGGERS)
#: An Item's state after an ERROR, by category: the user must log in again; not ready
#: yet (PRODUCT_NOT_READY, ITEM_NO_ERROR) leaves the state as it was; else ``error``.
_ERROR_STATES: dict[ErrorCategory, ItemState | None] = {
    ErrorCategory.USER_ACTION_REQUIRED: ItemState.LOGIN_REQUIRED,
    ErrorCategory.NOT_READY: None,
}


@dataclass(frozen=True, slots=True)
class _Delivery:
    webhook: PlaidWebhook
    delivery_id: str
    at: datetime
    origin: ItemOrigin | None

    def event_id(self, part: str) -> str:
        return str(uuid.uuid5(PLAID_EVENT_NAMESPACE, f"{self.delivery_id}:{part}"))

    def properties(self) -> dict[str, Any]:
        w = self.webhook
        return {
            "source": "plaid",
            "plaid_webhook_type": w.webhook_type,
            "plaid_webhook_code": w.webhook_code,
            "plaid_environment": w.environment,
            "plaid_delivery_id": self.delivery_id,
        }


def _error(body: Mapping[str, Any]) -> tuple[str | None, str | None]:
    error = _mapping(body.get("error"))
    return _identifier(error.get("error_code")), _identifier(error.get("error_type"))


def _sync_run(
    d: _Delivery, outcome: SyncOutcome, trigger: SyncTrigger, error: tuple[str | None, str | None]
) -> dict[str, Any] | None:
    if d.origin is None or d.webhook.item_id is None:
        return None
    added = d.webhook.body.get("new_transactions")
    return {
        "event_type": "sync_run",
        "event_id": d.event_id("sync_run"),
        "occurred_at": d.at.isoformat(),
        "user_id": d.origin.user_id,
        "connection_id": d.webhook.item_id,
        "aggregator": Aggregator.PLAID.value,
        "institution_id": d.origin.institution_id,
        "feature": BankingFeature.TRANSACTION_SYNC.value,
        "trigger": trigger.value,
        "started_at": d.at.isoformat(),
        "ended_at": d.at.isoformat(),
        "outcome": outcome.value,
        "error_code": error[0],
        "error_type": error[1],
        "records_added": added if isinstance(added, int) and added >= 0 else None,
        "properties": d.properties(),
    }


def _item_mapping(d: _Delivery, change: ItemChange, event: dict[str, Any] | None) -> PlaidMapping:
    w = d.webhook
    warnings: tuple[str, ...] = ()
    if event is None and d.origin is None:
        warnings = (
            f"the institution of item {w.item_id} is unknown, so its sync_run was not "
            "stored: send one sync_run event with connection_id = the item id (docs/plaid.md)",
        )
    events = (event,) if event is not None else ()
    return PlaidMapping(
        w.webhook_type, w.webhook_code, w.item_id, events, change, warnings=warnings
    )


def _item_webhook(d: _Delivery, item_id: str) -> PlaidMapping:
    w = d.webhook
    if w.webhook_code == "ERROR":
        code, error_type = _error(w.body)
        category = error_category(code, error_type)
        state = _ERROR_STATES.get(category, ItemState.ERROR)
        change = ItemChange(item_id, state, code, error_type, category)
        outcome = (
            SyncOutcome.NOT_READY if category is ErrorCategory.NOT_READY else SyncOutcome.FAILURE
        )
        event = _sync_run(d, outcome, SyncTrigger.WEBHOOK, (code, error_type))
        return _item_mapping(d, change, event)
    new_state, until = _ITEM_STATES[w.webhook_code]
    expires = w.body.get(until) if until else None
    change = ItemChange(
        item_id, new_state, expires_at=expires if isinstance(expires, str) else None
    )
    return PlaidMapping(w.webhook_type, w.webhook_code, item_id, (), change)


def _transactions_webhook(d: _Delivery, item_id: str) -> PlaidMapping:
    code, error_type = _error(d.webhook.body)
    trigger = _LEGACY_TRIGGERS.get(d.webhook.webhook_code, SyncTrigger.WEBHOOK)
    if code or error_type:
        category = error_category(code, error_type)
        change = ItemChange(item_id, ItemState.ERROR, code, error_type, category)
        return _item_mapping(
            d, change, _sync_run(d, SyncOutcome.FAILURE, trigger, (code, error_type))
        )
    change = ItemChange(item_id, ItemState.HEALTHY)
    return _item_mapping(d, change, _sync_run(d, SyncOutcome.SUCCESS, trigger, (None, None)))


# -- Link ---------------------------------------------------------------------------------


def _link_events(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    listed = body.get("events")
    events = [e for e in listed if isinstance(e, Mapping)] if isinstance(listed, list) else []
    # Plaid lists them in order; sorted by time all the same (ISO-8601 UTC sorts as text).
    return sorted(events, key=lambda e: str(e.get("timestamp") or ""))


def link_institutions(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (institution_id, institution_name) pairs a LINK webhook's events name, each
    once, in order: for the institution catalogue."""
    pairs: dict[str, str] = {}
    for event in _link_events(body):
        meta = _mapping(event.get("event_metadata"))
        institution, name = _identifier(meta.get("institution_id")), meta.get("institution_name")
        if institution and isinstance(name, str) and name.strip():
            pairs.setdefault(institution, name.strip()[:_NAME_LENGTH])
    return list(pairs.items())


def _first(events: Sequence[Mapping[str, Any]], *names: str) -> Mapping[str, Any] | None:
    return next((e for e in events if e.get("event_name") in names), None)


def _attempt(d: _Delivery, session: str, events: Sequence[Mapping[str, Any]]) -> PlaidMapping:
    w = d.webhook
    named = [_mapping(e.get("event_metadata")) for e in events]
    institutions = link_institutions(w.body)
    institution = next(
        (m["institution_id"] for m in reversed(named) if _identifier(m.get("institution_id"))),
        None,
    )
    end = _first(events, "HANDOFF", "EXIT")
    if end is None:
        reason = f"Link session {session} has not ended (no HANDOFF or EXIT event yet)"
        return PlaidMapping(
            w.webhook_type, w.webhook_code, institutions=tuple(institutions), ignored=reason
        )
    if institution is None:
        reason = f"Link session {session} ended before an institution was chosen"
        return PlaidMapping(
            w.webhook_type, w.webhook_code, institutions=tuple(institutions), ignored=reason
        )
    submitted = _first(events, "SUBMIT_CREDENTIALS", "OPEN_OAUTH")
    opened = _first(events, "OPEN") or events[0]
    code = error_type = None
    if end.get("event_name") == "HANDOFF":
        outcome = Outcome.SUCCESS
    else:
        errors = [m for m in named if _identifier(m.get("error_code"))]
        exit_meta = _mapping(end.get("event_metadata"))
        source = (
            exit_meta
            if _identifier(exit_meta.get("error_code"))
            else (errors[-1] if errors else None)
        )
        if source is None:
            outcome = Outcome.ABANDONED
        else:
            outcome = Outcome.FAILURE
            code, error_type = (
                _identifier(source.get("error_code")),
                _identifier(source.get("error_type")),
            )
    oauth = _first(events, "OPEN_OAUTH") is not None
    auth = (
        AuthMethod.OAUTH if oauth else AuthMethod.CREDENTIALS if submitted else AuthMethod.UNKNOWN
    )
    name = dict(institutions).get(institution)
    event = {
        "event_type": "connection_attempt",
        "event_id": str(uuid.uuid5(PLAID_EVENT_NAMESPACE, f"link:{session}")),
        "occurred_at": end.get("timestamp"),
        "attempt_id": session,
        "link_session_id": session,
        "aggregator": Aggregator.PLAID.value,
        "institution_id": institution,
        "institution_name": name,
        "feature": BankingFeature.ACCOUNT_LINKING.value,
        "flow": ConnectionFlow.NEW.value,
        "auth_method": auth.value,
        "started_at": opened.get("timestamp"),
        "credentials_submitted_at": submitted.get("timestamp") if submitted else None,
        "ended_at": end.get("timestamp"),
        "outcome": outcome.value,
        "error_code": code,
        "error_type": error_type,
        "properties": {**d.properties(), "plaid_link_events": len(events)},
    }
    return PlaidMapping(
        w.webhook_type, w.webhook_code, None, (event,), institutions=tuple(institutions)
    )


def _link_webhook(d: _Delivery) -> PlaidMapping:
    w = d.webhook
    if w.webhook_code == "SESSION_FINISHED":
        return PlaidMapping(
            w.webhook_type,
            w.webhook_code,
            ignored="SESSION_FINISHED names no institution: "
            "the session's EVENTS webhook makes its attempt",
        )
    session = str(w.body["link_session_id"])  # read_plaid_webhook checked it
    events = _link_events(w.body)
    if not events:
        return PlaidMapping(
            w.webhook_type, w.webhook_code, ignored=f"Link session {session} has no events"
        )
    return _attempt(d, session, events)


# -- dispatch -----------------------------------------------------------------------------


def _mapped(webhook: PlaidWebhook) -> str:
    """'' when the webhook is mapped, else the reason it is not."""
    kind = (webhook.webhook_type, webhook.webhook_code)
    if kind[0] == "ITEM" and (kind[1] == "ERROR" or kind[1] in _ITEM_STATES):
        return "" if webhook.item_id else "an ITEM webhook without an item_id"
    if kind[0] == "TRANSACTIONS" and kind[1] in _TRANSACTIONS_CODES:
        return "" if webhook.item_id else "a TRANSACTIONS webhook without an item_id"
    if kind == ("LINK", "EVENTS") or kind == ("LINK", "SESSION_FINISHED"):
        return ""
    return f"webhook {kind[0]} {kind[1]} is not mapped (docs/plaid.md lists those that are)"


def map_plaid_webhook(
    webhook: PlaidWebhook, *, delivery_id: str, at: datetime, origin: ItemOrigin | None
) -> PlaidMapping:
    """Our events and the Item's change for one webhook (see the module for the rules).

    ``delivery_id`` names the delivery (retries share it), ``at`` is when it counts
    from, ``origin`` what is known of its Item. An unmapped webhook is not an error: it
    comes back ``ignored``.
    """
    reason = _mapped(webhook)
    if reason:
        return PlaidMapping(
            webhook.webhook_type, webhook.webhook_code, webhook.item_id, ignored=reason
        )
    d = _Delivery(webhook, delivery_id, at, origin)
    if webhook.webhook_type == "LINK":
        return _link_webhook(d)
    assert webhook.item_id is not None  # _mapped checked it
    if webhook.webhook_type == "ITEM":
        return _item_webhook(d, webhook.item_id)
    return _transactions_webhook(d, webhook.item_id)
