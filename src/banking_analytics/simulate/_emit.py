"""From coded rows to Arrow chunks, released in time order.

Generators produce *batches*: dicts of equally long NumPy columns holding
small integer codes, keys and microsecond times. A :class:`Stream` per event
type holds them until the simulation has moved past their time, sorts what it
releases by ``occurred_at`` and writes full chunks to the sink, so memory stays
bounded by about one chunk per event type.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from banking_analytics.events import Kind, arrow_type, schema_for, stored_arrow_schema
from banking_analytics.simulate._catalog import (
    ACTIONS,
    AGGREGATORS,
    FEATURES,
    PLANS,
    string_table,
)
from banking_analytics.simulate._config import EventSink
from banking_analytics.simulate._ids import base62_strings, derive_key, hex_strings, uuid_strings
from banking_analytics.simulate._world import World
from banking_analytics.vocabulary import (
    AuthMethod,
    ConnectionFlow,
    DeviceType,
    DiscountDuration,
    EventType,
    Outcome,
    PerformanceMetric,
    Platform,
    SubscriptionEventKind,
    SubscriptionStatus,
    SyncOutcome,
    SyncTrigger,
)

__all__ = [
    "NULL_TIME",
    "PROPERTIES",
    "SOURCES",
    "UNITS",
    "Batch",
    "Encoder",
    "Stream",
    "concat",
    "select",
]

Batch = dict[str, NDArray[Any]]

_TIMESTAMP = arrow_type(Kind.TIMESTAMP)
#: Microsecond time standing for "no value".
NULL_TIME = np.iinfo(np.int64).min

#: Small JSON objects some events carry in ``properties``, per event type.
PROPERTIES: dict[EventType, tuple[str, ...]] = {
    EventType.CONNECTION_ATTEMPT: (
        '{"exit_status":"requires_credentials"}',
        '{"exit_status":"institution_not_found"}',
        '{"exit_status":"requires_code"}',
        '{"exit_status":"requires_account_selection"}',
        '{"mfa_type":"code"}',
    ),
    EventType.BEHAVIOR: (
        '{"app_version":"7.12.0"}',
        '{"app_version":"7.13.1"}',
        '{"app_version":"7.14.0","experiment":"home_v2"}',
    ),
    EventType.SUBSCRIPTION: (
        '{"coupon":"LAUNCH20"}',
        '{"coupon":"WINBACK50"}',
        '{"coupon":"SAVE_FLAT"}',
        '{"dunning_attempt":1}',
        '{"dunning_attempt":2}',
        '{"dunning_attempt":3}',
    ),
    EventType.SYNC_RUN: (),
    EventType.PERFORMANCE_METRIC: (),
}
SOURCES: tuple[str, ...] = ("paywall", "in_app_banner", "email", "onboarding", "organic")
UNITS: tuple[str, ...] = ("ratio", "ms", "count", "users", "syncs_per_connection", "USD")

#: Event types in a fixed order; the position keys event ids.
_TYPE_ORDER: tuple[EventType, ...] = tuple(EventType)


def concat(batches: list[Batch]) -> Batch:
    """Rows of several batches, in order."""
    if len(batches) == 1:
        return batches[0]
    return {name: np.concatenate([b[name] for b in batches]) for name in batches[0]}


def select(batch: Batch, rows: NDArray[Any] | slice) -> Batch:
    """The rows picked by a mask or index array."""
    return {name: column[rows] for name, column in batch.items()}


def _rows(batch: Batch) -> int:
    return int(batch["occurred_at"].size)


def _codes(table: pa.Array, codes: NDArray[Any]) -> pa.Array:
    """Values of ``table`` at ``codes``; negative codes give nulls."""
    missing = codes < 0
    indices = pa.array(codes.astype(np.int32), mask=missing if missing.any() else None)
    return table.take(indices)


def _ints(values: NDArray[Any]) -> pa.Array:
    """Integers with -1 for null."""
    missing = values < 0
    return pa.array(values.astype(np.int64), pa.int64(), mask=missing if missing.any() else None)


def _floats(values: NDArray[np.float64]) -> pa.Array:
    """Floats with NaN for null."""
    missing = np.isnan(values)
    return pa.array(values, pa.float64(), mask=missing if missing.any() else None)


def _times(values: NDArray[np.int64]) -> pa.Array:
    missing = values == NULL_TIME
    return pa.array(values, _TIMESTAMP, mask=missing if missing.any() else None)


def _bools(values: NDArray[np.int8]) -> pa.Array:
    """Booleans coded 1/0, with -1 for null."""
    missing = values < 0
    return pa.array(values == 1, pa.bool_(), mask=missing if missing.any() else None)


def _enum_table(values: tuple[StrEnum, ...]) -> pa.StringArray:
    return string_table([v.value for v in values])


class Encoder:
    """Turns coded batches of each event type into Arrow tables of the stored schema."""

    def __init__(self, world: World) -> None:
        seed = world.config.seed
        self._key_event = derive_key(seed, 20)
        self._key_session = derive_key(seed, 21)
        self._key_attempt = derive_key(seed, 22)
        self._key_link = derive_key(seed, 23)
        self._key_subscription = derive_key(seed, 24)
        self._institutions = world.institutions
        self._user_ids = world.users.ids
        self._connection_ids = world.users.connection_ids
        self._errors = world.errors
        self._features = _enum_table(FEATURES)
        self._aggregators = _enum_table(AGGREGATORS)
        self._properties = {t: string_table(list(p)) for t, p in PROPERTIES.items()}
        self._enums = {
            "flow": _enum_table(tuple(ConnectionFlow)),
            "auth_method": _enum_table(tuple(AuthMethod)),
            "connection_outcome": _enum_table(tuple(Outcome)),
            "sync_outcome": _enum_table(tuple(SyncOutcome)),
            "trigger": _enum_table(tuple(SyncTrigger)),
            "device": _enum_table(tuple(DeviceType)),
            "platform": _enum_table(tuple(Platform)),
            "kind": _enum_table(tuple(SubscriptionEventKind)),
            "status": _enum_table(tuple(SubscriptionStatus)),
            "metric_type": _enum_table(tuple(PerformanceMetric)),
        }
        self._actions = string_table(list(ACTIONS))
        self._sources = string_table(list(SOURCES))
        self._units = string_table(list(UNITS))
        self._plan_ids = string_table([p.plan_id for p in PLANS])
        self._tiers = string_table([p.tier for p in PLANS])
        self._plan_amounts = np.asarray([p.unit_amount for p in PLANS], dtype=np.int64)
        self._plan_intervals = string_table([p.interval.value for p in PLANS])
        # Every price is in US dollars, so revenue adds up without exchange rates.
        self._currency = string_table(["USD"])
        self._columns: dict[EventType, Callable[[Batch], dict[str, pa.Array]]] = {
            EventType.PERFORMANCE_METRIC: self._performance_metric,
            EventType.CONNECTION_ATTEMPT: self._connection_attempt,
            EventType.SYNC_RUN: self._sync_run,
            EventType.BEHAVIOR: self._behavior,
            EventType.SUBSCRIPTION: self._subscription,
        }
        self._schemas = {
            t: pa.schema(
                [f for f in stored_arrow_schema(schema_for(t)) if f.name != "ingest_flags"]
            )
            for t in _TYPE_ORDER
        }

    def table(self, event_type: EventType, batch: Batch, first_row: int) -> pa.Table:
        """The Arrow table of a batch whose rows are the type's rows ``first_row`` onwards."""
        n = _rows(batch)
        rows = np.arange(first_row, first_row + n, dtype=np.uint64)
        columns = self._envelope(event_type, batch, rows)
        columns.update(self._columns[event_type](batch))
        schema = self._schemas[event_type]
        return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)

    def _ids(
        self, keys: NDArray[np.uint64], make: Callable[[NDArray[np.uint64]], pa.Array]
    ) -> pa.Array:
        """Formatted ids for non-zero keys, null where the key is 0."""
        present = keys != 0
        if present.all():
            return make(keys)
        strings = make(keys[present])
        codes = np.full(keys.size, -1, dtype=np.int64)
        codes[present] = np.arange(int(present.sum()))
        return _codes(strings, codes)

    def _envelope(
        self, event_type: EventType, batch: Batch, rows: NDArray[np.uint64]
    ) -> dict[str, pa.Array]:
        n = rows.size
        type_key = np.uint64(_TYPE_ORDER.index(event_type)) << np.uint64(48)
        return {
            "event_id": uuid_strings(rows | type_key, self._key_event),
            "schema_version": pa.array(np.ones(n, dtype=np.int64)),
            "occurred_at": _times(batch["occurred_at"]),
            "sent_at": pa.nulls(n, _TIMESTAMP),
            "user_id": _codes(self._user_ids, batch["user"]),
            "session_id": self._ids(
                batch["session"], lambda k: hex_strings("ses_", k, self._key_session)
            ),
            "properties": _codes(self._properties[event_type], batch["properties"]),
            "received_at": _times(batch["received_at"]),
        }

    def _errors_of(self, codes: NDArray[np.int16]) -> dict[str, pa.Array]:
        return {
            "error_category": _codes(self._errors.categories, codes),
            "error_code": _codes(self._errors.codes, codes),
            "error_type": _codes(self._errors.types, codes),
        }

    def _institution(self, codes: NDArray[np.int16]) -> dict[str, pa.Array]:
        return {
            "institution_id": _codes(self._institutions.ids, codes),
            "aggregator": _codes(
                self._aggregators,
                np.where(codes >= 0, self._institutions.aggregator[np.maximum(codes, 0)], -1),
            ),
        }

    def _performance_metric(self, batch: Batch) -> dict[str, pa.Array]:
        return {
            "metric_type": _codes(self._enums["metric_type"], batch["metric_type"]),
            "feature": _codes(self._features, batch["feature"]),
            "value": _floats(batch["value"]),
            "unit": _codes(self._units, batch["unit"]),
            **self._institution(batch["institution"]),
        }

    def _connection_attempt(self, batch: Batch) -> dict[str, pa.Array]:
        institution = batch["institution"]
        return {
            "attempt_id": hex_strings("att_", batch["attempt"], self._key_attempt),
            "link_session_id": uuid_strings(batch["link_session"], self._key_link),
            **self._institution(institution),
            "institution_name": _codes(self._institutions.names, institution),
            "feature": _codes(self._features, batch["feature"]),
            "flow": _codes(self._enums["flow"], batch["flow"]),
            "auth_method": _codes(self._enums["auth_method"], batch["auth_method"]),
            "started_at": _times(batch["started_at"]),
            "credentials_submitted_at": _times(batch["credentials_submitted_at"]),
            "ended_at": _times(batch["ended_at"]),
            "outcome": _codes(self._enums["connection_outcome"], batch["outcome"]),
            **self._errors_of(batch["error"]),
            "latency_ms": _floats(batch["latency_ms"]),
            "platform": _codes(self._enums["platform"], batch["platform"]),
        }

    def _sync_run(self, batch: Batch) -> dict[str, pa.Array]:
        return {
            "connection_id": _codes(self._connection_ids, batch["user"]),
            **self._institution(batch["institution"]),
            "feature": _codes(self._features, batch["feature"]),
            "trigger": _codes(self._enums["trigger"], batch["trigger"]),
            "started_at": _times(batch["started_at"]),
            "ended_at": _times(batch["ended_at"]),
            "outcome": _codes(self._enums["sync_outcome"], batch["outcome"]),
            **self._errors_of(batch["error"]),
            "records_added": _ints(batch["records_added"]),
            "records_modified": _ints(batch["records_modified"]),
            "records_removed": _ints(batch["records_removed"]),
            "expected_interval_s": _floats(batch["expected_interval_s"]),
        }

    def _behavior(self, batch: Batch) -> dict[str, pa.Array]:
        return {
            "feature": _codes(self._features, batch["feature"]),
            "action": _codes(self._actions, batch["action"]),
            "duration_s": _floats(batch["duration_s"]),
            "success": _bools(batch["success"]),
            "device": _codes(self._enums["device"], batch["device"]),
            "platform": _codes(self._enums["platform"], batch["platform"]),
        }

    def _subscription(self, batch: Batch) -> dict[str, pa.Array]:
        plan = batch["plan"]
        discounted = ~np.isnan(batch["discount_percent"]) | (batch["discount_amount"] >= 0)
        return {
            "kind": _codes(self._enums["kind"], batch["kind"]),
            "subscription_id": base62_strings(
                "sub_", batch["subscription"], self._key_subscription, 24
            ),
            "plan": _codes(self._plan_ids, plan),
            "tier": _codes(self._tiers, plan),
            "unit_amount": pa.array(self._plan_amounts[plan], pa.int64()),
            "interval": _codes(self._plan_intervals, plan),
            "interval_count": pa.array(np.ones(plan.size, dtype=np.int64)),
            "quantity": _ints(batch["quantity"]),
            "discount_percent": _floats(batch["discount_percent"]),
            "discount_amount": _ints(batch["discount_amount"]),
            # The simulated coupons last as long as the subscription.
            "discount_duration": pa.array(
                [DiscountDuration.FOREVER.value if d else None for d in discounted.tolist()],
                pa.string(),
            ),
            "discount_months": pa.nulls(plan.size, pa.int64()),
            "period_end": pa.nulls(plan.size, arrow_type(Kind.TIMESTAMP)),
            "currency": _codes(self._currency, np.zeros(plan.size, dtype=np.int8)),
            "status": _codes(self._enums["status"], batch["status"]),
            "amount": _ints(batch["amount"]),
            "attributed_feature": _codes(self._features, batch["attributed_feature"]),
            "attribution_source": _codes(self._sources, batch["attribution_source"]),
        }


