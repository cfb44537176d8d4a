"""``analytics.monitor``: alert rules, their evaluation, and the alerts they raise."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from banking_analytics.analytics import Shape
from banking_analytics.metrics import MetricService
from banking_analytics.monitor._evaluate import Evaluator, RuleEvaluation, alert_labels
from banking_analytics.monitor._rules import Rule
from banking_analytics.monitor._state import AlertState
from banking_analytics.monitor._store import AlertStore, HistoryRow, StoredInstance, StoredRule
from banking_analytics.store import Engine

__all__ = ["AlertView", "HistoryView", "MonitorNamespace", "RuleView"]


@dataclass(slots=True, eq=False)
class RuleView(Shape):
    """A version of an alert rule."""

    name: str
    version: int
    #: created, updated, deleted, or unchanged (a rule applied as it already was).
    change: str
    changed_at: datetime
    changed_by: str
    #: The rule as written (YAML/JSON); null for a deletion.
    definition: dict[str, Any] | None

    @classmethod
    def of(cls, stored: StoredRule) -> RuleView:
        rule = stored.rule
        return cls(
            stored.name,
            stored.version,
            stored.change.value,
            stored.changed_at,
            stored.changed_by,
            None if rule is None else rule.as_dict(),
        )


@dataclass(slots=True, eq=False)
class AlertView(Shape):
    """One alert instance (a rule x label set) as last evaluated."""

    rule: str
    rule_version: int
    #: alertname, the rule's labels, the instance's own labels, and severity (if any).
    labels: dict[str, str]
    #: inactive, pending, firing, recovering, nodata or error.
    state: str
    #: warning or critical while breaching; null otherwise.
    severity: str | None
    #: The compared figure at the last evaluation (a time metric: its age in seconds).
    value: float | None
    sample_size: int | None
    #: When the current episode began (pending, nodata or error started).
    active_at: datetime | None
    fired_at: datetime | None
    recovering_since: datetime | None
    #: When the state last changed.
    changed_at: datetime | None
    evaluated_at: datetime
    annotations: dict[str, str]


@dataclass(slots=True, eq=False)
class HistoryView(Shape):
    """One evaluation of one instance: what it observed and the state before and after."""

    rule: str
    rule_version: int
    #: The instance's own (identifying) labels.
    labels: dict[str, str]
    evaluated_at: datetime
    #: ok, breach, nodata, error, or reset (the rule changed).
    observation: str
    previous_state: str
    state: str
    previous_severity: str | None
    severity: str | None
    value: float | None
    sample_size: int | None
    #: Whether the state or the severity changed.
    transition: bool

    @classmethod
    def of(cls, row: HistoryRow) -> HistoryView:
        return cls(
            row.rule_name,
            row.rule_version,
            dict(row.labels),
            row.evaluated_at,
            row.observation,
            row.previous_state.value,
            row.state.value,
            None if row.previous_severity is None else row.previous_severity.value,
            None if row.severity is None else row.severity.value,
            row.value,
            row.sample_size,
            row.transition,
        )


def _alert(rule: Rule, instance: StoredInstance) -> AlertView:
    state = instance.state
    return AlertView(
        instance.rule_name,
        instance.rule_version,
        alert_labels(rule, instance.labels, state, instance.value),
        state.state.value,
        None if state.severity is None else state.severity.value,
        instance.value,
        instance.sample_size,
        state.active_at,
        state.fired_at,
        state.recovering_since,
        state.changed_at,
        instance.evaluated_at,
        dict(instance.annotations),
    )


class MonitorNamespace:
    """Alert rules (versioned in the store), their evaluation, current alerts and history."""

    def __init__(self, metrics: MetricService, engine: Engine) -> None:
        self.store = AlertStore(engine)
        self.evaluator = Evaluator(metrics, self.store)

    def rules(self) -> list[StoredRule]:
        """Every current rule, by name."""
        return self.store.rules()

    def apply(self, rules: Iterable[Rule], changed_by: str) -> list[StoredRule]:
        """Save each rule as its next version (unchanged ones stay as they are)."""
        return [self.store.put(rule, changed_by) for rule in rules]

    def evaluate(
        self,
        now: datetime,
        rules: Sequence[StoredRule] | None = None,
        *,
        once_per_tick: bool = False,
    ) -> list[RuleEvaluation]:
        """Evaluate ``rules`` (every current rule by default) at ``now`` (``once_per_tick``:
        leaving out those another process has recorded at ``now``; the scheduler's way)."""
        return self.evaluator.evaluate(
            self.rules() if rules is None else rules, now, once_per_tick=once_per_tick
        )

    def alerts(
        self, *, rule: str | None = None, states: Iterable[AlertState] | None = None
    ) -> list[AlertView]:
        """Current alert instances (of one rule, in some states), by rule and labels.

        Inactive instances are left out unless ``states`` names them.
        """
        wanted = set(states) if states is not None else set(AlertState) - {AlertState.INACTIVE}
        current = {stored.name: stored for stored in self.rules()}
        shown = []
        for instance in self.store.instances():
            stored = current.get(instance.rule_name)
            if stored is None or stored.rule is None or stored.version != instance.rule_version:
                continue
            if (rule is None or instance.rule_name == rule) and instance.state.state in wanted:
                shown.append(_alert(stored.rule, instance))
        return shown

    def history(
        self,
        *,
        rule: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        transitions_only: bool = True,
        limit: int = 1000,
    ) -> list[HistoryView]:
        """Evaluations in ``[since, until)``, newest first (only transitions by default)."""
        rows = self.store.history(
            rule_name=rule,
            since=since,
            until=until,
            transitions_only=transitions_only,
            limit=limit,
        )
        return [HistoryView.of(row) for row in rows]
