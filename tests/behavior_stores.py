"""A store per engine shared by a whole behaviour test module (a module-scoped fixture
builds one and fills it once: each test reads, none writes)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from banking_analytics import BankingPerformanceAnalytics
from conftest import with_schema

__all__ = ["module_store"]


def module_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BankingPerformanceAnalytics]:
    """The facade over a fresh store of the engine ``request.param``: a DuckDB file, or a
    PostgreSQL schema dropped afterwards."""
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path_factory.mktemp('behavior')}/store.duckdb"
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
