"""API keys: shown once, stored as a hash, checked on every request from memory.

A key is the token ``ba_live_<key_id>_<secret>``. The key id (16 base32
characters, 80 random bits) is public: it names the key in lists, logs and the
audit log. The secret (256 random bits) is shown once, when the key is created;
the store keeps only its SHA-256, so whoever reads the store (a backup, a
replica, this table) holds no usable key. A fast hash is enough here, unlike for
passwords: a 256-bit random secret cannot be found by trying candidates.

What :class:`KeyStore` guarantees:

* ``authenticate`` answers from memory. It does no store work for a malformed
  token; otherwise it reads the key table (all of it, in one query) at most once
  per ``cache_seconds``. Keys are issued by administrators, so they are few.
* A key revoked through this ``KeyStore`` is refused at once; one revoked
  through another (another process) is refused within ``cache_seconds``. A key
  is refused from the moment it expires.
* The secret is compared in constant time, and an unknown key id costs the same
  hashing and comparison as a known one.
* ``last_used_at`` is kept in memory and written at most once per
  ``last_used_flush_seconds`` (by the ``authenticate`` call that finds the
  interval over, for every key used since), and on ``flush``/``close``: so the
  stored value may lag by that long, and a process killed without ``close``
  loses at most that much of it. A failed write fails ``flush``/``close`` but
  not ``authenticate`` (it is logged); the uses are kept for the next one.
* Safe to use from many threads at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlglot import exp

from banking_analytics.events import Kind
from banking_analytics.store import Column, Engine, TableDef
from banking_analytics.store.statements import column, insert_row, select_all, update

__all__ = [
    "API_KEYS",
    "ApiKey",
    "IssuedKey",
    "KeyNotFoundError",
    "KeyStore",
    "Role",
]

API_KEYS = TableDef(
    "api_keys",
    (
        Column("key_id", Kind.TEXT, nullable=False),
        Column("name", Kind.TEXT, nullable=False),
        Column("role", Kind.TEXT, nullable=False),
        Column("secret_hash", Kind.TEXT, nullable=False),
        Column("created_at", Kind.TIMESTAMP, nullable=False),
        Column("expires_at", Kind.TIMESTAMP),
        Column("revoked_at", Kind.TIMESTAMP),
        Column("last_used_at", Kind.TIMESTAMP),
        Column("created_by", Kind.TEXT),
    ),
    lookup_columns=("key_id",),
)

_PREFIX = "ba_live_"
_KEY_ID_BYTES = 10  # 80 bits: 16 base32 characters, no padding
_SECRET_BYTES = 32  # 256 bits: 43 URL-safe base64 characters
_KEY_ID = re.compile(r"[a-z2-7]{16}")
_TOKEN = re.compile(re.escape(_PREFIX) + r"([a-z2-7]{16})_([A-Za-z0-9_-]{43})")
_TOKEN_LENGTH = len(_PREFIX) + 16 + 1 + 43
#: Compared against when the key id is unknown, so that case takes the same time.
_NO_HASH = "0" * 64
_MAX_TEXT = 100
_log = logging.getLogger(__name__)


class Role(StrEnum):
    """What a key may do: ``admin`` anything, ``analyst`` read analytics, ``ingest`` send events."""

    ADMIN = "admin"
    ANALYST = "analyst"
    INGEST = "ingest"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored, without its secret. Timestamps are UTC."""

    key_id: str
    name: str
    role: Role
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_by: str | None

    def active(self, now: datetime) -> bool:
        """Neither revoked nor expired at ``now`` (a key expires at ``expires_at``)."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key and its token, which is shown this once and cannot be recovered."""

    key: ApiKey
    secret: str


