"""Label matchers as Alertmanager writes them: ``name="value"``, ``name!="value"``,
``name=~"regex"`` and ``name!~"regex"``.

A regular expression is anchored at both ends (it must match the whole value),
and a label an alert does not carry reads as the empty string: ``team=""``
matches alerts without a ``team``, as in Alertmanager.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["MatchOp", "Matcher", "MatcherError", "matches_all", "parse_matchers"]

_MATCHER = re.compile(
    r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([^"\s]*))\s*$'
)


class MatcherError(ValueError):
    """A matcher that does not parse, or whose regular expression does not compile."""


class MatchOp(StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: MatchOp
    value: str

    def __post_init__(self) -> None:
        if self.op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise MatcherError(
                    f"{self}: the regular expression does not compile: {exc}"
                ) from None

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        if self.op is MatchOp.EQUAL:
            return value == self.value
        if self.op is MatchOp.NOT_EQUAL:
            return value != self.value
        found = re.fullmatch(self.value, value) is not None
        return found if self.op is MatchOp.REGEX else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op.value}"{escaped}"'

    @classmethod
    def parse(cls, text: str) -> Matcher:
        found = _MATCHER.match(text) if isinstance(text, str) else None
        if found is None:
            raise MatcherError(
                f'{text!r} is not a matcher like severity="critical" or institution=~"ins_.*"'
            )
        name, op, quoted, bare = found.groups()
        value = bare if quoted is None else re.sub(r"\\(.)", r"\1", quoted)
        return cls(name, MatchOp(op), value)


def parse_matchers(texts: Iterable[str]) -> tuple[Matcher, ...]:
    return tuple(Matcher.parse(text) for text in texts)


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
