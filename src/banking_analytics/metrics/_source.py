"""Sources: the named relations metrics are computed over.

A source is a relation (an event table, or a query built with sqlglot over
other sources), its time column (what a query's window and buckets cut), its
entity keys (user, connection, subscription, institution), the fields it
exposes (which give its dimensions and check filter values) and the tables it
depends on (whose data versions key cached answers). Every event table is a
source named by its event type; derived sources are defined over them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

from banking_analytics.events import SCHEMAS, Field, Kind
from banking_analytics.store.statements import column
from banking_analytics.vocabulary import EventType

__all__ = ["DERIVED_SOURCES", "EVENT_SOURCES", "SOURCES", "Source", "event_source"]

#: The entities a source can be keyed by, and the column that holds each.
_ENTITY_COLUMNS = {
    "user": "user_id",
    "connection": "connection_id",
    "subscription": "subscription_id",
    "institution": "institution_id",
}


@dataclass(frozen=True, slots=True)
class Source:
    """A named relation with a time column.

    ``relation`` is a table name, or a function building the relation's query
    (a sqlglot select over other sources' relations). ``fields`` are the
    columns it exposes, typed as event fields are.
    """

    name: str
    relation: str | Callable[[], exp.Query]
    time_column: str
    fields: tuple[Field, ...]
    depends_on: tuple[str, ...]
    description: str
    #: Entity name -> column, for the entities this source is keyed by.
    entities: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.time_column not in self.columns:
            raise ValueError(f"source {self.name!r} has no time column {self.time_column!r}")
        if not self.entities:
            found = {e: c for e, c in _ENTITY_COLUMNS.items() if c in self.columns}
            object.__setattr__(self, "entities", found)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def from_clause(self) -> exp.Expr:
        """What a statement reads rows from: the table, or the relation as a subquery."""
        if isinstance(self.relation, str):
            return exp.to_table(self.relation)
        return exp.Subquery(this=self.relation(), alias=exp.TableAlias(this=_name(self.name)))


def _name(text: str) -> exp.Identifier:
    return exp.to_identifier(text, quoted=True)


def event_source(event_type: EventType) -> Source:
    """The source of one event type: its table as stored."""
    schema = SCHEMAS[event_type]
    return Source(
        event_type.value,
        schema.table,
        "occurred_at",
        schema.stored_fields,
        (schema.table,),
        schema.doc,
    )


EVENT_SOURCES: dict[EventType, Source] = {et: event_source(et) for et in EventType}


def _first_seen() -> exp.Query:
    """Each user's first behaviour event: ``min(occurred_at)`` per user, over all time."""
    behavior = EVENT_SOURCES[EventType.BEHAVIOR]
    assert isinstance(behavior.relation, str)
    return (
        sqlglot.select(
            column("user_id"),
            exp.Min(this=column("occurred_at")).as_("first_seen_at"),
            copy=False,
        )
        .from_(behavior.relation, copy=False)
        .group_by(column("user_id"), copy=False)
    )


_USER_FIELD = SCHEMAS[EventType.BEHAVIOR].field("user_id")

#: Sources defined over other sources.
DERIVED_SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "user_first_seen",
            _first_seen,
            "first_seen_at",
            (
                _USER_FIELD,
                Field("first_seen_at", Kind.TIMESTAMP, "The user's first behaviour event."),
            ),
            EVENT_SOURCES[EventType.BEHAVIOR].depends_on,
            "Each user once, at their first behaviour event (over all time): cut a window "
            "to count the users new in it.",
        ),
    )
}

#: Every source, by name.
SOURCES: dict[str, Source] = {
    **{s.name: s for s in EVENT_SOURCES.values()},
    **DERIVED_SOURCES,
}
