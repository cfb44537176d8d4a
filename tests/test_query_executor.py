"""The store's one bounded query executor: concurrency within its size, nested fan-out
without deadlock, no thread left behind, and PostgreSQL read connections bounded by it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import orjson
import psycopg
import pytest

from api_server import running
from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.access import KeyStore, Role
from banking_analytics.api import ApiSettings
from banking_analytics.metrics import QueryExecutor, TimeWindow
from banking_analytics.store import open_engine
from test_metrics_handworked import (
    EUR_RATES,
    NOW,
    T0,
    behaviour,
    connection_attempts,
    payments,
    syncs,
)


def finishes(work: Callable[[], object], within_s: float = 30) -> object:
    """``work()``'s answer; fails the test, rather than hanging it, if it never returns."""
    answer: list[object] = []
    thread = threading.Thread(target=lambda: answer.append(work()), daemon=True)
    thread.start()
    thread.join(within_s)
    assert answer, f"no answer within {within_s} s (deadlock?)"
    return answer[0]


def test_gather_answers_in_order_and_runs_side_by_side() -> None:
    executor = QueryExecutor(2)
    # Three parties meet only if the caller and both workers run a task at the same time.
    meeting = threading.Barrier(3, timeout=10)

    def meet(i: int) -> int:
        meeting.wait()
        return i * i

    try:
        assert executor.gather([lambda i=i: meet(i) for i in range(3)]) == [0, 1, 4]
    finally:
        executor.close()


def test_never_more_tasks_at_once_than_workers_and_caller() -> None:
    executor = QueryExecutor(2)
    running = peak = 0
    lock = threading.Lock()

    def task() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1

    try:
        executor.gather([task] * 12)
    finally:
        executor.close()
    assert 1 < peak <= 3


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_nested_fan_out_does_not_deadlock(workers: int) -> None:
    """Every task gathers tasks that gather again, on a pool smaller than the fan-out."""
    executor = QueryExecutor(workers)

    def fan(depth: int) -> int:
        if depth == 0:
            return 1
        return sum(executor.gather([lambda: fan(depth - 1)] * 3))

    try:
        assert finishes(lambda: fan(3)) == 27
    finally:
        executor.close()


def test_an_error_is_raised_once_every_task_has_finished() -> None:
    executor = QueryExecutor(2)
    finished: list[int] = []

    def task(i: int) -> int:
        if i == 1:
            raise ValueError("task 1 failed")
        time.sleep(0.02)
        finished.append(i)
        return i

    try:
        with pytest.raises(ValueError, match="task 1 failed"):
            executor.gather([lambda i=i: task(i) for i in range(4)])
    finally:
        executor.close()
    assert sorted(finished) == [0, 2, 3]


def test_zero_workers_run_everything_in_the_calling_thread() -> None:
    executor = QueryExecutor(0)
    names = executor.gather([lambda: threading.current_thread().name] * 3)
    assert names == [threading.current_thread().name] * 3
    with pytest.raises(ValueError, match="0 or more"):
        QueryExecutor(-1)


def test_close_stops_the_workers_and_refuses_more_work() -> None:
    before = threading.active_count()
    executor = QueryExecutor(3)
    executor.gather([lambda: None] * 6)
    assert threading.active_count() == before + 3
    executor.close()
    assert threading.active_count() == before
    with pytest.raises(RuntimeError, match="closed"):
        executor.gather([lambda: None] * 2)


# -- PostgreSQL: read connections bounded by the executor --------------------------------


def named(url: str) -> tuple[str, str]:
    """The URL with an ``application_name`` of its own, to find its server connections."""
    name = f"ba_test_{uuid.uuid4().hex[:12]}"
    return f"{url}&application_name={name}", name


def connections(server_url: str, name: str) -> int:
    with psycopg.connect(server_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [name]
        ).fetchone()
    assert row is not None
    return int(row[0])


@contextmanager
def peak_connections(server_url: str, name: str) -> Iterator[list[int]]:
    """Samples the server's connections named ``name`` while the block runs; the peak."""
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        with psycopg.connect(server_url, autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [name]
                ).fetchone()
                peak[0] = max(peak[0], int(row[0]) if row else 0)
                time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield peak
    finally:
        stop.set()
        sampler.join()


@pytest.mark.postgres
@pytest.mark.parametrize("max_readers", [2, None])
def test_postgres_reads_wait_for_one_of_max_readers(
    postgres_url: str, postgres_store_url: str, max_readers: int | None
) -> None:
    """Six reads at once hold six connections, unless the engine is bounded to two."""
    url, name = named(postgres_store_url)
    with open_engine(url, max_readers=max_readers) as engine:
        reads = [
            threading.Thread(target=engine.query, args=("SELECT pg_sleep(0.3) AS slept",))
            for _ in range(6)
        ]
        with peak_connections(postgres_url, name) as peak:
            for read in reads:
                read.start()
            for read in reads:
                read.join()
    # The writer's connection, and the readers.
    assert peak[0] == 1 + (max_readers or 6)


@pytest.mark.postgres
def test_dashboard_on_postgres_holds_at_most_its_workers_connections(
    postgres_url: str, postgres_store_url: str
) -> None:
    url, name = named(postgres_store_url)
    window = TimeWindow(T0, NOW)
    lookback = TimeWindow(T0 - (NOW - T0), NOW)
    answers = {}
    for workers in (2, 8):
        threads_before = threading.active_count()
        with BankingPerformanceAnalytics.open(url, query_workers=workers) as analytics:
            if workers == 2:
                analytics.load_exchange_rates(EUR_RATES)
                analytics.ingest(connection_attempts() + behaviour() + syncs() + payments())
            with peak_connections(postgres_url, name) as peak:
                board = analytics.performance_dashboard(window, health_lookback=lookback)
            if workers == 2:
                # Two readers and the writer, whatever the dashboard's fan-out.
                assert peak[0] <= 3
                assert connections(postgres_url, name) <= 3
            answers[workers] = orjson.dumps(board, default=str, option=orjson.OPT_NON_STR_KEYS)
        assert threading.active_count() == threads_before
    assert answers[2] == answers[8]
    assert orjson.loads(answers[2])["connection"]["attempts"] == 34


@pytest.mark.postgres
def test_api_server_holds_at_most_its_query_workers_connections(
    postgres_url: str, postgres_store_url: str
) -> None:
    """BA_QUERY_WORKERS=2: four dashboards requested at once over real HTTP, and the
    server process never holds more than two read connections and its writer."""
    url, name = named(postgres_store_url)
    with BankingPerformanceAnalytics.open(url) as setup:
        setup.load_exchange_rates(EUR_RATES)
        setup.ingest(connection_attempts() + behaviour() + syncs() + payments())
        secret = KeyStore(setup.engine).create("dashboards", Role.ANALYST).secret
    settings = ApiSettings(db=url, query_workers=2, key_cache_seconds=0)
    params = {"start": T0.isoformat(), "end": NOW.isoformat()}
    statuses: list[int] = []
    with (
        running(settings) as base,
        httpx.Client(
            base_url=base, timeout=60, headers={"Authorization": f"Bearer {secret}"}
        ) as client,
    ):

        def ask() -> None:
            answer = client.get("/api/banking-analytics/dashboard/performance", params=params)
            statuses.append(answer.status_code)

        with peak_connections(postgres_url, name) as peak:
            asking = [threading.Thread(target=ask) for _ in range(4)]
            for thread in asking:
                thread.start()
            for thread in asking:
                thread.join()
    assert statuses == [200] * 4
    assert 1 < peak[0] <= 3
