"""Speed benchmarks, each measured side by side with a baseline in the same run.

    python -m benchmarks.run [--only NAME]... [--quick]

Every variant runs ``RUNS`` times (the dashboard's engine and pandas sides
``DASHBOARD_RUNS`` times) against a fresh DuckDB file in a temporary directory;
the median goes into ``benchmarks/RESULTS.md`` together with the machine, the date,
the command and library versions. ``--only NAME`` (repeatable) measures those and
replaces their sections, keeping the others'.
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlglot
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from sqlglot import exp

from banking_analytics import (
    Aggregator,
    AuthMethod,
    BankingFeature,
    BankingPerformanceAnalytics,
    ConnectionFlow,
    DeviceType,
    EventResult,
    EventStatus,
    Outcome,
    PendingEvent,
    PerformanceMetric,
    Platform,
)
from banking_analytics.analytics import PerformanceAnalytics
from banking_analytics.events import SCHEMAS
from banking_analytics.metrics import MetricService
from banking_analytics.store import EVENT_TABLES, Engine, open_engine
from banking_analytics.vocabulary import EventType

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
#: The CLI of the interpreter's own environment (``.venv/bin/banking-analytics``).
CLI = str(Path(sys.executable).with_name("banking-analytics"))
RUNS = 3
GNU_TIME = shutil.which("time", path="/usr/bin")
SEED = 20_240_601
#: Where every simulated history ends: fixed for the whole run, so repeated runs simulate
#: the same world (the simulator's default end moves with the clock).
END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

TIMESTAMP = pa.timestamp("us", tz="UTC")
SECOND_US = 1_000_000
DAY_US = 86_400 * SECOND_US


# -- measurement -------------------------------------------------------------------------------


class BenchmarkError(RuntimeError):
    """A benchmark could not produce a valid measurement (a failed command, rejected events)."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One timed run."""

    seconds: float
    events: int
    peak_rss_mb: float | None = None


@dataclass(frozen=True, slots=True)
class Measurement:
    """The runs of one variant and its target: a minimum rate or a maximum time.

    Request benchmarks add per-request latency (p50, p99 in ms) and may set a
    ceiling on p99; ``show_rate`` False leaves out a rate that means nothing
    (a query's latency over a store of so many events).
    """

    variant: str
    samples: tuple[Sample, ...]
    min_rate: float | None = None
    max_seconds: float | None = None
    latency_ms: tuple[float, float] | None = None
    max_p99_ms: float | None = None
    show_rate: bool = True

    @property
    def events(self) -> int:
        return int(statistics.median(s.events for s in self.samples))

    @property
    def seconds(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def rate(self) -> float:
        return statistics.median(s.events / s.seconds for s in self.samples)

    @property
    def peak_rss_mb(self) -> float | None:
        peaks = [s.peak_rss_mb for s in self.samples if s.peak_rss_mb is not None]
        return max(peaks) if peaks else None

    @property
    def target(self) -> str:
        targets = []
        if self.min_rate is not None:
            targets.append(f"≥ {self.min_rate:,.0f}/s")
        if self.max_seconds is not None:
            targets.append(f"≤ {self.max_seconds:g} s")
        if self.max_p99_ms is not None:
            targets.append(f"p99 ≤ {self.max_p99_ms:g} ms")
        return ", ".join(targets) or "—"

    @property
    def met(self) -> str:
        checks = []
        if self.min_rate is not None:
            checks.append(self.rate >= self.min_rate)
        if self.max_seconds is not None:
            checks.append(self.seconds <= self.max_seconds)
        if self.max_p99_ms is not None:
            checks.append(self.latency_ms is not None and self.latency_ms[1] <= self.max_p99_ms)
        if not checks:
            return "—"
        return "yes" if all(checks) else "**no**"


class Reporter:
    """Progress on stderr: a bar per benchmark and a line per step."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: TaskID | None = None

    def start(self, name: str, steps: int) -> None:
        self._task = self._progress.add_task(name, total=steps)

    def log(self, message: str) -> None:
        self._progress.console.log(message, highlight=False)

    def step(self, message: str) -> None:
        self.log(message)
        if self._task is not None:
            self._progress.advance(self._task)


@dataclass(frozen=True, slots=True)
class Context:
    quick: bool
    #: This benchmark's own directory, inside the run's.
    tmp: Path
    reporter: Reporter

    @property
    def run_dir(self) -> Path:
        """The whole run's directory: what one benchmark leaves there, the next may use."""
        return self.tmp.parent


def repeat(
    ctx: Context,
    label: str,
    once: Callable[[Path], Sample],
    *,
    budget_s: float | None = None,
    runs: int = RUNS,
) -> tuple[Sample, ...]:
    """``runs`` runs of ``once(fresh_dir)``, the directory deleted after each.

    With ``budget_s``, stops early (after at least one run) when another run
    would likely end past the budget, so the whole suite keeps to its time.
    """
    samples: list[Sample] = []
    started = time.perf_counter()
    for i in range(runs):
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=ctx.tmp))
        try:
            sample = once(run_dir)
        finally:
            shutil.rmtree(run_dir)
        samples.append(sample)
        rss = f", peak RSS {sample.peak_rss_mb:,.0f} MB" if sample.peak_rss_mb else ""
        ctx.reporter.step(
            f"{label}: run {i + 1}/{runs}: {sample.events:,} events in {sample.seconds:.2f} s "
            f"({sample.events / sample.seconds:,.0f}/s{rss})"
        )
        spent = time.perf_counter() - started
        if budget_s is not None and i + 1 < runs and spent + sample.seconds > budget_s:
            ctx.reporter.log(f"{label}: stopping after {i + 1} runs to keep to {budget_s:g} s")
            break
    return tuple(samples)


def run_command(
    cmd: Sequence[str], workdir: Path, code: Path = ROOT
) -> tuple[float, float | None, str]:
    """Run a command in the tree ``code`` (this checkout, or another commit's code: its
    package comes first on the path); its wall seconds, peak RSS in MB (if measurable)
    and stdout.

    The peak RSS comes from GNU time wrapping the command: a child's own
    ``ru_maxrss`` (``os.wait4``, ``RUSAGE_CHILDREN``) starts from this process's
    high-water mark at fork, which holds the generated data, and would overstate it.
    Fails on a non-zero exit.
    """
    out_path, err_path = workdir / "stdout.txt", workdir / "stderr.txt"
    rss_path = workdir / "max_rss_kb.txt"
    wrapped = [GNU_TIME, "-f", "%M", "-o", str(rss_path), *cmd] if GNU_TIME else list(cmd)
    # Wide enough that rich does not wrap the summary lines we parse.
    env = {**os.environ, "COLUMNS": "250"}
    if code != ROOT:
        env["PYTHONPATH"] = str(code / "src")
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        exit_code = subprocess.run(wrapped, stdout=out, stderr=err, cwd=code, env=env).returncode
        seconds = time.perf_counter() - started
    if exit_code != 0:
        tail = err_path.read_text(errors="replace").strip().splitlines()[-5:]
        raise BenchmarkError(f"`{shlex.join(cmd)}` exited with {exit_code}: " + " | ".join(tail))
    rss_mb = int(rss_path.read_text().split()[-1]) / 1024 if GNU_TIME else None
    return seconds, rss_mb, out_path.read_text(errors="replace")


def parse_count(pattern: str, text: str) -> int:
    """An event count printed by the CLI (with thousands separators)."""
    match = re.search(pattern, text)
    if match is None:
        raise BenchmarkError(f"no match for {pattern!r} in the output: {text.strip()[:300]}")
    return int(match[1].replace(",", ""))


