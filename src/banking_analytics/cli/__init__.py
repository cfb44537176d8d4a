"""The ``banking-analytics`` command.

Bad input (an unreadable file, a bad store URL, rejected events) ends with a
one-line message on stderr and exit code 2; never a traceback.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import pyarrow as pa
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from banking_analytics.cli._demo import (
    DEMO_WORLD,
    demo_record,
    is_demo_store,
    mark_demo_store,
    marker_of,
    update_demo_record,
)
from banking_analytics.cli._reports import show_health, show_performance
from banking_analytics.ingest import EventStatus
from banking_analytics.ingest._files import FileFormat, UnreadableFileError, detect_format
from banking_analytics.store import StoreUnavailableError, StoreURLError
from banking_analytics.vocabulary import Aggregator, EventType

if TYPE_CHECKING:
    from banking_analytics._facade import BankingPerformanceAnalytics, StoreInfo
    from banking_analytics.simulate import SimulationConfig

# The facade (and with it the query compiler and the analyses) is imported by the
# commands that open a store, not with this module: ``--help`` starts sooner, and so
# does each worker process decoding a file, which imports the main module again.

__all__ = ["app", "main"]

app = typer.Typer(
    name="banking-analytics",
    help="Bank-integration health, feature usage and subscription-revenue analytics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
#: ``banking-analytics rates ...`` (its commands are in :mod:`._revenue`).
rates_app = typer.Typer(help="Exchange rates to the reporting currency.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

DEFAULT_DB = "duckdb:///demo-data/analytics.duckdb"
#: Files are decoded and validated in chunks of this many events.
FILE_CHUNK_EVENTS = 100_000
#: Events per transaction when loading Parquet. DuckDB writes the rows of one large
#: insert straight into full row groups of the database file; what smaller inserts add
#: goes to the WAL and is written again at commit and by the checkpoint (together
#: ~1.5 s per million events). Parquet decodes fast, so its chunks are validated while
#: the next ones are read, and written together at the end (1M events: ~1.1 GB peak).
#: JSON Lines and CSV commit every chunk (measured for JSON Lines: their decoding is
#: slow, and writing each chunk while workers decode the next saves more than one
#: large insert would).
PARQUET_TRANSACTION_EVENTS = 1_000_000
#: JSON Lines decoding workers by default: one per core, at most four.
DEFAULT_DECODE_WORKERS = min(4, os.cpu_count() or 1)
DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        help="Store URL: duckdb:///relative/file.duckdb, duckdb:////absolute/file.duckdb "
        "or postgresql://user@host:5432/db?schema=NAME",
        envvar="BA_DB",
    ),
]
BAD_INPUT = 2


def fail(message: str) -> typer.Exit:
    """Print a one-line error and return the exit to raise (code 2: bad input)."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(BAD_INPUT)


def store_shown(url: str) -> str:
    """A store URL as a person should read it: a DuckDB file by its absolute path.

    ``duckdb:///tmp/x.duckdb`` is ``./tmp/x.duckdb`` (three slashes then a relative
    path, as SQLAlchemy reads file URLs); it shows as ``duckdb:////home/me/tmp/x.duckdb``.
    Other URLs show as given (an engine's ``url`` already hides a password).
    """
    path = url.removeprefix("duckdb:///")
    if path == url or path == ":memory:":
        return url
    return f"duckdb:///{Path(path).resolve()}"


def announce_store(url: str) -> None:
    """Say which store a command used, once, after it succeeded: on stderr, so that
    ``--json`` output stays JSON, and after the work, so that an error stays one line."""
    err.print(f"store: {store_shown(url)}", highlight=False, soft_wrap=True)


@contextmanager
def _open(db: str, *, announce: bool = True) -> Iterator[BankingPerformanceAnalytics]:
    """The store ``db`` names, open for the block; named on stderr once the block succeeds
    (``announce``: commands that say it themselves, like ``serve``, pass False)."""
    from banking_analytics._facade import BankingPerformanceAnalytics

    try:
        analytics = BankingPerformanceAnalytics.open(db)
    except (StoreURLError, StoreUnavailableError) as exc:
        raise fail(str(exc)) from None
    try:
        yield analytics
    finally:
        analytics.close()
    if announce:
        announce_store(analytics.engine.url)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal and os.environ.get("BA_PROGRESS") != "1",
    )


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def show_info(info: StoreInfo) -> None:
    table = Table(title=f"Store {info.url}", title_justify="left")
    table.add_column("event type")
    table.add_column("events", justify="right")
    table.add_column("first occurred (UTC)")
    table.add_column("last occurred (UTC)")
    for t in info.tables:
        first = t.first_occurred_at.strftime("%Y-%m-%d %H:%M") if t.first_occurred_at else "-"
        last = t.last_occurred_at.strftime("%Y-%m-%d %H:%M") if t.last_occurred_at else "-"
        table.add_row(t.event_type, f"{t.events:,}", first, last)
    table.add_row("[bold]total", f"[bold]{info.total_events:,}", "", "")
    out.print(table)
    out.print(f"quarantined (rejected) events: {info.quarantined:,}")


