"""Why a store could not be opened, or could not answer."""

from __future__ import annotations

__all__ = ["StatementTimeoutError", "StoreURLError", "StoreUnavailableError"]


class StoreURLError(ValueError):
    """A store URL that names no engine we have, or is malformed."""


class StoreUnavailableError(ConnectionError):
    """A well-formed store URL whose store cannot be reached (server down, login refused)."""


class StatementTimeoutError(TimeoutError):
    """A read ran longer than the engine's ``statement_timeout`` and the engine stopped it.

    Nothing was changed: the same read may be sent again, when the store is less
    busy, or narrowed.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the query ran longer than the statement timeout of {seconds:g} s")
        self.seconds = seconds
