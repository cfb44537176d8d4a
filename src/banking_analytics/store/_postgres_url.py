"""PostgreSQL store URLs: our own ``schema`` parameter, and a form safe to show.

Parsed the way libpq reads a connection URI (``scheme://[user[:password]@]hosts
[/database][?parameters]``, the user part ending at the first ``@`` or ``/``),
so that a password is found and hidden even when it holds a ``#`` or ``?``.
Kept apart from the engine so that URLs can be checked, and masked in error
messages, without psycopg installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from banking_analytics.store._errors import StoreURLError

__all__ = ["POSTGRES_SCHEMES", "PostgresURL", "mask_password", "parse_postgres_url"]

POSTGRES_SCHEMES = ("postgresql", "postgres")
_MASK = "***"
#: Our own query parameter: the PostgreSQL schema that holds the store's tables.
_SCHEMA_PARAM = "schema"


@dataclass(frozen=True, slots=True)
class PostgresURL:
    """A parsed store URL: what libpq gets, the schema to use, and what may be shown."""

    conninfo: str
    schema: str | None
    masked: str
    #: To be hidden wherever a driver's message might quote it.
    password: str | None


@dataclass(frozen=True, slots=True)
class _Parts:
    scheme: str
    user: str | None  # as written, percent-encoded
    password: str | None  # as written
    location: str  # hosts, ports and database
    params: tuple[tuple[str, str], ...]  # (decoded key, item as written)

    def unparse(self, *, password: str | None, params: tuple[tuple[str, str], ...]) -> str:
        userinfo = "" if self.user is None else self.user
        if password is not None:
            userinfo += f":{password}"
        at = "@" if self.user is not None else ""
        query = "&".join(item for _, item in params)
        return f"{self.scheme}://{userinfo}{at}{self.location}{'?' if query else ''}{query}"


def _split(url: str) -> _Parts:
    scheme, _, rest = url.partition("://")
    end = min((i for i in (rest.find("@"), rest.find("/")) if i >= 0), default=len(rest))
    user = password = None
    if rest[end : end + 1] == "@":
        user, colon, secret = rest[:end].partition(":")
        password = secret if colon else None
        rest = rest[end + 1 :]
    location, _, query = rest.partition("?")
    # Items stay as written: libpq reads "+" as "+", which a form decoder would not.
    params = tuple((unquote(item.partition("=")[0]), item) for item in query.split("&") if item)
    return _Parts(scheme, user, password, location, params)


def _masked(parts: _Parts) -> str:
    params = tuple(
        (key, f"{key}={_MASK}" if key == "password" else item) for key, item in parts.params
    )
    return parts.unparse(password=None if parts.password is None else _MASK, params=params)


def mask_password(url: str) -> str:
    """The URL with any password (in the user part or a ``password=`` parameter) hidden."""
    return _masked(_split(url)) if "://" in url else url


def parse_postgres_url(url: str) -> PostgresURL:
    """Split ``postgresql://user:pass@host:port/db?schema=NAME`` into conninfo and schema.

    Every other query parameter goes to libpq unchanged (``sslmode``,
    ``connect_timeout``, ...), which checks them when connecting.
    """
    parts = _split(url)
    masked = _masked(parts)
    if parts.scheme not in POSTGRES_SCHEMES:
        raise StoreURLError(f"{masked!r} is not a PostgreSQL URL (postgresql://...)")
    schemas = [
        unquote(item.partition("=")[2]) for key, item in parts.params if key == _SCHEMA_PARAM
    ]
    if len(schemas) > 1 or (schemas and not schemas[0]):
        raise StoreURLError(f"PostgreSQL URL {masked!r}: give at most one non-empty schema=NAME")
    libpq_params = tuple((key, item) for key, item in parts.params if key != _SCHEMA_PARAM)
    passwords = [unquote(item.partition("=")[2]) for key, item in libpq_params if key == "password"]
    if parts.password is not None:
        passwords.insert(0, unquote(parts.password))
    return PostgresURL(
        conninfo=parts.unparse(password=parts.password, params=libpq_params),
        schema=schemas[0] if schemas else None,
        masked=masked,
        password=passwords[-1] if passwords and passwords[-1] else None,
    )
