"""Field types shared by request models and parameters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator

__all__ = ["IsoDateTime"]


def _iso_only(value: Any) -> Any:
    # pydantic would also take a number as seconds since 1970; the documents promise
    # ISO-8601 text, and "5" is much likelier a mistake than a moment in 1970.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("must be an ISO-8601 date-time, e.g. 2026-11-24T12:00:00Z")
    return value


#: A moment given as ISO-8601 text (with an offset, or UTC when it has none).
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]
