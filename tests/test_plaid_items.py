"""Plaid deliveries and Item states in the store, on both engines."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from banking_analytics.ingest import ItemChange, ItemOrigin, ItemState, PlaidItems, _plaid_items
from banking_analytics.store import Engine
from banking_analytics.vocabulary import ErrorCategory

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)


def test_a_body_within_the_retry_window_is_a_retry_of_its_first_delivery(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = PlaidItems(engine)
    assert items.first_delivery("sha_a", T0) == (T0, False)
    assert items.first_delivery("sha_a", T0 + 23 * H) == (T0, True)
    assert items.first_delivery("sha_b", T0 + H) == (T0 + H, False)
    # A day on, the same body is a new delivery (Plaid no longer retries the first).
    assert items.first_delivery("sha_a", T0 + 25 * H) == (T0 + 25 * H, False)
    assert items.first_delivery("sha_a", T0 + 26 * H) == (T0 + 25 * H, True)
    # Every first delivery purges those two windows older.
    monkeypatch.setattr(_plaid_items, "_PURGE_EVERY", 1)
    assert items.first_delivery("sha_c", T0 + 50 * H) == (T0 + 50 * H, False)
    left = engine.query(
        "SELECT body_sha256 FROM plaid_webhook_deliveries ORDER BY first_signed_at"
    ).column("body_sha256")
    assert left.to_pylist() == ["sha_a", "sha_c"]


CHANGES = [
    (T0, "ITEM:ERROR", ItemChange("item_1", ItemState.LOGIN_REQUIRED, "ITEM_LOGIN_REQUIRED",
                                  "ITEM_ERROR", ErrorCategory.USER_ACTION_REQUIRED)),
    (T0 + H, "ITEM:LOGIN_REPAIRED", ItemChange("item_1", ItemState.HEALTHY)),
    (T0 + 2 * H, "ITEM:NEW_ACCOUNTS_AVAILABLE", ItemChange("item_1", None)),
    (T0 + 3 * H, "ITEM:PENDING_DISCONNECT",
     ItemChange("item_1", ItemState.PENDING_DISCONNECT, expires_at="2099-01-15T13:25:17.766Z")),
]  # fmt: skip


def test_any_order_of_arrival_leaves_the_same_item(engine: Engine) -> None:
    """By hand: the newest state is the pending disconnection (3 h), the last webhook the
    same, the last error the login one (0 h), the institution from the first origin."""
    seen = set()
    items = PlaidItems(engine)
    for number, order in enumerate(itertools.permutations(CHANGES)):
        item_id = f"item_{number}"
        for at, webhook, change in order:
            mine = replace(change, item_id=item_id)
            items.apply(mine, webhook=webhook, at=at, origin=ItemOrigin("ins_3"), environment=None)
        item = items.item(item_id)
        assert item is not None
        seen.add(
            (item.state, item.state_since, item.expires_at, item.last_webhook,
             item.last_webhook_at, item.error_code, item.error_at, item.institution_id)
        )  # fmt: skip
    assert seen == {
        ("pending_disconnect", T0 + 3 * H, datetime(2099, 1, 15, 13, 25, 17, 766000, tzinfo=UTC),
         "ITEM:PENDING_DISCONNECT", T0 + 3 * H, "ITEM_LOGIN_REQUIRED", T0, "ins_3"),
    }  # fmt: skip
