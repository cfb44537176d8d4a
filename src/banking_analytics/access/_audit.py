"""The audit log: who did what, to which object, from where, with what outcome.

Entries are numbered 1, 2, 3, ... (``seq``) and chained: each stores the hash
of the one before (``prev_hash``; 64 zeros for the first) and its own ``hash``,
the SHA-256 (hex) of ``prev_hash`` followed by the canonical JSON of the entry
without ``hash``. Canonical JSON has sorted keys, no whitespace, UTF-8 text,
and timestamps in ISO 8601, UTC, with microseconds
(``2026-03-01T12:00:00.123456+00:00``).

Appending takes the table's lock (:meth:`WriteTransaction.lock`) before it reads
the last entry, so recorders in several threads and processes still make one
chain without gaps or forks.

What :meth:`AuditLog.verify` can prove, reading the chain in ``seq`` order:

* that an entry was altered (its hash no longer matches its contents), deleted
  or moved (a gap or repeat in ``seq``, or a ``prev_hash`` that is not the hash
  of the entry before), or that one was slipped in among them (the entry after
  it no longer links to its predecessor). It reports the first such break.
* with ``expected_head``, a head hash exported earlier (and kept where whoever
  can write the store cannot), that the chain still reaches it: so entries up
  to that point were neither removed from the tail nor rewritten.

What it cannot prove:

* anything about entries added after the last exported head: the chain holds no
  secret, so whoever can write the store can append well-formed entries, or
  delete the newest ones, or rewrite the chain from any point on, hashes and
  all, and it will verify. Exporting the head regularly (``verify`` returns it)
  bounds what can go unnoticed to what was recorded since.
* that an entry is true: it shows what was recorded, not that it happened. Times
  are the recording process's clock.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlglot
from sqlglot import exp

from banking_analytics.events import Kind
from banking_analytics.store import Column, Engine, TableDef
from banking_analytics.store.statements import column, insert_row, select_all, table

__all__ = ["AUDIT_LOG", "AuditEntry", "AuditLog", "ChainReport"]

AUDIT_LOG = TableDef(
    "audit_log",
    (
        Column("seq", Kind.INTEGER, nullable=False),
        Column("occurred_at", Kind.TIMESTAMP, nullable=False),
        Column("actor", Kind.TEXT, nullable=False),
        Column("actor_role", Kind.TEXT, nullable=False),
        Column("action", Kind.TEXT, nullable=False),
        Column("object_type", Kind.TEXT),
        Column("object_id", Kind.TEXT),
        Column("client_ip", Kind.TEXT),
        Column("outcome", Kind.TEXT, nullable=False),
        # Text, not JSON: PostgreSQL's jsonb would rewrite it, and the chain covers it.
        Column("details", Kind.TEXT, nullable=False),
        Column("prev_hash", Kind.TEXT, nullable=False),
        Column("hash", Kind.TEXT, nullable=False),
    ),
    lookup_columns=("seq",),
)

_GENESIS_HASH = "0" * 64
_MAX_ENTRIES = 10_000
_HASH = re.compile(r"[0-9a-f]{64}")
_PAGE_ROWS = 5_000
_LOWEST_SEQ = -(2**63)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded action; ``hash`` chains it to the entry before (see the module)."""

    seq: int
    occurred_at: datetime
    actor: str
    actor_role: str
    action: str
    object_type: str | None
    object_id: str | None
    client_ip: str | None
    outcome: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What :meth:`AuditLog.verify` found.

    ``checked`` entries (from seq 1) verified; ``head_hash`` is the hash of the
    last of them (None if none did). When the chain is broken,
    ``first_broken_seq`` is the lowest seq where it departs from an intact chain
    and ``reason`` says how.
    """

    ok: bool
    checked: int
    first_broken_seq: int | None
    reason: str | None
    head_hash: str | None


def _canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, text as is; ``ValueError`` for what JSON cannot hold."""
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"details must be JSON: {exc}") from None


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _chain_hash(content: Mapping[str, Any]) -> str:
    """The hash of an entry given its fields but ``hash`` (``details`` as an object)."""
    body = _canonical_json({**content, "occurred_at": _timestamp(content["occurred_at"])})
    return hashlib.sha256((content["prev_hash"] + body).encode()).hexdigest()


def _required(field: str, value: str) -> str:
    if not value:
        raise ValueError(f"{field} must not be empty")
    return value


def _link_broken(row: Mapping[str, Any], seq: int, prev_hash: str) -> str | None:
    """Why a stored row is not entry ``seq`` following one hashed ``prev_hash``; None if it is."""
    if row["seq"] != seq:
        return f"seq {row['seq']} where {seq} was expected: an entry was deleted, added or moved"
    if row["prev_hash"] != prev_hash:
        return "prev_hash is not the hash of the entry before: an entry was deleted, added or moved"
    try:
        details = json.loads(row["details"])
        canonical = isinstance(details, dict) and _canonical_json(details) == row["details"]
    except ValueError:
        canonical = False
    if not canonical:
        return "details are not the canonical JSON object recorded: the entry was altered"
    content = {name: row[name] for name in AUDIT_LOG.column_names if name != "hash"}
    if _chain_hash({**content, "details": details}) != row["hash"]:
        return "hash does not match the entry's contents: the entry was altered"
    return None


