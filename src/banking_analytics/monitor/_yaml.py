"""Rule files: YAML with a ``rules:`` list and/or an ``slos:`` list, checked with each
problem's line number."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from banking_analytics.monitor._rules import Problem, Rule, RuleError, _path_text
from banking_analytics.monitor._slo import Slo

__all__ = ["RuleFileError", "dump_rules", "load_yaml_with_lines", "parse_rules", "read_rule_file"]


class RuleFileError(ValueError):
    """A rule file that cannot be used; ``lines`` holds one ``FILE:LINE: where: what`` each."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = list(lines)
        super().__init__("\n".join(self.lines))


def load_yaml_with_lines(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """The document's data and its node tree (which knows each value's line)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}" if mark is not None else "1"
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleFileError([f"{source}:{line}: not valid YAML: {problem}"]) from None
    return data, node


def line_of(node: yaml.Node | None, path: Sequence[str | int]) -> int:
    """The line (from 1) of the value at ``path``, or of the nearest enclosing one present."""
    if node is None:
        return 1
    for part in path:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    # An unknown or misspelt key is reported at the key itself.
                    child = value if part != path[-1] else key
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1


def parse_rules(text: str, source: str) -> list[Rule | Slo]:
    """Every rule and SLO of a rule file, or :class:`RuleFileError` listing every problem by
    line."""
    data, node = load_yaml_with_lines(text, source)
    return rules_at(data, node, source)


#: A rule file's sections: each a list of definitions of one kind.
_SECTIONS = (("rules", Rule.from_dict), ("slos", Slo.from_dict))


def rules_at(data: Any, node: yaml.Node | None, source: str) -> list[Rule | Slo]:
    """The rules listed under ``rules:`` and the SLOs under ``slos:`` of a loaded document
    (at least one of them); their names are one namespace (an SLO's alerts carry its)."""
    problems: list[Problem] = []
    sections = [(k, make) for k, make in _SECTIONS if isinstance(data, dict) and k in data]
    if not sections:
        problems.append((("rules",), "a list of rules"))
    found: list[Rule | Slo] = []
    seen: dict[str, str] = {}
    for key, make in sections:
        listed = data[key]
        if not isinstance(listed, list):
            problems.append(((key,), f"a list of {'rules' if key == 'rules' else 'SLOs'}"))
            continue
        for index, entry in enumerate(listed):
            try:
                found.append(make(entry))
            except RuleError as exc:
                problems.extend(((key, index, *path), message) for path, message in exc.problems)
            name = entry.get("name") if isinstance(entry, dict) else None
            if not isinstance(name, str):
                continue
            if name in seen:
                problems.append(((key, index, "name"), f"{name!r} is already {seen[name]}"))
            seen.setdefault(name, f"{'rule' if key == 'rules' else 'SLO'} {index}")
    if problems:
        located = sorted((line_of(node, path), _path_text(path), m) for path, m in problems)
        raise RuleFileError([f"{source}:{line}: {where}: {m}" for line, where, m in located])
    return found


def read_rule_file(path: str) -> list[Rule | Slo]:
    """:func:`parse_rules` of a file; :class:`RuleFileError` when it cannot be read too."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError([f"{path}: cannot read: {exc}"]) from None
    return parse_rules(text, path)


def dump_rules(rules: Sequence[Rule | Slo]) -> str:
    """Rules and SLOs as a rule file :func:`parse_rules` reads back."""
    written: dict[str, list[dict[str, Any]]] = {}
    for rule in rules:
        written.setdefault("slos" if isinstance(rule, Slo) else "rules", []).append(rule.as_dict())
    return yaml.safe_dump(written, sort_keys=False, allow_unicode=True)
