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

import ast
import inspect
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cache
from itertools import pairwise
from typing import Any, ClassVar

from banking_analytics.metrics import TimeWindow

__all__ = ["Period", "Shape"]


class Shape(Mapping[str, Any]):
    """Base of the result shapes: a dataclass whose fields are its items too."""

    __slots__ = ()
    # Read by pydantic when a shape is a response model: unknown fields are an error. A
    # plain dict (pydantic's ConfigDict is one) keeps the analytics layer free of pydantic.
    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> Any:
        """Pydantic's JSON schema of the shape, each field described by the docstring
        under it in the class (as pydantic's ``use_attribute_docstrings`` does; that reads
        each class's module again whenever an API app is built, about 1.5 s an app, where
        this reads each module once, and only when the OpenAPI document is asked for)."""
        schema = handler(core_schema)
        properties = handler.resolve_ref_schema(schema).get("properties", {})
        for name, doc in _attribute_docstrings(cls).items():
            if name in properties:
                properties[name].setdefault("description", doc)
        return schema

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
def _module_tree(module: str) -> ast.Module:
    return ast.parse(inspect.getsource(sys.modules[module]))


@cache
def _attribute_docstrings(shape: type[Shape]) -> dict[str, str]:
    """The docstrings under the class's own annotated attributes, by attribute."""
    body: list[ast.stmt] = _module_tree(shape.__module__).body
    for name in shape.__qualname__.split("."):
        found = [n for n in body if isinstance(n, ast.ClassDef) and n.name == name]
        if not found:
            return {}
        body = found[-1].body
    docs = {}
    for attribute, after in pairwise(body):
        if (
            isinstance(attribute, ast.AnnAssign)
            and isinstance(attribute.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[attribute.target.id] = inspect.cleandoc(after.value.value)
    return docs


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
