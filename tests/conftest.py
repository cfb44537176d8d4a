"""Shared fixtures: every store-backed test runs once per engine (DuckDB so far)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from banking_analytics import BankingPerformanceAnalytics

ENGINES = [pytest.param("duckdb", marks=pytest.mark.duckdb, id="duckdb")]


@pytest.fixture(params=ENGINES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store on a real engine (a DuckDB file, not memory)."""
    assert request.param == "duckdb"
    return f"duckdb:///{tmp_path}/store.duckdb"


@pytest.fixture
def analytics(store_url: str) -> Iterator[BankingPerformanceAnalytics]:
    with BankingPerformanceAnalytics.open(store_url) as a:
        yield a
