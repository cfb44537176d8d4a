"""The REST API over real HTTP (uvicorn on loopback), on every engine: the spec's routes
give the hand-worked figures, writes are durable and per-event, errors are problems."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from api_fixtures import LiveAPI, api_settings
from api_server import running
from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.api import ApiSettings
from banking_analytics.store import StoreUnavailableError
from test_metrics_handworked import (
    EUR_RATES,
    NOW,
    T0,
    behaviour,
    connection_attempts,
    payments,
    syncs,
)

PREFIX = "/api/banking-analytics"
HAND_WINDOW = {"start": T0.isoformat(), "end": NOW.isoformat()}
#: Health and freshness judged at the end of the hand-worked hour (looking back 7 days).
AT_NOW = {"end": NOW.isoformat()}


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def hand(live_api: LiveAPI) -> LiveAPI:
    events = connection_attempts() + behaviour() + syncs() + payments()
    # Money in EUR is accepted once it has a rate to the reporting currency (USD).
    live_api.analytics.load_exchange_rates(EUR_RATES)
    answer = _ok(
        live_api.client.post(
            f"{PREFIX}/events/batch", json={"events": events}, headers=live_api.as_key("ingest")
        )
    )
    assert answer["accepted"] == len(events), answer
    return live_api


def test_connection_performance_gives_the_hand_worked_figures(hand: LiveAPI) -> None:
    perf = _ok(
        hand.client.get(
            f"{PREFIX}/performance/connection", params=HAND_WINDOW, headers=hand.as_key("analyst")
        )
    )
    assert perf["success_rate"]["average"] == pytest.approx(20 / 26)
    assert perf["success_rate"]["breakdown"]["error_institution"] == pytest.approx(4 / 26)
    assert perf["success_rate"]["excluded"]["user_errors"] == 3
    assert perf["attempts"] == 34
    assert perf["latency"]["p95_ms"] == 19000
    assert perf["latency"]["average_ms"] == pytest.approx((6600 + 210_000) / 31)
    assert perf["link_conversion"]["rate"] == pytest.approx(20 / 32)


def test_every_analysis_matches_the_library(hand: LiveAPI) -> None:
    """Each read route answers exactly what the facade answers for the same question."""
    from banking_analytics.metrics import TimeWindow

    window = TimeWindow(T0, NOW)
    analyst = hand.as_key("analyst")
    for path, expected in [
        ("performance/connection", hand.analytics.analyze_connection_performance(window)),
        ("performance/feature-usage", hand.analytics.analyze_feature_usage(window)),
        ("performance/errors", hand.analytics.analyze_error_rates(window)),
    ]:
        got = _ok(hand.client.get(f"{PREFIX}/{path}", params=HAND_WINDOW, headers=analyst))
        expected = _json(expected)
        # Times may be spelt with Z or +00:00; compare the instants.
        for bound in ("start", "end"):
            assert datetime.fromisoformat(got["time_period"].pop(bound)) == datetime.fromisoformat(
                expected["time_period"].pop(bound)
            )
        assert got == expected, path
    usage = _ok(
        hand.client.get(
            f"{PREFIX}/performance/feature-usage",
            params={**HAND_WINDOW, "feature": "spending_analysis"},
            headers=analyst,
        )
    )
    assert list(usage["feature_usage"]) == ["spending_analysis"]
    assert usage["feature_usage"]["spending_analysis"]["usage_count"] == 24
    assert usage["feature_usage"]["spending_analysis"]["success_rate"] == pytest.approx(18 / 20)


def _json(value: Any) -> Any:
    """What a value looks like after a JSON round trip."""
    import orjson

    return orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))


def test_dashboard_health_freshness_and_generic_query(hand: LiveAPI) -> None:
    analyst = hand.as_key("analyst")
    dashboard = _ok(
        hand.client.get(f"{PREFIX}/dashboard/performance", params=HAND_WINDOW, headers=analyst)
    )
    assert set(dashboard) == {
        "connection",
        "hourly",
        "errors",
        "institution_health",
        "sync_freshness",
    }
    connection = dashboard["connection"]
    assert connection["success_rate"]["average"] == pytest.approx(20 / 26)
    assert connection["attempts"] == 34
    assert connection["latency"]["p95_ms"] == 19000
    (hour,) = dashboard["hourly"]["rows"]
    assert datetime.fromisoformat(hour["bucket"]) == T0
    assert {name: figure["value"] for name, figure in hour["values"].items()} == {
        "connection_success_rate": pytest.approx(20 / 26),
        "connection_attempts": 34,
        "connection_latency_p95_ms": 19000,
    }
    errors = dashboard["errors"]
    assert (errors["connection"]["failures"], errors["connection"]["total"]) == (11, 34)
    assert errors["sync"]["by_category"]["institution"]["count"] == 1

    # Health and freshness are judged at the dashboard window's end, and at ``end`` on
    # their own routes.
    health = _ok(
        hand.client.get(f"{PREFIX}/performance/institution-health", params=AT_NOW, headers=analyst)
    )
    # One page holds every product; the dashboard's answer is the same without paging.
    assert (health.pop("total_products"), health.pop("next_offset")) == (3, None)
    assert dashboard["institution_health"] == health
    products = {
        (p["institution_id"], p["aggregator"], p["product"]): (
            p["state"],
            p["window_sample_size"],
            p["window_success_rate"],
            p["last_state_change"] and datetime.fromisoformat(p["last_state_change"]),
        )
        for p in health["products"]
    }
    assert products == {
        # 22 bank-health attempts in the minute after T0, 20 of them successes: the trailing
        # hours judged at T0 + 15 min and T0 + 30 min hold them, and the second judgement in
        # a row makes the change (the Wilson upper end of 20/22 is above 0.90).
        ("ins_1", "plaid", "item_logins"): (
            "HEALTHY",
            22,
            pytest.approx(20 / 22),
            T0 + timedelta(minutes=30),
        ),
        # Fewer than 20 events even in six hours: 4 of 5 syncs, no mx success in 4 attempts.
        ("ins_1", "plaid", "transactions_updates"): ("UNKNOWN", 5, pytest.approx(0.8), None),
        ("ins_2", "mx", "item_logins"): ("UNKNOWN", 4, 0.0, None),
    }
    history = _ok(
        hand.client.get(
            f"{PREFIX}/performance/institution-health",
            params={**AT_NOW, "include_history": "true"},
            headers=analyst,
        )
    )
    linked = next(p for p in history["products"] if p["product"] == "item_logins")
    assert [(c["from"], c["to"]) for c in linked["changes"]] == [("UNKNOWN", "HEALTHY")]

    # c1 last synced at T0 + 11 min, c2 (partially) at T0 + 21 min; neither reports an
    # expected interval, so it is 24 hours: NORMAL up to 36 hours, DELAYED up to 96.
    freshness = _ok(
        hand.client.get(f"{PREFIX}/performance/sync-freshness", params=AT_NOW, headers=analyst)
    )
    assert dashboard["sync_freshness"] == freshness
    assert (freshness["connections"], freshness["states"]) == (
        2,
        {"NORMAL": 2, "DELAYED": 0, "STOPPED": 0},
    )
    later = _ok(
        hand.client.get(
            f"{PREFIX}/performance/sync-freshness",
            params={"end": (T0 + timedelta(days=2)).isoformat()},
            headers=analyst,
        )
    )
    assert later["states"] == {"NORMAL": 0, "DELAYED": 2, "STOPPED": 0}
    assert [(c["connection_id"], c["freshness_s"]) for c in later["stalest"]] == [
        ("c1", 2 * 86400 - 11 * 60),
        ("c2", 2 * 86400 - 21 * 60),
    ]
    query = _ok(
        hand.client.post(
            f"{PREFIX}/metrics/query",
            json={
                "metrics": ["net_revenue"],
                "dimensions": ["currency"],
                **HAND_WINDOW,
            },
            headers=analyst,
        )
    )
    revenue = {
        r["dimensions"]["currency"]: r["values"]["net_revenue"]["value"] for r in query["rows"]
    }
    assert revenue == {"USD": 999 * 2, "EUR": 500}
    catalogue = _ok(hand.client.get(f"{PREFIX}/metrics", headers=analyst))
    assert "connection_success_rate" in {m["name"] for m in catalogue}


def test_record_metric_is_durable_and_idempotent_by_event_id(live_api: LiveAPI) -> None:
    ingest = live_api.as_key("ingest")
    body = {
        "metric_type": "connection_success_rate",
        "feature": "account_linking",
        "value": 0.95,
        "user_id": "user123",
    }
    first = _ok(
        live_api.client.post(f"{PREFIX}/performance/metric", json=body, headers=ingest), 201
    )
    assert first["status"] == "accepted"
    assert first["metric_id"] == first["event_id"]
    again = {**body, "event_id": first["event_id"]}
    second = _ok(live_api.client.post(f"{PREFIX}/performance/metric", json=again, headers=ingest))
    assert second["status"] == "duplicate"
    stored = live_api.analytics.engine.query(
        "SELECT count(*) AS n FROM performance_metric_events"
    ).to_pylist()
    assert stored == [{"n": 1}]


def test_behavior_of_the_spec_with_a_user_token(live_api: LiveAPI) -> None:
    body = {
        "feature": "spending_analysis",
        "action": "view_report",
        "duration": 45.2,
        "success": True,
    }
    recorded = _ok(
        live_api.client.post(f"{PREFIX}/user/behavior", json=body, headers=live_api.as_user("u7")),
        201,
    )
    usage = _ok(
        live_api.client.get(f"{PREFIX}/users/u7/feature-usage", headers=live_api.as_user("u7"))
    )
    (row,) = usage["rows"]
    assert row["dimensions"] == {"feature": "spending_analysis"}
    assert row["values"]["feature_interactions"]["value"] == 1
    assert row["values"]["feature_mean_duration_s"]["value"] == pytest.approx(45.2)
    # An ingest key must say whose behaviour it is.
    missing = live_api.client.post(
        f"{PREFIX}/user/behavior", json=body, headers=live_api.as_key("ingest")
    )
    assert missing.status_code == 422
    assert "user_id" in missing.json()["detail"]
    assert uuid.UUID(recorded["event_id"])


def test_a_bad_event_never_rejects_its_neighbours(live_api: LiveAPI) -> None:
    good = behaviour()[:3]
    bad = {**behaviour()[3], "feature": "teleportation"}
    answer = _ok(
        live_api.client.post(
            f"{PREFIX}/events/batch",
            json={"events": [good[0], bad, good[1], {"event_type": "nonsense"}, good[2]]},
            headers=live_api.as_key("ingest"),
        )
    )
    assert (answer["accepted"], answer["rejected"]) == (3, 2)
    statuses = [r["status"] for r in answer["results"]]
    assert statuses == ["accepted", "rejected", "accepted", "rejected", "accepted"]
    assert answer["results"][1]["errors"][0]["field"] == "feature"
    assert live_api.analytics.info().quarantined == 2


def test_other_users_objects_answer_404_and_reads_are_audited(live_api: LiveAPI) -> None:
    own = live_api.client.get(
        f"{PREFIX}/users/alice/connections", headers=live_api.as_user("alice")
    )
    assert own.status_code == 200
    other = live_api.client.get(
        f"{PREFIX}/users/bob/connections", headers=live_api.as_user("alice")
    )
    assert other.status_code == 404
    assert other.headers["content-type"] == "application/problem+json"
    entries = _ok(live_api.client.get(f"{PREFIX}/admin/audit", headers=live_api.as_key("admin")))
    reads = [(e["actor"], e["object_id"], e["outcome"]) for e in entries["entries"]]
    assert ("user:alice", "bob", "not_found") in reads
    assert ("user:alice", "alice", "ok") in reads
    report = _ok(
        live_api.client.get(f"{PREFIX}/admin/audit/verify", headers=live_api.as_key("admin"))
    )
    assert report["ok"] is True


def test_keys_are_issued_once_listed_without_secrets_and_revoked(live_api: LiveAPI) -> None:
    admin = live_api.as_key("admin")
    issued = _ok(
        live_api.client.post(
            f"{PREFIX}/admin/keys", json={"name": "reporting", "role": "analyst"}, headers=admin
        ),
        201,
    )
    token = {"Authorization": f"Bearer {issued['secret']}"}
    assert live_api.client.get(f"{PREFIX}/metrics", headers=token).status_code == 200
    listed = live_api.client.get(f"{PREFIX}/admin/keys", headers=admin)
    assert issued["secret"] not in listed.text
    assert issued["key_id"] in listed.text
    _ok(live_api.client.delete(f"{PREFIX}/admin/keys/{issued['key_id']}", headers=admin))
    assert live_api.client.get(f"{PREFIX}/metrics", headers=token).status_code == 401
    gone = live_api.client.delete(f"{PREFIX}/admin/keys/nosuchkey", headers=admin)
    assert gone.status_code == 404


@pytest.mark.parametrize(
    ("request_args", "status", "names"),
    [
        (
            ("GET", "/performance/connection", {"params": {"time_period": "soon"}}),
            422,
            "time_period",
        ),
        (("GET", "/performance/feature-usage", {"params": {"feature": "x"}}), 422, "feature"),
        (
            ("GET", "/performance/connection", {"params": {"start": "2026-01-01T00:00:00Z"}}),
            422,
            "end",
        ),
        (
            ("GET", "/performance/sync-freshness", {"params": {"end": "2300-01-01T00:00:00Z"}}),
            422,
            "must lie between 1970-01-01 and 2200-01-01",
        ),
        (
            ("GET", "/performance/institution-health", {"params": {"end": "2026-11-02T13:00"}}),
            422,
            "end (query): give a UTC offset",
        ),
        (("POST", "/performance/metric", {"json": {"metric_type": "x"}}), 422, "metric_type"),
        (
            (
                "POST",
                "/performance/metric",
                {"content": b"{not json", "headers": {"content-type": "application/json"}},
            ),
            422,
            "body",
        ),
        (("POST", "/events/batch", {"json": {"events": [], "extra": 1}}), 422, "events"),
        (("POST", "/metrics/query", {"json": {"metrics": ["nope"]}}), 422, "nope"),
        (
            ("GET", "/performance/errors", {"params": {"start": "5", "end": "6.5"}}),
            422,
            "ISO-8601",
        ),
        (
            ("POST", "/metrics/query", {"json": {"metrics": ["sync_runs"], "start": 5, "end": 9}}),
            422,
            "ISO-8601",
        ),
        (("GET", "/admin/audit", {"params": {"actor": "key:x\u0000"}}), 422, "actor"),
        # Python knows "localtime" (the machine's zone), DuckDB does not: no zone at all.
        (
            ("GET", "/performance/connection", {"params": {"timezone": "localtime"}}),
            422,
            "timezone",
        ),
        (("GET", "/dashboard/performance", {"params": {"timezone": "localtime"}}), 422, "timezone"),
        (
            (
                "POST",
                "/metrics/query",
                {"json": {"metrics": ["sync_runs"], "timezone": "localtime"}},
            ),
            422,
            "localtime",
        ),
        # Dates are bounded alike on every route (near year 1 or 9999 the arithmetic overflows).
        (
            (
                "POST",
                "/metrics/query",
                {
                    "json": {
                        "metrics": ["sync_runs"],
                        "start": "0001-01-01T00:00:00Z",
                        "end": "9999-12-31T23:59:59Z",
                    }
                },
            ),
            422,
            "between 1970-01-01 and 2200-01-01",
        ),
        (
            (
                "POST",
                "/metrics/query",
                {
                    "json": {
                        "metrics": ["sync_runs"],
                        "start": "9999-12-31T00:00:00-05:00",
                        "end": "9999-12-31T23:00:00-05:00",
                    }
                },
            ),
            422,
            "start (body)",
        ),
        (
            (
                "GET",
                "/performance/errors",
                {"params": {"start": "0001-01-01T00:00:00", "end": "0001-01-02T00:00:00"}},
            ),
            422,
            "between 1970",
        ),
        (
            (
                "POST",
                "/admin/keys",
                {
                    "json": {
                        "name": "k",
                        "role": "analyst",
                        "expires_at": "9999-12-31T23:59:59-01:00",
                    }
                },
            ),
            422,
            "expires_at",
        ),
        # Only ASCII digits: "\u0663" is ARABIC-INDIC DIGIT THREE, which int() would read.
        (
            ("GET", "/performance/connection", {"params": {"time_period": "\u0663d"}}),
            422,
            "time_period",
        ),
        (
            (
                "POST",
                "/metrics/query",
                {"json": {"metrics": ["sync_runs"], "time_period": "\u0663d"}},
            ),
            422,
            "time_period",
        ),
        # Strict booleans: "yes", 1 and "true" (text in JSON) are not true.
        (
            ("POST", "/metrics/query", {"json": {"metrics": ["sync_runs"], "compare": "yes"}}),
            422,
            "compare",
        ),
        (
            ("POST", "/metrics/query", {"json": {"metrics": ["sync_runs"], "compare": 1}}),
            422,
            "compare",
        ),
        (
            ("GET", "/performance/institution-health", {"params": {"include_history": "yes"}}),
            422,
            "include_history",
        ),
        (
            (
                "POST",
                "/user/behavior",
                {
                    "json": {
                        "user_id": "u1",
                        "feature": "budget_tracking",
                        "action": "open",
                        "success": "yes",
                    }
                },
            ),
            422,
            "success",
        ),
        (("GET", "/no/such/route", {}), 404, "Not Found"),
    ],
)
def test_bad_input_gets_a_problem_naming_the_field(
    live_api: LiveAPI, request_args: tuple[str, str, dict[str, Any]], status: int, names: str
) -> None:
    method, path, kwargs = request_args
    headers = {**live_api.as_key("admin"), **kwargs.pop("headers", {})}
    response = live_api.client.request(method, f"{PREFIX}{path}", headers=headers, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert names in problem["detail"]


def test_bodies_and_batches_over_the_limits_answer_413(live_api: LiveAPI) -> None:
    ingest = live_api.as_key("ingest")
    huge = b'{"events": [' + b",".join([b'{"event_type": "behavior"}'] * 400_000) + b"]}"
    response = live_api.client.post(
        f"{PREFIX}/events/batch",
        content=huge,
        headers={**ingest, "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    many = {"events": [{"event_type": "behavior"}] * 5001}
    assert (
        live_api.client.post(f"{PREFIX}/events/batch", json=many, headers=ingest).status_code == 413
    )


def test_missing_or_bad_credentials_answer_401(live_api: LiveAPI) -> None:
    url = f"{PREFIX}/performance/connection"
    for headers in (
        {},
        {"Authorization": "Bearer ba_live_nope_nope"},
        {"Authorization": "Bearer x.y.z"},
    ):
        response = live_api.client.get(url, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert live_api.client.get(url, headers=live_api.as_key("ingest")).status_code == 403


def test_a_chunked_body_is_cut_off_at_the_limit(live_api: LiveAPI) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"events": ['
        for _ in range(200):
            yield b'{"event_type": "behavior", "action": "' + b"x" * 50_000 + b'"},'
        yield b"{}]}"

    response = live_api.client.post(
        f"{PREFIX}/events/batch",
        content=chunks(),
        headers={**live_api.as_key("ingest"), "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["status"] == 413


def test_denied_attempts_are_audited(live_api: LiveAPI) -> None:
    denied = live_api.client.get(f"{PREFIX}/admin/keys", headers=live_api.as_key("analyst"))
    assert denied.status_code == 403
    entries = _ok(live_api.client.get(f"{PREFIX}/admin/audit", headers=live_api.as_key("admin")))
    seen = {
        (e["actor_role"], e["action"], e["object_id"], e["outcome"]) for e in entries["entries"]
    }
    assert ("analyst", f"GET {PREFIX}/admin/keys", None, "denied") in seen


def _audited_query(api: LiveAPI, body: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    """The answer to a metric query, and the audit entries it made."""
    admin = api.as_key("admin")
    before = _ok(api.client.get(f"{PREFIX}/admin/audit", headers=admin))["entries"]
    answer = _ok(
        api.client.post(f"{PREFIX}/metrics/query", json=body, headers=api.as_key("analyst"))
    )
    after = _ok(api.client.get(f"{PREFIX}/admin/audit", headers=admin))["entries"]
    newest = before[0]["seq"] if before else 0
    made = [e for e in after if e["seq"] > newest and e["action"] == "query_user_metrics"]
    return answer, made


def test_answers_are_audited_by_the_users_and_connections_they_return(hand: LiveAPI) -> None:
    window = {"start": T0.isoformat(), "end": NOW.isoformat()}
    # Cut by user: behaviour() has users u0..u5, each with interactions.
    answer, (entry,) = _audited_query(
        hand, {"metrics": ["feature_interactions"], "dimensions": ["user"], **window}
    )
    returned = {row["dimensions"]["user"] for row in answer["rows"]}
    assert returned == {e["user_id"] for e in behaviour()} == {f"u{i}" for i in range(6)}
    assert (entry["actor_role"], entry["object_type"], entry["object_id"]) == (
        "analyst",
        "user",
        None,
    )
    assert entry["details"]["users"] == 6
    assert entry["details"]["connections"] is None
    assert entry["details"]["metrics"] == ["feature_interactions"]
    assert entry["details"]["dimensions"] == ["user"]
    # Cut by connection: syncs() has c1 and c2 (one user's, but the answer names connections).
    answer, (entry,) = _audited_query(
        hand, {"metrics": ["sync_runs"], "dimensions": ["connection"], **window}
    )
    assert {row["dimensions"]["connection"] for row in answer["rows"]} == {"c1", "c2"}
    assert (entry["object_type"], entry["object_id"]) == ("connection", None)
    assert (entry["details"]["users"], entry["details"]["connections"]) == (None, 2)
    # Filtered to one connection: that connection is named.
    _, (entry,) = _audited_query(
        hand, {"metrics": ["sync_runs"], "filters": {"connection": "c1"}, **window}
    )
    assert (entry["object_type"], entry["object_id"]) == ("connection", "c1")
    assert entry["details"]["filters"] == {"connection": ["c1"]}
    # Filtered to users, whether or not they have data: those asked for are covered.
    _, (entry,) = _audited_query(
        hand, {"metrics": ["feature_interactions"], "filters": {"user": ["carol", "dave"]}}
    )
    assert (entry["object_type"], entry["object_id"]) == ("user", None)
    assert entry["details"]["filters"] == {"user": ["carol", "dave"]}
    assert entry["details"]["users"] == 2
    _, (entry,) = _audited_query(
        hand, {"metrics": ["feature_interactions"], "filters": {"user": "u1"}}
    )
    assert entry["object_id"] == "u1"
    # Nobody singled out: not audited.
    _, made = _audited_query(
        hand, {"metrics": ["feature_interactions"], "dimensions": ["feature"], **window}
    )
    assert made == []


def test_user_tokens_must_expire_as_a_number_within_the_longest_lifetime(
    live_api: LiveAPI,
) -> None:
    url = f"{PREFIX}/users/alice/feature-usage"
    assert live_api.client.get(url, headers=live_api.as_user("alice")).status_code == 200
    for exp in ("4102444800", 10**30, int(datetime.now(UTC).timestamp()) + 2 * 86_400):
        response = live_api.client.get(url, headers=live_api.as_user("alice", exp=exp))
        assert response.status_code == 401, exp
        assert "(exp)" in response.json()["detail"]


@pytest.mark.parametrize("secret", ["a" * 40, "0123456789" * 4, "secret"])
def test_a_guessable_hs256_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="jwt_hs256_secret"):
        ApiSettings(jwt_hs256_secret=secret)


def test_cors_admits_only_the_configured_origins(analytics: BankingPerformanceAnalytics) -> None:
    settings = api_settings(analytics, cors_origins=["https://app.example.com"])
    preflight = {
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    url = f"{PREFIX}/users/alice/feature-usage"
    with (
        running(settings, analytics=analytics) as base,
        httpx.Client(base_url=base) as client,
    ):
        allowed = client.options(url, headers={**preflight, "Origin": "https://app.example.com"})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
        other = client.options(url, headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_a_wildcard_origin_is_refused() -> None:
    with pytest.raises(ValueError, match="wildcard"):
        ApiSettings(cors_origins=["*"])


def test_an_unreachable_store_answers_503_not_500(
    live_api: LiveAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(sql: str, params: object = ()) -> None:
        raise StoreUnavailableError("cannot connect to postgresql://db.internal/analytics")

    monkeypatch.setattr(live_api.analytics.engine, "query", unreachable)
    response = live_api.client.get(
        f"{PREFIX}/performance/connection", headers=live_api.as_key("analyst")
    )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "store is unavailable" in response.json()["detail"]
    assert live_api.client.get("/readyz").status_code == 503


def test_a_timezone_an_engine_does_not_know_is_refused_everywhere(
    live_api: LiveAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from banking_analytics.metrics import _window

    known = live_api.analytics.engine.timezone_names()
    assert {"Europe/London", "Asia/Kathmandu", "America/St_Johns"} <= known
    # As if this engine's tz database lacked one zone Python knows (a fresh set: the
    # process-wide one is put back afterwards).
    monkeypatch.setattr(_window, "_REFUSED_BY_ENGINES", set())
    assert _window.restrict_timezones(known - {"Asia/Kathmandu"}) == {"Asia/Kathmandu"}
    analyst = live_api.as_key("analyst")
    for method, path, kwargs in (
        (
            "POST",
            "/metrics/query",
            {"json": {"metrics": ["sync_runs"], "timezone": "Asia/Kathmandu"}},
        ),
        ("GET", "/performance/connection", {"params": {"timezone": "Asia/Kathmandu"}}),
        ("GET", "/users/u1/feature-usage", {"params": {"timezone": "Asia/Kathmandu"}}),
    ):
        response = live_api.client.request(method, f"{PREFIX}{path}", headers=analyst, **kwargs)
        assert response.status_code == 422, response.text
        assert "not known to the store's engine" in response.json()["detail"]
    ok = live_api.client.get(
        f"{PREFIX}/performance/connection", params={"timezone": "Asia/Tokyo"}, headers=analyst
    )
    assert ok.status_code == 200
