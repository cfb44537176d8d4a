"""Query results from psycopg rows to Arrow, typed by the result's column type OIDs.

Types come from ``cursor.description``, not from the values, so an empty
result has the same column types as a full one.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa
from psycopg import Column
from psycopg.postgres import types as pg_types

from banking_analytics.events import Kind, arrow_type

__all__ = ["rows_to_arrow"]

_SCALAR_TYPES: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int2": pa.int64(),
    "int4": pa.int64(),
    "int8": pa.int64(),
    "oid": pa.int64(),
    "float4": pa.float64(),
    "float8": pa.float64(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "name": pa.string(),
    # The engine loads these three as their text form.
    "uuid": pa.string(),
    "json": pa.string(),
    "jsonb": pa.string(),
    "timestamptz": arrow_type(Kind.TIMESTAMP),
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
    "interval": pa.duration("us"),
    "bytea": pa.binary(),
}

_ARROW_BY_OID: dict[int, pa.DataType] = {}
for _name, _type in _SCALAR_TYPES.items():
    _info = pg_types[_name]
    _ARROW_BY_OID[_info.oid] = _type
    _ARROW_BY_OID[_info.array_oid] = pa.list_(_type)

_NUMERIC_OID = pg_types["numeric"].oid
_INT64 = range(-(2**63), 2**63)


def _is_whole(value: Decimal) -> bool:
    exponent = value.as_tuple().exponent
    return isinstance(exponent, int) and exponent >= 0 and int(value) in _INT64


def _numeric_column(values: Sequence[Decimal | None]) -> pa.Array:
    """``numeric`` as int64 when every value is written without a fraction, else float64.

    PostgreSQL answers ``sum(bigint)`` with numeric (``12``: int64) and
    ``avg(bigint)`` with numeric carrying fraction digits (``2.0000...``:
    float64, even when the average is whole). No values at all: float64.
    """
    present = [v for v in values if v is not None]
    if present and all(_is_whole(v) for v in present):
        return pa.array([None if v is None else int(v) for v in values], pa.int64())
    return pa.array([None if v is None else float(v) for v in values], pa.float64())


def _column(type_code: int, values: Sequence[Any]) -> pa.Array:
    if type_code == _NUMERIC_OID:
        return _numeric_column(values)
    known = _ARROW_BY_OID.get(type_code)
    if known is not None:
        return pa.array(values, known)
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # A type with no Arrow counterpart (ranges, geometric types...): its text.
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def rows_to_arrow(description: Sequence[Column], rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    """An Arrow table from fetched rows and the cursor's description."""
    columns: list[Sequence[Any]] = (
        list(zip(*rows, strict=True)) if rows else [()] * len(description)
    )
    return pa.Table.from_arrays(
        [_column(col.type_code, values) for col, values in zip(description, columns, strict=True)],
        names=[col.name for col in description],
    )
