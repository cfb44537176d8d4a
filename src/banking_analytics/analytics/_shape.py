"""What analyses answer: typed result shapes that also read like the spec's dictionaries.

Each shape is a dataclass deriving from :class:`Shape`, defined once beside the
analysis that fills it. The API uses the shapes as its response models (FastAPI
and pydantic describe dataclasses in the OpenAPI document and serialise them in
field order) and the CLI renders them, so a figure added to an analysis reaches
both without being written again. Item access reads fields, as in
``perf["success_rate"]["average"]``; a shape is a read-only mapping of its fields,
equal to a mapping (a dict) with the same items. Shapes are declared with
``@dataclass(slots=True, eq=False)``: ``eq=False`` keeps that mapping equality
rather than the dataclass's own, which would find a shape unequal to any dict.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cache
from typing import Any, ClassVar

from banking_analytics.metrics import TimeWindow

__all__ = ["Period", "Shape"]


class Shape(Mapping[str, Any]):
    """Base of the result shapes: a dataclass whose fields are its items too."""

    __slots__ = ()
    # Read by pydantic when a shape is a response model: unknown fields are an error, and
    # an attribute's docstring is its description in the OpenAPI document. A plain dict
    # (pydantic's ConfigDict is one) keeps the analytics layer free of pydantic.
    __pydantic_config__: ClassVar[dict[str, Any]] = {
        "extra": "forbid",
        "use_attribute_docstrings": True,
    }

    def __getitem__(self, key: str) -> Any:
        # Fields only: a method's name (``keys``) is not an item.
        if key not in _field_names(type(self)):
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_field_names(type(self)))

    def __len__(self) -> int:
        return len(_field_names(type(self)))


@cache
def _field_names(shape: type[Shape]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(shape))  # type: ignore[arg-type]  # shapes are dataclasses


@dataclass(slots=True, eq=False)
class Period(Shape):
    """The window an answer covers: ``[start, end)`` in UTC, and what it was asked as."""

    label: str
    start: datetime
    end: datetime

    @classmethod
    def of(cls, window: TimeWindow) -> Period:
        return cls(label=window.label, start=window.start, end=window.end)
