"""The REST API under load: ``banking-analytics serve`` against a load generator over loopback.

    python -m benchmarks.run --only http [--quick]

The server is a subprocess (``banking-analytics serve``: one uvicorn process, the
embedded DuckDB default, a fresh store file in a temporary directory, rate limits
raised out of the way). The load comes from this process: asyncio on uvloop with
aiohttp, keep-alive HTTP/1.1, request bodies encoded before the clock starts; each
request's latency is ``time.perf_counter`` around sending it and reading the whole
answer. Every answer is checked (status, and for batches the count accepted).

Each figure stands beside a baseline from the same run: the library facade in
this process doing the same work, so the cost of HTTP is visible. The last part
is a durability run: SIGKILL the server mid-stream, restart it, retry what was
not acknowledged, and count every event in the store.
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson
import uvloop

from banking_analytics import BankingPerformanceAnalytics, EventStatus
from banking_analytics.access import KeyStore, Role
from benchmarks.run import (
    CLI,
    RUNS,
    BenchmarkError,
    Context,
    Measurement,
    Sample,
    behavior_dicts,
    repeat,
    simulate_store,
)

T = TypeVar("T")

PREFIX = "/api/banking-analytics"
BATCH_PATH = f"{PREFIX}/events/batch"
METRIC_PATH = f"{PREFIX}/performance/metric"
DASHBOARD_PATH = f"{PREFIX}/dashboard/performance"

BATCH_EVENTS = 500
#: Batches in flight at once, over as many keep-alive connections (and facade threads):
#: the rate grows up to 16 and stays flat beyond, while latency grows (measured by hand:
#: ~54,000 events/s at 32 and 64 in flight, p50 0.28 s and 0.5 s); 8 is shown beside it.
BATCH_CONCURRENCY = 16
BATCH_CONCURRENCY_LOW = 8
DURABILITY_CONCURRENCY = 8
#: Batches sent (and not counted) before the clock starts, on both sides.
WARMUP_BATCHES = 4
METRIC_CONNECTIONS = 50
METRIC = {
    "metric_type": "connection_success_rate",
    "feature": "account_linking",
    "value": 0.95,
    "user_id": "user123",
}
METRIC_BODY = orjson.dumps(METRIC)
#: Restarts of the server for the cold dashboard figure, and warm requests after each.
DASHBOARD_RESTARTS = 5
DASHBOARD_WARM = 20
DEMO_USERS = 20_000

#: The server's settings: rate limits far above any load sent here.
SERVER_ENV = {
    **os.environ,
    "BA_RATE_LIMIT_PER_SECOND": "1000000000",
    "BA_RATE_LIMIT_BURST": "1000000000",
}
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


# -- the server --------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tail(path: Path, lines: int = 8) -> str:
    text = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return " | ".join(text[-lines:])


@dataclass
class Server:
    """``banking-analytics serve`` on a free loopback port; its output appended to a log."""

    store: str
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    #: Settings (``BA_*``) added to the server's environment.
    env: dict[str, str] = field(default_factory=dict)

    @property
    def log(self) -> Path:
        return self.workdir / "server.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> float:
        """Start it and wait until ``/healthz`` answers; the seconds that took."""
        self.port = free_port()
        cmd = [CLI, "serve", "--db", self.store, "--host", "127.0.0.1", "--port", str(self.port)]
        started = time.perf_counter()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**SERVER_ENV, **self.env},
                cwd=self.workdir,
            )
        while True:
            code = self.proc.poll()
            if code is not None:
                raise BenchmarkError(f"the server exited with {code}: {tail(self.log)}")
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - started
            except OSError:
                pass
            if time.perf_counter() - started > 60:
                self.kill()
                raise BenchmarkError(f"the server did not answer in 60 s: {tail(self.log)}")
            time.sleep(0.02)

    def cpu_seconds(self) -> float:
        """CPU time the server process has used (user + system, all its threads)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICK

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM (uvicorn shuts down and the store is closed); SIGKILL after 30 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchmarkError(f"the server ignored SIGTERM for 30 s: {tail(self.log)}") from None


