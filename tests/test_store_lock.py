"""DuckDB lets one process open a file: a second one is told so in one line, never a traceback.

A real ``banking-analytics serve`` process holds the store (as ``make demo`` does)
while other processes try to open it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from api_server import Server
from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.store import Engine, StoreLockedError, StoreUnavailableError, open_engine

pytestmark = pytest.mark.duckdb


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A DuckDB store held by a serving process (one for the module: its tests only try
    to open it); yields its URL and the process id."""
    tmp_path = tmp_path_factory.mktemp("held")
    url = f"duckdb:///{tmp_path}/store.duckdb"
    BankingPerformanceAnalytics.open(url).close()  # the tables exist before the server starts
    server = Server(url, tmp_path / "server.log")
    server.start()
    assert server.proc is not None
    try:
        yield url, server.proc.pid
    finally:
        server.stop()


def test_opening_a_held_store_from_python_names_the_holder(held: tuple[str, int]) -> None:
    url, pid = held
    with pytest.raises(StoreLockedError) as caught:
        BankingPerformanceAnalytics.open(url)
    assert caught.value.pid == pid
    assert caught.value.path == str(Path(url.removeprefix("duckdb:///")).resolve())
    assert isinstance(caught.value, StoreUnavailableError)  # callers catching the wider error
    message = str(caught.value)
    assert f"PID {pid}" in message
    assert "stop that process" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "command",
    [
        ["info"],
        ["keys", "create", "--name", "second", "--role", "analyst"],
        ["keys", "list"],
        ["audit", "verify"],
        ["health"],
    ],
)
def test_commands_on_a_held_store_say_so_in_one_line_and_exit_2(
    held: tuple[str, int], command: list[str]
) -> None:
    url, pid = held
    done = subprocess.run(
        [sys.executable, "-m", "banking_analytics.cli", *command, "--db", url],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"is held by another process (PID {pid})" in lines[0]
    assert "Traceback" not in done.stderr


def test_the_store_opens_again_once_the_holder_stops(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path}/store.duckdb"
    BankingPerformanceAnalytics.open(url).close()
    server = Server(url, tmp_path / "server.log")
    server.start()
    server.stop()
    with BankingPerformanceAnalytics.open(url) as analytics:
        assert analytics.info().total_events == 0


def _read_until_closed(engine: Engine, unexpected: list[BaseException]) -> None:
    """Read until the store says it is closed; any other error is kept."""
    while True:
        try:
            engine.query("SELECT 1")
        except RuntimeError as exc:
            if "is closed" not in str(exc):
                unexpected.append(exc)
            return
        except BaseException as exc:
            unexpected.append(exc)
            return


def test_closing_while_other_threads_read_waits_for_them_and_refuses_new_reads(
    tmp_path: Path,
) -> None:
    """DuckDB refuses to close a connection while a cursor of it is made or runs a query
    ("busy"): a server's background reader racing the close of its store failed a test's
    teardown. Closing now waits for those reads; a read after it is a clear error."""
    for attempt in range(30):
        engine = open_engine(f"duckdb:///{tmp_path}/race-{attempt}.duckdb")
        unexpected: list[BaseException] = []
        readers = [
            threading.Thread(target=_read_until_closed, args=(engine, unexpected)) for _ in range(3)
        ]
        for reader in readers:
            reader.start()
        engine.close()
        for reader in readers:
            reader.join()
        assert unexpected == []
