"""One store per engine for a whole test module of the funnel, retention and paths tests.

Their hand-worked worlds are small and only read once stored, so a module builds one
store per engine (a DuckDB file; a PostgreSQL schema, dropped afterwards) instead of
one per test: the stores' set-up was most of their time.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from banking_analytics import BankingPerformanceAnalytics, EventStatus
from conftest import ENGINES, with_schema

__all__ = ["module_analytics", "store"]


@pytest.fixture(scope="module", params=ENGINES)
def module_analytics(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BankingPerformanceAnalytics]:
    """A fresh store on each engine, shared by the tests of one module."""
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path_factory.mktemp('flows')}/store.duckdb"
        with BankingPerformanceAnalytics.open(url) as analytics:
            yield analytics
        return
    server: str = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with BankingPerformanceAnalytics.open(with_schema(server, schema)) as analytics:
            yield analytics
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def store(analytics: BankingPerformanceAnalytics, events: list[dict[str, object]]) -> None:
    """Store the events, every one accepted."""
    results = analytics.ingest(events)
    assert {r.status for r in results} == {EventStatus.ACCEPTED}, [r.reason for r in results]