@contextmanager
def serving(store: str, workdir: Path) -> Iterator[Server]:
    server = Server(store, workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def issue_key(store: str, role: Role) -> str:
    """A new API key in the store (before the server opens it: one DuckDB process at a time)."""
    with BankingPerformanceAnalytics.open(store) as analytics:
        keys = KeyStore(analytics.engine)
        try:
            return keys.create(f"benchmark {role.value}", role).secret
        finally:
            keys.close()


def stored_counts(store: str) -> dict[str, int]:
    """Copies of each behavior event id in the store."""
    with BankingPerformanceAnalytics.open(store) as analytics:
        rows = analytics.engine.query(
            "SELECT CAST(event_id AS VARCHAR) AS id, count(*) AS n FROM behavior_events GROUP BY 1"
        ).to_pydict()
    return dict(zip(rows["id"], rows["n"], strict=True))


# -- the client --------------------------------------------------------------------------------


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def client(base: str, key: str, connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        base_url=base,
        connector=aiohttp.TCPConnector(limit=connections),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=aiohttp.ClientTimeout(total=120),
    )


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the ceil(q·n)-th smallest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latency_ms(runs: list[list[float]]) -> tuple[float, float]:
    """p50 and p99 in ms: the median over the runs of each run's percentile."""
    return (
        statistics.median(percentile(r, 0.50) for r in runs) * 1000,
        statistics.median(percentile(r, 0.99) for r in runs) * 1000,
    )


@dataclass(frozen=True, slots=True)
class Load:
    """One timed load: wall seconds, requests done, each request's seconds, CPU of each side."""

    seconds: float
    requests: int
    latencies: list[float]
    server_cpu: float = 0.0
    client_cpu: float = 0.0


async def post_batches(base: str, key: str, bodies: list[bytes], concurrency: int) -> Load:
    """Every body to ``/events/batch``, ``concurrency`` at a time; each must be all accepted."""
    latencies: list[float] = []
    async with client(base, key, concurrency) as http:
        queue = iter(bodies)

        async def worker() -> None:
            for body in queue:
                started = time.perf_counter()
                async with http.post(BATCH_PATH, data=body) as response:
                    answer = await response.read()
                latencies.append(time.perf_counter() - started)
                if response.status != 200:
                    raise BenchmarkError(f"batch answered {response.status}: {answer[:300]!r}")
                accepted = orjson.loads(answer)["accepted"]
                if accepted != BATCH_EVENTS:
                    raise BenchmarkError(f"{accepted} of {BATCH_EVENTS} events accepted")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return Load(time.perf_counter() - started, len(bodies), latencies)


async def post_metrics(base: str, key: str, connections: int, seconds: float, warmup: int) -> Load:
    """``connections`` callers each posting one metric after another for ``seconds``."""
    latencies: list[float] = []
    async with client(base, key, connections) as http:

        async def one() -> float:
            started = time.perf_counter()
            async with http.post(METRIC_PATH, data=METRIC_BODY) as response:
                answer = await response.read()
            elapsed = time.perf_counter() - started
            if response.status != 201:
                raise BenchmarkError(f"metric answered {response.status}: {answer[:300]!r}")
            return elapsed

        async def warm() -> None:
            for _ in range(warmup):
                await one()

        await asyncio.gather(*(warm() for _ in range(connections)))
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                latencies.append(await one())

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return Load(time.perf_counter() - started, len(latencies), latencies)


async def get_dashboards(base: str, key: str, n: int) -> list[float]:
    """``n`` sequential ``GET /dashboard/performance``; each one's seconds."""
    latencies = []
    async with client(base, key, 1) as http:
        for _ in range(n):
            started = time.perf_counter()
            async with http.get(DASHBOARD_PATH) as response:
                answer = await response.read()
            latencies.append(time.perf_counter() - started)
            if response.status != 200 or b'"institution_health"' not in answer:
                raise BenchmarkError(f"dashboard answered {response.status}: {answer[:300]!r}")
    return latencies


def timed_load(server: Server, load: Callable[[], Coroutine[Any, Any, Load]]) -> Load:
    """Run ``load``, adding the CPU seconds each side used meanwhile."""
    server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
    result = run_async(load())
    return Load(
        result.seconds,
        result.requests,
        result.latencies,
        server.cpu_seconds() - server_cpu,
        time.process_time() - client_cpu,
    )


# -- 1. batch ingestion ------------------------------------------------------------------------


@dataclass
class Runs:
    """What each run measured besides its wall time."""

    loads: list[Load] = field(default_factory=list)

    @property
    def latencies(self) -> list[list[float]]:
        return [load.latencies for load in self.loads]

    def cpu(self) -> str:
        server = statistics.median(x.server_cpu / x.seconds for x in self.loads)
        client = statistics.median(x.client_cpu / x.seconds for x in self.loads)
        return f"server {server:.0%} of a core, load generator {client:.0%}"


def batches(events: list[dict[str, object]]) -> list[list[dict[str, object]]]:
    return [events[i : i + BATCH_EVENTS] for i in range(0, len(events), BATCH_EVENTS)]


def http_batch_run(
    warmup: list[bytes], bodies: list[bytes], events: int, concurrency: int, runs: Runs
) -> Callable[[Path], Sample]:
    def once(run_dir: Path) -> Sample:
        store = f"duckdb:///{run_dir}/store.duckdb"
        key = issue_key(store, Role.INGEST)
        with serving(store, run_dir) as server:
            run_async(post_batches(server.base, key, warmup, concurrency))
            load = timed_load(server, lambda: post_batches(server.base, key, bodies, concurrency))
        stored = sum(stored_counts(store).values())
        expected = (len(warmup) + len(bodies)) * BATCH_EVENTS
        if stored != expected:
            raise BenchmarkError(f"{stored:,} events stored, {expected:,} acknowledged")
        runs.loads.append(load)
        return Sample(load.seconds, events)

    return once


def facade_batch_run(
    warmup: list[list[dict[str, object]]],
    timed: list[list[dict[str, object]]],
    events: int,
    runs: Runs,
) -> Callable[[Path], Sample]:
    def once(run_dir: Path) -> Sample:
        latencies: list[float] = []

        def ingest(batch: list[dict[str, object]]) -> None:
            started = time.perf_counter()
            results = analytics.ingest(batch)
            latencies.append(time.perf_counter() - started)
            if any(r.status is not EventStatus.ACCEPTED for r in results):
                raise BenchmarkError("an event of the batch was not accepted")

        with (
            BankingPerformanceAnalytics.open(f"duckdb:///{run_dir}/x.duckdb") as analytics,
            ThreadPoolExecutor(BATCH_CONCURRENCY) as pool,
        ):
            list(pool.map(ingest, warmup))
            latencies.clear()
            started = time.perf_counter()
            list(pool.map(ingest, timed))
            seconds = time.perf_counter() - started
        runs.loads.append(Load(seconds, len(timed), latencies))
        return Sample(seconds, events)

    return once


def batch_ingestion(ctx: Context) -> tuple[list[Measurement], list[str]]:
    n = 20_000 if ctx.quick else 100_000
    n_warm = WARMUP_BATCHES * BATCH_EVENTS
    events = behavior_dicts(n_warm + n)
    warm_batches, timed_batches = batches(events[:n_warm]), batches(events[n_warm:])
    warm_bodies = [orjson.dumps({"events": b}) for b in warm_batches]
    bodies = [orjson.dumps({"events": b}) for b in timed_batches]
    gc.freeze()  # the pre-built events stay alive: keep them out of the GC's passes
    kib = statistics.mean(len(b) for b in bodies) / 1024
    ctx.reporter.step(f"batch ingestion: {n:,} events in {len(bodies)} bodies of {kib:,.0f} KiB")
    http_runs, low_runs, facade_runs = Runs(), Runs(), Runs()
    over_http = Measurement(
        f"`POST /events/batch`, {BATCH_EVENTS} events each, {BATCH_CONCURRENCY} in flight",
        repeat(
            ctx,
            f"http batches x{BATCH_CONCURRENCY}",
            http_batch_run(warm_bodies, bodies, n, BATCH_CONCURRENCY, http_runs),
        ),
        min_rate=None if ctx.quick else 50_000,
        latency_ms=latency_ms(http_runs.latencies),
    )
    low = Measurement(
        f"`POST /events/batch`, {BATCH_EVENTS} events each, {BATCH_CONCURRENCY_LOW} in flight",
        repeat(
            ctx,
            f"http batches x{BATCH_CONCURRENCY_LOW}",
            http_batch_run(warm_bodies, bodies, n, BATCH_CONCURRENCY_LOW, low_runs),
        ),
        latency_ms=latency_ms(low_runs.latencies),
    )
    facade_once = facade_batch_run(warm_batches, timed_batches, n, facade_runs)
    facade = Measurement(
        f"baseline: `analytics.ingest(batch)` in-process, {BATCH_CONCURRENCY} threads",
        repeat(ctx, "facade batches", facade_once),
        latency_ms=latency_ms(facade_runs.latencies),
    )
    notes = [
        f"Batch ingestion: {n:,} behavior events with client-side ids in batches of "
        f"{BATCH_EVENTS} ({kib:,.0f} KiB of JSON each), {BATCH_CONCURRENCY} (or "
        f"{BATCH_CONCURRENCY_LOW}) batches in flight over as many keep-alive connections (the "
        f"facade: {BATCH_CONCURRENCY} threads); {WARMUP_BATCHES} warm-up batches first, not "
        "timed. Each answer comes after the batch's durable commit and is checked (all "
        "accepted); after each run the store is counted. Latency columns: per batch. More "
        "batches in flight make bigger group commits: the rate grows up to 16 and stays flat "
        "beyond (measured by hand: ~54,000/s at 32 and 64, p50 0.28 s and 0.5 s).",
        f"HTTP / facade at {BATCH_CONCURRENCY} in flight: **{over_http.rate / facade.rate:.0%}** "
        f"of the in-process rate. CPU while timed (median, {BATCH_CONCURRENCY} in flight): "
        f"{http_runs.cpu()}.",
    ]
    return [over_http, low, facade], notes


# -- 2. single events --------------------------------------------------------------------------


def http_metric_run(seconds: float, runs: Runs) -> Callable[[Path], Sample]:
    def once(run_dir: Path) -> Sample:
        store = f"duckdb:///{run_dir}/store.duckdb"
        key = issue_key(store, Role.INGEST)
        with serving(store, run_dir) as server:
            load = timed_load(
                server, lambda: post_metrics(server.base, key, METRIC_CONNECTIONS, seconds, 4)
            )
        runs.loads.append(load)
        return Sample(load.seconds, load.requests)

    return once


def facade_metric_run(seconds: float, runs: Runs) -> Callable[[Path], Sample]:
    def once(run_dir: Path) -> Sample:
        with BankingPerformanceAnalytics.open(f"duckdb:///{run_dir}/x.duckdb") as analytics:

            def record() -> float:
                started = time.perf_counter()
                analytics.record_performance_metric(**METRIC)  # type: ignore[arg-type]
                return time.perf_counter() - started

            def caller(deadline: float | None) -> list[float]:
                if deadline is None:
                    return [record() for _ in range(4)]
                latencies = []
                while time.perf_counter() < deadline:
                    latencies.append(record())
                return latencies

            with ThreadPoolExecutor(METRIC_CONNECTIONS) as pool:
                list(pool.map(caller, [None] * METRIC_CONNECTIONS))
                started = time.perf_counter()
                deadline = started + seconds
                latencies = [
                    x for share in pool.map(caller, [deadline] * METRIC_CONNECTIONS) for x in share
                ]
                elapsed = time.perf_counter() - started
        runs.loads.append(Load(elapsed, len(latencies), latencies))
        return Sample(elapsed, len(latencies))

    return once


def single_events(ctx: Context) -> tuple[list[Measurement], list[str]]:
    seconds = 2.0 if ctx.quick else 6.0
    http_runs, facade_runs = Runs(), Runs()
    over_http = Measurement(
        f"`POST /performance/metric`, {METRIC_CONNECTIONS} connections",
        repeat(ctx, "http metric", http_metric_run(seconds, http_runs)),
        min_rate=None if ctx.quick else 1_000,
        max_p99_ms=None if ctx.quick else 50,
        latency_ms=latency_ms(http_runs.latencies),
    )
    facade = Measurement(
        f"baseline: `record_performance_metric()` in-process, {METRIC_CONNECTIONS} threads",
        repeat(ctx, "facade metric", facade_metric_run(seconds, facade_runs)),
        latency_ms=latency_ms(facade_runs.latencies),
    )
    p99s = ", ".join(f"{percentile(r, 0.99) * 1000:.1f}" for r in http_runs.latencies)
    notes = [
        f"Single events: {METRIC_CONNECTIONS} keep-alive connections each posting one "
        f"performance metric after another for {seconds:g} s (after 4 untimed each), every "
        "answer a 201 after the durable commit (group commit shares commits between "
        f"requests); the facade: {METRIC_CONNECTIONS} threads calling "
        "`record_performance_metric`. Events column: requests.",
        f"HTTP / facade: **{over_http.rate / facade.rate:.0%}** of the in-process rate. HTTP "
        f"p99 per run (ms): {p99s}. CPU while timed (median): {http_runs.cpu()}.",
    ]
    return [over_http, facade], notes


# -- 3. the dashboard --------------------------------------------------------------------------


def dashboard(ctx: Context) -> tuple[list[Measurement], list[str]]:
    users = DEMO_USERS // 10 if ctx.quick else DEMO_USERS
    restarts = 2 if ctx.quick else DASHBOARD_RESTARTS
    store = f"duckdb:///{ctx.tmp}/demo.duckdb"
    events = simulate_store(ctx, store, users)
    key = issue_key(store, Role.ANALYST)
    cold: list[float] = []
    warm: list[list[float]] = []
    for i in range(restarts):
        with serving(store, ctx.tmp) as server:
            (first,) = run_async(get_dashboards(server.base, key, 1))
            cold.append(first)
            warm.append(run_async(get_dashboards(server.base, key, DASHBOARD_WARM)))
        ctx.reporter.step(
            f"dashboard over HTTP, server start {i + 1}/{restarts}: cold {first * 1000:.0f} ms, "
            f"warm p50 {percentile(warm[-1], 0.5) * 1000:.1f} ms"
        )
    facade_cold: list[float] = []
    facade_warm: list[list[float]] = []
    for _ in range(restarts):
        with BankingPerformanceAnalytics.open(store) as analytics:
            times = []
            for _ in range(1 + DASHBOARD_WARM):
                started = time.perf_counter()
                analytics.performance_dashboard("24h", timezone="UTC", health_lookback="7d")
                times.append(time.perf_counter() - started)
        facade_cold.append(times[0])
        facade_warm.append(times[1:])
    ctx.reporter.step(f"dashboard in-process: cold {statistics.median(facade_cold) * 1000:.0f} ms")

    def cold_measurement(variant: str, seconds: list[float]) -> Measurement:
        return Measurement(
            variant,
            tuple(Sample(s, events) for s in seconds),
            latency_ms=(percentile(seconds, 0.5) * 1000, percentile(seconds, 0.99) * 1000),
            show_rate=False,
        )

    def warm_measurement(variant: str, runs: list[list[float]]) -> Measurement:
        pooled = [x for run in runs for x in run]
        return Measurement(
            variant,
            tuple(Sample(statistics.median(run), events) for run in runs),
            latency_ms=(percentile(pooled, 0.5) * 1000, percentile(pooled, 0.99) * 1000),
            show_rate=False,
        )

    route = "`GET /dashboard/performance`"
    call = "baseline: `performance_dashboard()` in-process"
    measurements = [
        cold_measurement(f"{route} cold: first request after start", cold),
        warm_measurement(f"{route} warm: next {DASHBOARD_WARM}", warm),
        cold_measurement(f"{call}, first call", facade_cold),
        warm_measurement(f"{call}, next {DASHBOARD_WARM}", facade_warm),
    ]
    notes = [
        f"Dashboard: the demo store (`simulate --users {users:,} --days 90`, {events:,} events), "
        "the default query (24 h, health over 7 days, every part). Cold: the first request "
        f"after the server started (it answers `/healthz`), over {restarts} server starts; "
        f"the runs column lists each start's. Warm: the {DASHBOARD_WARM} requests after it on "
        "each start; the runs column lists each start's median, p50/p99 pool all of them. "
        "The baseline opens the store in this process (imports done) as many times.",
    ]
    return measurements, notes


# -- 4. durability -----------------------------------------------------------------------------


@dataclass
class Stream:
    """What the client saw of a stream of batches cut by SIGKILL."""

    acknowledged: list[int] = field(default_factory=list)
    unacknowledged: list[int] = field(default_factory=list)
    killed_at: float | None = None


async def stream_until_killed(
    server: Server, key: str, bodies: list[bytes], concurrency: int, kill_after: int
) -> Stream:
    """Post batches ``concurrency`` at a time; SIGKILL the server after ``kill_after`` 2xx.

    A batch is acknowledged when it gets a 2xx; one that fails any other way
    (connection reset, no answer) is not; no new batch starts after the kill.
    """
    stream = Stream()
    async with client(server.base, key, concurrency) as http:
        queue = iter(enumerate(bodies))

        async def worker() -> None:
            for i, body in queue:
                if stream.killed_at is not None:
                    return
                try:
                    async with http.post(BATCH_PATH, data=body) as response:
                        await response.read()
                        ok = 200 <= response.status < 300
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                (stream.acknowledged if ok else stream.unacknowledged).append(i)
                if len(stream.acknowledged) >= kill_after and stream.killed_at is None:
                    os.kill(server.pid, signal.SIGKILL)
                    stream.killed_at = time.perf_counter()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return stream


async def retry(server: Server, key: str, bodies: list[bytes]) -> dict[str, int]:
    """Post each body again until a 2xx; the statuses of its events, counted."""
    statuses: dict[str, int] = {}
    async with client(server.base, key, 4) as http:
        for body in bodies:
            for attempt in range(5):
                async with http.post(BATCH_PATH, data=body) as response:
                    answer = await response.read()
                if 200 <= response.status < 300:
                    break
                if attempt == 4:
                    raise BenchmarkError(f"retry answered {response.status}: {answer[:300]!r}")
                await asyncio.sleep(0.2)
            for result in orjson.loads(answer)["results"]:
                statuses[result["status"]] = statuses.get(result["status"], 0) + 1
    return statuses


def durability(ctx: Context) -> list[str]:
    n_batches = 100 if ctx.quick else 400
    kill_after = 20 if ctx.quick else 80
    events = behavior_dicts(n_batches * BATCH_EVENTS)
    ids = [[str(e["event_id"]) for e in b] for b in batches(events)]
    bodies = [orjson.dumps({"events": b}) for b in batches(events)]
    run_dir = ctx.tmp / "durability"
    run_dir.mkdir()
    store = f"duckdb:///{run_dir}/store.duckdb"
    key = issue_key(store, Role.INGEST)
    server = Server(store, run_dir)
    server.start()
    try:
        stream = run_async(
            stream_until_killed(server, key, bodies, DURABILITY_CONCURRENCY, kill_after)
        )
        server.kill()
        if server.proc is None or server.proc.returncode != -signal.SIGKILL:
            raise BenchmarkError("the server was not killed by SIGKILL")
        restart = server.start()
        statuses = run_async(retry(server, key, [bodies[i] for i in stream.unacknowledged]))
    finally:
        server.stop()
    copies = stored_counts(store)
    acked = [x for i in stream.acknowledged for x in ids[i]]
    retried = [x for i in stream.unacknowledged for x in ids[i]]
    lost = sum(1 for x in acked + retried if x not in copies)
    twice = sum(1 for n in copies.values() if n > 1)
    unexpected = len(copies) - len(set(acked + retried))
    bad_retries = sum(n for s, n in statuses.items() if s not in ("accepted", "duplicate"))
    ctx.reporter.step(
        f"durability: {len(acked):,} acknowledged, {len(retried):,} retried, "
        f"{sum(copies.values()):,} stored, {lost} lost, {twice} stored twice"
    )
    if lost or twice or unexpected or bad_retries:
        raise BenchmarkError(
            f"durability over HTTP failed: {lost} events lost, {twice} stored more than once, "
            f"{unexpected} unexpected, retries answered {statuses}"
        )
    return [
        f"Durability over HTTP: batches of {BATCH_EVENTS} behavior events with client-side "
        f"ids, {DURABILITY_CONCURRENCY} in flight; SIGKILL to the server after {kill_after} "
        f"acknowledgements; restarted on the same store (ready in {restart:.1f} s, WAL "
        "replayed); every batch without a 2xx sent again with the same ids. "
        f"**{len(acked):,} events acknowledged** ({len(stream.acknowledged)} batches), "
        f"**{len(retried):,} retried** ({len(stream.unacknowledged)} batches cut by the kill: "
        f"on retry {statuses.get('accepted', 0):,} accepted, "
        f"{statuses.get('duplicate', 0):,} duplicate, a duplicate being an event committed "
        f"before the kill whose answer was lost), **{sum(copies.values()):,} stored**, every "
        f"acknowledged and retried id exactly once: **{twice} duplicates**, {lost} missing "
        "(counted by event_id)."
    ]


# -- 5. liveness under load ------------------------------------------------------------------

HEALTH_CLIENTS = 200
#: What the 200 clients do, each in a loop: analysts query, ingest keys post batches,
#: and anonymous clients with a wrong key (401, then 429 once their address is limited).
ANALYSTS, INGESTERS, ANONYMOUS = 120, 40, 40
HEALTH_QUERY = orjson.dumps(
    {
        "metrics": ["sync_runs", "sync_success_rate"],
        "time_period": "24h",
        "bucket": "hour",
        "dimensions": ["institution"],
    }
)
HEALTH_BATCH_EVENTS = 100
#: Probes of /healthz per second, from a process of their own (the load generator's
#: loop, busy with 200 clients, would add its own delays to what it measured).
PROBE_INTERVAL = 0.02
PROBE = """
import http.client, json, sys, time
host, port = sys.argv[1], int(sys.argv[2])
seconds, interval = float(sys.argv[3]), float(sys.argv[4])
conn = http.client.HTTPConnection(host, port, timeout=30)
latencies, statuses, deadline = [], {}, time.monotonic() + seconds
while time.monotonic() < deadline:
    started = time.perf_counter()
    conn.request("GET", "/healthz")
    response = conn.getresponse()
    response.read()
    latencies.append(time.perf_counter() - started)
    statuses[response.status] = statuses.get(response.status, 0) + 1
    time.sleep(interval)
print(json.dumps({"latencies": latencies, "statuses": statuses}))
"""


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchmarkError("no VmHWM in /proc: cannot read the server's peak memory")


async def mixed_clients(
    base: str, keys: dict[Role, str], seconds: float, batches: list[bytes]
) -> dict[int, int]:
    """``HEALTH_CLIENTS`` clients, each on its own connection, for ``seconds``; the count
    of each status they got."""
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=HEALTH_CLIENTS + 10)
    # Generous: on a loaded machine a request begun just before the deadline may queue
    # behind 200 others; it is counted, not abandoned.
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(base_url=base, connector=connector, timeout=timeout) as http:

        async def loop(method: str, path: str, key: str, bodies: list[bytes]) -> None:
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            i = 0
            while time.perf_counter() < deadline:
                body = bodies[i % len(bodies)] if bodies else None
                i += 1
                async with http.request(method, path, data=body, headers=headers) as response:
                    await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
                if response.status == 429:  # as a client honouring Retry-After would
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))

        query = f"{PREFIX}/metrics/query"
        await asyncio.gather(
            *(
                loop("POST", query, keys[Role.ANALYST], [HEALTH_QUERY])
                if i % 2
                else loop("GET", f"{PREFIX}/performance/connection", keys[Role.ANALYST], [])
                for i in range(ANALYSTS)
            ),
            *(loop("POST", BATCH_PATH, keys[Role.INGEST], batches) for _ in range(INGESTERS)),
            *(loop("GET", query, "ba_live_wrong", []) for _ in range(ANONYMOUS)),
        )
    return statuses


