"""Where rules and alert states live: three tables of the store, so they survive a restart
and every process sharing the store sees the same.

* ``alert_rule_versions`` — every version of every rule (and SLO: its alerts are
  a rule's, so rules and SLOs share their names), only ever added to: who
  changed it, when, and the rule as written (JSON). A rule's current version is
  its highest; a deletion is a version too.
* ``alert_instances`` — the current state of each instance (rule x label set).
* ``alert_history`` — one row per instance per evaluation: what was observed
  and the state before and after (``transition`` marks a change of state or
  severity), and a row per instance reset by a rule change. Each row has a
  ``history_id``: 1, 2, 3, ... in the order the rows were committed, whichever
  process wrote them (numbered under the table's lock), so a reader that has
  seen every row up to an id will never see a later row with a smaller one (the
  alert stream's event ids). Rows written before the column existed have none.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

from banking_analytics.events import Kind, arrow_type
from banking_analytics.monitor._rules import Rule, Severity, same_but_annotations
from banking_analytics.monitor._slo import Slo
from banking_analytics.monitor._state import AlertState, InstanceState
from banking_analytics.store import Column, Engine, TableDef
from banking_analytics.store.statements import column, insert_row, select_all, table, update

__all__ = [
    "ALERT_HISTORY",
    "ALERT_INSTANCES",
    "ALERT_RULE_VERSIONS",
    "MONITOR_TABLES",
    "AlertStore",
    "Change",
    "HistoryRow",
    "Labels",
    "NameTakenError",
    "RuleNotFoundError",
    "StoredInstance",
    "StoredRule",
    "labels_key",
]

ALERT_RULE_VERSIONS = TableDef(
    "alert_rule_versions",
    (
        Column("rule_name", Kind.TEXT, nullable=False),
        Column("version", Kind.INTEGER, nullable=False),
        Column("change", Kind.TEXT, nullable=False),
        Column("changed_at", Kind.TIMESTAMP, nullable=False),
        Column("changed_by", Kind.TEXT, nullable=False),
        # Text, not JSON: kept exactly as written (PostgreSQL's jsonb would reorder it).
        Column("definition", Kind.TEXT),
    ),
    lookup_columns=("rule_name",),
)
ALERT_INSTANCES = TableDef(
    "alert_instances",
    (
        Column("rule_name", Kind.TEXT, nullable=False),
        Column("rule_version", Kind.INTEGER, nullable=False),
        Column("labels", Kind.TEXT, nullable=False),
        Column("state", Kind.TEXT, nullable=False),
        Column("severity", Kind.TEXT),
        Column("value", Kind.FLOAT),
        Column("sample_size", Kind.INTEGER),
        Column("active_at", Kind.TIMESTAMP),
        Column("fired_at", Kind.TIMESTAMP),
        Column("recovering_since", Kind.TIMESTAMP),
        Column("changed_at", Kind.TIMESTAMP),
        Column("evaluated_at", Kind.TIMESTAMP, nullable=False),
        Column("annotations", Kind.TEXT, nullable=False),
    ),
    lookup_columns=("rule_name",),
)
ALERT_HISTORY = TableDef(
    "alert_history",
    (
        Column("rule_name", Kind.TEXT, nullable=False),
        Column("rule_version", Kind.INTEGER, nullable=False),
        Column("labels", Kind.TEXT, nullable=False),
        Column("evaluated_at", Kind.TIMESTAMP, nullable=False),
        Column("observation", Kind.TEXT, nullable=False),
        Column("previous_state", Kind.TEXT, nullable=False),
        Column("state", Kind.TEXT, nullable=False),
        Column("previous_severity", Kind.TEXT),
        Column("severity", Kind.TEXT),
        Column("value", Kind.FLOAT),
        Column("sample_size", Kind.INTEGER),
        Column("transition", Kind.BOOLEAN, nullable=False),
        # Added after the first stores were made: nullable, as every added column is.
        Column("history_id", Kind.INTEGER),
    ),
    lookup_columns=("rule_name", "evaluated_at", "history_id"),
)
MONITOR_TABLES = (ALERT_RULE_VERSIONS, ALERT_INSTANCES, ALERT_HISTORY)

#: An instance's identifying labels, sorted by name.
Labels = tuple[tuple[str, str], ...]
#: Rules whose instances one DELETE replaces at most (bounded: engines cap parameters).
_DELETE_BATCH = 500
#: The observation recorded when a rule change resets an instance.
RESET = "reset"


def labels_key(labels: Labels) -> str:
    """The labels as canonical JSON: how an instance is named in the store."""
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _labels(text: str) -> Labels:
    return tuple(sorted(json.loads(text).items()))


class Change(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    UNCHANGED = "unchanged"


class RuleNotFoundError(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no alert rule named {name!r}")


class NameTakenError(ValueError):
    """A rule given the name of an SLO, or the other way round."""

    def __init__(self, name: str, taken_by: Rule | Slo) -> None:
        what = "an SLO" if isinstance(taken_by, Slo) else "an alert rule"
        super().__init__(f"{name!r} is the name of {what}: delete it first or choose another")


def _definition(data: dict[str, Any]) -> Rule | Slo:
    """A stored definition: an SLO names its SLI, a rule its metric."""
    return Slo.from_dict(data) if "sli" in data else Rule.from_dict(data)


@dataclass(frozen=True, slots=True)
class StoredRule:
    """A version of a rule or an SLO: it (None once deleted), its number, who made it and
    when."""

    name: str
    version: int
    change: Change
    changed_at: datetime
    changed_by: str
    rule: Rule | Slo | None


@dataclass(frozen=True, slots=True)
class StoredInstance:
    rule_name: str
    rule_version: int
    labels: Labels
    state: InstanceState
    value: float | None
    sample_size: int | None
    evaluated_at: datetime
    annotations: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class HistoryRow:
    rule_name: str
    rule_version: int
    labels: Labels
    evaluated_at: datetime
    observation: str
    previous_state: AlertState
    state: AlertState
    previous_severity: Severity | None
    severity: Severity | None
    value: float | None
    sample_size: int | None
    transition: bool
    #: Its number in the history (see the module); None until stored.
    history_id: int | None = None


def _severity(text: str | None) -> Severity | None:
    return None if text is None else Severity(text)


def _version(row: Mapping[str, Any]) -> StoredRule:
    definition = row["definition"]
    return StoredRule(
        row["rule_name"],
        row["version"],
        Change(row["change"]),
        row["changed_at"],
        row["changed_by"],
        None if definition is None else _definition(json.loads(definition)),
    )


def _instance(row: Mapping[str, Any]) -> StoredInstance:
    state = InstanceState(
        AlertState(row["state"]),
        _severity(row["severity"]),
        row["active_at"],
        row["fired_at"],
        row["recovering_since"],
        row["changed_at"],
    )
    return StoredInstance(
        row["rule_name"],
        row["rule_version"],
        _labels(row["labels"]),
        state,
        row["value"],
        row["sample_size"],
        row["evaluated_at"],
        tuple(sorted(json.loads(row["annotations"]).items())),
    )


def _arrow(definition: TableDef, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    return pa.table(
        {
            c.name: pa.array([row[c.name] for row in rows], arrow_type(c.kind))
            for c in definition.columns
        }
    )


def _is(name: str) -> exp.Expr:
    return column(name).eq(exp.Placeholder())


class AlertStore:
    """Rules (versioned) and alert states in a store (see the module)."""

    def __init__(self, engine: Engine) -> None:
        engine.migrate(MONITOR_TABLES)
        self._engine = engine
        dialect = engine.dialect
        newest = exp.Ordered(this=column("version"), desc=True, nulls_first=True)
        self._sql_versions = (
            select_all(ALERT_RULE_VERSIONS).where(_is("rule_name")).order_by(newest).sql(dialect)
        )
        # The current version of each rule: the highest.
        highest = (
            sqlglot.select(column("rule_name"), exp.Max(this=column("version")).as_("version"))
            .from_(table(ALERT_RULE_VERSIONS))
            .group_by(column("rule_name"))
            .subquery("highest")
        )
        self._sql_current = (
            select_all(ALERT_RULE_VERSIONS)
            .join(highest, using=["rule_name", "version"])
            .order_by(column("rule_name"))
            .sql(dialect)
        )
        self._sql_insert_version = insert_row(ALERT_RULE_VERSIONS).sql(dialect)
        self._sql_instances = (
            select_all(ALERT_INSTANCES).order_by(column("rule_name"), column("labels")).sql(dialect)
        )
        self._sql_last_evaluations = (
            sqlglot.select(
                column("rule_name"),
                column("rule_version"),
                exp.Max(this=column("evaluated_at")).as_("at"),
            )
            .from_(table(ALERT_HISTORY))
            .where(column("observation").neq(exp.Placeholder()))
            .group_by(column("rule_name"), column("rule_version"))
            .sql(dialect)
        )
        self._sql_renumber = update(
            ALERT_INSTANCES, {"rule_version": exp.Placeholder()}, _is("rule_name")
        ).sql(dialect)
        self._sql_delete_instances = exp.delete(table(ALERT_INSTANCES), where=_is("rule_name")).sql(
            dialect
        )
        self._sql_last_id = (
            sqlglot.select(exp.Max(this=column("history_id")).as_("id"))
            .from_(table(ALERT_HISTORY))
            .sql(dialect)
        )
        self._sql_transitions_after = (
            select_all(ALERT_HISTORY)
            .where(column("transition"))
            .where(column("history_id") > exp.Placeholder())
            .order_by(column("history_id"))
            .limit(exp.Placeholder())
            .sql(dialect)
        )

    @property
    def engine(self) -> Engine:
        """The store the tables are in."""
        return self._engine

    # -- rules -------------------------------------------------------------------------------

    def rules(self) -> list[StoredRule]:
        """The current version of every rule not deleted, by name."""
        current = (_version(r) for r in self._engine.query(self._sql_current).to_pylist())
        return [stored for stored in current if stored.rule is not None]

    def rule(self, name: str) -> StoredRule:
        """A rule's current version; :class:`RuleNotFoundError` if it has none or was deleted."""
        versions = self.versions(name)
        if not versions or versions[0].rule is None:
            raise RuleNotFoundError(name)
        return versions[0]

    def versions(self, name: str) -> list[StoredRule]:
        """Every version of a rule, newest first (a deletion is one)."""
        rows = self._engine.query(self._sql_versions, [name]).to_pylist()
        return [_version(row) for row in rows]

    def put(self, rule: Rule | Slo, changed_by: str, *, now: datetime | None = None) -> StoredRule:
        """Save ``rule`` (or an SLO) as its next version (``unchanged`` if it is the current
        one as is); :class:`NameTakenError` if the name is held by the other kind.

        A change other than to annotations resets the rule's instances (Grafana's
        rule: the instances' timers were counted against the old definition).
        """
        return self._write(rule.name, rule, changed_by, now or datetime.now(UTC))

    def delete(self, name: str, changed_by: str, *, now: datetime | None = None) -> StoredRule:
        """Delete a rule (a version saying so) and its instances."""
        return self._write(name, None, changed_by, now or datetime.now(UTC))

    def _write(
        self, name: str, rule: Rule | Slo | None, changed_by: str, now: datetime
    ) -> StoredRule:
        with self._engine.begin() as tx:
            tx.lock(ALERT_RULE_VERSIONS)
            rows = tx.execute(self._sql_versions, [name]).to_pylist()
            latest = _version(rows[0]) if rows else None
            current = latest.rule if latest is not None else None
            if rule is None and current is None:
                raise RuleNotFoundError(name)
            if rule is not None and current is not None and type(rule) is not type(current):
                raise NameTakenError(name, current)
            if rule is not None and current == rule:
                assert latest is not None
                return StoredRule(
                    name,
                    latest.version,
                    Change.UNCHANGED,
                    latest.changed_at,
                    latest.changed_by,
                    rule,
                )
            change = (
                Change.DELETED
                if rule is None
                else Change.CREATED
                if current is None
                else Change.UPDATED
            )
            version = (latest.version if latest is not None else 0) + 1
            definition = None if rule is None else json.dumps(rule.as_dict(), ensure_ascii=False)
            tx.execute(
                self._sql_insert_version, [name, version, change.value, now, changed_by, definition]
            )
            if current is not None and (rule is None or not same_but_annotations(current, rule)):
                self._reset(tx, name, version, now)
            elif current is not None:  # new wording only: the same instances carry on
                tx.execute(self._sql_renumber, [version, name])
        return StoredRule(name, version, change, now, changed_by, rule)

    def _reset(self, tx: Any, name: str, version: int, now: datetime) -> None:
        """Forget a rule's instances, recording the reset of each that was not inactive."""
        instances = [
            i for i in self._instances_in(tx, name) if i.state.state is not AlertState.INACTIVE
        ]
        tx.execute(self._sql_delete_instances, [name])
        self._append_history(
            tx,
            [
                {
                    "rule_name": name,
                    "rule_version": version,
                    "labels": labels_key(i.labels),
                    "evaluated_at": now,
                    "observation": RESET,
                    "previous_state": i.state.state.value,
                    "state": AlertState.INACTIVE.value,
                    "previous_severity": _text(i.state.severity),
                    "severity": None,
                    "value": None,
                    "sample_size": None,
                    "transition": True,
                }
                for i in instances
            ],
        )

    def _append_history(self, tx: Any, rows: list[dict[str, Any]]) -> None:
        """Add history rows numbered after the highest ``history_id``: under the table's
        lock, held to the commit, so ids follow the order of commits in every process."""
        tx.lock(ALERT_HISTORY)
        last = tx.execute(self._sql_last_id).column("id")[0].as_py() or 0
        for number, row in enumerate(rows, start=last + 1):
            row["history_id"] = number
        tx.append(ALERT_HISTORY, _arrow(ALERT_HISTORY, rows))

    def _instances_in(self, tx: Any, name: str) -> list[StoredInstance]:
        sql = select_all(ALERT_INSTANCES).where(_is("rule_name")).sql(self._engine.dialect)
        return [_instance(row) for row in tx.execute(sql, [name]).to_pylist()]

    # -- alert states ------------------------------------------------------------------------

    def last_evaluations(self) -> dict[tuple[str, int], datetime]:
        """When each rule version was last evaluated (as its history says)."""
        rows = self._engine.query(self._sql_last_evaluations, [RESET]).to_pylist()
        return {(row["rule_name"], row["rule_version"]): row["at"] for row in rows}

    def instances(self) -> list[StoredInstance]:
        """Every rule's instances as last evaluated."""
        return [_instance(row) for row in self._engine.query(self._sql_instances).to_pylist()]

    def save_evaluation(
        self,
        names: Iterable[str],
        instances: Sequence[StoredInstance],
        history: Sequence[HistoryRow],
        *,
        once_per_tick: bool = False,
    ) -> set[str]:
        """Replace the instances of the rules ``names`` and add history, in one transaction;
        answer the names saved.

        ``once_per_tick`` (the scheduler's evaluations): a rule whose history already
        holds an evaluation of its version at or after this one's time is left out:
        another process evaluated that tick first (its lease on the rule ran out
        while this one was evaluating), and a tick is recorded once.
        """
        with self._engine.begin() as tx:
            tx.lock(ALERT_HISTORY)
            late: set[str] = set()
            if once_per_tick:
                done = {
                    (row["rule_name"], row["rule_version"]): row["at"]
                    for row in tx.execute(self._sql_last_evaluations, [RESET]).to_pylist()
                }
                late = {
                    row.rule_name
                    for row in history
                    if (at := done.get((row.rule_name, row.rule_version))) is not None
                    and at >= row.evaluated_at
                }
            saved = set(names) - late
            chosen = sorted(saved)
            # One statement for the whole cycle: a DELETE per rule costs more than the rest.
            for start in range(0, len(chosen), _DELETE_BATCH):
                batch = chosen[start : start + _DELETE_BATCH]
                tx.execute(self._delete_instances_of(len(batch)), batch)
            tx.append(
                ALERT_INSTANCES,
                _arrow(
                    ALERT_INSTANCES, [_instance_row(i) for i in instances if i.rule_name in saved]
                ),
            )
            self._append_history(tx, [_history_row(h) for h in history if h.rule_name in saved])
        return saved

    def last_history_id(self) -> int:
        """The highest ``history_id`` stored (0 when there is none)."""
        last: int | None = self._engine.query(self._sql_last_id).column("id")[0].as_py()
        return last or 0

    def transitions_after(self, history_id: int, limit: int) -> list[HistoryRow]:
        """The first ``limit`` transitions numbered after ``history_id``, in order."""
        rows = self._engine.query(self._sql_transitions_after, [history_id, limit]).to_pylist()
        return [_history(row) for row in rows]

    def _delete_instances_of(self, count: int) -> str:
        """DELETE the instances of ``count`` rules, named by parameters."""
        names = column("rule_name").isin(*(exp.Placeholder() for _ in range(count)))
        return exp.delete(table(ALERT_INSTANCES), where=names).sql(self._engine.dialect)

    def history(
        self,
        *,
        rule_name: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        transitions_only: bool = True,
        limit: int = 1000,
    ) -> list[HistoryRow]:
        """Evaluations (or only transitions) in ``[since, until)``, newest first."""
        query = select_all(ALERT_HISTORY)
        params: list[Any] = []
        for condition, value in (
            (_is("rule_name"), rule_name),
            (column("evaluated_at") >= exp.Placeholder(), since),
            (column("evaluated_at") < exp.Placeholder(), until),
        ):
            if value is not None:
                query = query.where(condition)
                params.append(value)
        if transitions_only:
            query = query.where(column("transition"))
        newest = exp.Ordered(this=column("evaluated_at"), desc=True, nulls_first=True)
        query = query.order_by(newest, column("rule_name"), column("labels")).limit(
            exp.Placeholder()
        )
        rows = self._engine.query(query.sql(self._engine.dialect), [*params, limit]).to_pylist()
        return [_history(row) for row in rows]


