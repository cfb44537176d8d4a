"""Why a store could not be opened."""

from __future__ import annotations

__all__ = ["StoreURLError", "StoreUnavailableError"]


class StoreURLError(ValueError):
    """A store URL that names no engine we have, or is malformed."""


class StoreUnavailableError(ConnectionError):
    """A well-formed store URL whose store cannot be reached (server down, login refused)."""
