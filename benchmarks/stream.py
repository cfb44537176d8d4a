"""The event stream under 100 listeners: how long an alert transition takes to reach each.

    python -m benchmarks.run --only stream [--quick]

``banking-analytics serve`` (a subprocess) on a scratch schema of the PostgreSQL
server; 100 clients in this process (asyncio, aiohttp) each hold ``GET .../stream``
open over loopback, 20 per analyst key (the server's default cap per key). This
process acts as another replica: it holds the rule's lease (so the server's own
evaluator leaves the rule alone) and records transitions straight into the store,
from a thread, alternately an evaluation (instances turn pending, or fire) and a rule
change (its instances reset). A transition's delivery latency is the moment a
client parsed it minus the moment the transaction recording it had committed (the
call returned), on this machine's one clock. Every client must receive every
transition, once, in order.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.access import Role
from banking_analytics.monitor import Rule, RuleLeases, default_rules
from benchmarks.http import PREFIX, issue_key, peak_rss_mb, percentile, run_async, serving
from benchmarks.run import BenchmarkError, Context, Measurement, Sample, postgres_scratch

CLIENTS = 100
#: Streams per analyst key: the server's default cap (``stream_max_connections_per_key``).
PER_KEY = 20
#: Seconds between two changes recorded (each reaches every client well before the next).
PAUSE = 0.5
T0 = datetime(2026, 11, 2, 12, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
#: The shipped rule on institutions' link success rate (30 minutes, by institution).
NAME = "institution_success_rate_low"
RULE = next(rule for rule in default_rules() if rule.name == NAME)


def attempts(institution: str, successes: int, failures: int) -> list[dict[str, object]]:
    """Link attempts of one institution, 20 minutes after T0, a second apart."""
    events: list[dict[str, object]] = []
    for i in range(successes + failures):
        at = (T0 + 20 * MINUTE + i * timedelta(seconds=1)).isoformat()
        failed = {"error_category": "institution"} if i >= successes else {}
        events.append(
            {
                "event_type": "connection_attempt",
                "occurred_at": at,
                "started_at": at,
                "user_id": f"u_{institution}_{i}",
                "attempt_id": f"a_{institution}_{i}",
                "aggregator": "plaid",
                "institution_id": institution,
                "feature": "account_linking",
                "flow": "new",
                "outcome": "failure" if failed else "success",
                "latency_ms": 1500.0,
                **failed,
            }
        )
    return events


def rss_mb(pid: int) -> float:
    """The process's resident memory now (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchmarkError("no VmRSS in /proc")


class Recorder:
    """This process as another replica: records changes, noting when each transition committed."""

    def __init__(self, analytics: BankingPerformanceAnalytics) -> None:
        self.analytics = analytics
        self.committed: dict[int, float] = {}

    def change(self, k: int) -> None:
        """The k-th change: an evaluation (even k) or a rule change (odd k)."""
        monitor, store = self.analytics.monitor, self.analytics.monitor.store
        last = store.last_history_id()
        if k % 2 == 0:
            monitor.evaluate(T0 + (30 + k) * MINUTE)
        else:
            # A changed threshold resets the rule's instances (a transition each).
            critical = 0.3 if k % 4 == 1 else RULE.as_dict()["critical"]
            monitor.apply([Rule.from_dict({**RULE.as_dict(), "critical": critical})], "benchmark")
        at = time.time()
        for row in store.transitions_after(last, 1000):
            assert row.history_id is not None
            self.committed[row.history_id] = at


