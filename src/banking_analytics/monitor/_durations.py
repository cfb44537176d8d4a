"""Durations as Prometheus writes them: ``30s``, ``5m``, ``1h30m``, ``2d``, ``1w``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["format_duration", "latest_tick", "parse_duration"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_UNITS = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
}
# Units largest first, each at most once: Prometheus's own duration grammar.
# At most six digits a unit: enough for any window, and no overflow of timedelta.
_DURATION = re.compile(
    r"^(?:([0-9]{1,6})w)?(?:([0-9]{1,6})d)?(?:([0-9]{1,6})h)?(?:([0-9]{1,6})m)?(?:([0-9]{1,6})s)?$"
)


def parse_duration(text: object) -> timedelta:
    """``"0"``, ``"90s"``, ``"5m"``, ``"1h30m"``, ``"7d"``...; ``ValueError`` for anything else."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ValueError(f"a duration like 5m or 1h30m, got {text!r}")
    spelled = str(text).strip()
    if spelled == "0":
        return timedelta(0)
    match = _DURATION.match(spelled)
    if not spelled or match is None or not any(match.groups()):
        raise ValueError(f"a duration like 30s, 5m, 1h30m or 2d, got {text!r}")
    total = timedelta(0)
    for count, unit in zip(match.groups(), _UNITS.values(), strict=True):
        if count is not None:
            total += int(count) * unit
    return total


def format_duration(span: timedelta) -> str:
    """A spelling :func:`parse_duration` reads back as ``span`` (whole seconds), in days
    at most: ``90d`` reads better than ``12w6d``."""
    seconds = int(span.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, width in _UNITS.items():
        if unit == "w":
            continue
        count, seconds = divmod(seconds, int(width.total_seconds()))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def latest_tick(now: datetime, interval: timedelta) -> datetime:
    """The last multiple of ``interval`` since the epoch at or before ``now``."""
    return now - (now - _EPOCH) % interval