# -- vectorised event generation ---------------------------------------------------------------


HEX_DIGITS = np.frombuffer(b"0123456789abcdef", np.uint8)
#: Where the 32 hex digits go in the 36 characters of ``8-4-4-4-12``.
UUID_DIGITS = np.r_[0:8, 9:13, 14:18, 19:23, 24:36]


def uuids(rng: np.random.Generator, n: int) -> pa.Array:
    """``n`` random version-4 UUID strings, built as bytes without a Python loop per id."""
    raw = np.frombuffer(rng.bytes(16 * n), np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    nibbles = np.empty((n, 32), np.uint8)
    nibbles[:, 0::2], nibbles[:, 1::2] = raw >> 4, raw & 0x0F
    text = np.full((n, 36), ord("-"), np.uint8)
    text[:, UUID_DIGITS] = HEX_DIGITS[nibbles]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text.tobytes())]
    )


def numbered(prefix: str, numbers: np.ndarray) -> pa.Array:
    """Strings such as ``u_123``: valid identifiers when the prefix is one."""
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")


def pick(
    rng: np.random.Generator, choices: Sequence[str], n: int, p: Sequence[float] | None = None
) -> pa.Array:
    return pc.take(pa.array(choices, pa.string()), pa.array(rng.choice(len(choices), n, p=p)))


def only_where(mask: np.ndarray, values: pa.Array) -> pa.Array:
    """``values`` where ``mask`` holds, null elsewhere (optional fields are often absent)."""
    return pc.if_else(pa.array(mask), values, pa.scalar(None, values.type))


def timestamps(us: np.ndarray) -> pa.Array:
    return pa.array(us, type=TIMESTAMP)


def envelope(rng: np.random.Generator, event_type: str, n: int, now_us: int) -> dict[str, pa.Array]:
    """Fields every event carries; occurred within the last three days (not flagged late)."""
    return {
        "event_type": pa.repeat(pa.scalar(event_type), n),
        "event_id": uuids(rng, n),
        "schema_version": pa.repeat(pa.scalar(1, pa.int64()), n),
        "occurred_at": timestamps(now_us - rng.integers(SECOND_US, 3 * DAY_US, n)),
        "user_id": numbered("u_", rng.integers(1, 50_000, n)),
        "session_id": numbered("sess_", rng.integers(1, 10**9, n)),
    }


FEATURES = [f.value for f in BankingFeature]
FEATURE_SHARE = [0.10, 0.08, 0.20, 0.15, 0.13, 0.07, 0.11, 0.07, 0.06, 0.03]
ACTIONS = ["open", "view_report", "view_transactions", "create_budget", "edit_goal"]
ACTIONS += ["set_alert", "export_csv", "refresh", "dismiss_tip"]
SCREENS = ["home", "insights", "budgets", "goals", "accounts", "settings"]


def behavior_events(rng: np.random.Generator, n: int, now_us: int) -> pa.Table:
    columns = envelope(rng, "behavior", n, now_us)
    app_version = pc.binary_join_element_wise(
        "4.", pc.cast(pa.array(rng.integers(0, 20, n)), pa.string()), ".0", ""
    )
    properties = pc.binary_join_element_wise(
        '{"screen":"', pick(rng, SCREENS, n), '","app_version":"', app_version, '"}', ""
    )
    columns |= {
        "properties": only_where(rng.random(n) < 0.1, properties),
        "feature": pick(rng, FEATURES, n, FEATURE_SHARE),
        "action": pick(rng, ACTIONS, n),
        "duration_s": pa.array(np.round(rng.lognormal(1.0, 0.9, n), 3)),
        "success": pa.array(rng.random(n) < 0.96),
        "device": pick(rng, [d.value for d in DeviceType], n, [0.68, 0.1, 0.2, 0.02]),
        "platform": pick(rng, [p.value for p in Platform], n, [0.45, 0.35, 0.18, 0.02]),
    }
    return pa.table(columns)


#: Unit and typical value of each metric; ratios are drawn from a beta distribution instead.
METRICS: dict[PerformanceMetric, tuple[str, float]] = {
    PerformanceMetric.CONNECTION_SUCCESS_RATE: ("ratio", 0.0),
    PerformanceMetric.CONNECTION_LATENCY: ("ms", 2_500.0),
    PerformanceMetric.DATA_SYNC_FREQUENCY: ("per_day", 4.0),
    PerformanceMetric.ERROR_RATE: ("ratio", 0.0),
    PerformanceMetric.USER_ENGAGEMENT: ("minutes", 6.0),
    PerformanceMetric.FEATURE_USAGE: ("count", 20.0),
    PerformanceMetric.REVENUE_IMPACT: ("usd", 50.0),
    PerformanceMetric.CONVERSION_RATE: ("ratio", 0.0),
}
AGGREGATORS = [a.value for a in Aggregator]
AGGREGATOR_SHARE = [0.55, 0.2, 0.1, 0.05, 0.05, 0.05]


def performance_metric_events(rng: np.random.Generator, n: int, now_us: int) -> pa.Table:
    columns = envelope(rng, "performance_metric", n, now_us)
    metric = rng.integers(0, len(METRICS), n)
    units = [unit for unit, _ in METRICS.values()]
    typical = np.array([value for _, value in METRICS.values()])
    value = np.where(
        typical[metric] == 0.0, rng.beta(8, 2, n), typical[metric] * rng.lognormal(0, 0.6, n)
    )
    columns |= {
        "metric_type": pc.take(pa.array([m.value for m in METRICS]), pa.array(metric)),
        "feature": pick(rng, FEATURES, n, FEATURE_SHARE),
        "value": pa.array(np.round(value, 4)),
        "unit": pc.take(pa.array(units), pa.array(metric)),
        "aggregator": only_where(rng.random(n) < 0.6, pick(rng, AGGREGATORS, n, AGGREGATOR_SHARE)),
        "institution_id": only_where(
            rng.random(n) < 0.6, numbered("ins_", np.minimum(rng.zipf(1.8, n), 3_000))
        ),
    }
    return pa.table(columns)


ERROR_CODES = ["ITEM_LOGIN_REQUIRED", "INVALID_CREDENTIALS", "INVALID_MFA", "INSTITUTION_DOWN"]
ERROR_CODES += ["INSTITUTION_NOT_RESPONDING", "INTERNAL_SERVER_ERROR", "RATE_LIMIT_EXCEEDED"]
ERROR_CODES += ["PRODUCT_NOT_READY", "USER_SETUP_REQUIRED", "NO_ACCOUNTS"]