async def deliver(
    base: str, keys: list[str], recorder: Recorder, changes: int
) -> list[list[tuple[int, float]]]:
    """Open the streams, record ``changes`` changes, and wait until every client has every
    transition; each client's arrivals: (transition id, when it was parsed)."""
    arrivals: list[list[tuple[int, float]]] = [[] for _ in range(CLIENTS)]
    connected = asyncio.Semaphore(0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    connector = aiohttp.TCPConnector(limit=CLIENTS + 10)
    async with aiohttp.ClientSession(base_url=base, connector=connector, timeout=timeout) as http:

        async def client(index: int) -> None:
            headers = {"Authorization": f"Bearer {keys[index // PER_KEY]}"}
            async with http.get(f"{PREFIX}/stream", headers=headers) as response:
                if response.status != 200:
                    text = await response.text()
                    raise BenchmarkError(f"stream {index}: {response.status} {text}")
                connected.release()
                event_id: int | None = None
                async for raw in response.content:
                    line = raw.decode().rstrip("\r\n")
                    if line.startswith("id: "):
                        event_id = int(line[4:])
                    elif line == "" and event_id is not None:
                        arrivals[index].append((event_id, time.time()))
                        event_id = None

        tasks = [asyncio.create_task(client(i)) for i in range(CLIENTS)]
        async with asyncio.timeout(120):
            for _ in range(CLIENTS):
                await connected.acquire()
        for k in range(changes):
            # In a thread: the event loop goes on reading the streams meanwhile.
            await asyncio.to_thread(recorder.change, k)
            await asyncio.sleep(PAUSE)
        expected = len(recorder.committed)
        async with asyncio.timeout(120):
            while any(len(got) < expected for got in arrivals):
                failed = [t for t in tasks if t.done()]
                if failed:
                    await failed[0]  # raises what ended it
                    raise BenchmarkError("a stream ended early")
                await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return arrivals


def stream_delivery(ctx: Context) -> tuple[list[Measurement], list[str]]:
    changes = 10 if ctx.quick else 40
    ctx.reporter.start("stream", 2)
    with postgres_scratch("ba_bench_stream") as url:
        with BankingPerformanceAnalytics.open(url) as analytics:
            analytics.ingest(
                attempts("ins_a", 22, 3) + attempts("ins_b", 8, 12) + attempts("ins_c", 25, 0)
            )
            analytics.monitor.apply([RULE], "benchmark")
            # This process evaluates the rule: the server's evaluator (wall clock) may not.
            held = RuleLeases(analytics.engine, "benchmark", timedelta(hours=1)).hold(
                [NAME], datetime.now(UTC)
            )
            if held != {NAME}:
                raise BenchmarkError("could not hold the rule's lease")
        keys = [issue_key(url, Role.ANALYST) for _ in range(CLIENTS // PER_KEY)]
        with (
            serving(url, ctx.tmp) as server,
            BankingPerformanceAnalytics.open(url) as analytics,
        ):
            idle = rss_mb(server.pid)
            recorder = Recorder(analytics)
            started = time.perf_counter()
            arrivals = run_async(deliver(server.base, keys, recorder, changes))
            seconds = time.perf_counter() - started
            connected = rss_mb(server.pid)
            peak = peak_rss_mb(server.pid)
    expected = sorted(recorder.committed)
    for index, got in enumerate(arrivals):
        if [i for i, _ in got] != expected:
            raise BenchmarkError(f"client {index}: {len(got)} transitions, not {expected} in order")
    latencies = [at - recorder.committed[i] for got in arrivals for i, at in got]
    ctx.reporter.step(
        f"{len(expected)} transitions to {CLIENTS} clients: max {max(latencies) * 1000:.0f} ms"
    )
    ms = sorted(x * 1000 for x in latencies)
    measurement = Measurement(
        f"an alert transition reaching each of {CLIENTS} streams (max)",
        (Sample(max(latencies), len(latencies), peak),),
        max_seconds=1.0,
        latency_ms=(percentile(ms, 0.5), percentile(ms, 0.99)),
        show_rate=False,
    )
    notes = [
        f"Event stream delivery: `banking-analytics serve` on PostgreSQL (default stream "
        f"settings: the store read every 0.5 s), {CLIENTS} clients holding `GET /stream` over "
        f"loopback ({CLIENTS // PER_KEY} analyst keys, {PER_KEY} streams each); another "
        f"process recorded {changes} changes ({len(expected)} transitions) {PAUSE:g} s apart "
        f"in {seconds:.1f} s; every client got every transition, in order, once "
        f"({len(latencies):,} deliveries). Latency from commit to a client's parse, in ms: "
        f"min {ms[0]:.0f}, p50 {percentile(ms, 0.5):.0f}, p90 {percentile(ms, 0.9):.0f}, "
        f"p99 {percentile(ms, 0.99):.0f}, **max {ms[-1]:.0f}**, mean "
        f"{statistics.fmean(ms):.0f}. Server memory (RSS): {idle:,.0f} MB before the "
        f"clients, {connected:,.0f} MB with {CLIENTS} streams open, peak {peak:,.0f} MB.",
    ]
    return [measurement], notes
