"""Why a store could not be opened, or could not answer."""

from __future__ import annotations

__all__ = [
    "StatementTimeoutError",
    "StoreLockedError",
    "StoreURLError",
    "StoreUnavailableError",
]


class StoreURLError(ValueError):
    """A store URL that names no engine we have, or is malformed."""


class StoreUnavailableError(ConnectionError):
    """A well-formed store URL whose store cannot be reached (server down, login refused)."""


class StoreLockedError(StoreUnavailableError):
    """A DuckDB file another process holds: DuckDB lets one process open a file at a time.

    ``pid`` is the holder's process id when DuckDB names it (it does on Linux and
    macOS), else ``None``. The message is one line saying what to do.
    """

    def __init__(self, path: str, pid: int | None) -> None:
        holder = "another process" if pid is None else f"another process (PID {pid})"
        super().__init__(
            f"the DuckDB store {path} is held by {holder}, and a DuckDB file is open in one "
            "process at a time: stop that process (Ctrl-C in the terminal serving it), "
            "or do this through it (the server's API or web app)"
        )
        self.path = path
        self.pid = pid


class StatementTimeoutError(TimeoutError):
    """A read ran longer than the engine's ``statement_timeout`` and the engine stopped it.

    Nothing was changed: the same read may be sent again, when the store is less
    busy, or narrowed.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the query ran longer than the statement timeout of {seconds:g} s")
        self.seconds = seconds