def connection_attempt_events(rng: np.random.Generator, n: int, now_us: int) -> pa.Table:
    columns = envelope(rng, "connection_attempt", n, now_us)
    outcome = rng.choice(4, n, p=[0.72, 0.14, 0.11, 0.03])
    is_outcome = {o: outcome == i for i, o in enumerate(Outcome)}
    started = columns["occurred_at"].cast(pa.int64()).to_numpy()
    # Abandoned attempts often end before the user submits credentials.
    submitted_present = ~(is_outcome[Outcome.ABANDONED] & (rng.random(n) < 0.6))
    submitted = started + rng.integers(5 * SECOND_US, 90 * SECOND_US, n)
    ended = np.where(submitted_present, submitted, started) + (
        rng.lognormal(np.log(3.5), 0.7, n) * SECOND_US
    ).astype(np.int64)
    institution = np.minimum(rng.zipf(1.8, n), 3_000)
    failed = is_outcome[Outcome.FAILURE]
    columns |= {
        "attempt_id": numbered("att_", rng.integers(1, 10**12, n)),
        "link_session_id": numbered("link-sess-", rng.integers(1, 10**12, n)),
        "aggregator": pick(rng, AGGREGATORS, n, AGGREGATOR_SHARE),
        "institution_id": numbered("ins_", institution),
        "institution_name": numbered("Community Bank ", institution),
        "feature": pick(rng, FEATURES[:2] + FEATURES[7:9], n, [0.6, 0.25, 0.1, 0.05]),
        "flow": pick(rng, [f.value for f in ConnectionFlow], n, [0.7, 0.25, 0.05]),
        "auth_method": pick(rng, [a.value for a in AuthMethod], n, [0.55, 0.4, 0.05]),
        "started_at": timestamps(started),
        "credentials_submitted_at": only_where(submitted_present, timestamps(submitted)),
        "ended_at": only_where(~is_outcome[Outcome.PENDING], timestamps(ended)),
        "outcome": pc.take(pa.array([o.value for o in Outcome]), pa.array(outcome)),
        "error_code": only_where(failed, pick(rng, ERROR_CODES, n)),
        "error_type": only_where(failed, pick(rng, ["ITEM_ERROR", "INSTITUTION_ERROR"], n)),
        "platform": pick(rng, [p.value for p in Platform], n, [0.45, 0.35, 0.18, 0.02]),
    }
    return pa.table(columns)


def mixed_events(n: int, now_us: int) -> pa.Table:
    """60 % behavior, 25 % performance_metric, 15 % connection_attempt, interleaved.

    Columns are the union of the types' fields; a field of another type is null.
    """
    rng = np.random.default_rng(SEED)
    n_metric, n_conn = n // 4, n * 15 // 100
    parts = [
        behavior_events(rng, n - n_metric - n_conn, now_us),
        performance_metric_events(rng, n_metric, now_us),
        connection_attempt_events(rng, n_conn, now_us),
    ]
    table = pa.concat_tables(parts, promote_options="default")
    return table.take(pa.array(rng.permutation(n)))


def write_json_lines(table: pa.Table, path: Path) -> None:
    """One JSON object per row, leaving out null fields, built column-wise.

    Generated strings hold no quotes, backslashes or control characters, so
    wrapping them in quotes is valid JSON; ``properties`` is already JSON text.
    """
    members = []
    for name in table.column_names:
        column = table[name]
        if pa.types.is_timestamp(column.type):
            text = pc.binary_join_element_wise(
                '"', pc.strftime(column, format="%Y-%m-%dT%H:%M:%SZ"), '"', ""
            )
        elif pa.types.is_string(column.type) and name != "properties":
            text = pc.binary_join_element_wise('"', column, '"', "")
        else:
            text = pc.cast(column, pa.string())  # numbers, booleans and raw JSON as they print
        members.append(pc.binary_join_element_wise(f'"{name}":', text, ""))
    body = pc.binary_join_element_wise(*members, ",", null_handling="skip")
    lines = pc.binary_join_element_wise("{", body, "}\n", "").cast(pa.large_string())
    lines = lines.combine_chunks()
    offsets = np.frombuffer(lines.buffers()[1], np.int64)[
        lines.offset : lines.offset + len(lines) + 1
    ]
    path.write_bytes(memoryview(lines.buffers()[2])[offsets[0] : offsets[-1]])


# -- 1. facade_threads -------------------------------------------------------------------------

THREADS = 8
WINDOW = 512
T = TypeVar("T")

NAIVE_DDL = """
CREATE TABLE behavior_events (
    event_id UUID NOT NULL,
    occurred_at TIMESTAMPTZ,
    received_at TIMESTAMPTZ NOT NULL,
    user_id VARCHAR,
    session_id VARCHAR,
    feature VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    duration_s DOUBLE,
    success BOOLEAN,
    device VARCHAR,
    platform VARCHAR
)
"""
NAIVE_INSERT = "INSERT INTO behavior_events VALUES (?, ?, now(), ?, ?, ?, ?, ?, ?, ?, ?)"
NAIVE_FIELDS = ("event_id", "occurred_at", "user_id", "session_id", "feature", "action")
NAIVE_FIELDS += ("duration_s", "success", "device", "platform")


