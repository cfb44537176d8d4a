"""Shared fixtures: every store-backed test runs once per engine (DuckDB, PostgreSQL).

Select engines with markers, e.g. ``pytest -m duckdb`` or ``pytest -m postgres``.
PostgreSQL tests use the server at ``BA_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``), else a throwaway cluster; with
neither they are skipped, saying why, except under ``CI=true`` where they fail.
Each test gets a schema of its own, dropped afterwards.

A known gap of an engine is declared on the test, as in Ibis:
``@pytest.mark.notimpl(["postgres"], reason="...")`` makes the test a strict
expected failure on those engines (it must fail there, and pass elsewhere).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.store import Engine, open_engine
from postgres_server import configured_url, missing, reachable, start_throwaway_cluster

# pytest-xdist's workers start with COLUMNS=80 set; a rich console made then would keep
# that width, and the CLI tests' own COLUMNS (CliRunner's env) would not widen it.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)

# The API tests' fixtures (a live server, keys per role, user tokens) and the web app's.
pytest_plugins = ["api_fixtures", "web_fixtures"]

ENGINES = [
    pytest.param("duckdb", marks=pytest.mark.duckdb, id="duckdb"),
    pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
]


#: Files whose engines run on different xdist workers: the longest file by far, whose
#: tests each set up their own server (nothing module-wide to share between engines).
SPLIT_BY_ENGINE = frozenset({"test_api_fuzz"})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group tests for ``--dist loadgroup`` (``make test``): a file runs whole on one
    worker, so its module fixtures are set up once; a file in ``SPLIT_BY_ENGINE`` as
    one group per engine, so both workers share it."""
    for item in items:
        group = item.path.stem
        if group in SPLIT_BY_ENGINE and "duckdb" in item.keywords:
            group += "-duckdb"
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server for this session: the configured one, else a throwaway cluster."""
    url = configured_url()
    why_not = reachable(url)
    if why_not is None:
        yield url
        return
    try:
        cluster = start_throwaway_cluster()
    except RuntimeError as exc:
        missing(f"no PostgreSQL: {url} is unreachable ({why_not}) and {exc}")
    try:
        yield cluster.url
    finally:
        cluster.stop()


def with_schema(server_url: str, schema: str) -> str:
    return f"{server_url}{'&' if '?' in server_url else '?'}schema={schema}"


@pytest.fixture
def postgres_store_url(postgres_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL store: a schema of its own, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield with_schema(postgres_url, schema)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=ENGINES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store on a real engine (a DuckDB file; a PostgreSQL schema)."""
    for gap in request.node.iter_markers("notimpl"):
        if request.param in gap.args[0]:
            request.applymarker(pytest.mark.xfail(strict=True, reason=gap.kwargs["reason"]))
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path}/store.duckdb"
    url: str = request.getfixturevalue("postgres_store_url")
    return url


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """The bare engine of a fresh store, for the layers below the facade."""
    with open_engine(store_url) as e:
        yield e


@pytest.fixture
def analytics(store_url: str) -> Iterator[BankingPerformanceAnalytics]:
    with BankingPerformanceAnalytics.open(store_url) as a:
        yield a
