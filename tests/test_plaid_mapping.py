"""Plaid webhooks mapped to our events and Item changes, one documented payload at a time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from banking_analytics.ingest import (
    ItemOrigin,
    ItemState,
    PlaidMapping,
    PlaidWebhookError,
    link_institutions,
    map_plaid_webhook,
    read_plaid_webhook,
)
from plaid_payloads import (
    auth_verified,
    chase_session,
    default_update,
    item_error,
    link_event,
    link_events,
    login_repaired,
    new_accounts_available,
    pending_disconnect,
    pending_expiration,
    session_finished,
    sync_updates_available,
)

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
ITEM = "wz666MBjYWTp2PDzzggYhM6oWWmBb"
ORIGIN = ItemOrigin("ins_3", "user_42")


def mapped(payload: dict[str, Any], origin: ItemOrigin | None = ORIGIN) -> PlaidMapping:
    return map_plaid_webhook(read_plaid_webhook(payload), delivery_id="abc:1", at=AT, origin=origin)


def test_an_item_error_is_a_failed_sync_of_the_items_institution() -> None:
    m = mapped(item_error(ITEM, "INSTITUTION_DOWN", "INSTITUTION_ERROR"))
    (event,) = m.events
    assert {k: event[k] for k in ("event_type", "connection_id", "institution_id", "user_id")} == {
        "event_type": "sync_run",
        "connection_id": ITEM,
        "institution_id": "ins_3",
        "user_id": "user_42",
    }
    assert (event["outcome"], event["trigger"], event["feature"]) == (
        "failure",
        "webhook",
        "transaction_sync",
    )
    assert (event["error_code"], event["error_type"]) == ("INSTITUTION_DOWN", "INSTITUTION_ERROR")
    assert event["occurred_at"] == event["started_at"] == event["ended_at"] == AT.isoformat()
    assert m.change is not None
    assert (m.change.state, m.change.error_category) == (ItemState.ERROR, "institution")


@pytest.mark.parametrize(
    ("code", "error_type", "state", "category"),
    [
        ("ITEM_LOGIN_REQUIRED", "ITEM_ERROR", ItemState.LOGIN_REQUIRED, "user_action_required"),
        ("INVALID_CREDENTIALS", "ITEM_ERROR", ItemState.LOGIN_REQUIRED, "user_action_required"),
        ("INSTITUTION_NOT_RESPONDING", "INSTITUTION_ERROR", ItemState.ERROR, "institution"),
        # The code decides before the type: a registration problem is ours.
        ("INSTITUTION_REGISTRATION_REQUIRED", "INSTITUTION_ERROR", ItemState.ERROR, "integration"),
        ("INTERNAL_SERVER_ERROR", "API_ERROR", ItemState.ERROR, "aggregator"),
        ("SOMETHING_NEW", "RATE_LIMIT_EXCEEDED", ItemState.ERROR, "rate_limited"),
        ("SOMETHING_NEW", "SOMETHING_ELSE", ItemState.ERROR, "unknown"),
        ("PRODUCT_NOT_READY", "ITEM_ERROR", None, "not_ready"),
    ],
)
def test_error_codes_decide_the_state_and_category(
    code: str, error_type: str, state: ItemState | None, category: str
) -> None:
    m = mapped(item_error(ITEM, code, error_type))
    assert m.change is not None
    assert (m.change.state, m.change.error_category, m.change.error_code) == (state, category, code)
    # Not ready yet is no failure: Plaid says to retry.
    assert m.events[0]["outcome"] == ("not_ready" if category == "not_ready" else "failure")


def test_item_webhooks_change_the_state_only() -> None:
    cases = {
        "PENDING_EXPIRATION": (pending_expiration(ITEM), ItemState.PENDING_EXPIRATION),
        "PENDING_DISCONNECT": (pending_disconnect(ITEM), ItemState.PENDING_DISCONNECT),
        "LOGIN_REPAIRED": (login_repaired(ITEM), ItemState.HEALTHY),
        "NEW_ACCOUNTS_AVAILABLE": (new_accounts_available(ITEM), None),
    }
    for payload, state in cases.values():
        m = mapped(payload)
        assert (m.events, m.ignored) == ((), None)
        assert m.change is not None
        assert m.change.state == state
    change = mapped(pending_disconnect(ITEM, "2027-01-15T13:25:17.766Z")).change
    assert change is not None
    assert change.expires_at == "2027-01-15T13:25:17.766Z"


def test_transactions_updates_are_successful_syncs() -> None:
    (event,) = mapped(sync_updates_available(ITEM)).events
    assert (event["outcome"], event["trigger"], event["records_added"]) == (
        "success",
        "webhook",
        None,
    )
    (legacy,) = mapped(default_update(ITEM, 7)).events
    assert (legacy["outcome"], legacy["records_added"]) == ("success", 7)
    assert mapped(sync_updates_available(ITEM)).change.state is ItemState.HEALTHY  # type: ignore[union-attr]


def test_without_the_items_institution_the_state_changes_and_a_warning_says_why() -> None:
    m = mapped(item_error(ITEM), origin=None)
    assert m.events == ()
    assert m.change is not None
    assert m.change.state is ItemState.LOGIN_REQUIRED
    (warning,) = m.warnings
    assert f"the institution of item {ITEM} is unknown" in warning


def test_event_ids_are_the_deliverys() -> None:
    first = mapped(sync_updates_available(ITEM)).events[0]["event_id"]
    assert mapped(sync_updates_available(ITEM)).events[0]["event_id"] == first
    other = map_plaid_webhook(
        read_plaid_webhook(sync_updates_available(ITEM)), delivery_id="abc:2", at=AT, origin=ORIGIN
    )
    assert other.events[0]["event_id"] != first


def test_a_finished_link_session_is_one_attempt() -> None:
    m = mapped(chase_session("s1"))
    (attempt,) = m.events
    expected = {
        "event_type": "connection_attempt",
        "attempt_id": "s1",
        "link_session_id": "s1",
        "aggregator": "plaid",
        "institution_id": "ins_56",
        "institution_name": "Chase",
        "feature": "account_linking",
        "flow": "new",
        "auth_method": "credentials",
        "started_at": "2026-12-01T00:17:54Z",
        "credentials_submitted_at": "2026-12-01T00:18:10Z",
        "ended_at": "2026-12-01T00:18:40Z",
        "occurred_at": "2026-12-01T00:18:40Z",
        "outcome": "success",
        "error_code": None,
        "error_type": None,
    }
    assert {k: attempt[k] for k in expected} == expected
    assert m.institutions == (("ins_56", "Chase"),)


def test_link_outcomes() -> None:
    failed = mapped(chase_session("s2", "EXIT", "INSTITUTION_NOT_RESPONDING")).events[0]
    assert (failed["outcome"], failed["error_code"], failed["error_type"]) == (
        "failure",
        "INSTITUTION_NOT_RESPONDING",
        "INSTITUTION_ERROR",
    )
    abandoned = mapped(chase_session("s3", "EXIT")).events[0]
    assert (abandoned["outcome"], abandoned["error_code"]) == ("abandoned", None)
    open_still = mapped(chase_session("s4", ""))
    assert open_still.events == ()
    assert "has not ended" in (open_still.ignored or "")
    no_bank = link_events(
        "s5",
        [
            link_event("OPEN", "2026-12-01T00:17:54Z", "e1"),
            link_event("EXIT", "2026-12-01T00:18:00Z", "e2"),
        ],
    )
    assert "before an institution was chosen" in (mapped(no_bank).ignored or "")


def test_oauth_sessions_and_catalogue_pairs() -> None:
    payload = chase_session("s6")
    payload["events"].insert(
        2,
        link_event(
            "OPEN_OAUTH",
            "2026-12-01T00:18:05Z",
            "s6-o",
            institution_id="ins_56",
            institution_name="Chase",
        ),
    )
    payload["events"].insert(
        1,
        link_event(
            "SELECT_INSTITUTION",
            "2026-12-01T00:17:58Z",
            "s6-w",
            institution_id="ins_127989",
            institution_name="  Wells Fargo ",
        ),
    )
    attempt = mapped(payload).events[0]
    assert (attempt["auth_method"], attempt["credentials_submitted_at"]) == (
        "oauth",
        "2026-12-01T00:18:05Z",
    )
    # The last institution chosen is the attempt's; every one named goes to the catalogue.
    assert attempt["institution_id"] == "ins_56"
    assert link_institutions(payload) == [("ins_127989", "Wells Fargo"), ("ins_56", "Chase")]


def test_link_events_that_are_no_list_are_no_events() -> None:
    for events in (5, {"OPEN": 1}, [1, "x"]):
        payload = {**link_events("s8", []), "events": events}
        assert "has no events" in (mapped(payload).ignored or "")


def test_what_is_not_mapped_is_ignored_with_its_reason() -> None:
    assert "AUTH AUTOMATICALLY_VERIFIED is not mapped" in (
        mapped(auth_verified(ITEM)).ignored or ""
    )
    assert "names no institution" in (mapped(session_finished("s7")).ignored or "")
    no_item = item_error(ITEM)
    del no_item["item_id"]
    assert "without an item_id" in (mapped(no_item).ignored or "")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([], "JSON object"),
        ({"webhook_type": "ITEM"}, "webhook_code"),
        ({**item_error(ITEM), "item_id": "has spaces"}, "not an identifier"),
        ({"webhook_type": "LINK", "webhook_code": "EVENTS", "events": []}, "link_session_id"),
    ],
)
def test_bodies_that_are_no_plaid_webhook_are_errors(payload: Any, reason: str) -> None:
    with pytest.raises(PlaidWebhookError, match=reason):
        read_plaid_webhook(payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
known_keys = st.sampled_from(
    ["item_id", "error", "events", "link_session_id", "new_transactions",
     "consent_expiration_time", "disconnect_time", "environment", "event_metadata"]
)  # fmt: skip


@given(
    kind=st.sampled_from(
        [("ITEM", c) for c in ("ERROR", "PENDING_EXPIRATION", "LOGIN_REPAIRED")]
        + [("TRANSACTIONS", "SYNC_UPDATES_AVAILABLE"), ("TRANSACTIONS", "DEFAULT_UPDATE")]
        + [("LINK", "EVENTS"), ("LINK", "SESSION_FINISHED"), ("OTHER", "X")]
    ),
    fields=st.dictionaries(known_keys, json_values, max_size=5),
    events=st.lists(
        st.fixed_dictionaries(
            {
                "event_name": st.sampled_from(["OPEN", "ERROR", "EXIT", "HANDOFF", "x"]),
                "timestamp": json_values,
                "event_metadata": json_values,
            }
        ),
        max_size=4,
    ),
)
@settings(max_examples=150, deadline=None, derandomize=True, database=None)
def test_any_body_is_read_or_refused_never_an_exception(
    kind: tuple[str, str], fields: dict[str, Any], events: list[dict[str, Any]]
) -> None:
    body = {"webhook_type": kind[0], "webhook_code": kind[1], "item_id": "item_1", **fields}
    if kind == ("LINK", "EVENTS") and "events" not in fields:
        body["events"] = events
    try:
        webhook = read_plaid_webhook(body)
    except PlaidWebhookError:
        return
    mapping = map_plaid_webhook(webhook, delivery_id="d:1", at=AT, origin=ORIGIN)
    assert (mapping.ignored is None) or mapping.events == ()
