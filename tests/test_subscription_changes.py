"""The subscription changes the store keeps as events arrive, on DuckDB and PostgreSQL.

``subscription_changes`` holds each subscription's snapshots without those repeating the
previous one's terms, and the ledger reads it instead of every event. Here it is checked
against a pandas condensation of the stored events (written apart from the store's SQL)
after every batch of random histories delivered shuffled, with duplicates; against a
hand-worked subscription; after a migration fills it in a store written before it; and
the ledger's reads are checked to be covered by the terms the store compares.
"""

from __future__ import annotations

import itertools
import queue
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp

import test_revenue_properties as properties
from banking_analytics import BankingPerformanceAnalytics, EventStatus
from banking_analytics.analytics.revenue._ledger import _snapshots
from banking_analytics.analytics.revenue._policy import ChurnRecognition
from banking_analytics.metrics import TimeWindow
from banking_analytics.store import SUBSCRIPTION_CHANGES
from test_revenue_vs_pandas import replace_all, store

CHANGES = SUBSCRIPTION_CHANGES.table.name
SOURCE = SUBSCRIPTION_CHANGES.source.name
#: The fields a snapshot's terms compare; the period's end only once it has ended.
TERMS = [
    "user_id",
    "status",
    "currency",
    "interval",
    "interval_count",
    "unit_amount",
    "quantity",
    "discount_percent",
    "discount_amount",
    "discount_duration",
    "discount_months",
]
ENDED = ("canceled", "unpaid")

#: A store per engine for the module, rates loaded.
scratch = properties.scratch


def stored(analytics: BankingPerformanceAnalytics, table: str) -> pd.DataFrame:
    frame = analytics.engine.query(f"SELECT * FROM {table}").to_pandas()
    frame["event_id"] = frame["event_id"].astype(str)
    return frame.sort_values("event_id", ignore_index=True)


def condensed(events: pd.DataFrame) -> pd.DataFrame:
    """Per subscription, in time order (then receipt, then id), the first snapshot and each
    one whose terms differ from the one before it: a loop, obviously right."""
    kept = []
    ordered = events.sort_values(["subscription_id", "occurred_at", "received_at", "event_id"])
    for _, snapshots in ordered.groupby("subscription_id", sort=False):
        previous: tuple[Any, ...] | None = None
        for _, row in snapshots.iterrows():
            ended_at = row["period_end"] if row["status"] in ENDED else None
            terms = tuple(None if pd.isna(row[t]) else row[t] for t in TERMS)
            terms += (None if ended_at is None or pd.isna(ended_at) else ended_at,)
            if terms != previous:
                kept.append(row)
            previous = terms
    return pd.DataFrame(kept, columns=events.columns).sort_values("event_id", ignore_index=True)


def assert_kept_in_step(analytics: BankingPerformanceAnalytics) -> None:
    expected = condensed(stored(analytics, SOURCE))
    found = stored(analytics, CHANGES)
    pd.testing.assert_frame_equal(found, expected, check_dtype=False)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), events=properties.histories())
def test_the_store_keeps_the_changes_of_what_arrived_in_any_order(
    scratch: BankingPerformanceAnalytics, data: st.DataObject, events: list[dict[str, Any]]
) -> None:
    batches = data.draw(properties.deliveries(events))
    replace_all(scratch, batches[0])
    assert_kept_in_step(scratch)
    for batch in batches[1:]:
        store(scratch, batch)
        assert_kept_in_step(scratch)


def snapshot(at_day: int, status: str = "active", **terms: Any) -> dict[str, Any]:
    at = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=at_day)
    return {
        "event_type": "subscription",
        "event_id": f"00000000-0000-4000-8000-{at_day:012d}",
        "occurred_at": at.isoformat(),
        "user_id": "c1",
        "kind": "payment_succeeded",
        "subscription_id": "s1",
        "plan": "plus",
        "tier": "plus",
        "unit_amount": 1000,
        "interval": "month",
        "currency": "USD",
        "status": status,
        "period_end": (at + timedelta(days=30)).isoformat() if status in ENDED else None,
    } | terms