def behavior_dicts(n: int) -> list[dict[str, object]]:
    """Behavior events as an app would pass them: plain values, ISO-8601 times."""
    rng = np.random.default_rng(SEED)
    table = behavior_events(rng, n, time.time_ns() // 1000).drop_columns(["properties"])
    iso = pc.strftime(table["occurred_at"], format="%Y-%m-%dT%H:%M:%SZ")
    events: list[dict[str, object]] = table.set_column(
        table.schema.get_field_index("occurred_at"), "occurred_at", iso
    ).to_pylist()
    return events


def expect_accepted(result: EventResult) -> None:
    if result.status is not EventStatus.ACCEPTED:
        raise BenchmarkError(f"event not accepted: {result}")


def in_threads(work: Callable[[list[T]], None], events: list[T]) -> float:
    """Seconds for ``THREADS`` threads to each run ``work`` on their share of ``events``."""
    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        for future in [pool.submit(work, events[i::THREADS]) for i in range(THREADS)]:
            future.result()
    return time.perf_counter() - started


def facade_run(events: list[dict[str, object]], blocking: bool) -> Callable[[Path], Sample]:
    def pipelined(analytics: BankingPerformanceAnalytics, share: list[dict[str, object]]) -> None:
        in_flight: deque[PendingEvent] = deque()
        for event in share:
            if len(in_flight) == WINDOW:
                expect_accepted(in_flight.popleft().result())
            in_flight.append(analytics.submit(event))
        for pending in in_flight:
            expect_accepted(pending.result())

    def one_by_one(analytics: BankingPerformanceAnalytics, share: list[dict[str, object]]) -> None:
        for event in share:
            fields = {k: v for k, v in event.items() if k != "event_type"}
            analytics.record_user_behavior(**fields)

    def once(run_dir: Path) -> Sample:
        work = one_by_one if blocking else pipelined
        with BankingPerformanceAnalytics.open(f"duckdb:///{run_dir}/x.duckdb") as analytics:
            seconds = in_threads(lambda share: work(analytics, share), events)
        return Sample(seconds, len(events))

    return once


def naive_run(events: list[dict[str, object]]) -> Callable[[Path], Sample]:
    rows = [tuple(event[k] for k in NAIVE_FIELDS) for event in events]

    def once(run_dir: Path) -> Sample:
        con = duckdb.connect(str(run_dir / "x.duckdb"))
        con.execute(NAIVE_DDL)
        lock = threading.Lock()

        def insert(share: list[tuple[object, ...]]) -> None:
            for row in share:
                with lock:
                    con.execute(NAIVE_INSERT, row)

        try:
            return Sample(in_threads(insert, rows), len(rows))
        finally:
            con.close()

    return once


def facade_threads(ctx: Context) -> tuple[list[Measurement], list[str]]:
    n_pipelined = 40_000 if ctx.quick else 200_000
    n_blocking = THREADS * (300 if ctx.quick else 1_500)
    n_naive = THREADS * (250 if ctx.quick else 1_000)
    ctx.reporter.start("facade_threads", 1 + 3 * RUNS)
    events = behavior_dicts(n_pipelined)
    # A real producer builds each event as it goes; 200k pre-built dicts kept alive
    # would make every full GC pass rescan them and blur the figure. Freeze them.
    gc.freeze()
    ctx.reporter.step(f"generated {len(events):,} behavior events")
    pipelined = Measurement(
        f"pipelined group commit: `submit()`, window {WINDOW}/thread",
        repeat(ctx, "pipelined", facade_run(events, blocking=False)),
        min_rate=20_000,
    )
    blocking = Measurement(
        "blocking group commit: `record_user_behavior()`",
        repeat(ctx, "blocking", facade_run(events[:n_blocking], blocking=True)),
    )
    naive = Measurement(
        "baseline: naive autocommitted INSERT per event, shared connection",
        repeat(ctx, "naive", naive_run(events[:n_naive])),
    )
    notes = [
        f"{THREADS} threads; every event is acknowledged only after its durable commit.",
        "The pre-generated input events are moved out of the GC's view (`gc.freeze()`), "
        "as a producer building events on the fly would not keep them alive.",
        f"Pipelined / naive: **{pipelined.rate / naive.rate:,.1f}x**; "
        f"blocking / naive: **{blocking.rate / naive.rate:,.1f}x**.",
    ]
    return [pipelined, blocking, naive], notes


# -- 2. ingest_files ---------------------------------------------------------------------------

#: The baseline: DuckDB loading the same file with no validation at all.
BARE_DUCKDB = """
import sys, duckdb
path, db, reader = sys.argv[1:]
con = duckdb.connect(db)
con.execute("SET enable_progress_bar = false")
con.execute(f"CREATE TABLE events AS SELECT * FROM {reader}('{path}')")
print(con.execute("SELECT count(*) FROM events").fetchone()[0])
con.close()
"""


def cli_ingest_run(path: Path, n: int) -> Callable[[Path], Sample]:
    def once(run_dir: Path) -> Sample:
        cmd = [CLI, "ingest", str(path), "--db", f"duckdb:///{run_dir}/x.duckdb"]
        seconds, rss, stdout = run_command(cmd, run_dir)
        accepted = parse_count(r"([\d,]+)\s+accepted", stdout)
        if accepted != n:
            raise BenchmarkError(f"{accepted:,} of {n:,} events accepted: {stdout.strip()}")
        return Sample(seconds, n, rss)

    return once


def bare_duckdb_run(path: Path, n: int, reader: str) -> Callable[[Path], Sample]:
    def once(run_dir: Path) -> Sample:
        cmd = [sys.executable, "-c", BARE_DUCKDB, str(path), str(run_dir / "x.duckdb"), reader]
        seconds, rss, stdout = run_command(cmd, run_dir)
        if int(stdout.strip()) != n:
            raise BenchmarkError(f"{reader} loaded {stdout.strip()} rows, not {n:,}")
        return Sample(seconds, n, rss)

    return once


def ingest_files(ctx: Context) -> tuple[list[Measurement], list[str]]:
    n = 100_000 if ctx.quick else 1_000_000
    ctx.reporter.start("ingest_files", 1 + 4 * RUNS)
    table = mixed_events(n, time.time_ns() // 1000)
    jsonl, parquet = ctx.tmp / "events.jsonl", ctx.tmp / "events.parquet"
    write_json_lines(table, jsonl)
    pq.write_table(table, parquet)
    mib = 1024 * 1024
    ctx.reporter.step(
        f"wrote {n:,} events: {jsonl.stat().st_size / mib:,.0f} MiB JSON Lines, "
        f"{parquet.stat().st_size / mib:,.0f} MiB Parquet"
    )
    cli_jsonl = Measurement(
        "`banking-analytics ingest` JSON Lines",
        repeat(ctx, "ingest jsonl", cli_ingest_run(jsonl, n)),
        min_rate=200_000,
    )
    bare_jsonl = Measurement(
        "baseline: bare DuckDB `read_json` → `CREATE TABLE AS`",
        repeat(ctx, "bare read_json", bare_duckdb_run(jsonl, n, "read_json")),
    )
    cli_parquet = Measurement(
        "`banking-analytics ingest` Parquet",
        repeat(ctx, "ingest parquet", cli_ingest_run(parquet, n)),
        min_rate=1_000_000,
    )
    bare_parquet = Measurement(
        "baseline: bare DuckDB `read_parquet` → `CREATE TABLE AS`",
        repeat(ctx, "bare read_parquet", bare_duckdb_run(parquet, n, "read_parquet")),
    )
    counts = pc.value_counts(table["event_type"]).to_pylist()
    mix = ", ".join(f"{c['counts']:,} {c['values']}" for c in counts)
    notes = [
        f"Files: {mix}; {jsonl.stat().st_size / mib:,.0f} MiB JSON Lines, "
        f"{parquet.stat().st_size / mib:,.0f} MiB Parquet. Every event is accepted.",
        "Both sides are whole processes (interpreter start-up included) writing a fresh file.",
        f"Cost of parsing + validation + dedup, as time relative to bare DuckDB: JSON Lines "
        f"**{cli_jsonl.seconds / bare_jsonl.seconds:,.1f}x**, Parquet "
        f"**{cli_parquet.seconds / bare_parquet.seconds:,.1f}x**.",
    ]
    return [cli_jsonl, bare_jsonl, cli_parquet, bare_parquet], notes


# -- 3. simulator ------------------------------------------------------------------------------


def simulate_run(users: int) -> Callable[[Path], Sample]:
    def once(run_dir: Path) -> Sample:
        cmd = [CLI, "simulate", "--users", str(users), "--days", "90", "--end", END.isoformat()]
        cmd += ["--db", f"duckdb:///{run_dir}/x.duckdb"]
        seconds, rss, stdout = run_command(cmd, run_dir)
        return Sample(seconds, parse_count(r"stored\s+([\d,]+)\s+events", stdout), rss)

    return once


def simulated_events(ctx: Context, users: int) -> int:
    """Events a world of ``users`` holds (an untimed probe run)."""
    probe_dir = Path(tempfile.mkdtemp(prefix="probe-", dir=ctx.tmp))
    try:
        return simulate_run(users)(probe_dir).events
    finally:
        shutil.rmtree(probe_dir)


def simulator(ctx: Context) -> tuple[list[Measurement], list[str]]:
    target_events = 1_000_000 if ctx.quick else 10_000_000
    small = 200 if ctx.quick else 1_000
    ctx.reporter.start("simulator", 2 + RUNS)

    # Events per user shrink as the world grows, and most in small worlds: a small probe
    # says roughly how many users make the target, and one a quarter that size refines it.
    def probe(users: int) -> tuple[int, int]:
        events = simulated_events(ctx, users)
        ctx.reporter.step(f"calibration: {users:,} users → {events:,} events")
        return users, events

    first = probe(small)
    probes = [first, probe(round(target_events * first[0] / first[1] / 4))]
    users = max(100, int(round(target_events * probes[1][0] / probes[1][1], -2)))
    ctx.reporter.log(f"using --users {users:,} for ~{target_events:,} events")
    samples = repeat(ctx, "simulate", simulate_run(users), budget_s=None if ctx.quick else 300)
    measurement = Measurement(
        f"`banking-analytics simulate --users {users:,} --days 90`",
        samples,
        max_seconds=None if ctx.quick else 60,
    )
    calibration = ", ".join(f"{u:,} users → {e:,}" for u, e in probes)
    notes = [
        f"`--users {users:,}` gave {measurement.events:,} events (calibrated on {calibration} "
        "events).",
        f"Median rate {measurement.rate:,.0f} events/s; no baseline (nothing else generates "
        f"this world).",
    ]
    if len(samples) < RUNS:
        notes.append(f"Only {len(samples)} runs: each took too long for the 5-minute budget.")
    if len({s.events for s in samples}) > 1:
        counts = ", ".join(f"{s.events:,}" for s in samples)
        notes.append(
            f"The runs stored different numbers of events ({counts}) although the seed is "
            "fixed: the simulator changed during the run or is not deterministic."
        )
    return [measurement], notes


# -- 4. dashboard queries ----------------------------------------------------------------------

#: Users that make a ~10M-event 90-day world (see the simulator benchmark's calibration).
DASHBOARD_USERS = 68_700
#: Runs of each side of the speed-up over pandas: pandas' time varies most from run to run.
DASHBOARD_RUNS = 5
POSTGRES_URL = os.environ.get("BA_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def simulate_store(ctx: Context, url: str, users: int) -> int:
    """Simulate a 90-day world ending at ``END`` into ``url``; its event count."""
    cmd = [CLI, "simulate", "--users", str(users), "--days", "90", "--end", END.isoformat()]
    seconds, _, stdout = run_command([*cmd, "--db", url], ctx.tmp)
    events = parse_count(r"stored\s+([\d,]+)\s+events", stdout)
    ctx.reporter.step(f"simulated {events:,} events into {url.split('?')[0]} in {seconds:.0f} s")
    return events


@dataclass
class DashboardRun:
    """One cold process computing the dashboard per call; keeps what each printed."""

    url: str
    variant: str
    events: int
    now: datetime
    answers: list[dict[str, Any]] = field(default_factory=list)
    #: The code that computes it: this checkout, or an earlier commit's tree.
    code: Path = ROOT

    def __call__(self, run_dir: Path) -> Sample:
        cmd = [sys.executable, "-m", "benchmarks.dashboard", self.url, self.variant]
        _, rss, stdout = run_command([*cmd, "--now", self.now.isoformat()], run_dir, self.code)
        answer = json.loads(stdout.strip().splitlines()[-1])
        if self.variant == "warm" and not (
            answer["same_while_unchanged"] and answer["changed_by_new_event"]
        ):
            raise BenchmarkError(f"the result cache misbehaved: {answer}")
        self.answers.append(answer)
        return Sample(answer["seconds"], self.events, rss)


def dashboard(ctx: Context) -> tuple[list[Measurement], list[str]]:
    users = DASHBOARD_USERS // 10 if ctx.quick else DASHBOARD_USERS
    ctx.reporter.start("dashboard", 3 + 4 * DASHBOARD_RUNS + 3 * RUNS)
    url = f"duckdb:///{ctx.tmp}/dashboard.duckdb"
    events = simulate_store(ctx, url, users)
    engine_run = DashboardRun(url, "engine", events, END)
    # The code before this change runs alternately with this one, on the same store, so
    # the machine's drift touches both alike.
    before_run: DashboardRun | None = None
    notes_before: list[str] = []
    try:
        before_run = DashboardRun(url, "engine", events, END, code=export_commit(ctx, BASELINE))
    except BenchmarkError as exc:
        notes_before.append(f"The code before this change was not measured: {exc}")
    engine_samples: list[Sample] = []
    before_samples: list[Sample] = []
    for _ in range(DASHBOARD_RUNS):
        engine_samples += repeat(ctx, "dashboard duckdb", engine_run, runs=1)
        if before_run is not None:
            before_samples += repeat(ctx, f"dashboard at {BASELINE}", before_run, runs=1)
    engine = Measurement(
        "metric layer on DuckDB, cold process",
        tuple(engine_samples),
        max_seconds=None if ctx.quick else 1.0,
    )
    loaded_run = DashboardRun(url, "engine-loaded", events, END)
    loaded = Measurement(
        "metric layer on DuckDB, store loaded (blocks in its buffer pool), empty result cache",
        repeat(ctx, "dashboard duckdb loaded", loaded_run, runs=DASHBOARD_RUNS),
    )
    full = Measurement(
        "the whole `performance_dashboard()` (sync freshness too), DuckDB, cold process",
        repeat(ctx, "full dashboard duckdb", DashboardRun(url, "engine-full", events, END)),
    )
    pandas_run = DashboardRun(url, "pandas", events, END)
    pandas = Measurement(
        "baseline: the same computations in pandas (tables already in memory)",
        repeat(ctx, "dashboard pandas", pandas_run, runs=DASHBOARD_RUNS),
    )
    pandas_with_load = Measurement(
        "baseline: pandas, including reading the events from the store",
        tuple(
            Sample(s.seconds + float(a["load_seconds"]), s.events, s.peak_rss_mb)
            for s, a in zip(pandas.samples, pandas_run.answers, strict=True)
        ),
    )
    measurements_before: list[Measurement] = []
    if before_run is not None:
        before = Measurement(
            f"the same, with the code of {BASELINE} (before the query layer), cold process",
            tuple(before_samples),
        )
        measurements_before.append(before)
        for key in ("success_rate", "p95_ms", "institutions", "health_entries"):
            if before_run.answers[0][key] != engine_run.answers[0][key]:
                raise BenchmarkError(f"{key}: {BASELINE} gives another answer")
        notes_before.append(
            f"Against the code of {BASELINE}, each run alternating with this code's on the "
            f"same store: {engine.seconds / before.seconds:.2f}x its time (same answers, "
            "checked)."
        )
    theirs = pandas_run.answers[0]
    for mine in (engine_run.answers[0], loaded_run.answers[0]):
        for key in ("success_rate", "p95_ms", "institutions", "health_entries"):
            if mine[key] != theirs[key]:
                raise BenchmarkError(f"{key}: the engine says {mine[key]}, pandas {theirs[key]}")
    from_store = pandas_with_load.seconds / engine.seconds
    in_memory = pandas.seconds / loaded.seconds
    mixed = pandas.seconds / engine.seconds
    met = "met" if min(from_store, in_memory) >= 10 else "**not met**"
    notes = [
        f"{events:,} events over 90 days (`simulate --users {users:,}`). The measured set is "
        "the issue's: `performance_dashboard('90d', parts=[connection, hourly, errors, "
        "institution_health])`: success rate with breakdown and exclusions, latency "
        "mean/p50/p95/p99 (all and success-only), link conversion, the same cut by aggregator, "
        "institution and feature, a daily and an hourly series, error rates by category for "
        "connections and syncs, institution health (7 days at 15-minute steps); its parts run "
        "concurrently. The whole dashboard adds sync freshness per connection.",
        "Speed-up over pandas (target ≥ 10x), like for like: both starting from the store "
        f"(the engine cold; pandas reads its two tables, then computes): **{from_store:,.1f}x**; "
        "both with the data already in memory (DuckDB's buffer pool holding the blocks, "
        "pandas holding its DataFrames), every figure computed afresh: "
        f"**{in_memory:,.1f}x**; target {met}. Mixed, the cold engine against pandas with "
        f"its tables already in memory: {mixed:,.1f}x.",
        "Both sides give the same success rate, p95 latency, institution count and health "
        "entries (checked in each run).",
        "Cold: a fresh process opens the store and computes with an empty result cache; the "
        "store file is in the operating system's page cache (it was just written). Imports, "
        "and a full garbage collection of the objects they made, happen before the clock "
        "starts, on both sides (the collector stays on while it runs).",
        "Loaded: in a fresh process the set is computed once, untimed, through one handle "
        "on the store, then timed through a second handle, which shares the open database "
        "(its buffer pool) but not the result cache: every statement runs again, as every "
        "pandas computation does on its loaded DataFrames.",
    ]
    notes += notes_before
    measurements = [engine, *measurements_before, loaded, pandas, pandas_with_load, full]
    try:
        measurements.append(postgres_dashboard(ctx, users // 10))
    except BenchmarkError as exc:
        notes.append(f"PostgreSQL not measured: {exc}")
    demo_url = f"duckdb:///{ctx.tmp}/demo.duckdb"
    demo_events = simulate_store(ctx, demo_url, 20_000)
    warm = Measurement(
        "`analyze_connection_performance('24h')` warm (cached), demo store",
        repeat(ctx, "warm 24h", DashboardRun(demo_url, "warm", demo_events, END)),
        max_seconds=0.1,
    )
    measurements.append(warm)
    notes.append(
        "Warm: the median of 20 repeated calls after a first one in the same process; then "
        "one new connection attempt is recorded and the next call counts it (checked)."
    )
    return measurements, notes


#: The commit whose code the dashboard is compared with: the last before the query layer
#: (issue 12). ``BA_BENCH_BASELINE`` names another.
BASELINE = os.environ.get("BA_BENCH_BASELINE", "e70b320")


def export_commit(ctx: Context, revision: str) -> Path:
    """A commit's tree, as ``git archive`` gives it, in the run's scratch directory."""
    tree = ctx.tmp / f"code-{revision}"
    if not tree.exists():
        tree.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", revision],
            capture_output=True,
            check=False,
        )
        if archive.returncode != 0:
            raise BenchmarkError(f"git archive {revision}: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


@contextmanager
def postgres_scratch(prefix: str) -> Iterator[str]:
    """The URL of a fresh schema of the PostgreSQL server, dropped afterwards."""
    try:
        import psycopg
    except ImportError as exc:
        raise BenchmarkError("psycopg is not installed") from exc
    schema = f"{prefix}_{os.getpid()}"
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=5, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    except psycopg.Error as exc:
        raise BenchmarkError(f"no server at {POSTGRES_URL}: {exc}") from exc
    try:
        yield f"{POSTGRES_URL}?schema={schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def postgres_dashboard(ctx: Context, users: int) -> Measurement:
    """The dashboard over ~1M events in a scratch schema of the PostgreSQL server."""
    with postgres_scratch("ba_bench") as url:
        events = simulate_store(ctx, url, users)
        return Measurement(
            f"metric layer on PostgreSQL, {events:,} events (no target yet)",
            repeat(ctx, "dashboard postgres", DashboardRun(url, "engine", events, END)),
        )


# -- 5. the REST API ---------------------------------------------------------------------------


def http_api(ctx: Context) -> tuple[list[Measurement], list[str]]:
    """See :mod:`benchmarks.http` (imported here: it builds on this module)."""
    from benchmarks.http import http_api as run_http

    return run_http(ctx)


def notify(ctx: Context) -> tuple[list[Measurement], list[str]]:
    """See :mod:`benchmarks.notify` (imported here: it builds on this module)."""
    from benchmarks.notify import notify as run_notify

    return run_notify(ctx)


def web(ctx: Context) -> tuple[list[Measurement], list[str]]:
    """See :mod:`benchmarks.web` (imported here: it builds on this module)."""
    from benchmarks.web import web as run_web

    return run_web(ctx)


def revenue_impact(ctx: Context) -> tuple[list[Measurement], list[str]]:
    """See :mod:`benchmarks.revenue_impact` (imported here: it builds on this module)."""
    from benchmarks.revenue_impact import revenue_impact as run_revenue_impact

    return run_revenue_impact(ctx)


def engagement(ctx: Context) -> tuple[list[Measurement], list[str]]:
    """See :mod:`benchmarks.engagement` (imported here: it builds on this module)."""
    from benchmarks.engagement import engagement as run_engagement

    return run_engagement(ctx)


def monitor(ctx: Context) -> tuple[list[Measurement], list[str]]:
    """See :mod:`benchmarks.monitor` (imported here: it builds on this module)."""
    from benchmarks.monitor import monitor as run_monitor

    return run_monitor(ctx)


def behavior(ctx: Context) -> tuple[list[Measurement], list[str]]:
    """See :mod:`benchmarks.behavior` (imported here: it builds on this module)."""
    from benchmarks.behavior import behavior as run_behavior

    return run_behavior(ctx)


def behavior_flows(ctx: Context) -> tuple[list[Measurement], list[str]]:
    """See :mod:`benchmarks.behavior_flows` (imported here: it builds on this module)."""
    from benchmarks.behavior_flows import behavior_flows as run_behavior_flows

    return run_behavior_flows(ctx)


def revenue(ctx: Context) -> tuple[list[Measurement], list[str]]:
    """See :mod:`benchmarks.revenue` (imported here: it builds on this module)."""
    from benchmarks.revenue import revenue as run_revenue

    return run_revenue(ctx)


# -- 6. the cache check on PostgreSQL ----------------------------------------------------------

#: Calls timed in each run of each variant of the cache check; a run's figure is their median.
CACHE_CHECK_CALLS = 50


class RowCountVersions(MetricService):
    """The cache check before data versions, as the baseline: a table's version was its row
    count, all of them counted in one statement (``SELECT (SELECT count(*) FROM t) AS t, ...``).
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._counted = engine

    def versions(self, tables: Iterable[str] | None = None) -> dict[str, int]:
        chosen = list(EVENT_TABLES) if tables is None else list(dict.fromkeys(tables))
        counts = sqlglot.select(
            *(
                sqlglot.select(exp.Count(this=exp.Star())).from_(name).subquery().as_(name)
                for name in chosen
            )
        )
        row = self._counted.query(counts.sql(self._counted.dialect)).to_pylist()[0]
        return {name: int(row[name]) for name in chosen}


def timed_calls(call: Callable[[], object], n: int) -> list[float]:
    """Seconds of each of ``n`` calls."""
    seconds = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return seconds


def cached_answers(service: MetricService, check_all: bool) -> Callable[[], dict[str, Any]]:
    """A call of ``analyze_connection_performance('24h')`` answered from the cache (its
    statements are run once now, untimed). ``check_all``: as the dashboard calls it, with
    one reading of every event table's version; else it checks its own table's."""
    performance = PerformanceAnalytics(service)

    def call() -> dict[str, Any]:
        versions = service.versions() if check_all else None
        return performance.analyze_connection_performance("24h", now=END, versions=versions)

    call()
    return call


def cache_check(ctx: Context) -> tuple[list[Measurement], list[str]]:
    """The data version read against the row counts it replaced, on a PostgreSQL store."""
    users = DASHBOARD_USERS // (100 if ctx.quick else 10)
    ctx.reporter.start("cache_check", 1 + RUNS)
    attempts = SCHEMAS[EventType.CONNECTION_ATTEMPT].table
    with postgres_scratch("ba_bench_versions") as url:
        events = simulate_store(ctx, url, users)
        with open_engine(url) as engine:
            # The baseline at its best: a vacuumed table lets count(*) read an index alone.
            for table in EVENT_TABLES:
                engine.query(f"VACUUM (ANALYZE) {table}")
            # (baseline, ours): the row counts against the data versions, side by side.
            checks = (RowCountVersions(engine), MetricService(engine))
            attempt_rows = checks[0].versions([attempts])[attempts]
            pairs: dict[str, tuple[Callable[[], object], ...]] = {
                "check": tuple(c.versions for c in checks),
                "own": tuple(cached_answers(c, check_all=False) for c in checks),
                "dashboard": tuple(cached_answers(c, check_all=True) for c in checks),
            }
            for name in ("own", "dashboard"):
                baseline, ours = pairs[name]
                if baseline() != ours():
                    raise BenchmarkError(f"{name}: the two cache checks gave different answers")
            runs: dict[tuple[str, int], list[list[float]]] = {
                (name, side): [] for name in pairs for side in (0, 1)
            }
            for i in range(RUNS):  # the variants take turns, so each run sees the same load
                for (name, side), timed in runs.items():
                    timed.append(timed_calls(pairs[name][side], CACHE_CHECK_CALLS))
                ctx.reporter.step(
                    f"cache check run {i + 1}/{RUNS}: "
                    + ", ".join(
                        f"{name} {'ours' if side else 'baseline'} "
                        f"{statistics.median(r[-1]) * 1000:.2f} ms"
                        for (name, side), r in runs.items()
                    )
                )

    def measured(variant: str, name: str, side: int) -> Measurement:
        pooled = np.concatenate(runs[name, side])
        return Measurement(
            variant,
            tuple(Sample(statistics.median(run), events) for run in runs[name, side]),
            latency_ms=(
                float(np.percentile(pooled, 50, method="inverted_cdf")) * 1000,
                float(np.percentile(pooled, 99, method="inverted_cdf")) * 1000,
            ),
            show_rate=False,
        )

    tables = f"the {len(EVENT_TABLES)} event tables"
    cached = "`analyze_connection_performance('24h')` cached"
    measurements = [
        measured(f"baseline: the row counts of {tables}", "check", 0),
        measured(f"the data versions of {tables}", "check", 1),
        measured(f"baseline: {cached}, checked by its table's row count", "own", 0),
        measured(f"{cached}, checked by its table's data version", "own", 1),
        measured(f"baseline: {cached} as the dashboard asks it, by row counts", "dashboard", 0),
        measured(f"{cached} as the dashboard asks it, by data versions", "dashboard", 1),
    ]
    speedups = [
        measurements[i].seconds / measurements[i + 1].seconds
        for i in range(0, len(measurements), 2)
    ]
    notes = [
        f"{events:,} events on PostgreSQL ({attempt_rows:,} connection attempts; "
        f"`simulate --users {users:,} --days 90` into a scratch schema, then `VACUUM (ANALYZE)` "
        "of each event table, so that a row count may read an index alone). Before data "
        "versions, the cache check counted the rows of the tables a query reads, in one "
        "statement (the baseline runs that statement); now it reads their versions from "
        "`data_versions` by primary key.",
        f"Each run times {CACHE_CHECK_CALLS} calls of each variant, the variants taking turns; "
        "the runs column lists each run's median, p50/p99 pool every call. A cached answer is "
        "computed once first (untimed, both sides equal), so each timed call checks versions "
        "and reads the cache: on its own the analysis checks `connection_attempt_events`; "
        "the dashboard checks every event table once for all its parts.",
        f"Speed-up of the data versions: the check of {tables} **{speedups[0]:,.0f}x**; the "
        f"cached analysis **{speedups[1]:,.1f}x** on its own and **{speedups[2]:,.0f}x** as "
        "the dashboard asks it.",
    ]
    return measurements, notes


def http_health(ctx: Context) -> tuple[list[Measurement], list[str]]:
    """See :func:`benchmarks.http.health_under_load`."""
    from benchmarks.http import health_under_load

    return health_under_load(ctx)


def stream(ctx: Context) -> tuple[list[Measurement], list[str]]:
    """See :mod:`benchmarks.stream`."""
    from benchmarks.stream import stream_delivery

    return stream_delivery(ctx)


# -- the suite ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Benchmark:
    name: str
    what: str
    run: Callable[[Context], tuple[list[Measurement], list[str]]]


BENCHMARKS = {
    b.name: b
    for b in (
        Benchmark(
            "facade_threads",
            "Durable single-event recording through the library facade from 8 threads, "
            "against one autocommitted INSERT per event.",
            facade_threads,
        ),
        Benchmark(
            "ingest_files",
            "End-to-end file loading with the CLI (parse, validate, dedup, write) against "
            "DuckDB loading the same file unvalidated.",
            ingest_files,
        ),
        Benchmark(
            "dashboard",
            "The queries behind the performance dashboard over ~10M simulated events on "
            "DuckDB, against the same computations in pandas; over ~1M events on PostgreSQL; "
            "and a warm, cached answer on the demo store.",
            dashboard,
        ),
        Benchmark(
            "web",
            "The web app's performance dashboard in Debian's Chromium on the demo store, cold "
            "server: page, first paint, figures drawn, and the data endpoint it polls, beside "
            "the API's dashboard endpoint.",
            web,
        ),
        Benchmark(
            "engagement",
            "DAU, WAU, MAU and DAU/MAU at each of 90 days over the ~10M-event world: the metric "
            "layer against hand-written DuckDB SQL and polars (lazy, events in memory).",
            engagement,
        ),
        Benchmark(
            "monitor",
            "One evaluation cycle of 200 alert rules (about 2,000 instances) over the ~10M-event "
            "world on DuckDB: the evaluator with the metric cache, cold, against each rule's "
            "query run uncached one by one.",
            monitor,
        ),
        Benchmark(
            "behavior",
            "Behaviour insights over the ~10M behaviour events of a simulated 100k-user, "
            "90-day world on DuckDB, each against hand-written DuckDB SQL and polars (lazy, "
            "events in memory), answers checked equal, peak memory added; and over a 10k-user "
            "world (~1M events) on PostgreSQL.",
            behavior,
        ),
        Benchmark(
            "revenue",
            "The monthly MRR series with its movements over 24 months of a 200k-customer, "
            "~3M-event subscription world: the revenue ledger against hand-written DuckDB SQL "
            "and polars (lazy, events in memory); and on PostgreSQL over a tenth of it.",
            revenue,
        ),
        Benchmark(
            "behavior_flows",
            "A 4-step ordered funnel with a breakdown and a 12-week retention grid over the "
            "~10M behaviour events of a simulated 100k-user, 90-day world: ours against "
            "hand-written DuckDB SQL and polars (lazy, events in memory); and ours on "
            "PostgreSQL over a 10k-user world (~1M events).",
            behavior_flows,
        ),
        Benchmark(
            "revenue_impact",
            "The upgrade model (the causal effect of each banking feature on converting to a "
            "paid plan) over a 100,000-user, 90-day simulated world: time and peak memory, and "
            "its 95% intervals against the planted effects.",
            revenue_impact,
        ),
        Benchmark(
            "simulator",
            "Generating and storing a ~10M-event, 90-day simulated world with the CLI, "
            "wall time and peak memory.",
            simulator,
        ),
        Benchmark(
            "cache_check",
            "The check that a cached answer is still current, on a ~1M-event PostgreSQL "
            "store: reading the data versions against counting the rows (what it replaced), "
            "alone and inside a cached `analyze_connection_performance`.",
            cache_check,
        ),
        Benchmark(
            "http",
            "The REST API (`banking-analytics serve`, a subprocess) under load from this "
            "process over loopback: batch ingestion, single events at 50 connections, the "
            "performance dashboard cold and warm, each beside the library facade doing the "
            "same in-process; and a SIGKILL durability run over HTTP.",
            http_api,
        ),
        Benchmark(
            "notify",
            "End to end on a running server (`banking-analytics serve`): from POSTing an "
            "outage's first failing events to a loopback webhook receiver holding the signed "
            "firing notification, against evaluation interval + `for` + 2 s.",
            notify,
        ),
        Benchmark(
            "http_health",
            "`/healthz` (liveness) while 200 clients load the server over loopback: analysts' "
            "queries, ingestion and failed authentications at once; every answer's status "
            "and the server's peak memory.",
            http_health,
        ),
        Benchmark(
            "stream",
            "The event stream (`GET /stream`, Server-Sent Events) with 100 clients on loopback: "
            "how long each alert transition, recorded by another process on PostgreSQL, takes "
            "to reach every client; the server's memory.",
            stream,
        ),
    )
}


@dataclass(slots=True)
class BenchmarkResult:
    benchmark: Benchmark
    measurements: list[Measurement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    return model[1].strip() if model else platform.processor() or "unknown CPU"


#: An event the store derives nothing from: the baseline of a one-event ingest.
PERFORMANCE_METRIC_EVENT: dict[str, object] = {
    "event_type": "performance_metric",
    "user_id": "u1",
    "metric_type": "connection_success_rate",
    "feature": "account_linking",
    "value": 0.95,
}


def derived_again(
    analytics: BankingPerformanceAnalytics, table: str, events: int
) -> Callable[[Path], Sample]:
    """A run deriving the store's ``table`` again from its whole source of ``events``
    events: a migration's work."""

    def once(_: Path) -> Sample:
        started = time.perf_counter()
        with analytics.engine.begin() as tx:
            tx.derive_created([table])
        return Sample(time.perf_counter() - started, events)

    return once


def one_event_ingest(
    analytics: BankingPerformanceAnalytics, event: dict[str, object], at: datetime
) -> Sample:
    """The time of ingesting ``event`` alone (a new id, occurred ``at``), accepted."""
    fresh = event | {"event_id": str(uuid.uuid4()), "occurred_at": at.isoformat()}
    started = time.perf_counter()
    [result] = analytics.ingest([fresh])
    seconds = time.perf_counter() - started
    if result.status is not EventStatus.ACCEPTED:
        raise BenchmarkError(f"a one-event ingest was {result.status}: {result}")
    return Sample(seconds, 1)


def machine() -> str:
    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.MULTILINE)
    ram = f"{int(mem_kb[1]) / 1024**2:,.1f} GiB RAM" if mem_kb else "RAM unknown"
    return f"{cpu_model()}, {os.cpu_count()} cores (logical), {ram}; {platform.platform()}"


def git_revision() -> str:
    """The commit measured; others edit the tree concurrently, so say if it differs."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    suffix = " plus uncommitted changes" if dirty.stdout.strip() else ""
    return f"git {head.stdout.decode().strip()}{suffix}"


def command(argv: Sequence[str]) -> str:
    python = os.path.relpath(sys.executable, ROOT)
    text = f"`{shlex.join([python, '-m', 'benchmarks.run', *argv])}` (in {ROOT})"
    return text + (", run by `make bench`" if "MAKELEVEL" in os.environ else "")


def markdown_table(measurements: Sequence[Measurement]) -> list[str]:
    with_rss = any(m.peak_rss_mb is not None for m in measurements)
    with_latency = any(m.latency_ms is not None for m in measurements)
    # Sub-second figures (request latencies) need more digits than whole runs do.
    digits = 3 if any(m.seconds < 0.1 for m in measurements) else 2
    header = ["variant", "events", "median s", "median events/s", "runs (s each)", "target"]
    header += ["met?", *(["p50 ms", "p99 ms"] if with_latency else [])]
    header += ["peak RSS (MB)"] if with_rss else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in measurements:
        runs = f"{len(m.samples)}: " + ", ".join(f"{s.seconds:.{digits}f}" for s in m.samples)
        rate = f"{m.rate:,.0f}" if m.show_rate else "—"
        cells = [m.variant, f"{m.events:,}", f"{m.seconds:.{digits}f}", rate, runs]
        cells += [m.target, m.met]
        if with_latency:
            p50, p99 = m.latency_ms or (None, None)
            cells += [f"{p50:,.1f}" if p50 is not None else "—"]
            cells += [f"{p99:,.1f}" if p99 is not None else "—"]
        if with_rss:
            cells.append(f"{m.peak_rss_mb:,.0f}" if m.peak_rss_mb is not None else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def report(
    outcomes: Sequence[BenchmarkResult],
    argv: Sequence[str],
    quick: bool,
    started: datetime,
    wall: float,
    load: float,
    kept: Mapping[str, str] | None = None,
) -> str:
    """The results file: a header, then a section per benchmark in the order they are
    listed. ``kept`` holds the text of sections this run did not measure (``--only``),
    from the file as it was: each section says when and how it was measured."""
    title = "# Benchmark results" + (
        " — QUICK RUN (small sizes, smoke check only)" if quick else ""
    )
    partial = kept is not None
    lines = [
        title,
        "",
        "The latest run of `python -m benchmarks.run` (`make bench`); a run of some "
        "benchmarks (`--only`) replaces their sections and keeps the others, each section "
        "saying when it was measured.",
        "",
        # Sections kept from earlier runs may have run on another machine: each names its CPU.
        f"- Machine of the latest run: {machine()}",
        f"- Versions: python {platform.python_version()}, duckdb {duckdb.__version__}, "
        f"pyarrow {pa.__version__}, numpy {np.__version__}",
        f"- Figures: the median of {RUNS} runs per variant ({DASHBOARD_RUNS} for the dashboard's "
        "engine and pandas sides; per-run seconds listed), each run "
        f"into a fresh DuckDB file in a temporary directory; events/s is the median of the "
        f"runs' rates.",
    ]
    if not partial:
        lines.append(f"- Whole run: {wall / 60:.1f} min")
    measured = (
        f"_Measured {started:%Y-%m-%d %H:%M} UTC on {cpu_model()} at banking-analytics "
        f"{version('banking-analytics')} ({git_revision()}), load average (1 min) at the "
        f"start {load:.2f}; command: {command(argv)}._"
    )
    sections = dict(kept or {})
    for o in outcomes:
        body = ["", f"## {o.benchmark.name}", "", o.benchmark.what, "", measured, ""]
        if o.error is not None:
            body.append(f"**Failed:** {o.error}")
        else:
            body += markdown_table(o.measurements)
            body += ["", *(f"- {note}" for note in o.notes)]
        sections[o.benchmark.name] = "\n".join(body)
    for name in BENCHMARKS:
        if name in sections:
            lines.append(sections[name].rstrip("\n"))
    return "\n".join(lines) + "\n"


def kept_sections(text: str) -> dict[str, str]:
    """The sections of a results file, by benchmark name (each from its blank line before
    ``## name`` to the next section)."""
    parts = re.split(r"\n(?=\n## )", text)
    found: dict[str, str] = {}
    for part in parts[1:]:
        name = part.lstrip("\n").splitlines()[0].removeprefix("## ").strip()
        found[name] = part
    return found


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument(
        "--only",
        choices=list(BENCHMARKS),
        action="append",
        help="run just this benchmark (repeat for several); the others' sections are kept",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke check")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    names = list(dict.fromkeys(args.only)) if args.only else list(BENCHMARKS)
    started, clock, load = datetime.now(UTC), time.perf_counter(), os.getloadavg()[0]
    outcomes: list[BenchmarkResult] = []
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    with tempfile.TemporaryDirectory(prefix="ba-bench-") as tmp, progress:
        reporter = Reporter(progress)
        for name in names:
            outcome = BenchmarkResult(BENCHMARKS[name])
            bench_dir = Path(tmp) / name
            bench_dir.mkdir()
            try:
                outcome.measurements, outcome.notes = outcome.benchmark.run(
                    Context(args.quick, bench_dir, reporter)
                )
            except Exception as exc:  # record it and go on: the other benchmarks still count
                outcome.error = f"{type(exc).__name__}: {exc}"
                reporter.log(f"[red]{name} failed:[/] {outcome.error}")
            outcomes.append(outcome)
    kept = kept_sections(RESULTS.read_text()) if args.only and RESULTS.exists() else None
    text = report(outcomes, argv, args.quick, started, time.perf_counter() - clock, load, kept)
    RESULTS.write_text(text)
    print(text)
    print(f"written to {RESULTS}", file=sys.stderr)
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
