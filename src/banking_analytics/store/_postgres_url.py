"""PostgreSQL store URLs: our own ``schema`` parameter, and a form safe to show.

Kept apart from the engine so that URLs can be checked (and masked in error
messages) without psycopg installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

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


def _query_items(query: str) -> list[tuple[str, str]]:
    """``(decoded key, raw item)`` pairs; items stay raw because libpq reads ``+`` as ``+``."""
    return [(unquote(item.partition("=")[0]), item) for item in query.split("&") if item]


def mask_password(url: str) -> str:
    """The URL with any password (in the user part or a ``password=`` parameter) hidden."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    netloc = f"{userinfo.partition(':')[0]}:{_MASK}@{hostport}" if at and ":" in userinfo else None
    query = "&".join(
        f"{key}={_MASK}" if key == "password" else item for key, item in _query_items(parts.query)
    )
    return urlunsplit(parts._replace(netloc=netloc or parts.netloc, query=query))


def parse_postgres_url(url: str) -> PostgresURL:
    """Split ``postgresql://user:pass@host:port/db?schema=NAME`` into conninfo and schema.

    Every other query parameter goes to libpq unchanged (``sslmode``,
    ``connect_timeout``, ...), which checks them when connecting.
    """
    masked = mask_password(url)
    parts = urlsplit(url)
    if parts.scheme not in POSTGRES_SCHEMES:
        raise StoreURLError(f"{masked!r} is not a PostgreSQL URL (postgresql://...)")
    items = _query_items(parts.query)
    schemas = [unquote(item.partition("=")[2]) for key, item in items if key == _SCHEMA_PARAM]
    if len(schemas) > 1 or (schemas and not schemas[0]):
        raise StoreURLError(f"PostgreSQL URL {masked!r}: give at most one non-empty schema=NAME")
    query = "&".join(item for key, item in items if key != _SCHEMA_PARAM)
    conninfo = urlunsplit(parts._replace(query=query))
    passwords = [unquote(item.partition("=")[2]) for key, item in items if key == "password"]
    password = passwords[-1] if passwords else parts.password and unquote(parts.password)
    return PostgresURL(conninfo, schemas[0] if schemas else None, masked, password or None)
