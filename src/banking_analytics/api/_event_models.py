"""Request models for single events, generated from the event schemas (one source of truth).

The models give the OpenAPI document exact field types; the ingestion pipeline
still validates every event, so the two cannot drift into accepting different
things: what the model lets through and the pipeline rejects comes back as a
422 naming the field.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    StrictBool,
    StringConstraints,
    create_model,
)
from pydantic import Field as PydanticField

from banking_analytics.api._types import IsoDateTime
from banking_analytics.events import Field, Kind, schema_for
from banking_analytics.vocabulary import EventType

__all__ = ["any_event_schema", "event_model"]

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


def _annotation(spec: Field) -> Any:
    match spec.kind:
        case Kind.IDENTIFIER | Kind.TEXT:
            return Annotated[
                str,
                StringConstraints(
                    min_length=1 if spec.kind is Kind.IDENTIFIER else 0,
                    max_length=spec.max_length,
                    pattern=spec.pattern,
                ),
            ]
        case Kind.ENUM:
            return Literal[spec.choices]
        case Kind.FLOAT:
            return float
        case Kind.INTEGER:
            return int
        case Kind.BOOLEAN:
            return StrictBool
        case Kind.TIMESTAMP:
            return IsoDateTime
        case Kind.UUID:
            return uuid.UUID
        case Kind.JSON:
            return dict[str, Any]
    raise AssertionError(spec.kind)


def _field(spec: Field, alias: str | None) -> tuple[Any, Any]:
    annotation = _annotation(spec)
    info = PydanticField(
        default=... if spec.required else None,
        description=spec.doc,
        ge=spec.ge,
        le=spec.le,
        validation_alias=AliasChoices(spec.name, alias) if alias else None,
    )
    return (annotation if spec.required else annotation | None), info


def event_model(
    event_type: EventType,
    name: str,
    *,
    aliases: dict[str, str] | None = None,
    tagged: bool = False,
) -> type[BaseModel]:
    """A strict model (unknown fields refused) of the fields a client sends for one event.

    ``aliases`` maps a field to a second accepted name (the spec's ``duration``
    for ``duration_s``); ``tagged`` adds the ``event_type`` field naming the type.
    """
    aliases = aliases or {}
    fields: dict[str, Any] = {
        spec.name: _field(spec, aliases.get(spec.name))
        for spec in schema_for(event_type).input_fields
    }
    if tagged:
        fields = {"event_type": (Literal[event_type.value], ...), **fields}
    model: type[BaseModel] = create_model(name, __config__=_STRICT, **fields)
    return model


def any_event_schema() -> dict[str, Any]:
    """JSON Schema of one event of any type, for documentation: a batch is not validated
    against it as a whole (each event is judged on its own, so one bad event cannot
    reject the others)."""
    return {
        "oneOf": [
            event_model(
                t, f"{t.value.title().replace('_', '')}Event", tagged=True
            ).model_json_schema()
            for t in EventType
        ]
    }
