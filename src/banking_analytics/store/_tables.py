"""Logical table definitions; each engine renders them into its own DDL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from banking_analytics.events import SCHEMAS, EventSchema, Kind
from banking_analytics.vocabulary import BankingFeature, EventType

__all__ = [
    "ALL_TABLES",
    "BEHAVIOR_SESSIONS",
    "DATA_VERSIONS",
    "DERIVED_TABLES",
    "EVENT_TABLES",
    "EXCHANGE_RATES",
    "INSTITUTIONS",
    "QUARANTINE",
    "RATE_SCALE",
    "SUBSCRIPTION_CHANGES",
    "Column",
    "CondensedTable",
    "DerivedTable",
    "SessionsTable",
    "TableDef",
]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Kind
    nullable: bool = True


@dataclass(frozen=True, slots=True)
class TableDef:
    """A table: its columns, for event tables the time column dedup prunes by, the
    other columns rows are looked up by, its primary key if it has one, and whether
    it has a data version (see :data:`DATA_VERSIONS`).

    Engines that keep indexes (PostgreSQL) index the looked-up columns when they
    create the table; DuckDB skips row groups by their min/max instead.
    """

    name: str
    columns: tuple[Column, ...]
    time_column: str | None = None
    lookup_columns: tuple[str, ...] = ()
    primary_key: tuple[str, ...] = ()
    versioned: bool = False

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def indexed_columns(self) -> tuple[str, ...]:
        """An event table's ``event_id`` (dedup) and time column (windows), then the lookups."""
        events = ("event_id", self.time_column) if self.time_column is not None else ()
        return (*events, *self.lookup_columns)


#: The columns an event table's rows are looked up by, besides its id and time.
_EVENT_LOOKUPS = {EventType.SUBSCRIPTION: ("subscription_id",)}


def _event_table(schema: EventSchema) -> TableDef:
    return TableDef(
        schema.table,
        tuple(Column(f.name, f.kind, nullable=not f.required) for f in schema.stored_fields),
        time_column="occurred_at",
        lookup_columns=_EVENT_LOOKUPS.get(schema.event_type, ()),
        versioned=True,
    )


EVENT_TABLES: dict[str, TableDef] = {s.table: _event_table(s) for s in SCHEMAS.values()}


