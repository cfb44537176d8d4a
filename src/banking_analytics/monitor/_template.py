"""Label and annotation templates, in the spirit of Prometheus's: ``{{ $labels.institution }}``,
``{{ $value }}``, ``{{ $value | percent }}``, ``{{ $severity }}``, ``{{ $threshold }}``.

A missing label renders as nothing (as in Prometheus); a missing value as ``no data``.
Numbers render with four significant digits; ``percent`` multiplies a ratio by 100;
``duration`` writes seconds as ``1h30m``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta

from banking_analytics.monitor._durations import format_duration

__all__ = ["check_template", "render_template"]

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
_EXPRESSION = re.compile(
    r"^\s*\$(?:labels\.([A-Za-z_][A-Za-z0-9_]*)|(value|severity|threshold))"
    r"\s*(?:\|\s*(percent|duration)\s*)?$"
)


def check_template(text: str) -> None:
    """``ValueError`` naming the first placeholder that is not understood."""
    for match in _PLACEHOLDER.finditer(text):
        if _EXPRESSION.match(match[1]) is None:
            raise ValueError(
                f"{{{{{match[1]}}}}} is not understood; use {{{{ $labels.NAME }}}}, "
                "{{ $value }}, {{ $severity }} or {{ $threshold }}, optionally | percent "
                "or | duration"
            )
    if "{{" in _PLACEHOLDER.sub("", text):
        raise ValueError("a {{ is not closed by }}")


def _number(value: float | None, how: str | None) -> str:
    if value is None:
        return "no data"
    if how == "percent":
        return f"{value * 100:.4g}%"
    if how == "duration":
        return format_duration(timedelta(seconds=round(value)))
    return f"{value:.4g}"


def render_template(
    text: str,
    labels: Mapping[str, str],
    value: float | None,
    severity: str | None,
    threshold: float | None,
) -> str:
    """The text with each placeholder replaced (the template was checked when the rule was)."""

    def replace(match: re.Match[str]) -> str:
        parsed = _EXPRESSION.match(match[1])
        assert parsed is not None, "templates are checked when a rule is made"
        label, name, how = parsed.groups()
        if label is not None:
            return labels.get(label, "")
        if name == "severity":
            return severity or ""
        return _number(value if name == "value" else threshold, how)

    return _PLACEHOLDER.sub(replace, text)
