"""Structural decoding: raw input into typed Arrow columns, one table per event type.

Decoding only establishes *types* (is ``value`` a number, is ``event_type`` one
we know, are there unknown fields). Whether a value is *allowed* (ranges,
lengths, patterns, times) is the validator's job, which every input path
shares. JSON and Python records go through msgspec structs generated from the
field specs; Arrow, Parquet and CSV input is cast column by column, falling back
to the record path for a chunk whose columns do not cast, so every bad value is
reported against its own row.
"""

from __future__ import annotations

import bisect
import gc
import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Union

import msgspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from banking_analytics.events import SCHEMAS, EventSchema, Kind, arrow_type
from banking_analytics.ingest._results import EventError
from banking_analytics.vocabulary import EventType

__all__ = [
    "Decoded",
    "decode_arrow",
    "decode_json_lines",
    "decode_records",
    "raw_text",
]

_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_PY_TYPES: dict[Kind, Any] = {
    Kind.IDENTIFIER: str,
    Kind.TEXT: str,
    Kind.ENUM: str,
    Kind.UUID: str,
    Kind.FLOAT: float,
    Kind.INTEGER: _Int64,
    Kind.BOOLEAN: bool,
    Kind.TIMESTAMP: datetime,
}
#: Columns of an Arrow input that are not event fields but are understood.
_ARROW_META_COLUMNS = frozenset({"event_type", "received_at", "ingest_flags"})


def _struct(schema: EventSchema, *, raw_json: bool) -> type[msgspec.Struct]:
    """A msgspec struct for one event type; ``properties`` stays raw JSON when decoding JSON."""
    fields: list[tuple[str, Any, Any]] = []
    for f in schema.input_fields:
        if f.kind is Kind.JSON:
            if raw_json:
                fields.append((f.name, msgspec.Raw, msgspec.field(default_factory=msgspec.Raw)))
            else:
                fields.append((f.name, dict[str, Any] | None, None))
        else:
            fields.append((f.name, _PY_TYPES[f.kind] | None, None))
    return msgspec.defstruct(
        f"{schema.event_type.value}_{'json' if raw_json else 'py'}",
        fields,
        forbid_unknown_fields=True,
        tag_field="event_type",
        tag=schema.event_type.value,
    )


_JSON_STRUCTS = {t: _struct(s, raw_json=True) for t, s in SCHEMAS.items()}
_PY_STRUCTS = {t: _struct(s, raw_json=False) for t, s in SCHEMAS.items()}
_TYPE_OF_STRUCT = {
    **{cls: t for t, cls in _JSON_STRUCTS.items()},
    **{cls: t for t, cls in _PY_STRUCTS.items()},
}
_JSON_DECODER: Any = msgspec.json.Decoder(Union[tuple(_JSON_STRUCTS.values())])  # noqa: UP007
_PY_UNION: Any = Union[tuple(_PY_STRUCTS.values())]  # noqa: UP007
#: msgspec.convert rebuilds its plan for a Union on every call (14 µs per event) but
#: keeps one per Struct class (2 µs): records naming a known type convert to it directly,
#: the rest through the Union, which words the error.
_PY_STRUCT_NAMED = {t.value: cls for t, cls in _PY_STRUCTS.items()}

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?:\.(?P<field>[A-Za-z_][A-Za-z0-9_]*))?[^`]*`)?$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]*)`")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]*)`")


def _validation_error(exc: msgspec.ValidationError) -> EventError:
    text = str(exc)
    if m := _UNKNOWN.match(text):
        name = m["field"]
        return EventError(name, "unknown_field", "is not a field of this event type")
    if m := _MISSING.match(text):
        return EventError(m["field"], "missing", "is required")
    m = _AT.match(text)
    assert m is not None  # the pattern matches any string
    name, msg = m["field"], m["msg"]
    if name == "event_type" or (name is None and msg.startswith("Expected `object`")):
        if name is None:
            return EventError(None, "not_an_object", "each event must be a JSON object")
        choices = ", ".join(t.value for t in EventType)
        return EventError("event_type", "not_allowed", f"must be one of: {choices}")
    if msg == "Number out of range":
        return EventError(name, "out_of_range", "number is out of range")
    code = "wrong_type" if msg.startswith("Expected") else "invalid"
    return EventError(name, code, msg[0].lower() + msg[1:])


