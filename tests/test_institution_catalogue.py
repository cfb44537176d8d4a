"""The institution catalogue: names recorded by a catalogue first, then the latest name the
events carry; shown beside the id in health, connection performance and the CLI's
reports. A hand-worked case and an independent pandas computation, on both engines."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from rich.console import Console

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.cli._reports import show_health, show_performance
from banking_analytics.ingest import InstitutionName, record_institutions
from banking_analytics.vocabulary import Aggregator

END = datetime(2026, 11, 20, tzinfo=UTC)


def _attempt(
    institution: str, at: datetime, name: str | None, aggregator: str = "plaid", **fields: object
) -> dict[str, object]:
    return {
        "event_type": "connection_attempt",
        "event_id": str(uuid.uuid4()),
        "occurred_at": at.isoformat(),
        "user_id": "u1",
        "attempt_id": uuid.uuid4().hex,
        "aggregator": aggregator,
        "institution_id": institution,
        "feature": "account_linking",
        "flow": "new",
        "started_at": (at - timedelta(seconds=2)).isoformat(),
        "latency_ms": 1000.0,
        "outcome": "success",
        **({"institution_name": name} if name is not None else {}),
        **fields,
    }


def _ingest(analytics: BankingPerformanceAnalytics, events: list[dict[str, object]]) -> None:
    results = analytics.ingest(events)
    assert [r.reason for r in results if r.reason] == []


def test_the_catalogue_names_by_record_then_the_latest_event(
    analytics: BankingPerformanceAnalytics,
) -> None:
    t = END - timedelta(hours=5)
    _ingest(
        analytics,
        [
            _attempt("ins_a", t, "Alpha Old"),
            _attempt("ins_a", t + timedelta(hours=1), "Alpha Bank"),
            _attempt("ins_a", t + timedelta(minutes=30), "Alpha Between"),
            _attempt("ins_b", t, "Beta", aggregator="mx"),
            _attempt("ins_c", t, None),
            # Two names at one instant: the one sorting first.
            _attempt("ins_d", t, "Zeta"),
            _attempt("ins_d", t, "Delta"),
        ],
    )
    catalogue = analytics.performance.institutions
    assert catalogue.names() == {"ins_a": "Alpha Bank", "ins_b": "Beta", "ins_d": "Delta"}
    assert catalogue.entries()["ins_b"].aggregator == "mx"
    assert catalogue.entries()["ins_b"].source == "events"

    # A catalogue's record wins over the events, and recording it again adds nothing.
    beta = InstitutionName("ins_b", "  Beta   Credit Union ", Aggregator.MX)
    assert record_institutions(analytics.engine, [beta], source="plaid", now=END) == 1
    assert record_institutions(analytics.engine, [beta], source="plaid", now=END) == 0
    entry = catalogue.entries()["ins_b"]
    assert (entry.name, entry.aggregator, entry.source) == ("Beta Credit Union", "mx", "plaid")
    # Later events do not override it; a later record does (the latest record wins).
    _ingest(analytics, [_attempt("ins_b", END - timedelta(minutes=1), "Beta Events")])
    assert catalogue.names()["ins_b"] == "Beta Credit Union"
    renamed = InstitutionName("ins_b", "Beta CU")
    later = END + timedelta(seconds=1)
    assert record_institutions(analytics.engine, [renamed], source="simulator", now=later) == 1
    assert catalogue.names()["ins_b"] == "Beta CU"
    # An institution with no name anywhere is not in the catalogue: readers show its id.
    assert "ins_c" not in catalogue.names()


@pytest.mark.parametrize(
    ("institution_id", "name"),
    [("ins 1", "A Bank"), ("", "A Bank"), ("ins_1", "   "), ("ins_1", "x" * 257)],
)
def test_a_bad_catalogue_entry_is_refused(institution_id: str, name: str) -> None:
    with pytest.raises(ValueError, match=r"institution_id|name of"):
        InstitutionName(institution_id, name)


def test_the_catalogue_agrees_with_pandas(analytics: BankingPerformanceAnalytics) -> None:
    draw = random.Random(7)
    seconds = draw.sample(range(1, 3 * 86_400), 300)  # distinct instants: no ties
    events = [
        _attempt(
            f"ins_{draw.randrange(12)}",
            END - timedelta(seconds=s),
            draw.choice([None, "North Bank", "South Bank", "East Credit Union"]),
        )
        for s in seconds
    ]
    _ingest(analytics, events)
    frame = pd.DataFrame(events)
    named = frame[frame["institution_name"].notna()].copy()
    named["occurred_at"] = pd.to_datetime(named["occurred_at"])
    expected = named.sort_values("occurred_at").groupby("institution_id")["institution_name"].last()
    assert analytics.performance.institutions.names() == expected.to_dict()


def test_health_performance_and_reports_carry_the_names(
    analytics: BankingPerformanceAnalytics,
) -> None:
    events = [
        _attempt("ins_named", END - timedelta(minutes=5 * i + 1), "[bold]Named[/] Bank")
        for i in range(24)
    ] + [
        _attempt(
            "ins_bare",
            END - timedelta(minutes=5 * i + 2),
            None,
            outcome="failure",
            error_category="institution",
        )
        for i in range(24)
    ]
    sync = {
        "event_type": "sync_run",
        "event_id": str(uuid.uuid4()),
        "occurred_at": (END - timedelta(hours=1)).isoformat(),
        "user_id": "u1",
        "connection_id": "conn_1",
        "aggregator": "plaid",
        "institution_id": "ins_named",
        "feature": "transaction_sync",
        "trigger": "scheduled",
        "started_at": (END - timedelta(hours=1, seconds=5)).isoformat(),
        "outcome": "success",
    }
    _ingest(analytics, [*events, sync])
    fresh = analytics.sync_freshness("24h", now=END)
    assert [g["institution_name"] for g in fresh["by_institution"]] == ["[bold]Named[/] Bank"]
    health = analytics.institution_health("24h", now=END)
    names = {p["institution_id"]: p["institution_name"] for p in health["products"]}
    assert names == {"ins_named": "[bold]Named[/] Bank", "ins_bare": None}
    rolled = {i["institution_id"]: i["institution_name"] for i in health["institutions"]}
    assert rolled == names
    performance = analytics.analyze_connection_performance("24h", now=END)
    cuts = {c.institution: c.institution_name for c in performance.by_institution}
    assert cuts == names
    console = Console(record=True, width=200)
    show_performance(console, performance, top=5)
    show_health(console, health)
    text = console.export_text()
    # A name is text, not markup; an unnamed institution shows its id.
    assert "[bold]Named[/] Bank (ins_named)" in text
    assert "ins_bare" in text
