"""The public API is deliberate: this test changes whenever it does."""

import subprocess
import sys
from pathlib import Path

import banking_analytics
from banking_analytics import BankingFeature, PerformanceMetric, RevenueMetric

EXPECTED = {
    "Aggregator", "AuthMethod", "BankingFeature", "BankingPerformanceAnalytics",
    "BatchTooLargeError", "BillingInterval", "Bucket", "ConnectionFlow", "DeviceType",
    "ErrorCategory", "EventError", "EventRejectedError", "EventResult", "EventStatus",
    "EventType", "FileReport", "HealthState", "HealthThresholds", "IngestLimits", "Outcome",
    "PendingBatch", "PendingEvent", "PerformanceMetric", "Platform", "QueryError", "QueryResult",
    "RefreshState",
    "ResponsibleParty", "RevenueMetric", "StoreInfo", "StoreURLError", "SubscriptionEventKind",
    "SubscriptionStatus", "SyncOutcome", "SyncTrigger", "TableInfo", "TimeWindow", "__version__",
}  # fmt: skip


def test_all_is_exactly_the_public_api() -> None:
    assert set(banking_analytics.__all__) == EXPECTED
    for name in banking_analytics.__all__:
        assert hasattr(banking_analytics, name), name


def test_vocabulary_strings_are_the_api_strings() -> None:
    assert [m.value for m in PerformanceMetric] == [
        "connection_success_rate", "connection_latency", "data_sync_frequency", "error_rate",
        "user_engagement", "feature_usage", "revenue_impact", "conversion_rate",
    ]  # fmt: skip
    assert [m.value for m in BankingFeature] == [
        "account_linking", "transaction_sync", "balance_monitoring", "spending_analysis",
        "budget_tracking", "goal_setting", "bill_reminders", "investment_tracking",
        "credit_monitoring", "tax_optimization",
    ]  # fmt: skip
    assert [m.value for m in RevenueMetric] == [
        "subscription_upgrades", "feature_adoption", "user_retention", "customer_lifetime_value",
        "churn_rate", "revenue_per_user", "upgrade_conversion", "feature_revenue",
    ]  # fmt: skip
    assert BankingFeature("account_linking") is BankingFeature.ACCOUNT_LINKING
    assert PerformanceMetric.CONNECTION_SUCCESS_RATE == "connection_success_rate"


def test_the_api_access_and_web_packages_export_exactly_their_public_names() -> None:
    from banking_analytics import access, api, web

    assert set(api.__all__) == {"API_PREFIX", "ApiSettings", "create_app", "uvicorn_options"}
    assert set(access.__all__) == {
        "API_KEYS", "AUDIT_LOG", "ApiKey", "AuditEntry", "AuditLog", "ChainReport",
        "InvalidTokenError", "IssuedKey", "KeyNotFoundError", "KeyStore", "Role",
        "UserTokenVerifier", "check_hs256_secret",
    }  # fmt: skip
    from banking_analytics import ingest

    assert set(ingest.__all__) == {
        "BatchOutcome", "BatchPart", "CommitListener", "Decoded", "EventError", "EventResult",
        "EventStatus", "ExchangeRate", "GroupCommitWriter", "IngestLimits", "IngestPipeline",
        "RatesError", "StripeEventError", "StripeMapping", "StripeSignatureError", "Ticket",
        "WriterClosedError", "decode_arrow", "decode_json_lines", "decode_records",
        "map_stripe_event", "parse_rates", "read_rates_csv", "sign_stripe_payload",
        "verify_stripe_signature", "InstitutionName", "record_institutions",
        # Plaid's webhooks (docs/plaid.md)
        "ItemChange", "ItemOrigin", "ItemState", "PlaidItem", "PlaidItems", "PlaidKeyError",
        "PlaidMapping", "PlaidSignatureError", "PlaidVerification", "PlaidVerificationKey",
        "PlaidWebhook", "PlaidWebhookError", "link_institutions", "map_plaid_webhook",
        "parse_plaid_keys", "read_plaid_webhook", "verify_plaid_webhook",
    }  # fmt: skip
    assert set(web.__all__) == {"WebSettings", "mount_web"}
    for module in (api, access, ingest, web):
        for name in module.__all__:
            assert hasattr(module, name), name


def test_importing_the_package_loads_only_what_is_used() -> None:
    """Names beyond the vocabulary load on first use: a worker decoding a file imports
    the ingestion modules and the CLI (spawn runs the main module again), not the query
    compiler, the analyses or the access package."""
    probe = (
        "import sys, banking_analytics, banking_analytics.ingest._files, banking_analytics.cli\n"
        "heavy = ['sqlglot', 'banking_analytics._facade', 'banking_analytics.analytics']\n"
        "assert 'jwt' not in sys.modules\n"
        "print([m for m in heavy if m in sys.modules])\n"
        "banking_analytics.BankingPerformanceAnalytics\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "[]"
    # The facade loads the analyses only when a namespace is first used (next test).
    assert out[1] == "['sqlglot', 'banking_analytics._facade']"
    assert "BankingPerformanceAnalytics" in dir(banking_analytics)


def test_opening_the_facade_loads_no_analysis_and_a_namespace_only_its_own(
    tmp_path: Path,
) -> None:
    """Recording and generic metric queries need no analysis module; the first analysis
    builds the ``performance`` namespace (once), loading that domain's modules alone,
    and no query worker starts before a query runs side by side with another."""
    probe = (
        "import sys, threading\n"
        "from banking_analytics import BankingPerformanceAnalytics\n"
        "def loaded():\n"
        "    return sorted(m for m in sys.modules if m.startswith('banking_analytics.analytics'))\n"
        f"with BankingPerformanceAnalytics.open('duckdb:///{tmp_path}/store.duckdb') as a:\n"
        "    a.record_user_behavior('u1', 'budget_tracking', 'open')\n"
        "    a.query_metrics(['unique_users'], '24h')\n"
        "    print(loaded())\n"
        "    print(sorted(t.name for t in threading.enumerate() if t.name.startswith('queries')))\n"
        "    a.analyze_feature_usage('7d')\n"
        "    print(loaded())\n"
        "    print(a.performance is a.performance)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "[]"
    assert out[1] == "[]"
    assert out[2] == str(
        [
            "banking_analytics.analytics",
            "banking_analytics.analytics._freshness",
            "banking_analytics.analytics._health",
            "banking_analytics.analytics._institutions",
            "banking_analytics.analytics._performance",
            "banking_analytics.analytics._performance_namespace",
            "banking_analytics.analytics._shape",
        ]
    )
    assert out[3] == "True"


def test_every_name_the_analytics_package_lists_loads() -> None:
    from banking_analytics import analytics

    for name in analytics.__all__:
        assert hasattr(analytics, name), name
    assert set(dir(analytics)) >= set(analytics.__all__)
