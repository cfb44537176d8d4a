"""Field types shared by request models and parameters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

__all__ = ["IsoDateTime", "QueryBool", "QueryDateTime"]

#: The moments a query may name: the calendar arithmetic of buckets and timezones
#: overflows near year 1 and 9999, and no event of this system lies outside them.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _iso_only(value: Any) -> Any:
    # pydantic would also take a number as seconds since 1970; the documents promise
    # ISO-8601 text, and "5" is much likelier a mistake than a moment in 1970.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("must be an ISO-8601 date-time, e.g. 2026-11-24T12:00:00Z")
    return value


def _within_bounds(value: datetime) -> datetime:
    # Compared, not converted: converting 9999-12-31T23:00-05:00 to UTC overflows.
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not _EARLIEST <= aware <= _LATEST:
        raise ValueError(f"must lie between {_EARLIEST:%Y-%m-%d} and {_LATEST:%Y-%m-%d} (UTC)")
    return value


def _true_or_false(value: Any) -> Any:
    # pydantic would read "yes", "on", "1" and "t" as true as well: a typo would pass.
    if value in ("true", "false"):
        return value == "true"
    if isinstance(value, bool):
        return value
    raise ValueError("must be true or false")


#: A moment given as ISO-8601 text (with an offset, or UTC when it has none).
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]
#: A moment a query or setting names: ISO-8601 text between 1970 and 2200.
QueryDateTime = Annotated[datetime, BeforeValidator(_iso_only), AfterValidator(_within_bounds)]
#: A boolean query parameter: exactly ``true`` or ``false``.
QueryBool = Annotated[bool, BeforeValidator(_true_or_false)]