@app.command()
def info(db: DbOption = DEFAULT_DB) -> None:
    """What a store holds: events per type, their time range, the quarantine size."""
    with _open(db) as analytics:
        show_info(analytics.info())


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="A .jsonl/.ndjson, .csv or .parquet file")],
    db: DbOption = DEFAULT_DB,
    file_format: Annotated[
        FileFormat | None, typer.Option("--format", help="Override the suffix's format")
    ] = None,
    show: Annotated[int, typer.Option(help="How many rejected lines to list")] = 20,
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            max=64,
            help="Worker processes decoding JSON Lines (0: decode in a thread instead)",
        ),
    ] = DEFAULT_DECODE_WORKERS,
) -> None:
    """Load events from a file; rejected events are listed by line and quarantined.

    Exits with 2 if any event was rejected (the accepted ones are stored).
    """
    with _open(db) as analytics:
        size = path.stat().st_size if path.is_file() else 0
        started = time.perf_counter()
        with _progress() as progress:
            task = progress.add_task(f"ingesting {path.name}", total=size or None)
            try:
                parquet = (file_format or detect_format(path)) is FileFormat.PARQUET
                report = analytics.ingest_file(
                    path,
                    file_format=file_format,
                    chunk_events=FILE_CHUNK_EVENTS,
                    transaction_events=PARQUET_TRANSACTION_EVENTS if parquet else None,
                    decode_workers=workers,
                    on_progress=lambda done, _events: progress.update(task, completed=done),
                )
            except UnreadableFileError as exc:
                raise fail(str(exc)) from None
        elapsed = time.perf_counter() - started
    rate = report.total / elapsed if elapsed > 0 else 0.0
    out.print(
        f"{report.total:,} events in {elapsed:.2f} s ({rate:,.0f}/s): "
        f"{report.accepted:,} accepted, {report.duplicate:,} duplicate, "
        f"{report.rejected:,} rejected"
    )
    if report.rejected:
        unit = (
            "row"
            if (file_format or path.suffix.lower()) in ("parquet", ".parquet", ".pq")
            else "line"
        )
        for position, reason in report.rejections[:show]:
            err.print(f"{path}:{unit} {position}: {reason}", highlight=False, soft_wrap=True)
        if report.rejected > show:
            err.print(f"... and {report.rejected - show:,} more (see the quarantine table)")
        raise typer.Exit(BAD_INPUT)


def _world(
    users: int,
    days: int,
    seed: int,
    *,
    end: datetime | None = None,
    institutions: int | None = None,
    activity: float = 1.0,
) -> SimulationConfig:
    """The world to simulate, checked before any store is opened; ``end`` defaults to the
    start of the current hour (UTC unless it says otherwise)."""
    from banking_analytics.simulate import SimulationConfig

    if end is None:
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    elif end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    try:
        return SimulationConfig(
            users=users,
            days=days,
            seed=seed,
            end=end,
            institutions=institutions,
            activity=activity,
        )
    except ValueError as exc:
        raise fail(str(exc)) from None


def _simulate_into(
    analytics: BankingPerformanceAnalytics, config: SimulationConfig, manifest: Path | None
) -> None:
    """Simulate a world into the store, and its institutions' names into the institution
    catalogue."""
    from banking_analytics.ingest import InstitutionName, record_institutions
    from banking_analytics.simulate import run_simulation

    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    position = 0
    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task(
            f"simulating {config.users:,} users x {config.days} days", total=None
        )

        def sink(event_type: EventType, table: pa.Table) -> None:
            nonlocal position
            outcome = analytics.ingest_arrow(
                table, event_type=event_type, source="simulator", first_position=position
            )
            position += table.num_rows
            for status in counts:
                counts[status] += outcome.count(EventStatus(status))
            progress.update(task, completed=position)

        truth = run_simulation(config, sink)
        record_institutions(
            analytics.engine,
            (
                InstitutionName(i.institution_id, i.name, Aggregator(i.aggregator))
                for i in truth.institutions
            ),
            source="simulator",
        )
    elapsed = time.perf_counter() - started
    out.print(
        f"simulated and stored {position:,} events in {elapsed:.1f} s "
        f"({position / elapsed:,.0f}/s, peak memory {_peak_rss_mb():,.0f} MB): "
        + ", ".join(f"{v:,} {k}" for k, v in counts.items())
    )
    if manifest is not None:
        truth.write(manifest)
        out.print(f"ground truth written to {manifest}")
    if counts["rejected"]:
        raise fail(f"the simulator produced {counts['rejected']:,} rejected events (a bug)")