@dataclass(slots=True)
class Decoded:
    """A decoded batch: typed tables per event type plus the events that failed to decode.

    Positions are ``first_position .. first_position + size - 1``; every table
    carries a ``_position`` column. ``raw(position)`` gives the original payload
    (for quarantine), ``meta`` the event type and id of failed events where known.
    """

    first_position: int
    size: int
    #: Typed tables per event type (each with a ``_position`` column).
    arrow: dict[EventType, list[pa.Table]] = field(default_factory=dict)
    #: Decoded records not yet turned into columns: (positions, structs) per type.
    records: dict[EventType, tuple[list[int], list[msgspec.Struct]]] = field(default_factory=dict)
    failures: dict[int, tuple[EventError, ...]] = field(default_factory=dict)
    meta: dict[int, tuple[str | None, str | None]] = field(default_factory=dict)
    raw: Callable[[int], str] = field(default=lambda _: "")
    #: (first position, source) of each part, ascending; names where rejects came from.
    sources: list[tuple[int, str]] = field(default_factory=list)

    def source_of(self, position: int) -> str:
        found = "unknown"
        for start, source in self.sources:
            if start > position:
                break
            found = source
        return found

    def materialize(self) -> None:
        """Turn pending records into typed columns now (e.g. on a prefetching thread)."""
        if self.records:
            with gc_paused():
                built = _tables_from_structs(self.records)
            for event_type, table in built.items():
                self.arrow.setdefault(event_type, []).append(table)
            self.records = {}

    @property
    def tables(self) -> dict[EventType, pa.Table]:
        """One typed table per event type, each with a ``_position`` column."""
        self.materialize()
        return {
            event_type: parts[0] if len(parts) == 1 else pa.concat_tables(parts)
            for event_type, parts in self.arrow.items()
        }

    @staticmethod
    def concat(parts: Sequence[Decoded]) -> Decoded:
        """One batch out of several, renumbered consecutively from the first's first position.

        A group commit of single events concatenates thousands of one-event parts,
        so the loop touches only what a part holds.
        """
        if len(parts) == 1:
            return parts[0]
        start = parts[0].first_position
        out = Decoded(start, sum(p.size for p in parts))
        begins: list[int] = []  # each part's first position in ``out``
        nxt = start
        for part in parts:
            shift = nxt - part.first_position
            begins.append(nxt)
            for t, tables in part.arrow.items():
                out.arrow.setdefault(t, []).extend(
                    table.set_column(
                        table.schema.get_field_index("_position"),
                        "_position",
                        pc.add(table["_position"], pa.scalar(shift, pa.int64())),
                    )
                    for table in tables
                )
            for t, (positions, structs) in part.records.items():
                entry = out.records.get(t) or out.records.setdefault(t, ([], []))
                entry[0].extend([p + shift for p in positions] if shift else positions)
                entry[1].extend(structs)
            if part.failures:
                out.failures.update({p + shift: e for p, e in part.failures.items()})
            if part.meta:
                out.meta.update({p + shift: m for p, m in part.meta.items()})
            out.sources.extend((first + shift, source) for first, source in part.sources)
            nxt += part.size

        def raw(position: int) -> str:
            index = bisect.bisect_right(begins, position) - 1
            if index < 0 or position >= begins[index] + parts[index].size:
                raise IndexError(position)
            part = parts[index]
            return part.raw(position - begins[index] + part.first_position)

        out.raw = raw
        return out


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while decoding a bulk chunk.

    Decoding creates millions of short-lived, acyclic objects; left on, the
    collector rescans them again and again, which costs about a third of the
    decoding time. Nothing it could free is created in between.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _failure_meta(obj: object) -> tuple[str | None, str | None]:
    if isinstance(obj, Mapping):
        et, eid = obj.get("event_type"), obj.get("event_id")
        return (et if isinstance(et, str) else None, eid if isinstance(eid, str) else None)
    return (None, None)


def _too_large(size: int, limit: int) -> EventError:
    return EventError(None, "too_large", f"event is {size} bytes; the limit is {limit} bytes")


def _tables_from_structs(
    grouped: dict[EventType, tuple[list[int], list[msgspec.Struct]]],
) -> dict[EventType, pa.Table]:
    tables = {}
    for event_type, (positions, structs) in grouped.items():
        schema = SCHEMAS[event_type]
        columns = list(zip(*(msgspec.structs.astuple(s) for s in structs), strict=True))
        arrays: dict[str, pa.Array] = {"_position": pa.array(positions, pa.int64())}
        for spec, values in zip(schema.input_fields, columns, strict=True):
            if spec.kind is Kind.JSON:
                values = tuple(_json_text(v) for v in values)
            arrays[spec.name] = pa.array(values, type=arrow_type(spec.kind))
        tables[event_type] = pa.table(arrays)
    return tables