def test_renewals_at_an_unchanged_price_are_dropped_and_every_change_kept(
    analytics: BankingPerformanceAnalytics,
) -> None:
    history = [
        snapshot(0),  # kept: the first
        snapshot(30),  # renewed at the same price
        snapshot(40, unit_amount=2000),  # kept: upgraded
        snapshot(70, unit_amount=2000),  # renewed
        snapshot(80, "past_due", unit_amount=2000),  # kept: a payment failed
        snapshot(81, "past_due", unit_amount=2000),  # retried, failed again
        snapshot(82, "canceled", unit_amount=2000),  # kept: ended
        snapshot(90, unit_amount=2000),  # kept: back, at the price it had before
    ]
    # Delivered newest first, in two transactions: the store condenses from every row.
    for batch in (history[4:], history[:4]):
        results = analytics.ingest(batch[::-1])
        assert {r.status for r in results} == {EventStatus.ACCEPTED}
    kept = stored(analytics, CHANGES)["event_id"].str[-2:].astype(int).tolist()
    assert kept == [0, 40, 80, 82, 90]
    assert_kept_in_step(analytics)
    # The same subscription's changes again: nothing added, nothing moved.
    versions = analytics.metrics.versions([SOURCE, CHANGES])
    assert {r.status for r in analytics.ingest(history)} == {EventStatus.DUPLICATE}
    assert analytics.metrics.versions([SOURCE, CHANGES]) == versions
    heard: queue.Queue[frozenset[str]] = queue.Queue()
    analytics.on_commit(heard.put)
    analytics.ingest([snapshot(100, unit_amount=2000)])
    assert analytics.metrics.versions([SOURCE, CHANGES]) == {
        name: version + 1 for name, version in versions.items()
    }
    # Listeners are called from the writer's side after the commit, not in this thread.
    assert heard.get(timeout=30) == {SOURCE, CHANGES}


def test_a_migration_fills_the_changes_of_a_store_written_before_them(store_url: str) -> None:
    history = [snapshot(day, unit_amount=1000 + 500 * (day // 60)) for day in range(0, 300, 30)]
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        assert {r.status for r in analytics.ingest(history)} == {EventStatus.ACCEPTED}
        with analytics.engine.begin() as tx:  # as a store of the version before
            tx.execute(f"DROP TABLE {CHANGES}")
            tx.execute(f"DELETE FROM data_versions WHERE table_name = '{CHANGES}'")
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        assert len(stored(analytics, CHANGES)) == 5
        assert_kept_in_step(analytics)
        assert analytics.metrics.versions([CHANGES]) == {CHANGES: 0}
        year = TimeWindow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
        assert analytics.revenue.mrr(year).points[-1].mrr_end == 3000


def columns(sql: str | exp.Expr) -> set[str]:
    tree = sqlglot.parse_one(sql) if isinstance(sql, str) else sql
    return {c.name for c in tree.find_all(exp.Column)}


@pytest.mark.parametrize(
    ("recognition", "grace", "free"),
    list(itertools.product(ChurnRecognition, (None, 3), (False, True))),
)
def test_the_ledger_reads_nothing_the_changes_drop(
    recognition: ChurnRecognition, grace: int | None, free: bool
) -> None:
    """Every column the ledger reads of a snapshot is one the store compares, or one that
    orders or names it; the period's end is compared once the subscription has ended, the
    only time the ledger prices by it."""
    compared = set().union(*(columns(term) for term in SUBSCRIPTION_CHANGES.terms))
    assert compared == {*TERMS, "period_end"}
    read = columns(_snapshots((recognition.value, grace, 2, True, free)))
    assert read <= compared | {SUBSCRIPTION_CHANGES.key, *SUBSCRIPTION_CHANGES.order}
