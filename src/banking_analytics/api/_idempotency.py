"""``Idempotency-Key``: a retried write gets the first answer again, Stripe's way.

* Same key, same request (method, path and body) within the retention period:
  the first response is returned again, status and body, and nothing is redone.
* Same key, different request: 422.
* Same key while the first request is still running: 409; retry later.
* Keys are scoped per caller (API key or end user): two callers never collide.
* Responses are stored once the request completes, whatever the outcome, except
  for 409/429 and server errors, which may be retried with the same key.

Events without an ``event_id`` get ids derived from the scope, the key and their
position, so even a retry after a crash between the commit and the storing of the
response stores nothing twice (the events deduplicate by id).
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import sqlglot
from sqlglot import exp

from banking_analytics.events import Kind
from banking_analytics.store import Column, Engine, TableDef
from banking_analytics.store.statements import column, table

__all__ = ["IDEMPOTENCY_TABLE", "Claim", "IdempotencyStore", "Replay", "derived_event_id"]

IDEMPOTENCY_TABLE = TableDef(
    "idempotency_keys",
    (
        Column("scope", Kind.TEXT, nullable=False),
        Column("key", Kind.TEXT, nullable=False),
        Column("fingerprint", Kind.TEXT, nullable=False),
        Column("status", Kind.INTEGER, nullable=False),
        Column("body", Kind.TEXT, nullable=False),
        Column("media_type", Kind.TEXT, nullable=False),
        Column("created_at", Kind.TIMESTAMP, nullable=False),
    ),
)

_NAMESPACE = uuid.UUID("6f1c2a4e-7d0b-4c55-9a31-0c8e5b2d7f10")
#: Purge expired keys once per this many stored responses.
_PURGE_EVERY = 1_000


@dataclass(frozen=True, slots=True)
class Replay:
    status: int
    body: bytes
    media_type: str


@dataclass(frozen=True, slots=True)
class Claim:
    scope: str
    key: str
    fingerprint: str


class IdempotencyConflictError(Exception):
    """The key is in use: by a request still running (409) or by a different one (422)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join([method.encode(), path.encode(), body])).hexdigest()


def derived_event_id(scope: str, key: str, position: int) -> str:
    """The id of the event at ``position`` of a request sent with this key."""
    return str(uuid.uuid5(_NAMESPACE, f"{scope}\0{key}\0{position}"))


class IdempotencyStore:
    """Stored first responses, keyed by (caller, key), kept ``retention`` long."""

    def __init__(self, engine: Engine, retention: timedelta) -> None:
        engine.migrate([IDEMPOTENCY_TABLE])
        self._engine = engine
        self._retention = retention
        self._running: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._stored = 0
        self._lookup_sql = (
            sqlglot.select(
                *(column(name) for name in ("fingerprint", "status", "body", "media_type"))
            )
            .from_(table(IDEMPOTENCY_TABLE))
            .where(
                exp.and_(
                    column("scope").eq(exp.Placeholder()),
                    column("key").eq(exp.Placeholder()),
                    column("created_at") > exp.Placeholder(),
                )
            )
            .order_by(column("created_at"))
            .limit(1)
            .sql(engine.dialect)
        )
        self._purge_sql = exp.delete(
            table(IDEMPOTENCY_TABLE), where=column("created_at") <= exp.Placeholder()
        ).sql(engine.dialect)

    def claim(self, scope: str, key: str, fingerprint: str) -> Claim | Replay:
        """Start a request under ``key``, or get the stored answer of its first run."""
        with self._lock:
            if (scope, key) in self._running:
                raise IdempotencyConflictError(
                    409, "a request with this Idempotency-Key is still in progress; retry later"
                )
            self._running.add((scope, key))
        try:
            stored = self._engine.query(
                self._lookup_sql, [scope, key, datetime.now(UTC) - self._retention]
            ).to_pylist()
            if not stored:
                return Claim(scope, key, fingerprint)
            first = stored[0]
            if first["fingerprint"] != fingerprint:
                raise IdempotencyConflictError(
                    422,
                    "this Idempotency-Key was used with a different request; "
                    "use a new key for a new request",
                )
            self.release(Claim(scope, key, fingerprint))
            return Replay(int(first["status"]), first["body"].encode(), first["media_type"])
        except BaseException:
            self.release(Claim(scope, key, fingerprint))
            raise

    def complete(self, claim: Claim, status: int, body: bytes, media_type: str) -> None:
        """Keep the response of a claimed request (unless it is worth retrying)."""
        try:
            if status in (409, 429) or status >= 500:
                return
            row = pa.table(
                {
                    "scope": [claim.scope],
                    "key": [claim.key],
                    "fingerprint": [claim.fingerprint],
                    "status": pa.array([status], pa.int64()),
                    "body": [body.decode()],
                    "media_type": [media_type],
                    "created_at": pa.array([datetime.now(UTC)], pa.timestamp("us", tz="UTC")),
                }
            )
            with self._engine.begin() as tx:
                tx.append(IDEMPOTENCY_TABLE, row)
                self._stored += 1
                if self._stored % _PURGE_EVERY == 0:
                    tx.execute(self._purge_sql, [datetime.now(UTC) - self._retention])
        finally:
            self.release(claim)

    def release(self, claim: Claim) -> None:
        with self._lock:
            self._running.discard((claim.scope, claim.key))