def health_under_load(ctx: Context) -> tuple[list[Measurement], list[str]]:
    seconds = 5.0 if ctx.quick else 20.0
    users = 200 if ctx.quick else 2_000
    ctx.reporter.start("http_health", 3)
    store = f"duckdb:///{ctx.tmp}/health.duckdb"
    events = simulate_store(ctx, store, users)
    keys = {role: issue_key(store, role) for role in (Role.ANALYST, Role.INGEST)}
    pending = behavior_dicts(HEALTH_BATCH_EVENTS * 400)
    batches = [
        orjson.dumps({"events": pending[i : i + HEALTH_BATCH_EVENTS]})
        for i in range(0, len(pending), HEALTH_BATCH_EVENTS)
    ]
    with serving(store, ctx.tmp) as server:
        probe = subprocess.Popen(
            [
                sys.executable,
                "-c",
                PROBE,
                "127.0.0.1",
                str(server.port),
                str(seconds),
                str(PROBE_INTERVAL),
            ],
            stdout=subprocess.PIPE,
        )
        statuses = run_async(mixed_clients(server.base, keys, seconds, batches))
        probed = orjson.loads(probe.communicate(timeout=seconds + 120)[0])
        peak = peak_rss_mb(server.pid)
    latencies: list[float] = probed["latencies"]
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    probe_errors = sum(n for status, n in probed["statuses"].items() if status != "200")
    ctx.reporter.step(
        f"/healthz under {HEALTH_CLIENTS} clients: "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
        f"statuses {dict(sorted(statuses.items()))}, server peak {peak:,.0f} MB"
    )
    if server_errors or probe_errors:
        raise BenchmarkError(
            f"{server_errors} answers of 5xx under load ({statuses}); /healthz {probed['statuses']}"
        )
    measurement = Measurement(
        f"`GET /healthz` while {HEALTH_CLIENTS} clients load the server",
        (Sample(seconds, len(latencies), peak),),
        latency_ms=(percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000),
        max_p99_ms=100,
        show_rate=False,
    )
    served = ", ".join(f"{status}: {n:,}" for status, n in sorted(statuses.items()))
    notes = [
        f"Liveness under load: `banking-analytics serve` (default connection limits) over the "
        f"demo store (`simulate --users {users:,} --days 90`, {events:,} events), "
        f"{HEALTH_CLIENTS} clients for {seconds:g} s, each on its own keep-alive connection, "
        f"one request after another: {ANALYSTS // 2} `POST /metrics/query` (24 hours by hour "
        f"and institution), {ANALYSTS // 2} `GET /performance/connection`, {INGESTERS} "
        f"`POST /events/batch` ({HEALTH_BATCH_EVENTS} events), {ANONYMOUS} with a wrong key "
        "(401, then 429 once their address is limited; they wait Retry-After). Answers by "
        f"status: {served}; **{server_errors} of 5xx**. `/healthz` probed every "
        f"{PROBE_INTERVAL * 1000:.0f} ms from a process of its own ({len(latencies):,} probes). "
        f"Peak RSS column: the server's peak resident memory (VmHWM), **{peak:,.0f} MB**.",
    ]
    return [measurement], notes


# -- the suite's entry -------------------------------------------------------------------------


def http_api(ctx: Context) -> tuple[list[Measurement], list[str]]:
    restarts = 2 if ctx.quick else DASHBOARD_RESTARTS
    ctx.reporter.start("http", 1 + 5 * RUNS + 2 + restarts + 1)
    load = os.getloadavg()[0]
    measurements, notes = batch_ingestion(ctx)
    more, more_notes = single_events(ctx)
    measurements += more
    notes += more_notes
    more, more_notes = dashboard(ctx)
    measurements += more
    notes += more_notes
    notes += durability(ctx)
    notes.append(
        "Server: `banking-analytics serve` (one uvicorn process) on a fresh DuckDB file, "
        "rate limits raised (`BA_RATE_LIMIT_PER_SECOND`, `BA_RATE_LIMIT_BURST`); load "
        "generator: this process, asyncio on uvloop with aiohttp over loopback, sharing the "
        f"machine's {os.cpu_count()} cores with the server. Load average (1 min) when the "
        f"HTTP benchmarks began: {load:.2f}."
    )
    return measurements, notes
