"""What is loaded on first use: a package's names (PEP 562) and the facade's namespaces."""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, Self, TypeVar, overload

__all__ = ["lazy_names", "namespace"]

Owner = TypeVar("Owner")
T = TypeVar("T")


def lazy_names(
    package: str, homes: Mapping[str, str], public: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__``: each name in ``homes`` is imported
    from the module there on first use, then kept in the package's namespace."""
    names = sorted(public)

    def attribute(name: str) -> Any:
        try:
            module = homes[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), name)
        vars(sys.modules[package])[name] = value  # looked up once
        return value

    def listing() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names})

    return attribute, listing


class namespace(Generic[Owner, T]):  # noqa: N801  # used as a decorator, like property
    """A domain namespace of the facade, built by the decorated method on first access.

    The method imports its analyses itself, so they load only when used. Built
    once per object even when threads ask at once, then kept in the object's
    ``__dict__``, where later look-ups find it without calling this descriptor.
    """

    def __init__(self, build: Callable[[Owner], T]) -> None:
        self._build = build
        self.__doc__ = build.__doc__
        self._name = build.__name__
        self._lock = threading.Lock()

    @overload
    def __get__(self, instance: None, owner: type[Owner]) -> Self: ...
    @overload
    def __get__(self, instance: Owner, owner: type[Owner]) -> T: ...
    def __get__(self, instance: Owner | None, owner: type[Owner]) -> Self | T:
        if instance is None:
            return self
        built: dict[str, Any] = vars(instance)
        with self._lock:
            if self._name not in built:
                built[self._name] = self._build(instance)
        value: T = built[self._name]
        return value
