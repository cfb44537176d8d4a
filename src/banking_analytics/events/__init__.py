"""Event schemas: what each kind of event carries, as typed data."""

from __future__ import annotations

import pyarrow as pa

from banking_analytics.events._fields import IDENTIFIER_PATTERN, Field, Kind
from banking_analytics.events._schemas import (
    CURRENT_SCHEMA_VERSION,
    ENVELOPE_FIELDS,
    SCHEMAS,
    SERVER_FIELDS,
    EventSchema,
    schema_for,
)

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "ENVELOPE_FIELDS",
    "IDENTIFIER_PATTERN",
    "SCHEMAS",
    "SERVER_FIELDS",
    "EventSchema",
    "Field",
    "Kind",
    "arrow_type",
    "schema_for",
    "stored_arrow_schema",
]

TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")

_ARROW_TYPES: dict[Kind, pa.DataType] = {
    Kind.IDENTIFIER: pa.string(),
    Kind.TEXT: pa.string(),
    Kind.ENUM: pa.string(),
    Kind.UUID: pa.string(),
    Kind.JSON: pa.string(),
    Kind.FLOAT: pa.float64(),
    Kind.INTEGER: pa.int64(),
    Kind.BOOLEAN: pa.bool_(),
    Kind.TIMESTAMP: TIMESTAMP_TYPE,
}


def arrow_type(kind: Kind) -> pa.DataType:
    """The Arrow type that carries a field of this kind between layers."""
    return _ARROW_TYPES[kind]


def stored_arrow_schema(schema: EventSchema) -> pa.Schema:
    """Arrow schema of a stored event table, in column order."""
    return pa.schema(
        [
            pa.field(f.name, arrow_type(f.kind), nullable=not f.required)
            for f in schema.stored_fields
        ]
    )