@app.command()
def simulate(
    db: DbOption = DEFAULT_DB,
    users: Annotated[int, typer.Option(min=1, help="Users in the world")] = 20_000,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Days of history")] = 90,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same world)")] = 42,
    institutions: Annotated[
        int | None,
        typer.Option(min=5, max=1000, help="Institutions in the world (default: 40 to 80, drawn)"),
    ] = None,
    manifest: Annotated[
        Path | None, typer.Option(help="Where to write the ground-truth JSON")
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option(
            help="When the simulated history ends (UTC unless an offset is given; "
            "default: the start of the current hour)",
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
        ),
    ] = None,
    activity: Annotated[
        float,
        typer.Option(
            help="Multiplier on every user's visits (feature-use sessions), above 0 and at "
            "most 20: more behaviour events per user; links, syncs and billing rules unchanged",
        ),
    ] = 1.0,
) -> None:
    """Simulate a fintech (users, banks, features, subscriptions) into a store.

    The same seed, size, activity and end always make the same world.
    """
    config = _world(users, days, seed, end=end, institutions=institutions, activity=activity)
    with _open(db) as analytics:
        _simulate_into(analytics, config, manifest)


@app.command()
def demo(
    db: DbOption = DEFAULT_DB,
    users: Annotated[int, typer.Option(min=1)] = DEMO_WORLD["users"],
    days: Annotated[int, typer.Option(min=1, max=3650)] = DEMO_WORLD["days"],
    seed: int = DEMO_WORLD["seed"],
    institutions: Annotated[int, typer.Option(min=5, max=1000)] = DEMO_WORLD["institutions"],
    serve: Annotated[
        bool, typer.Option(help="Then serve the REST API and web app on it, with an admin key")
    ] = True,
    host: Annotated[str, typer.Option(help="Address to serve on")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port to serve on", envvar="BA_PORT")
    ] = 8000,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh",
            help="Simulate a new world even if the demo's store holds this one, "
            "replacing the DuckDB file even if no demo made it",
        ),
    ] = False,
) -> None:
    """The quick start: simulate the demo world into a store, summarise it, serve it.

    A second run serves the store the first one made, with the same admin key, if it
    holds the same world (users, days, seed); --fresh simulates a new one. A DuckDB
    file is replaced only if an earlier demo made it, or with --fresh.
    """
    from banking_analytics.cli._serve import check_port, serve_store

    if serve:
        check_port(host, port)  # before the simulation, not half a minute after it
    config = _world(users, days, seed, institutions=institutions)
    path = db.removeprefix("duckdb:///")
    store = Path(path) if db.startswith("duckdb:///") and path != ":memory:" else None
    world = {"users": users, "days": days, "seed": seed, "institutions": institutions}
    made = demo_record(store) if store is not None and not fresh else {}
    reuse = made.get("world") == world
    if store is not None and not reuse:
        _clear_demo_store(store, fresh)
    manifest = Path(path).with_suffix(".truth.json") if db.startswith("duckdb:///") else None
    with _open(db, announce=False) as analytics:
        if reuse:
            out.print(
                f"Reusing the demo store {store_shown(db)} (its history ends {made['end']}); "
                "pass --fresh for a new world"
            )
        else:
            if store is not None:
                mark_demo_store(store)
            _simulate_into(analytics, config, manifest)
            _install_default_rules(analytics)
            if store is not None:
                update_demo_record(store, world=world, end=config.end.isoformat())
        show_info(analytics.info())
        show_performance(out, analytics.analyze_connection_performance("24h"), top=5)
        show_health(out, analytics.institution_health("7d"), limit=10)
        # While serving, the server holds a DuckDB store: the CLI can read it only after.
        cli_hint = "After Ctrl-C, try:" if serve and store is not None else "Try:"
        out.print(
            f"\nStore: {store_shown(db)}\n"
            f"{cli_hint} banking-analytics performance --period 7d --db {db}\n"
            f"{' ' * len(cli_hint)} banking-analytics health --db {db}\n"
            f"{' ' * len(cli_hint)} banking-analytics alerts list --db {db}"
        )
        if serve:
            key = _demo_admin_key(analytics, store, made.get("admin_key") if reuse else None)
            serve_store(analytics, db, host, port, admin_key=key)


def _install_default_rules(analytics: BankingPerformanceAnalytics) -> None:
    """The shipped alert rules, so the demo's evaluator raises alerts on its planted outages."""
    from banking_analytics.monitor import default_rules

    rules = analytics.monitor.apply(default_rules(), changed_by="demo")
    out.print(f"Installed the {len(rules)} default alert rules (banking-analytics rules list)")


