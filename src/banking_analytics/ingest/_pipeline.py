"""The ingestion pipeline: validate, deduplicate, write events and quarantine atomically."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from banking_analytics.events import SCHEMAS, arrow_type
from banking_analytics.ingest._decode import Decoded
from banking_analytics.ingest._listeners import CommitListener, CommitListeners
from banking_analytics.ingest._rates import ExchangeRate, rated_currencies, store_rates
from banking_analytics.ingest._results import BatchOutcome, EventError
from banking_analytics.ingest._validate import IngestLimits, validate
from banking_analytics.store import ALL_TABLES, EVENT_TABLES, QUARANTINE, Engine

__all__ = ["IngestPipeline"]

_ACCEPTED, _DUPLICATE, _REJECTED = 0, 1, 2
#: Raw payloads larger than this are quarantined as a prefix plus their size.
QUARANTINE_RAW_LIMIT = 1024 * 1024


def _storable(text: str | None) -> str | None:
    """Bad input may carry NUL characters, which PostgreSQL text and jsonb cannot hold."""
    return None if text is None else text.replace("\x00", "\ufffd")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _first_occurrences(
    by_table: list[tuple[str, pa.Table, np.ndarray]], start: int, size: int
) -> np.ndarray:
    """Mask over the batch's positions of the first event with each id, whatever its
    type: an id names one event, so a later copy in any table is a duplicate."""
    ids = pa.chunked_array(
        [chunk for _, rows, _ in by_table for chunk in rows["event_id"].cast(pa.string()).chunks],
        pa.string(),
    )
    positions = np.concatenate([positions for _, _, positions in by_table])
    indexed = pa.table({"id": ids, "p": pa.array(positions, pa.int64())})
    first = indexed.group_by("id", use_threads=False).aggregate([("p", "min")])["p_min"]
    mask = np.zeros(size, dtype=bool)
    mask[first.to_numpy() - start] = True
    return mask


def _concat(parts: list[Any]) -> Any:
    """Arrays or tables of consecutive batches as one (the one itself, uncopied)."""
    if len(parts) == 1:
        return parts[0]
    return pa.concat_tables(parts) if isinstance(parts[0], pa.Table) else pa.concat_arrays(parts)


class _Scatter:
    """Per-event facts gathered table by table, laid out by position at the end."""

    def __init__(self, start: int, size: int) -> None:
        self.start, self.size = start, size
        self._positions: list[np.ndarray] = []
        self._ids: list[pa.Array] = []
        self._types: list[pa.Array] = []
        self._flag_positions: list[np.ndarray] = []
        self._flags: list[pa.Array] = []

    def add(self, positions: np.ndarray, event_type: str | None, ids: pa.Array) -> None:
        self._positions.append(positions)
        self._ids.append(ids.cast(pa.string()))
        self._types.append(pc.fill_null(pa.nulls(len(positions), pa.string()), event_type))

    def add_one(self, position: int, event_type: str | None, event_id: str | None) -> None:
        self._positions.append(np.array([position]))
        self._ids.append(pa.array([event_id], pa.string()))
        self._types.append(pa.array([event_type], pa.string()))

    def add_flags(self, positions: np.ndarray, flags: pa.ChunkedArray) -> None:
        self._flag_positions.append(positions)
        self._flags.append(flags.combine_chunks())

    def _layout(self, positions: list[np.ndarray], values: list[pa.Array]) -> pa.Array:
        if not positions:
            return pa.nulls(self.size, pa.string())
        where = np.full(self.size, -1, dtype=np.int64)
        flat = np.concatenate(positions) - self.start
        where[flat] = np.arange(len(flat))
        return pa.concat_arrays(values).take(pa.array(where, mask=where < 0))

    def event_ids(self) -> pa.Array:
        return self._layout(self._positions, self._ids)

    def event_types(self) -> pa.Array:
        return self._layout(self._positions, self._types)

    def flags(self) -> pa.Array:
        return self._layout(self._flag_positions, self._flags)


@dataclass(frozen=True, slots=True)
class _Checked:
    """A validated batch waiting for its transaction."""

    start: int
    size: int
    #: (table, valid rows, their positions), one entry per event type present.
    valid: list[tuple[str, pa.Table, np.ndarray]]
    event_ids: pa.Array
    event_types: pa.Array
    errors: dict[int, tuple[EventError, ...]]
    quarantine: pa.Table


class IngestPipeline:
    """Turns decoded batches into stored events and quarantine rows, one transaction a write.

    Statuses are only reported once the transaction has committed, so an
    ``accepted`` answer means the event is durable. Deduplication: an event whose
    ``event_id`` was already stored, as an event of any type, with an
    ``occurred_at`` within ``limits.dedup_window`` of the batch's events is a
    ``duplicate``; within a batch the first copy wins, whatever the types. An id
    names one event: a retry never changes its type, so the same id under another
    type is a client reusing ids, and the event stored first stands (as with a
    same-type copy whose fields differ, which is also a duplicate).
    Listeners added with :meth:`on_commit` hear which tables each commit added rows to.
    """

    def __init__(
        self,
        engine: Engine,
        limits: IngestLimits | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.engine = engine
        self.limits = limits or IngestLimits()
        self.clock = clock
        self._listeners = CommitListeners()
        engine.migrate(ALL_TABLES)
        quote = self.limits.reporting_currency
        self._currencies = None if quote is None else rated_currencies(engine, quote)

    def _rated(self, table: pa.Table) -> frozenset[str] | None:
        """The currencies money may be in; read again from the store when the batch has
        one not known to have a rate (another process may have loaded it since)."""
        known, quote = self._currencies, self.limits.reporting_currency
        if known is None or quote is None or "currency" not in table.column_names:
            return known
        sent = set(pc.unique(table["currency"]).to_pylist()) - {None}
        if sent <= known:
            return known
        self._currencies = rated_currencies(self.engine, quote)
        return self._currencies

    def load_rates(self, rates: list[ExchangeRate]) -> int:
        """Store exchange rates (see :func:`store_rates`); events in their currencies are
        accepted from now on. How many rates were new."""
        added = store_rates(self.engine, rates, self.clock())
        quote = self.limits.reporting_currency
        if quote is not None:
            self._currencies = rated_currencies(self.engine, quote)
        return added

    def on_commit(self, listener: CommitListener) -> Callable[[], None]:
        """Call ``listener(tables)`` after each durable commit that added rows, with the
        names of the tables it added them to (event tables, ``quarantine``); returns a
        function that removes the listener.

        Listeners run on a thread of their own, after the commit, so a slow one
        never holds up ingestion and one that raises is only logged; commits made
        while they run reach them together, as one set of tables. A batch that
        added nothing (only duplicates) calls nobody.
        """
        return self._listeners.add(listener)

    def close(self) -> None:
        """Let the listeners hear of every commit so far, then stop their thread."""
        self._listeners.close()

    def write(self, decoded: Decoded) -> BatchOutcome:
        """Store one batch in one transaction; its outcome once committed."""
        return self._commit([self._check(decoded)])

    def write_many(self, batches: Iterable[Decoded]) -> BatchOutcome:
        """Store consecutive batches in one transaction, as if they were one batch.

        Each batch is validated as it arrives (so later ones may still be decoding);
        then each table gets one insert for all of them, which DuckDB writes
        straight into full row groups, where one insert per batch would go through
        its WAL and be written again at commit.
        """
        return self._commit([self._check(decoded) for decoded in batches])

    def _check(self, decoded: Decoded) -> _Checked:
        """Validate a batch; nothing is written yet."""
        start, n = decoded.first_position, decoded.size
        errors: dict[int, tuple[EventError, ...]] = dict(decoded.failures)
        known = _Scatter(start, n)
        for pos, (event_type, event_id) in decoded.meta.items():
            known.add_one(pos, event_type, event_id)
        valid: list[tuple[str, pa.Table, np.ndarray]] = []
        for event_type, table in decoded.tables.items():
            schema = SCHEMAS[event_type]
            checked = validate(schema, table, self.limits, self.clock, self._rated(table))
            errors.update(checked.rejected)
            known.add(checked.all_positions.to_numpy(), event_type.value, checked.all_event_ids)
            valid.append((schema.table, checked.rows, checked.positions.to_numpy()))
        event_ids, event_types = known.event_ids(), known.event_types()
        quarantine = self._quarantine_rows(decoded, errors, event_ids, event_types)
        return _Checked(start, n, valid, event_ids, event_types, errors, quarantine)

    def _commit(self, batches: list[_Checked]) -> BatchOutcome:
        """Deduplicate and write validated consecutive batches in one transaction."""
        if not batches:
            raise ValueError("no batch to write")
        start = batches[0].start
        n = 0
        for batch in batches:
            if batch.start != start + n:
                raise ValueError("batches written together must be consecutive")
            n += batch.size
        status = np.full(n, _REJECTED, dtype=np.uint8)
        by_table: dict[str, tuple[list[pa.Table], list[np.ndarray]]] = {}
        for batch in batches:
            for table, rows, positions in batch.valid:
                parts = by_table.setdefault(table, ([], []))
                parts[0].append(rows)
                parts[1].append(positions)
        flags = _Scatter(start, n)
        pending: list[tuple[str, pa.Table, np.ndarray]] = []
        merged = [(t, _concat(rows), np.concatenate(at)) for t, (rows, at) in by_table.items()]
        is_first = _first_occurrences(merged, start, n) if merged else np.zeros(0, dtype=bool)
        for table, rows, positions in merged:
            first = is_first[positions - start]
            status[positions[~first] - start] = _DUPLICATE
            if not first.all():  # filtering copies every column: only when an id repeats
                rows, positions = rows.filter(pa.array(first)), positions[first]
            flags.add_flags(positions, rows["ingest_flags"])
            pending.append((table, rows, positions))
        with self.engine.begin() as tx:
            inserted = [
                (
                    tx.insert_events(
                        EVENT_TABLES[table],
                        rows,
                        self.limits.dedup_window,
                        # Ids are unique across event types: see the class.
                        unique_across=[t for name, t in EVENT_TABLES.items() if name != table],
                    ),
                    positions,
                )
                for table, rows, positions in pending
            ]
            tx.append(QUARANTINE, _concat([b.quarantine for b in batches]))
        self._listeners.notify(tx.changed_tables)
        for is_new, positions in inserted:
            new = is_new.to_numpy(zero_copy_only=False)
            status[positions[new] - start] = _ACCEPTED
            status[positions[~new] - start] = _DUPLICATE
        errors = {pos: e for batch in batches for pos, e in batch.errors.items()}
        return BatchOutcome(
            start,
            status,
            _concat([b.event_ids for b in batches]),
            _concat([b.event_types for b in batches]),
            flags.flags(),
            errors,
        )

    def _quarantine_rows(
        self,
        decoded: Decoded,
        errors: dict[int, tuple[EventError, ...]],
        event_ids: pa.Array,
        event_types: pa.Array,
    ) -> pa.Table:
        rows: dict[str, list[object]] = {c.name: [] for c in QUARANTINE.columns}
        received = self.clock()
        for pos in sorted(errors):
            raw = decoded.raw(pos)
            raw_bytes = len(raw.encode("utf-8", "surrogatepass"))
            if raw_bytes > QUARANTINE_RAW_LIMIT:
                raw = raw[:QUARANTINE_RAW_LIMIT]
            reasons = errors[pos]
            rows["quarantine_id"].append(str(uuid.uuid4()))
            rows["received_at"].append(received)
            rows["source"].append(_storable(decoded.source_of(pos)))
            rows["position"].append(pos)
            rows["event_type"].append(_storable(event_types[pos - decoded.first_position].as_py()))
            rows["event_id"].append(_storable(event_ids[pos - decoded.first_position].as_py()))
            rows["reason"].append(_storable("; ".join(str(e) for e in reasons)))
            rows["errors"].append(
                orjson.dumps(
                    [
                        {
                            "field": _storable(e.field),
                            "code": e.code,
                            "message": _storable(e.message),
                        }
                        for e in reasons
                    ]
                ).decode()
            )
            rows["raw"].append(_storable(raw.encode("utf-8", "replace").decode("utf-8")))
            rows["raw_bytes"].append(raw_bytes)
        return pa.table(
            {c.name: pa.array(rows[c.name], arrow_type(c.kind)) for c in QUARANTINE.columns}
        )
