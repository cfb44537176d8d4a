"""Field specifications: the typed data every event schema is made of.

A field spec says what a value must be. The structural decoder turns raw
input into typed columns, and the columnar validator enforces the rest of the
spec (ranges, lengths, patterns, cross-field order), so every input path obeys
the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["IDENTIFIER_PATTERN", "Field", "Kind"]

#: Identifiers (ids, codes, actions) are printable ASCII tokens without spaces,
#: quotes or semicolons, so a payload cannot smuggle markup or SQL through them.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9_.:@+=/\-]+$"


class Kind(StrEnum):
    """The logical type of a field; engines map each kind to a column type."""

    IDENTIFIER = "identifier"
    TEXT = "text"
    ENUM = "enum"
    FLOAT = "float"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"
    UUID = "uuid"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an event.

    ``required`` fields must be present and not null. ``ge``/``le`` bound
    numbers (floats must also be finite). ``max_length`` bounds text in
    characters; ``choices`` lists the allowed strings of an enum field.
    ``not_before`` names a timestamp field this one may not precede;
    ``ahead_allowed`` exempts a time from the "in the future" check.
    """

    name: str
    kind: Kind
    doc: str
    required: bool = False
    choices: tuple[str, ...] = ()
    ge: float | None = None
    le: float | None = None
    max_length: int | None = None
    not_before: str | None = None
    pattern: str | None = None
    #: A time that may lie ahead of receipt (a paid period's end), not a clock reading.
    ahead_allowed: bool = False

    def __post_init__(self) -> None:
        if self.kind is Kind.ENUM and not self.choices:
            raise ValueError(f"enum field {self.name!r} needs choices")