@dataclass(frozen=True, slots=True)
class DerivedTable:
    """A table the store keeps in step with an event table, ``source``.

    The write transaction that adds rows to the source derives the table's rows again
    from them (their ``reads`` columns) before it commits, and raises the derived table's
    data version with the source's: a reader sees both or neither.
    """

    table: TableDef
    source: TableDef

    @property
    def reads(self) -> tuple[str, ...]:
        """The columns of the source's new rows the derivation reads."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class CondensedTable(DerivedTable):
    """Per ``key``, the source's rows in ``order`` without each row whose ``terms``
    (expressions both engines read alike) all equal the previous row's.

    The keys of the new rows are condensed again from all their rows, so the order rows
    arrive in does not matter.
    """

    key: str
    order: tuple[str, ...]
    terms: tuple[str, ...]

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.key,)


#: The source columns a sessions table is derived from.
_SESSION_READS = (
    "user_id",
    "session_id",
    "occurred_at",
    "event_id",
    "feature",
    "duration_s",
    "device",
    "platform",
)


@dataclass(frozen=True, slots=True)
class SessionsTable(DerivedTable):
    """Every session of the source's events, a row each, over all time.

    A session is, per user, every event carrying the same client ``session_id`` (an event
    without a user is in none); events without one are cut by inactivity: an event
    ``gap`` or more after the user's previous such event starts a new session, one less
    than ``gap`` after it stays in it. Each
    row holds its session's first event (by ``occurred_at``, then ``event_id``: its id,
    time, device and platform), its last (id, time, ``duration_s``), its number of events,
    and the features it used as bits: bit i (value 2^i) is ``features[i]``.

    New events are merged into the sessions stored: a session they may join is taken
    out and merged with them again (see
    :func:`~banking_analytics.store._sql.session_statements`), so the order events arrive
    in does not matter.
    """

    gap: timedelta
    features: tuple[str, ...]
    #: New events wait here, unmerged, while fewer than ``merge_at`` do: merging costs a
    #: transaction about the same few statements whether it adds one event or thousands,
    #: so a stream of small commits merges them in batches. Whatever reads the sessions
    #: merges those waiting first (:meth:`~banking_analytics.store.Engine.bring_up_to_date`).
    waiting: TableDef
    merge_at: int

    @property
    def reads(self) -> tuple[str, ...]:
        return _SESSION_READS


_SUBSCRIPTIONS = EVENT_TABLES[SCHEMAS[EventType.SUBSCRIPTION].table]

#: Each subscription's snapshots without those repeating the previous one's terms — a
#: renewal at an unchanged price, a payment retried while past due: three in four of the
#: simulated world's. The subscription ledger reads these: its terms are every field the
#: ledger prices and counts a snapshot by (the period's end only once the subscription has
#: ended: before, the ledger does not read it), so a row dropped changes no MRR.
SUBSCRIPTION_CHANGES = CondensedTable(
    TableDef(
        "subscription_changes",
        _SUBSCRIPTIONS.columns,
        lookup_columns=("subscription_id",),
        versioned=True,
    ),
    _SUBSCRIPTIONS,
    key="subscription_id",
    order=("occurred_at", "received_at", "event_id"),
    terms=(
        "user_id",
        "status",
        "CASE WHEN status IN ('canceled', 'unpaid') THEN period_end END",
        "currency",
        '"interval"',
        "interval_count",
        "unit_amount",
        "quantity",
        "discount_percent",
        "discount_amount",
        "discount_duration",
        "discount_months",
    ),
)

_BEHAVIOR = EVENT_TABLES[SCHEMAS[EventType.BEHAVIOR].table]

#: PostHog's sessions (its ``sessions`` table, kept as events arrive), cut by the default
#: session gap: the behaviour insights read these instead of sessionising every event.
#: The bit of a feature is its place in the vocabulary, which only grows at its end.
BEHAVIOR_SESSIONS = SessionsTable(
    TableDef(
        "behavior_sessions",
        (
            Column("user_id", Kind.IDENTIFIER, nullable=False),
            Column("session_id", Kind.IDENTIFIER),
            Column("started_at", Kind.TIMESTAMP, nullable=False),
            Column("first_event_id", Kind.UUID, nullable=False),
            Column("last_at", Kind.TIMESTAMP, nullable=False),
            Column("last_event_id", Kind.UUID, nullable=False),
            Column("last_duration_s", Kind.FLOAT),
            Column("events", Kind.INTEGER, nullable=False),
            Column("features", Kind.INTEGER, nullable=False),
            Column("device", Kind.ENUM),
            Column("platform", Kind.ENUM),
        ),
        lookup_columns=("user_id", "first_event_id", "last_at"),
        versioned=True,
    ),
    _BEHAVIOR,
    gap=timedelta(minutes=30),
    features=tuple(feature.value for feature in BankingFeature),
    waiting=TableDef(
        "behavior_sessions_waiting",
        tuple(c for c in _BEHAVIOR.columns if c.name in _SESSION_READS),
    ),
    merge_at=10_000,
)
DERIVED_TABLES: tuple[DerivedTable, ...] = (SUBSCRIPTION_CHANGES, BEHAVIOR_SESSIONS)

#: Rejected input, kept with its raw payload and the reasons, so nothing is lost.
QUARANTINE = TableDef(
    "quarantine",
    (
        Column("quarantine_id", Kind.UUID, nullable=False),
        Column("received_at", Kind.TIMESTAMP, nullable=False),
        Column("source", Kind.TEXT, nullable=False),
        Column("position", Kind.INTEGER),
        Column("event_type", Kind.TEXT),
        Column("event_id", Kind.TEXT),
        Column("reason", Kind.TEXT, nullable=False),
        Column("errors", Kind.JSON, nullable=False),
        Column("raw", Kind.TEXT),
        Column("raw_bytes", Kind.INTEGER),
    ),
    versioned=True,
)

#: The data version of each versioned table: a number that the transaction adding rows
#: to the table raises, so it changes exactly when the table's rows do (tables whose
#: rows are only ever added). Engines create it, and a version of 0 for each versioned
#: table, when they migrate one.
DATA_VERSIONS = TableDef(
    "data_versions",
    (
        Column("table_name", Kind.TEXT, nullable=False),
        Column("version", Kind.INTEGER, nullable=False),
    ),
    primary_key=("table_name",),
)

#: Exchange rates are stored as integers: the rate times this.
RATE_SCALE = 10**9

#: Exchange rates the user supplies, to convert revenue to one reporting currency: one
#: major unit of ``currency`` is worth ``rate_e9 / 10**9`` major units of ``quote`` from
#: ``valid_from`` (midnight UTC) until the currency's next rate. Rates are integers so
#: that converted money is exact; rows are only added.
EXCHANGE_RATES = TableDef(
    "exchange_rates",
    (
        Column("currency", Kind.TEXT, nullable=False),
        Column("quote", Kind.TEXT, nullable=False),
        Column("valid_from", Kind.TIMESTAMP, nullable=False),
        Column("rate_e9", Kind.INTEGER, nullable=False),
        Column("loaded_at", Kind.TIMESTAMP, nullable=False),
    ),
    versioned=True,
)

#: Institution names recorded by a catalogue (the simulator's world, an aggregator's
#: institution list or webhook): the latest row of an institution names it, before any
#: name its events carry. Rows are only added (a new name is a new row).
INSTITUTIONS = TableDef(
    "institutions",
    (
        Column("institution_id", Kind.TEXT, nullable=False),
        Column("aggregator", Kind.TEXT),
        Column("name", Kind.TEXT, nullable=False),
        Column("source", Kind.TEXT, nullable=False),
        Column("recorded_at", Kind.TIMESTAMP, nullable=False),
    ),
    versioned=True,
)

ALL_TABLES: tuple[TableDef, ...] = (
    *EVENT_TABLES.values(),
    *(d.table for d in DERIVED_TABLES),
    BEHAVIOR_SESSIONS.waiting,
    QUARANTINE,
    EXCHANGE_RATES,
    INSTITUTIONS,
)
