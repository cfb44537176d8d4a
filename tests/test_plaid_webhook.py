"""``POST /api/banking-analytics/webhooks/plaid`` over real HTTP, on DuckDB and PostgreSQL:
signed as Plaid signs, with a key generated here and configured as an operator would."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from api_fixtures import LiveAPI, api_settings
from api_server import running
from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.access import AuditLog, KeyStore, Role
from banking_analytics.analytics import InstitutionCatalogue
from banking_analytics.api import ApiSettings
from plaid_payloads import (
    auth_verified,
    body,
    chase_session,
    item_error,
    jwk,
    link_event,
    link_events,
    login_repaired,
    pending_expiration,
    private_key,
    sign,
    sync_updates_available,
)

PATH = "/api/banking-analytics/webhooks/plaid"
ITEMS = "/api/banking-analytics/connections/items"
SUMMARY = "/api/banking-analytics/connections/summary"


@dataclass
class PlaidAPI:
    client: httpx.Client
    key: ec.EllipticCurvePrivateKey
    analyst: dict[str, str]


@pytest.fixture
def plaid_api(analytics: BankingPerformanceAnalytics, tmp_path: Path) -> Iterator[PlaidAPI]:
    """The API with Plaid's verification key in a file, as docs/plaid.md sets it up."""
    key = private_key()
    keys_file = tmp_path / "plaid-keys.json"
    keys_file.write_text(json.dumps({"key": jwk(key), "request_id": "HvfCtrDLG1ihcp7"}))
    analyst = KeyStore(analytics.engine).create("analyst", Role.ANALYST).secret
    settings = api_settings(analytics, plaid_webhook_keys_file=str(keys_file))
    with (
        running(settings, analytics=analytics) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        yield PlaidAPI(client, key, {"Authorization": f"Bearer {analyst}"})


def post(api: PlaidAPI, payload: dict[str, Any], iat: int | None = None) -> httpx.Response:
    raw = body(payload)
    return api.client.post(
        PATH,
        content=raw,
        headers={
            "Plaid-Verification": sign(raw, api.key, iat=iat),
            "Content-Type": "application/json",
        },
    )


def rows(analytics: BankingPerformanceAnalytics, sql: str) -> list[dict[str, Any]]:
    return analytics.engine.query(sql).to_pylist()


def count(analytics: BankingPerformanceAnalytics, table: str) -> int:
    return int(rows(analytics, f"SELECT count(*) AS n FROM {table}")[0]["n"])


def audit_entries(analytics: BankingPerformanceAnalytics) -> list[Any]:
    return [e for e in AuditLog(analytics.engine).entries() if e.action == "plaid_webhook"]


def seed_items(analytics: BankingPerformanceAnalytics, institution: str, items: list[str]) -> None:
    """The host app's own sync runs of its Items, three days ago: how an Item's
    institution becomes known (ITEM webhooks do not name it)."""
    at = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    results = analytics.ingest(
        [
            {
                "event_type": "sync_run",
                "user_id": f"user_{item}",
                "connection_id": item,
                "aggregator": "plaid",
                "institution_id": institution,
                "feature": "transaction_sync",
                "trigger": "scheduled",
                "started_at": at,
                "ended_at": at,
                "occurred_at": at,
                "outcome": "success",
            }
            for item in items
        ]
    )
    assert {r.status.value for r in results} == {"accepted"}


def items_of(api: PlaidAPI, **params: Any) -> list[dict[str, Any]]:
    response = api.client.get(ITEMS, params=params, headers=api.analyst)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["items"]
    return found


def test_an_items_webhooks_make_its_state_and_its_sync_runs(
    plaid_api: PlaidAPI, analytics: BankingPerformanceAnalytics
) -> None:
    seed_items(analytics, "ins_3", ["item_a"])
    error = post(plaid_api, item_error("item_a")).json()
    assert (error["stored"], error["duplicate"], error["redelivery"], error["ignored"]) == (
        1,
        0,
        False,
        None,
    )
    shown = ("item_id", "institution_id", "state", "last_webhook", "error_code", "error_category")
    assert {k: error["item"][k] for k in shown} == {
        "item_id": "item_a",
        "institution_id": "ins_3",
        "state": "login_required",
        "last_webhook": "ITEM:ERROR",
        "error_code": "ITEM_LOGIN_REQUIRED",
        "error_category": "user_action_required",
    }
    assert post(plaid_api, login_repaired("item_a")).json()["item"]["state"] == "healthy"
    synced = post(plaid_api, sync_updates_available("item_a")).json()
    assert (synced["stored"], synced["item"]["state"]) == (1, "healthy")
    webhook_runs = rows(
        analytics,
        'SELECT outcome, error_code, error_category, user_id, institution_id, "trigger" '
        "FROM sync_run_events WHERE \"trigger\" = 'webhook' ORDER BY occurred_at, outcome",
    )
    assert webhook_runs == [
        {"outcome": "failure", "error_code": "ITEM_LOGIN_REQUIRED",
         "error_category": "user_action_required", "user_id": "user_item_a",
         "institution_id": "ins_3", "trigger": "webhook"},
        {"outcome": "success", "error_code": None, "error_category": None,
         "user_id": "user_item_a", "institution_id": "ins_3", "trigger": "webhook"},
    ]  # fmt: skip
    (item,) = items_of(plaid_api)
    assert (item["state"], item["last_webhook"], item["error_code"], item["environment"]) == (
        "healthy",
        "TRANSACTIONS:SYNC_UPDATES_AVAILABLE",
        "ITEM_LOGIN_REQUIRED",
        "production",
    )
    # A pending expiry whose time has passed reads as disconnected.
    expired = post(plaid_api, pending_expiration("item_a", "2020-01-15T13:25:17.766Z")).json()
    assert expired["item"]["state"] == "disconnected"
    summary = plaid_api.client.get(SUMMARY, headers=plaid_api.analyst).json()
    assert summary["institutions"] == [
        {"institution_id": "ins_3", "items": 1, "states": {"disconnected": 1}}
    ]
    # An Item whose institution is unknown still gets its state, and a warning.
    unknown = post(plaid_api, item_error("item_z")).json()
    assert (unknown["stored"], unknown["item"]["state"]) == (0, "login_required")
    assert "institution of item item_z is unknown" in unknown["warnings"][0]
    assert [i["item_id"] for i in items_of(plaid_api, institution_id="ins_3")] == ["item_a"]
    page = plaid_api.client.get(ITEMS, params={"limit": 1}, headers=plaid_api.analyst).json()
    assert (len(page["items"]), page["next_offset"]) == (1, 1)


def test_retries_are_stored_once_and_order_does_not_matter(
    plaid_api: PlaidAPI, analytics: BankingPerformanceAnalytics
) -> None:
    """Plaid re-signs each retry (a new iat): the same body is the same delivery. Three
    webhooks signed 100, 90 and 80 s ago arrive newest first, then all again."""
    seed_items(analytics, "ins_3", ["item_b"])
    now = int(time.time())
    sent = [
        (item_error("item_b"), now - 100),
        (login_repaired("item_b"), now - 90),
        (pending_expiration("item_b", "2099-01-15T13:25:17.766Z"), now - 80),
    ]
    answers = [post(plaid_api, payload, iat).json() for payload, iat in reversed(sent)]
    assert [a["redelivery"] for a in answers] == [False] * 3
    retries = [post(plaid_api, payload, now).json() for payload, _ in sent]
    assert [(a["redelivery"], a["stored"]) for a in retries] == [(True, 0)] * 3
    assert retries[0]["duplicate"] == 1
    assert [a["delivery_id"] for a in retries] == [a["delivery_id"] for a in reversed(answers)]
    assert count(analytics, "sync_run_events WHERE \"trigger\" = 'webhook'") == 1
    assert count(analytics, "plaid_webhook_deliveries") == 3
    (item,) = items_of(plaid_api)
    # The newest state by Plaid's signing time, whatever the order of arrival; the
    # error is kept as the last one.
    assert (item["state"], item["last_webhook"], item["error_code"]) == (
        "pending_expiration",
        "ITEM:PENDING_EXPIRATION",
        "ITEM_LOGIN_REQUIRED",
    )
    assert item["state_since"] == datetime.fromtimestamp(now - 80, UTC).isoformat().replace(
        "+00:00", "Z"
    )
    (run,) = rows(
        analytics, "SELECT occurred_at FROM sync_run_events WHERE \"trigger\" = 'webhook'"
    )
    assert run["occurred_at"] == datetime.fromtimestamp(now - 100, UTC)


def test_an_institution_error_burst_shows_in_health_and_error_rates(
    plaid_api: PlaidAPI, analytics: BankingPerformanceAnalytics
) -> None:
    """24 Items at ins_109508 report INSTITUTION_DOWN, 6 at ins_3 sync fine. By hand:
    ins_109508's transactions_updates has 0 successes in 24 (n >= 20): DOWN; ins_3 has 6
    (< 20): UNKNOWN. Sync runs in the last day: 30, 24 failures, all institution: 0.8."""
    burst = [f"item_down_{i}" for i in range(24)]
    calm = [f"item_up_{i}" for i in range(6)]
    seed_items(analytics, "ins_109508", burst)
    seed_items(analytics, "ins_3", calm)
    for item in burst:
        answer = post(plaid_api, item_error(item, "INSTITUTION_DOWN", "INSTITUTION_ERROR")).json()
        assert answer["stored"] == 1
    for item in calm:
        assert post(plaid_api, sync_updates_available(item)).json()["stored"] == 1
    later = datetime.now(UTC) + timedelta(hours=1)
    health = analytics.institution_health("6h", now=later)
    states = {(p["institution_id"], p["product"]): p["state"] for p in health["products"]}
    assert states == {
        ("ins_109508", "transactions_updates"): "DOWN",
        ("ins_3", "transactions_updates"): "UNKNOWN",
    }
    errors = analytics.analyze_error_rates("24h", now=later).sync
    assert (errors.total, errors.failures, errors.error_rate) == (30, 24, 0.8)
    assert {k: v.count for k, v in errors.by_category.items() if v.count} == {"institution": 24}
    # Independently: the stored runs of the last day, counted by pandas.
    frame = pd.DataFrame(
        rows(analytics, "SELECT occurred_at, outcome, error_category FROM sync_run_events")
    )
    recent = frame[frame["occurred_at"] > later - timedelta(hours=24)]
    failures = recent[recent["outcome"] == "failure"]
    assert (len(recent), len(failures)) == (errors.total, errors.failures)
    assert failures["error_category"].value_counts().to_dict() == {"institution": 24}
    down = items_of(plaid_api, institution_id="ins_109508", limit=100)
    assert {(i["state"], i["error_category"]) for i in down} == {("error", "institution")}
    assert len(down) == 24
    summary = plaid_api.client.get(SUMMARY, headers=plaid_api.analyst).json()
    assert summary == {
        "institutions": [
            {"institution_id": "ins_109508", "items": 24, "states": {"error": 24}},
            {"institution_id": "ins_3", "items": 6, "states": {"healthy": 6}},
        ]
    }


def test_link_events_make_an_attempt_and_name_institutions(
    plaid_api: PlaidAPI, analytics: BankingPerformanceAnalytics
) -> None:
    answer = post(plaid_api, chase_session("a3f1c2d4-session")).json()
    assert (answer["stored"], answer["institutions"]) == (1, [["ins_56", "Chase"]])
    # Plaid may send a session's events again, with more: the attempt is kept once.
    again = chase_session("a3f1c2d4-session")
    again["events"].append(link_event("TRANSITION_VIEW", "2026-12-01T00:18:41Z", "x-6"))
    assert post(plaid_api, again).json()["duplicate"] == 1
    (attempt,) = rows(
        analytics,
        "SELECT attempt_id, institution_id, institution_name, outcome, latency_ms "
        "FROM connection_attempt_events",
    )
    assert attempt == {
        "attempt_id": "a3f1c2d4-session",
        "institution_id": "ins_56",
        "institution_name": "Chase",
        "outcome": "success",
        "latency_ms": 30_000.0,
    }
    # A session still open names its institution too: the catalogue records it from Plaid.
    ally = {"institution_id": "ins_25", "institution_name": "Ally Bank"}
    chosen = link_event("SELECT_INSTITUTION", "2026-12-01T00:20:01Z", "b-2", **ally)
    open_session = post(plaid_api, link_events("b-session", [chosen])).json()
    assert open_session["ignored"] is not None
    entries = InstitutionCatalogue(analytics.metrics).entries()
    assert (entries["ins_25"].name, entries["ins_25"].source) == ("Ally Bank", "plaid")
    assert entries["ins_25"].aggregator == "plaid"
    assert entries["ins_56"].name == "Chase"


def test_bad_signatures_and_bodies_are_400_audited_and_store_nothing(
    plaid_api: PlaidAPI, analytics: BankingPerformanceAnalytics
) -> None:
    seed_items(analytics, "ins_3", ["item_c"])
    raw = body(item_error("item_c"))
    now = int(time.time())
    cases = {
        "missing": (None, "header is missing"),
        "wrong alg": (sign(raw, plaid_api.key).replace(
            sign(raw, plaid_api.key).split(".")[0],
            "eyJhbGciOiJFUzUxMiIsImtpZCI6ImJmYmQ1MTExLThlMzMtNDY0My04Y2VkLWIyZTY0MmE3MmYzYyJ9"),
            "alg is 'ES512'"),
        "unknown kid": (sign(raw, plaid_api.key, kid="6c5516e1"), "key 6c5516e1, which is not"),
        "another key": (sign(raw, private_key()), "does not verify"),
        "stale iat": (sign(raw, plaid_api.key, iat=now - 600), "s old"),
        "body altered": (sign(raw + b"\n", plaid_api.key), "does not equal"),
    }  # fmt: skip
    for header, reason in cases.values():
        headers = {"Content-Type": "application/json"}
        if header is not None:
            headers["Plaid-Verification"] = header
        response = plaid_api.client.post(PATH, content=raw, headers=headers)
        assert response.status_code == 400, reason
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"].startswith("Plaid-Verification (header): ")
        assert reason in response.json()["detail"]
    entries = audit_entries(analytics)
    assert [(e.actor, e.actor_role, e.outcome) for e in entries] == [
        ("address:127.0.0.1", "anonymous", "denied")
    ] * len(cases)
    # Newest first.
    reasons = [e.details["reason"] for e in reversed(entries)]
    assert all(r in got for (_, r), got in zip(cases.values(), reasons, strict=True))
    assert count(analytics, "sync_run_events") == 1  # the seed
    assert count(analytics, "plaid_items") == count(analytics, "plaid_webhook_deliveries") == 0
    # On the same server (one start saved): what is signed but not mapped, or not readable.
    ignored = post(plaid_api, auth_verified("item_d"))
    assert ignored.status_code == 200
    assert "AUTH AUTOMATICALLY_VERIFIED is not mapped" in ignored.json()["ignored"]
    raw = b'{"webhook_type": "ITEM"}'
    headers = {"Plaid-Verification": sign(raw, plaid_api.key)}
    unreadable = plaid_api.client.post(PATH, content=raw, headers=headers)
    assert unreadable.status_code == 400
    assert "webhook_code" in unreadable.json()["detail"]
    rejected_entry, ignored_entry = audit_entries(analytics)[:2]  # newest first
    assert (ignored_entry.actor, ignored_entry.outcome, ignored_entry.object_type) == (
        "plaid",
        "ignored",
        "plaid_delivery",
    )
    assert ignored_entry.details["webhook"] == "AUTH:AUTOMATICALLY_VERIFIED"
    assert rejected_entry.outcome == "rejected"
    assert count(analytics, "sync_run_events") == 1  # the seed still
    assert count(analytics, "plaid_items") == 0


# Routing and policies do not depend on the engine: one engine suffices.
@pytest.mark.duckdb
@pytest.mark.parametrize("store_url", ["duckdb"], indirect=True)
def test_without_keys_the_endpoint_does_not_exist_and_items_need_an_analyst(
    live_api: LiveAPI,
) -> None:
    response = live_api.client.post(PATH, content=b"{}")
    assert response.status_code == 404
    assert "BA_PLAID_WEBHOOK_KEYS" in response.json()["detail"]
    assert live_api.client.get(ITEMS).status_code == 401
    assert live_api.client.get(ITEMS, headers=live_api.as_key("ingest")).status_code == 403
    answer = live_api.client.get(ITEMS, headers=live_api.as_key("analyst"))
    assert answer.json() == {"items": [], "next_offset": None}


def test_keys_are_configured_inline_or_in_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = json.dumps([jwk(private_key())])
    monkeypatch.setenv("BA_PLAID_WEBHOOK_KEYS", document)
    assert list(ApiSettings().plaid_verification_keys()) == [jwk(private_key())["kid"]]
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(document)
    monkeypatch.setenv("BA_PLAID_WEBHOOK_KEYS_FILE", str(keys_file))
    with pytest.raises(ValueError, match="not both"):
        ApiSettings()
    monkeypatch.delenv("BA_PLAID_WEBHOOK_KEYS")
    assert len(ApiSettings().plaid_verification_keys()) == 1
    keys_file.write_text('{"kty": "EC"}')
    with pytest.raises(ValueError, match=r"keys\.json: a verification key has no kid"):
        ApiSettings()
    monkeypatch.setenv("BA_PLAID_WEBHOOK_KEYS_FILE", str(tmp_path / "absent.json"))
    with pytest.raises(ValueError, match="No such file"):
        ApiSettings()
