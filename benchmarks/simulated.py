"""The behaviour benchmarks' world: the behaviour events of one simulator run.

``behavior`` and ``behavior_flows`` time their queries over the behaviour events of a
simulated 90-day world (``banking_analytics.simulate``). The simulator's users make
about 44 behaviour events each in 90 days (43.9 measured on 100k users, seed 16); with
their visits multiplied by ``ACTIVITY`` = 2.4 they make about 100, so 100k users give
about 10M events (``--quick``: 10k users, about 1M). Link sessions and the onboarding
visit after a first link are not scaled, hence 2.4 rather than 100 / 44.

A world is simulated once per bench run: the first section to ask for it writes its
events to a file in the run's directory (with the simulation's wall time), the
next maps them from there (an uncompressed Arrow file: no decoding).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.feather as feather

from banking_analytics import BankingPerformanceAnalytics
from banking_analytics.simulate import SimulationConfig, run_simulation
from banking_analytics.vocabulary import EventType
from benchmarks.run import BenchmarkError, Context

USERS = 100_000
#: The PostgreSQL parts' world (about 1M events).
POSTGRES_USERS = 10_000
DAYS = 90
#: Where the world ends: fixed, so every run simulates the same world.
END = datetime(2026, 12, 1, tzinfo=UTC)
START = END - timedelta(days=DAYS)
SEED = 16
ACTIVITY = 2.4
_SECONDS = b"simulation_seconds"


@dataclass(frozen=True, slots=True)
class SimulatedWorld:
    """A simulated world's behaviour events (stored schema without ``ingest_flags``)."""

    events: pa.Table
    users: int
    #: Wall seconds the simulation took (the whole world: every event type).
    seconds: float
    activity: float
    seed: int

    def describe(self) -> str:
        return (
            f"{self.events.num_rows:,} behaviour events of {self.users:,} users over {DAYS} "
            f"days, simulated (activity {self.activity:g}, seed {self.seed}) in "
            f"{self.seconds:.1f} s"
        )


def scaled(ctx: Context, users: int) -> int:
    """``users``, or a tenth of them with ``--quick``."""
    return users // 10 if ctx.quick else users


def simulated_behaviour(
    ctx: Context, users: int, activity: float = ACTIVITY, seed: int = SEED
) -> SimulatedWorld:
    """The behaviour events of a 90-day world of ``users`` ending at ``END``, simulated
    once per bench run (the file in the run's directory is mapped, so every section
    reads its events alike)."""
    cached = ctx.run_dir / f"behaviour-{users}-{activity:g}-{seed}.arrow"
    if not cached.exists():
        _simulate(
            cached, SimulationConfig(users=users, days=DAYS, seed=seed, end=END, activity=activity)
        )
    table = feather.read_table(cached, memory_map=True)
    seconds = float((table.schema.metadata or {})[_SECONDS])
    world = SimulatedWorld(table.replace_schema_metadata(None), users, seconds, activity, seed)
    ctx.reporter.step(world.describe())
    return world


def _simulate(path: Path, config: SimulationConfig) -> None:
    """Run the simulation, writing its behaviour events to ``path`` with its wall time."""
    chunks: list[pa.Table] = []

    def keep_behaviour(event_type: EventType, table: pa.Table) -> None:
        if event_type is EventType.BEHAVIOR:
            chunks.append(table)

    started = time.perf_counter()
    run_simulation(config, keep_behaviour)
    seconds = time.perf_counter() - started
    events = pa.concat_tables(chunks).replace_schema_metadata({_SECONDS: str(seconds)})
    feather.write_feather(events, path, compression="uncompressed")


def store_world(analytics: BankingPerformanceAnalytics, table: pa.Table) -> None:
    """Ingest the events (validated, deduplicated), a million per transaction."""
    for offset in range(0, table.num_rows, 1_000_000):
        outcome = analytics.ingest_arrow(
            table.slice(offset, 1_000_000), event_type=EventType.BEHAVIOR
        )
        if not (outcome.status == 0).all():
            raise BenchmarkError(f"behaviour world: {int((outcome.status != 0).sum())} rejected")