class KeyNotFoundError(LookupError):
    """No key has that id."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"no API key has the id {key_id[:_MAX_TEXT]!r}")


_KEY_FIELDS = tuple(f.name for f in fields(ApiKey))


@dataclass(frozen=True, slots=True)
class _Stored:
    key: ApiKey
    secret_hash: str


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ValueError(
            f"role must be one of {', '.join(Role)}; got {str(role)[:_MAX_TEXT]!r}"
        ) from None


def _text(field: str, value: str) -> str:
    if not 1 <= len(value) <= _MAX_TEXT:
        raise ValueError(f"{field} must be 1 to {_MAX_TEXT} characters; got {len(value)}")
    if not value.isprintable() or not value.strip():
        raise ValueError(f"{field} must be printable characters, not only spaces")
    return value


def _expiry(expires_at: datetime | None, now: datetime) -> datetime | None:
    if expires_at is None:
        return None
    if expires_at.utcoffset() is None:
        raise ValueError("expires_at must be timezone-aware")
    if expires_at <= now:
        raise ValueError(f"expires_at must be in the future; got {expires_at.isoformat()}")
    return expires_at.astimezone(UTC)


def _stored(row: Mapping[str, Any]) -> _Stored:
    key = ApiKey(
        **{name: row[name] for name in _KEY_FIELDS if name != "role"}, role=Role(row["role"])
    )
    return _Stored(key, row["secret_hash"])


class KeyStore:
    """API keys in a store: create, list, revoke, and authenticate tokens (see the module)."""

    def __init__(
        self,
        engine: Engine,
        *,
        cache_seconds: float = 5.0,
        last_used_flush_seconds: float = 60.0,
    ) -> None:
        if cache_seconds < 0 or last_used_flush_seconds < 0:
            raise ValueError("cache_seconds and last_used_flush_seconds must not be negative")
        engine.migrate([API_KEYS])
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._flush_seconds = last_used_flush_seconds
        dialect = engine.dialect
        key_is = column("key_id").eq(exp.Placeholder())
        self._sql_all = (
            select_all(API_KEYS).order_by(column("created_at"), column("key_id")).sql(dialect)
        )
        self._sql_one = select_all(API_KEYS).where(key_is).sql(dialect)
        self._sql_insert = insert_row(API_KEYS).sql(dialect)
        # COALESCE keeps the first revocation time: revoking again changes nothing.
        revoked_at = exp.func("COALESCE", column("revoked_at"), exp.Placeholder())
        self._sql_revoke = update(API_KEYS, {"revoked_at": revoked_at}, key_is).sql(dialect)
        # Several processes flush; the condition keeps the latest use of them all.
        later = exp.or_(
            column("last_used_at").is_(exp.null()), column("last_used_at") < exp.Placeholder()
        )
        self._sql_touch = update(
            API_KEYS, {"last_used_at": exp.Placeholder()}, exp.and_(key_is, later)
        ).sql(dialect)
        # Serialises reloads of the cache with this process's writes to keys, so a
        # reload that read the table before a revocation cannot overwrite it.
        self._write_lock = threading.Lock()
        self._keys: dict[str, _Stored] = {}  # replaced, never changed in place
        self._loaded_at = -float("inf")  # time.monotonic() when _keys was read
        self._used_lock = threading.Lock()
        self._used: dict[str, datetime] = {}  # last uses not written yet
        self._writers: list[threading.Thread] = []  # writing last uses in the background
        self._flush_at = time.monotonic() + last_used_flush_seconds

    # -- managing keys ----------------------------------------------------------------------

    def create(
        self,
        name: str,
        role: Role | str,
        *,
        expires_at: datetime | None = None,
        created_by: str | None = None,
    ) -> IssuedKey:
        """A new key; its token (``IssuedKey.secret``) is returned this once and never stored.

        Raises ``ValueError`` naming the field for a name or ``created_by`` that is
        not 1 to 100 printable characters, an unknown role, or an ``expires_at``
        that is naive or not in the future.
        """
        now = datetime.now(UTC)
        key = ApiKey(
            key_id=base64.b32encode(secrets.token_bytes(_KEY_ID_BYTES)).decode("ascii").lower(),
            name=_text("name", name),
            role=_role(role),
            created_at=now,
            expires_at=_expiry(expires_at, now),
            revoked_at=None,
            last_used_at=None,
            created_by=None if created_by is None else _text("created_by", created_by),
        )
        secret = secrets.token_urlsafe(_SECRET_BYTES)
        stored = _Stored(key, _secret_hash(secret))
        row = {field: getattr(key, field) for field in _KEY_FIELDS}
        row.update(role=key.role.value, secret_hash=stored.secret_hash)
        with self._write_lock:
            with self._engine.begin() as tx:
                tx.execute(self._sql_insert, [row[c] for c in API_KEYS.column_names])
            self._keys = {**self._keys, key.key_id: stored}
        return IssuedKey(key, f"{_PREFIX}{key.key_id}_{secret}")

    def list(self, *, include_revoked: bool = True) -> list[ApiKey]:
        """Every key, oldest first, read from the store (with this process's latest uses)."""
        keys = [_stored(row).key for row in self._engine.query(self._sql_all).to_pylist()]
        return [
            self._with_latest_use(key) for key in keys if include_revoked or key.revoked_at is None
        ]

    def get(self, key_id: str) -> ApiKey:
        """One key, read from the store; ``KeyNotFoundError`` if no key has that id."""
        if not _KEY_ID.fullmatch(key_id):
            raise KeyNotFoundError(key_id)
        rows = self._engine.query(self._sql_one, [key_id]).to_pylist()
        if not rows:
            raise KeyNotFoundError(key_id)
        return self._with_latest_use(_stored(rows[0]).key)

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key for good; revoking it again keeps the first revocation time.

        ``KeyNotFoundError`` if no key has that id.
        """
        if not _KEY_ID.fullmatch(key_id):
            raise KeyNotFoundError(key_id)
        with self._write_lock:
            with self._engine.begin() as tx:
                tx.execute(self._sql_revoke, [datetime.now(UTC), key_id])
                rows = tx.execute(self._sql_one, [key_id]).to_pylist()
            if not rows:
                raise KeyNotFoundError(key_id)
            stored = _stored(rows[0])
            self._keys = {**self._keys, key_id: stored}
        return self._with_latest_use(stored.key)

    # -- authenticating ---------------------------------------------------------------------

    def authenticate(self, token: str) -> ApiKey | None:
        """The active key a token belongs to; None if malformed, unknown, wrong, revoked or expired.

        The secret's check takes the same time whatever the secret, and whether or
        not the key id is known. The key is as last read from the store (its
        ``last_used_at`` may lag).
        """
        match = _TOKEN.fullmatch(token) if len(token) == _TOKEN_LENGTH else None
        if match is None:
            return None
        key_id, secret = match.groups()
        stored = self._cached_keys().get(key_id)
        matches = hmac.compare_digest(
            _secret_hash(secret), stored.secret_hash if stored else _NO_HASH
        )
        now = datetime.now(UTC)
        if stored is None or not matches or not stored.key.active(now):
            return None
        self._note_use(key_id, now)
        return stored.key

    def active_key(self, key_id: str) -> ApiKey | None:
        """The key of that id if it is active now, as last read (like :meth:`authenticate`,
        and counted as a use): what a web session, which keeps the key's id and never its
        secret, is checked against on each request."""
        stored = self._cached_keys().get(key_id)
        now = datetime.now(UTC)
        if stored is None or not stored.key.active(now):
            return None
        self._note_use(key_id, now)
        return stored.key

    @property
    def stale(self) -> bool:
        """Whether the next :meth:`authenticate` would read the keys from the store first."""
        return time.monotonic() - self._loaded_at > self._cache_seconds

    def refresh(self) -> None:
        """Read the keys from the store if the cache is stale, as :meth:`authenticate`
        would: call it from a worker thread to keep that read off an event loop."""
        self._cached_keys()

    def _cached_keys(self) -> dict[str, _Stored]:
        if time.monotonic() - self._loaded_at > self._cache_seconds:
            with self._write_lock:
                # Another thread may have reloaded while this one waited.
                started = time.monotonic()
                if started - self._loaded_at > self._cache_seconds:
                    rows = self._engine.query(self._sql_all).to_pylist()
                    self._keys = {row["key_id"]: _stored(row) for row in rows}
                    self._loaded_at = started
        return self._keys

    def _note_use(self, key_id: str, at: datetime) -> None:
        with self._used_lock:
            self._used[key_id] = at
            if time.monotonic() < self._flush_at:
                return
            used = self._take_used()
        # Written on a thread of its own: the caller is often an event loop serving many
        # requests, and the commit may queue behind a bulk write.
        writer = threading.Thread(
            target=self._write_used_or_log, args=(used,), name="api-key-uses", daemon=True
        )
        with self._used_lock:
            self._writers = [w for w in self._writers if w.is_alive()] + [writer]
        writer.start()

    def _write_used_or_log(self, used: dict[str, datetime]) -> None:
        try:
            self._write_used(used)
        except Exception:
            # The key was valid all the same: the uses are written by the next flush.
            _log.warning("could not write the last use of API keys; kept for later", exc_info=True)

    def _take_used(self) -> dict[str, datetime]:
        """The uses not written yet, handed to the caller to write (hold ``_used_lock``)."""
        used, self._used = self._used, {}
        self._flush_at = time.monotonic() + self._flush_seconds
        return used

    def _write_used(self, used: dict[str, datetime]) -> None:
        if not used:
            return
        try:
            with self._engine.begin() as tx:
                for key_id, at in used.items():
                    tx.execute(self._sql_touch, [at, key_id, at])
        except BaseException:
            # Not written: keep them for the next flush, behind any newer use.
            with self._used_lock:
                self._used = {**used, **self._used}
            raise

    def _with_latest_use(self, key: ApiKey) -> ApiKey:
        with self._used_lock:
            used = self._used.get(key.key_id)
        if used is None or (key.last_used_at is not None and key.last_used_at >= used):
            return key
        return replace(key, last_used_at=used)

    # -- lifecycle --------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the last uses not written yet (waiting for writes already under way)."""
        with self._used_lock:
            writers, self._writers = self._writers, []
        for writer in writers:
            writer.join()
        with self._used_lock:
            used = self._take_used()
        self._write_used(used)

    def close(self) -> None:
        """Flush; the engine stays open (it belongs to the caller)."""
        self.flush()