class AuditLog:
    """The append-only, hash-chained audit log of a store (see the module)."""

    def __init__(self, engine: Engine) -> None:
        engine.migrate([AUDIT_LOG])
        self._engine = engine
        dialect = engine.dialect
        seq = column("seq")
        self._sql_last = (
            sqlglot.select(seq, column("hash"))
            .from_(table(AUDIT_LOG))
            .order_by(exp.Ordered(this=seq, desc=True, nulls_first=True))
            .limit(1)
            .sql(dialect)
        )
        self._sql_insert = insert_row(AUDIT_LOG).sql(dialect)
        self._sql_page = (
            select_all(AUDIT_LOG)
            .where(seq >= exp.Placeholder())
            .order_by(seq, column("hash"))
            .limit(exp.Placeholder())
            .sql(dialect)
        )

    def record(
        self,
        *,
        actor: str,
        actor_role: str,
        action: str,
        outcome: str,
        object_type: str | None = None,
        object_id: str | None = None,
        client_ip: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Append an entry, durably, as the next link of the chain.

        ``ValueError`` if ``actor``, ``actor_role``, ``action`` or ``outcome`` is
        empty, or ``details`` is not a JSON object (non-finite numbers included).
        """
        content: dict[str, Any] = {
            "actor": _required("actor", actor),
            "actor_role": _required("actor_role", actor_role),
            "action": _required("action", action),
            "object_type": object_type,
            "object_id": object_id,
            "client_ip": client_ip,
            "outcome": _required("outcome", outcome),
        }
        details_json = _canonical_json(dict(details or {}))
        # As read back later: a copy, with JSON's types (lists for tuples, ...).
        content["details"] = json.loads(details_json)
        with self._engine.begin() as tx:
            tx.lock(AUDIT_LOG)
            # After the lock, so the read sees the entry any other recorder committed last.
            last = tx.execute(self._sql_last).to_pylist()
            content["seq"] = last[0]["seq"] + 1 if last else 1
            content["prev_hash"] = last[0]["hash"] if last else _GENESIS_HASH
            content["occurred_at"] = datetime.now(UTC)
            entry = AuditEntry(**content, hash=_chain_hash(content))
            row = {**content, "details": details_json, "hash": entry.hash}
            tx.execute(self._sql_insert, [row[name] for name in AUDIT_LOG.column_names])
        return entry

    def entries(
        self,
        *,
        limit: int = 100,
        before_seq: int | None = None,
        actor: str | None = None,
        action: str | None = None,
    ) -> list[AuditEntry]:
        """Up to ``limit`` (1 to 10,000) entries, newest first, optionally filtered.

        ``before_seq`` pages back: pass the last seq of the previous page.
        """
        if not 1 <= limit <= _MAX_ENTRIES:
            raise ValueError(f"limit must be between 1 and {_MAX_ENTRIES:,}; got {limit}")
        seq = column("seq")
        query = select_all(AUDIT_LOG)
        params: list[Any] = []
        for condition, value in (
            (seq < exp.Placeholder(), before_seq),
            (column("actor").eq(exp.Placeholder()), actor),
            (column("action").eq(exp.Placeholder()), action),
        ):
            if value is not None:
                query = query.where(condition)
                params.append(value)
        query = query.order_by(exp.Ordered(this=seq, desc=True, nulls_first=True)).limit(
            exp.Placeholder()
        )
        rows = self._engine.query(query.sql(self._engine.dialect), [*params, limit]).to_pylist()
        return [AuditEntry(**{**row, "details": json.loads(row["details"])}) for row in rows]

    def verify(self, *, expected_head: str | None = None) -> ChainReport:
        """Check the whole chain, in seq order, and report its first break (see the module).

        ``expected_head`` is a ``head_hash`` reported earlier; the chain must still
        reach it. ``ValueError`` if it is not 64 hex digits.
        """
        if expected_head is not None and not _HASH.fullmatch(expected_head):
            raise ValueError("expected_head must be 64 lowercase hex digits (a head_hash)")
        prev_hash, checked, reached = _GENESIS_HASH, 0, expected_head is None
        first_broken: int | None = None
        reason: str | None = None
        for row in self._rows_in_order():
            reason = _link_broken(row, checked + 1, prev_hash)
            if reason is not None:
                first_broken = min(row["seq"], checked + 1)
                break
            prev_hash, checked = row["hash"], checked + 1
            reached = reached or prev_hash == expected_head
        if reason is None and not reached:
            first_broken = checked + 1
            reason = (
                f"the chain ends at seq {checked} without reaching the expected head: "
                "entries were removed from its end, or it was rewritten"
            )
        head = prev_hash if checked else None
        return ChainReport(reason is None, checked, first_broken, reason, head)

    def _rows_in_order(self) -> Iterator[dict[str, Any]]:
        """Every row in (seq, hash) order, read a page at a time.

        A page starts at the last seq of the page before, not after it, so rows
        repeating that seq are not skipped; the ones already read are dropped.
        """
        after, seen = _LOWEST_SEQ, 0
        while True:
            rows = self._engine.query(self._sql_page, [after, seen + _PAGE_ROWS]).to_pylist()
            page = rows[seen:]
            yield from page
            if len(page) < _PAGE_ROWS:
                return
            last = page[-1]["seq"]
            # The page is in seq order: the rows with its last seq are at its end.
            repeats = sum(1 for row in page if row["seq"] == last)
            seen = repeats + (seen if last == after else 0)
            after = last