def _json_text(value: object) -> str | None:
    if isinstance(value, msgspec.Raw):
        return bytes(value).decode() if len(value) else None
    if value is None:
        return None
    return orjson.dumps(value).decode()


def decode_json_lines(
    lines: Sequence[bytes], first_position: int, max_bytes: int, source: str
) -> Decoded:
    """Decode one JSON object per item (a JSON Lines line or an API event body)."""
    out = Decoded(
        first_position,
        len(lines),
        raw=lambda p: lines[p - first_position].decode("utf-8", "replace"),
        sources=[(first_position, source)],
    )
    with gc_paused():
        _decode_lines(out, lines, max_bytes)
    return out


def _decode_lines(out: Decoded, lines: Sequence[bytes], max_bytes: int) -> None:
    first_position = out.first_position
    grouped = out.records
    decode = _JSON_DECODER.decode
    for i, line in enumerate(lines):
        pos = first_position + i
        if len(line) > max_bytes:
            out.failures[pos] = (_too_large(len(line), max_bytes),)
            continue
        try:
            obj = decode(line)
        except msgspec.ValidationError as exc:
            out.failures[pos] = (_validation_error(exc),)
            out.meta[pos] = _failure_meta(_loads_or_none(line))
            continue
        except msgspec.DecodeError as exc:
            detail = "empty line" if not line.strip() else f"malformed JSON ({exc})"
            out.failures[pos] = (EventError(None, "malformed_json", detail),)
            continue
        event_type = _TYPE_OF_STRUCT[type(obj)]
        entry = grouped.setdefault(event_type, ([], []))
        entry[0].append(pos)
        entry[1].append(obj)


def _loads_or_none(line: bytes) -> object:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None