def _demo_admin_key(
    analytics: BankingPerformanceAnalytics, store: Path | None, kept: str | None
) -> str:
    """The admin key the demo printed last time if it still works, else a new one (recorded)."""
    from banking_analytics.access import KeyStore, Role

    keys = KeyStore(analytics.engine)
    try:
        if kept is not None and keys.authenticate(kept) is not None:
            return kept
        secret = keys.create("demo admin", Role.ADMIN, created_by="demo").secret
    finally:
        keys.close()
    if store is not None:
        update_demo_record(store, admin_key=secret)
    return secret


def _clear_demo_store(store: Path, fresh: bool) -> None:
    """Delete the demo's DuckDB file (and its WAL and marker), refusing any other file."""
    if (store.exists() or store.is_symlink()) and not fresh and not is_demo_store(store):
        raise fail(
            f"{store} exists and the demo did not make it: the demo replaces its store; "
            "choose another --db, or pass --fresh to replace it"
        )
    try:
        for stale in (store, Path(f"{store}.wal"), marker_of(store)):
            stale.unlink(missing_ok=True)
    except OSError as exc:
        raise fail(f"cannot replace {store}: {exc.strerror}") from None


PeriodOption = Annotated[
    str, typer.Option("--period", help="1h, 6h, 24h, 7d, 30d, 90d or any <n>h / <n>d")
]
LookbackOption = Annotated[
    str, typer.Option("--lookback", help="How far back to judge: 24h, 7d, 30d, ...")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the whole answer as JSON")]
Answer = TypeVar("Answer")


def iso_duration(span: timedelta) -> str:
    """A duration in ISO 8601, as the API writes it (``PT6H``, ``P1DT30M``, ``PT1.5S``,
    ``-PT1M30S``), not Python's ``6:00:00``."""
    sign = "-" if span < timedelta(0) else ""
    span = abs(span)
    hours, rest = divmod(span.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    fraction = f".{span.microseconds:06d}".rstrip("0") if span.microseconds else ""
    time_part = "".join(
        f"{value}{unit}" for value, unit in ((hours, "H"), (minutes, "M")) if value
    ) + (f"{seconds}{fraction}S" if seconds or fraction else "")
    if not span:
        return "PT0S"
    days = f"{span.days}D" if span.days else ""
    return f"{sign}P{days}" + (f"T{time_part}" if time_part else "")


def _json_default(value: object) -> str:
    return iso_duration(value) if isinstance(value, timedelta) else str(value)


def print_json(value: object) -> None:
    """Print an answer (dataclasses, dictionaries, lists) as JSON: times in ISO 8601,
    durations too, anything else orjson cannot write as its ``str``."""
    import orjson

    text = orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
    out.print_json(text)


def _report(
    db: str,
    compute: Callable[[BankingPerformanceAnalytics], Answer],
    show: Callable[[Console, Answer], None],
    as_json: bool,
) -> None:
    """Answer one analysis on a store, as text or as JSON; a bad period is bad input."""
    from banking_analytics.metrics import QueryError

    with _open(db) as analytics:
        try:
            answer = compute(analytics)
        except QueryError as exc:
            raise fail(str(exc)) from None
    if as_json:
        print_json(answer)
    else:
        show(out, answer)


@app.command()
def performance(
    db: DbOption = DEFAULT_DB, period: PeriodOption = "24h", as_json: JsonOption = False
) -> None:
    """Connection health: success rate and breakdown, latency, conversion, busiest cuts."""
    _report(db, lambda a: a.analyze_connection_performance(period), show_performance, as_json)


@app.command()
def health(
    db: DbOption = DEFAULT_DB, lookback: LookbackOption = "7d", as_json: JsonOption = False
) -> None:
    """Institution health per aggregator product: what is down or degraded, and since when."""
    _report(db, lambda a: a.institution_health(lookback), show_health, as_json)


def main() -> None:
    """Entry point of the ``banking-analytics`` script."""
    app()


# Imported last: these commands use this module's options and consoles. ``serve``
# and ``revenue`` register themselves on ``app``; keys, audit, import, rates and quarantine
# are groups.
from banking_analytics.cli import _revenue, _serve  # noqa: E402, F401
from banking_analytics.cli._access import audit_app, keys_app  # noqa: E402
from banking_analytics.cli._import import import_app  # noqa: E402
from banking_analytics.cli._quarantine import quarantine_app  # noqa: E402
from banking_analytics.cli._rules import alerts_app, monitor, rules_app  # noqa: E402

app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(import_app, name="import")
app.add_typer(rates_app, name="rates")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(rules_app, name="rules")
app.add_typer(alerts_app, name="alerts")
app.command()(monitor)