class Stream:
    """Buffers one event type's rows and releases them to the sink in time order.

    The simulation promises that, once it calls :meth:`release` with a time,
    it never adds a row that occurred earlier; so released rows can be sorted
    and queued, and every full chunk written at once.
    """

    def __init__(
        self,
        event_type: EventType,
        encoder: Encoder,
        sink: EventSink,
        chunk_events: int,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.event_type = event_type
        self.emitted = 0
        self._encoder = encoder
        self._sink = sink
        self._chunk = chunk_events
        self._progress = progress
        self._pending: list[Batch] = []
        self._ready: list[Batch] = []
        self._ready_rows = 0

    def add(self, batch: Batch) -> None:
        if _rows(batch):
            self._pending.append(batch)

    def release(self, before_us: int) -> Batch | None:
        """Queue the rows that occurred before ``before_us``; write full chunks.

        Returns the newly released rows (sorted), or None when there are none.
        """
        if not self._pending:
            return None
        pending = concat(self._pending)
        due = pending["occurred_at"] < before_us
        later = ~due
        self._pending = [select(pending, later)] if later.any() else []
        if not due.any():
            return None
        released = select(pending, due) if later.any() else pending
        order = np.argsort(released["occurred_at"], kind="stable")
        released = select(released, order)
        self._ready.append(released)
        self._ready_rows += _rows(released)
        while self._ready_rows >= self._chunk:
            self._write(self._chunk)
        return released

    def close(self, before_us: int) -> None:
        """Release everything before ``before_us``, write it, and drop the rest."""
        self.release(before_us)
        self._pending = []
        if self._ready_rows:
            self._write(self._ready_rows)

    def _write(self, rows: int) -> None:
        ready = concat(self._ready)
        head = select(ready, slice(0, rows)) if rows < self._ready_rows else ready
        rest = self._ready_rows - rows
        self._ready = [select(ready, slice(rows, None))] if rest else []
        self._ready_rows = rest
        table = self._encoder.table(self.event_type, head, self.emitted)
        self.emitted += rows
        self._sink(self.event_type, table)
        if self._progress is not None:
            self._progress(rows)