def raw_text(record: object) -> str:
    """A record as JSON text for quarantine, keeping NaN, odd objects and lone surrogates."""
    text = json.dumps(record, default=repr, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(record, default=repr, ensure_ascii=True)
    return text


def decode_records(
    records: Sequence[object],
    first_position: int,
    max_bytes: int,
    source: str,
    *,
    strict: bool = True,
) -> Decoded:
    """Decode Python mappings (library calls, or rows of a file that did not cast).

    ``strict=False`` lets strings stand for numbers, booleans and times, as
    text formats such as CSV need.
    """
    out = Decoded(
        first_position,
        len(records),
        raw=lambda p: raw_text(records[p - first_position]),
        sources=[(first_position, source)],
    )
    grouped = out.records
    for i, record in enumerate(records):
        pos = first_position + i
        if type(record) is not dict and not isinstance(record, Mapping):  # dict: fast path
            out.failures[pos] = (EventError(None, "not_an_object", "each event must be an object"),)
            continue
        if isinstance(record.get("event_id"), uuid.UUID):
            record = {**record, "event_id": str(record["event_id"])}
        if not strict:
            record = {k: v for k, v in record.items() if v is not None and v != ""}
        try:
            size = len(orjson.dumps(record, default=str))
        except (TypeError, orjson.JSONEncodeError):
            out.failures[pos] = (
                EventError(None, "not_json", "event holds values that are not JSON"),
            )
            out.meta[pos] = _failure_meta(record)
            continue
        if size > max_bytes:
            out.failures[pos] = (_too_large(size, max_bytes),)
            out.meta[pos] = _failure_meta(record)
            continue
        named = record.get("event_type")
        target = _PY_STRUCT_NAMED.get(named, _PY_UNION) if type(named) is str else _PY_UNION
        try:
            obj = msgspec.convert(record, target, strict=strict)
        except msgspec.ValidationError as exc:
            out.failures[pos] = (_validation_error(exc),)
            out.meta[pos] = _failure_meta(record)
            continue
        event_type = _TYPE_OF_STRUCT[type(obj)]
        entry = grouped.setdefault(event_type, ([], []))
        entry[0].append(pos)
        entry[1].append(obj)
    return out


def _cast_columns(
    schema: EventSchema, part: pa.Table, positions: pa.Array, keep_received_at: bool
) -> pa.Table | None:
    """The part's columns cast to the schema's types, or None if any value does not cast."""
    arrays: dict[str, pa.Array | pa.ChunkedArray] = {"_position": positions}
    n = part.num_rows
    for spec in schema.input_fields:
        target = arrow_type(spec.kind)
        if spec.name not in part.column_names:
            arrays[spec.name] = pa.nulls(n, target)
            continue
        column = part[spec.name]
        if column.type == target:
            arrays[spec.name] = column
            continue
        if pa.types.is_null(column.type):
            arrays[spec.name] = pa.nulls(n, target)
            continue
        try:
            arrays[spec.name] = pc.cast(column, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
    if keep_received_at:
        arrays["received_at"] = pc.cast(part["received_at"], arrow_type(Kind.TIMESTAMP))
    return pa.table(arrays)


def decode_arrow(
    table: pa.Table,
    first_position: int,
    max_bytes: int,
    source: str,
    *,
    event_type: EventType | None = None,
    strict: bool = True,
) -> Decoded:
    """Decode a columnar batch (Arrow, Parquet, CSV).

    Rows are split by their ``event_type`` column (or all take ``event_type``).
    A ``received_at`` column is kept as the receipt time: columnar input is a
    trusted bulk path (imports, the simulator). A non-null value in a column
    that is not a field of the row's event type rejects that row.
    """
    out = Decoded(
        first_position,
        table.num_rows,
        raw=lambda p: raw_text(table.slice(p - first_position, 1).to_pylist()[0]),
        sources=[(first_position, source)],
    )
    positions = pa.array(range(first_position, first_position + table.num_rows), pa.int64())
    if event_type is not None:
        types = pa.array([event_type.value] * table.num_rows, pa.string())
    elif "event_type" in table.column_names:
        types = pc.cast(table["event_type"], pa.string())
    else:
        for pos in range(first_position, first_position + table.num_rows):
            out.failures[pos] = (EventError("event_type", "missing", "is required"),)
        return out
    keep_received_at = "received_at" in table.column_names
    known = pc.is_in(types, value_set=pa.array([t.value for t in EventType]))
    for i in _true_indices(pc.invert(pc.fill_null(known, False))):
        pos = first_position + i
        present = types[i].is_valid
        out.failures[pos] = (
            EventError(
                "event_type",
                "not_allowed" if present else "missing",
                f"must be one of: {', '.join(t.value for t in EventType)}"
                if present
                else "is required",
            ),
        )
    for event_type_value in pc.unique(pc.filter(types, pc.fill_null(known, False))).to_pylist():
        et = EventType(event_type_value)
        schema = SCHEMAS[et]
        mask = pc.equal(types, event_type_value)
        part, part_positions = table.filter(mask), positions.filter(mask)
        allowed = {f.name for f in schema.input_fields} | _ARROW_META_COLUMNS
        extra_mask = None
        for extra in (c for c in part.column_names if c not in allowed):
            present = pc.is_valid(part[extra])
            extra_mask = present if extra_mask is None else pc.or_(extra_mask, present)
            for i in _true_indices(present):
                pos = part_positions[i].as_py()
                out.failures[pos] = (
                    *out.failures.get(pos, ()),
                    EventError(extra, "unknown_field", "is not a field of this event type"),
                )
        if extra_mask is not None:
            keep = pc.invert(extra_mask)
            part, part_positions = part.filter(keep), part_positions.filter(keep)
        typed = _cast_columns(schema, part, part_positions, keep_received_at)
        if typed is None:
            _decode_rows_instead(out, et, part, part_positions, max_bytes, strict)
        elif typed.num_rows:
            out.arrow[et] = [typed]
    return out


def _decode_rows_instead(
    out: Decoded,
    event_type: EventType,
    part: pa.Table,
    positions: pa.Array,
    max_bytes: int,
    strict: bool,
) -> None:
    """Decode rows one by one so each value that does not cast is reported on its row."""
    records = [
        {**row, "event_type": event_type.value}
        for row in part.drop_columns(
            [c for c in ("received_at", "ingest_flags") if c in part.column_names]
        ).to_pylist()
    ]
    decoded = decode_records(
        records, 0, max_bytes, out.source_of(out.first_position), strict=strict
    )
    pos_list = positions.to_pylist()
    out.failures.update({pos_list[p]: e for p, e in decoded.failures.items()})
    out.meta.update({pos_list[p]: m for p, m in decoded.meta.items()})
    for et, table in decoded.tables.items():
        mapped = pc.take(positions, table["_position"])
        table = table.set_column(0, "_position", mapped)
        if "received_at" in part.column_names:
            received = pc.take(part["received_at"], pc.index_in(mapped, value_set=positions))
            table = table.append_column(
                "received_at", pc.cast(received, arrow_type(Kind.TIMESTAMP))
            )
        out.arrow[et] = [table]


def _true_indices(mask: pa.Array | pa.ChunkedArray) -> Iterable[int]:
    return (int(i) for i in pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist())
