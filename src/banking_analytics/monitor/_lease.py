"""Which process evaluates which rule: a lease per rule, kept in a store table.

Several API replicas (or ``monitor`` processes) on one PostgreSQL store each run
an evaluator over the same rules. Each cycle an evaluator holds the leases of
the rules it may evaluate: a rule nobody holds, or whose lease ran out, becomes
its own until ``now + period``, and it renews its own leases once half their
period has gone. A process that dies stops renewing: another takes its rules
over when their leases run out, within one period. The table is read and
written under its lock, so two evaluators never both take a rule.

On DuckDB one process owns the file, so its evaluator holds every lease: the
same code, with nobody to share with.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlglot import exp

from banking_analytics.events import Kind
from banking_analytics.store import Column, Engine, TableDef
from banking_analytics.store.statements import column, insert_row, select_all, table, update

__all__ = ["ALERT_RULE_LEASES", "RuleLeases", "lease_owner"]

ALERT_RULE_LEASES = TableDef(
    "alert_rule_leases",
    (
        Column("rule_name", Kind.TEXT, nullable=False),
        Column("owner", Kind.TEXT, nullable=False),
        Column("expires_at", Kind.TIMESTAMP, nullable=False),
    ),
    primary_key=("rule_name",),
)


def lease_owner() -> str:
    """A name for one evaluator: host, process and a random part (unique per evaluator)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RuleLeases:
    """The leases one evaluator (``owner``) holds, each for ``period`` (see the module)."""

    def __init__(self, engine: Engine, owner: str, period: timedelta) -> None:
        if not period > timedelta(0):
            raise ValueError(f"a lease period must be positive, got {period}")
        engine.migrate([ALERT_RULE_LEASES])
        self.owner = owner
        self.period = period
        self._engine = engine
        dialect = engine.dialect
        by_name = column("rule_name").eq(exp.Placeholder())
        self._sql_all = select_all(ALERT_RULE_LEASES).sql(dialect)
        self._sql_insert = insert_row(ALERT_RULE_LEASES).sql(dialect)
        self._sql_take = update(
            ALERT_RULE_LEASES,
            {"owner": exp.Placeholder(), "expires_at": exp.Placeholder()},
            by_name,
        ).sql(dialect)
        self._sql_release = exp.delete(
            table(ALERT_RULE_LEASES), where=column("owner").eq(exp.Placeholder())
        ).sql(dialect)

    def hold(self, names: Iterable[str], now: datetime) -> frozenset[str]:
        """Take or renew the leases of ``names`` that may be had at ``now``; answer the
        names this owner holds among them."""
        wanted = sorted(set(names))
        # Most cycles change nothing: decided on a plain read, no write transaction.
        leases = self._leases(self._engine.query(self._sql_all))
        if not self._changes(leases, wanted, now):
            return self._held(leases, wanted, now)
        with self._engine.begin() as tx:
            tx.lock(ALERT_RULE_LEASES)
            leases = self._leases(tx.execute(self._sql_all))
            for name, held_by in self._changes(leases, wanted, now):
                until = now + self.period
                if held_by is None:
                    tx.execute(self._sql_insert, [name, self.owner, until])
                else:
                    tx.execute(self._sql_take, [self.owner, until, name])
                leases[name] = (self.owner, until)
        return self._held(leases, wanted, now)

    def release(self) -> None:
        """Give up every lease this owner holds (its evaluator stops: others need not wait)."""
        with self._engine.begin() as tx:
            tx.lock(ALERT_RULE_LEASES)
            tx.execute(self._sql_release, [self.owner])

    @staticmethod
    def _leases(rows: Any) -> dict[str, tuple[str, datetime]]:
        return {r["rule_name"]: (r["owner"], r["expires_at"]) for r in rows.to_pylist()}

    def _changes(
        self, leases: dict[str, tuple[str, datetime]], wanted: list[str], now: datetime
    ) -> list[tuple[str, str | None]]:
        """The leases to write: (name, current holder or None if nobody has one)."""
        changes: list[tuple[str, str | None]] = []
        for name in wanted:
            lease = leases.get(name)
            if lease is None:
                changes.append((name, None))
                continue
            owner, expires = lease
            mine = owner == self.owner
            if (mine and expires - now < self.period / 2) or (not mine and expires <= now):
                changes.append((name, owner))
        return changes

    def _held(
        self, leases: dict[str, tuple[str, datetime]], wanted: list[str], now: datetime
    ) -> frozenset[str]:
        return frozenset(
            name
            for name in wanted
            if (lease := leases.get(name)) is not None and lease[0] == self.owner and lease[1] > now
        )