def _history(row: Mapping[str, Any]) -> HistoryRow:
    return HistoryRow(
        row["rule_name"],
        row["rule_version"],
        _labels(row["labels"]),
        row["evaluated_at"],
        row["observation"],
        AlertState(row["previous_state"]),
        AlertState(row["state"]),
        _severity(row["previous_severity"]),
        _severity(row["severity"]),
        row["value"],
        row["sample_size"],
        row["transition"],
        row["history_id"],
    )


def _text(value: StrEnum | None) -> str | None:
    return None if value is None else value.value


def _instance_row(instance: StoredInstance) -> dict[str, Any]:
    state = instance.state
    return {
        "rule_name": instance.rule_name,
        "rule_version": instance.rule_version,
        "labels": labels_key(instance.labels),
        "state": state.state.value,
        "severity": _text(state.severity),
        "value": instance.value,
        "sample_size": instance.sample_size,
        "active_at": state.active_at,
        "fired_at": state.fired_at,
        "recovering_since": state.recovering_since,
        "changed_at": state.changed_at,
        "evaluated_at": instance.evaluated_at,
        "annotations": json.dumps(dict(instance.annotations), sort_keys=True, ensure_ascii=False),
    }


def _history_row(row: HistoryRow) -> dict[str, Any]:
    return {
        "rule_name": row.rule_name,
        "rule_version": row.rule_version,
        "labels": labels_key(row.labels),
        "evaluated_at": row.evaluated_at,
        "observation": row.observation,
        "previous_state": row.previous_state.value,
        "state": row.state.value,
        "previous_severity": _text(row.previous_severity),
        "severity": _text(row.severity),
        "value": row.value,
        "sample_size": row.sample_size,
        "transition": row.transition,
        "history_id": row.history_id,
    }
