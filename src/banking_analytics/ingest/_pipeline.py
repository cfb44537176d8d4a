"""The ingestion pipeline: validate, deduplicate, write events and quarantine atomically."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from banking_analytics.events import SCHEMAS, arrow_type
from banking_analytics.ingest._decode import Decoded
from banking_analytics.ingest._results import BatchOutcome, EventError
from banking_analytics.ingest._validate import IngestLimits, validate
from banking_analytics.store import ALL_TABLES, EVENT_TABLES, QUARANTINE, Engine

__all__ = ["IngestPipeline"]

_ACCEPTED, _DUPLICATE, _REJECTED = 0, 1, 2
#: Raw payloads larger than this are quarantined as a prefix plus their size.
QUARANTINE_RAW_LIMIT = 1024 * 1024


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _first_occurrences(ids: pa.ChunkedArray) -> pa.Array:
    """Mask of the first row of each event id in a batch (later ones are duplicates)."""
    indexed = pa.table({"id": ids, "i": pa.array(np.arange(len(ids), dtype=np.int64))})
    first = indexed.group_by("id", use_threads=False).aggregate([("i", "min")])["i_min"]
    mask = np.zeros(len(ids), dtype=bool)
    mask[first.to_numpy()] = True
    return pa.array(mask)


class IngestPipeline:
    """Turns decoded batches into stored events and quarantine rows, in one transaction each.

    Statuses are only reported once the transaction has committed, so an
    ``accepted`` answer means the event is durable. Deduplication: an event whose
    ``event_id`` was already stored with an ``occurred_at`` within
    ``limits.dedup_window`` of the batch's events is a ``duplicate``; within a
    batch the first copy wins.
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
        engine.migrate(ALL_TABLES)

    def write(self, decoded: Decoded) -> BatchOutcome:
        start, n = decoded.first_position, decoded.size
        status = np.full(n, _REJECTED, dtype=np.uint8)
        event_ids = np.full(n, None, dtype=object)
        event_types = np.full(n, None, dtype=object)
        errors: dict[int, tuple[EventError, ...]] = dict(decoded.failures)
        for pos, (event_type, event_id) in decoded.meta.items():
            event_types[pos - start], event_ids[pos - start] = event_type, event_id
        flags: dict[int, tuple[str, ...]] = {}
        pending: list[tuple[str, pa.Table, np.ndarray]] = []
        for event_type, table in decoded.tables.items():
            schema = SCHEMAS[event_type]
            checked = validate(schema, table, self.limits, self.clock)
            index = checked.all_positions.to_numpy() - start
            event_types[index] = event_type.value
            event_ids[index] = checked.all_event_ids.to_numpy(zero_copy_only=False)
            errors.update(checked.rejected)
            rows, positions = checked.rows, checked.positions.to_numpy()
            first = _first_occurrences(rows["event_id"])
            status[positions[~first.to_numpy(zero_copy_only=False)] - start] = _DUPLICATE
            keep = first.to_numpy(zero_copy_only=False)
            rows, positions = rows.filter(first), positions[keep]
            noted = pc.indices_nonzero(pc.is_valid(rows["ingest_flags"])).to_numpy()
            flag_values = rows["ingest_flags"].take(noted).to_pylist()
            for i, value in zip(noted, flag_values, strict=True):
                flags[int(positions[i])] = tuple(value.split(","))
            pending.append((schema.table, rows, positions))
        quarantine = self._quarantine_rows(decoded, errors, event_types, event_ids)
        with self.engine.begin() as tx:
            inserted = [
                (tx.insert_events(EVENT_TABLES[table], rows, self.limits.dedup_window), positions)
                for table, rows, positions in pending
            ]
            tx.append(QUARANTINE, quarantine)
        for is_new, positions in inserted:
            new = is_new.to_numpy(zero_copy_only=False)
            status[positions[new] - start] = _ACCEPTED
            status[positions[~new] - start] = _DUPLICATE
        return BatchOutcome(start, status, event_ids, event_types, errors, flags)

    def _quarantine_rows(
        self,
        decoded: Decoded,
        errors: dict[int, tuple[EventError, ...]],
        event_types: np.ndarray,
        event_ids: np.ndarray,
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
            rows["source"].append(decoded.source_of(pos))
            rows["position"].append(pos)
            rows["event_type"].append(event_types[pos - decoded.first_position])
            rows["event_id"].append(event_ids[pos - decoded.first_position])
            rows["reason"].append("; ".join(str(e) for e in reasons))
            rows["errors"].append(
                orjson.dumps(
                    [{"field": e.field, "code": e.code, "message": e.message} for e in reasons]
                ).decode()
            )
            rows["raw"].append(raw.encode("utf-8", "replace").decode("utf-8"))
            rows["raw_bytes"].append(raw_bytes)
        return pa.table(
            {c.name: pa.array(rows[c.name], arrow_type(c.kind)) for c in QUARANTINE.columns}
        )
