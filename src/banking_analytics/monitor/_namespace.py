"""``analytics.monitor``: alert rules, their evaluation, and the alerts they raise."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from banking_analytics.analytics import Shape
from banking_analytics.metrics import MetricService, TimeWindow
from banking_analytics.monitor._backtest import BacktestView, backtest
from banking_analytics.monitor._evaluate import Evaluator, RuleEvaluation, alert_labels
from banking_analytics.monitor._insights import InsightEngine, OptimizationReport
from banking_analytics.monitor._notify_store import NotificationStore
from banking_analytics.monitor._rules import Rule
from banking_analytics.monitor._slo import Slo
from banking_analytics.monitor._slo_status import SloStatus, slo_view
from banking_analytics.monitor._state import AlertState
from banking_analytics.monitor._store import (
    AlertStore,
    HistoryRow,
    NameTakenError,
    RuleNotFoundError,
    StoredInstance,
    StoredRule,
)
from banking_analytics.store import Engine

__all__ = ["AlertView", "HistoryView", "MonitorNamespace", "RuleView"]


@dataclass(slots=True, eq=False)
class RuleView(Shape):
    """A version of an alert rule or of an SLO."""

    name: str
    version: int
    #: created, updated, deleted, or unchanged (applied as it already was).
    change: str
    changed_at: datetime
    changed_by: str
    #: The rule (SLO) as written (YAML/JSON); null for a deletion.
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


def _alert(rule: Rule | Slo, instance: StoredInstance) -> AlertView:
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
        self.insight_engine = InsightEngine(metrics)
        self._metrics = metrics
        #: Receivers, the notification policy, silences and deliveries (see :mod:`._notify`).
        self.notifications = NotificationStore(engine)

    def rules(self, *, limit: int | None = None, offset: int = 0) -> list[StoredRule]:
        """Current rules (SLOs aside), by name: from ``offset``, the first ``limit`` (every
        one by default)."""
        return self._current_of(Rule, limit, offset)

    def slos(self, *, limit: int | None = None, offset: int = 0) -> list[StoredRule]:
        """Current SLOs, by name: from ``offset``, the first ``limit`` (every one by
        default)."""
        return self._current_of(Slo, limit, offset)

    def _current_of(
        self, kind: type[Rule | Slo], limit: int | None, offset: int
    ) -> list[StoredRule]:
        # Paged here, not in SQL: rules and SLOs share one versioned table, told apart only
        # by their definitions (JSON), and the namespace is small and read whole in one
        # query (every evaluation tick reads it so anyway).
        found = [stored for stored in self.store.rules() if isinstance(stored.rule, kind)]
        return found[offset:] if limit is None else found[offset : offset + limit]

    def slo(self, name: str, now: datetime, *, limit: int = 1000) -> SloStatus:
        """An SLO's current version and its standing at ``now`` (burn rates over each
        window, budget left over the period), for its first ``limit`` label sets;
        :class:`RuleNotFoundError` when there is no such SLO."""
        stored = self.current(name, Slo)
        alerts = {
            i.labels: i
            for i in self.store.instances()
            if i.rule_name == name and i.rule_version == stored.version
        }
        return slo_view(stored, self._metrics, alerts, now, limit)

    def current(self, name: str, kind: type[Rule | Slo]) -> StoredRule:
        """The current version of the rule (``kind`` Rule) or SLO named ``name``;
        :class:`RuleNotFoundError` when there is none of that kind."""
        stored = self.store.rule(name)
        if not isinstance(stored.rule, kind):
            raise RuleNotFoundError(name)
        return stored

    def versions(self, name: str, kind: type[Rule | Slo]) -> list[StoredRule]:
        """Every version of a rule or SLO, newest first; none when the name is another kind's."""
        found = self.store.versions(name)
        if any(v.rule is not None and not isinstance(v.rule, kind) for v in found):
            return []
        return found

    def delete(self, name: str, kind: type[Rule | Slo], changed_by: str) -> StoredRule:
        """Delete a rule or SLO (a last version saying so) and its alert instances."""
        self.current(name, kind)
        return self.store.delete(name, changed_by)

    def apply(self, rules: Iterable[Rule | Slo], changed_by: str) -> list[StoredRule]:
        """Save each rule or SLO as its next version (unchanged ones stay as they are).

        Nothing is saved when one would take the name of the other kind
        (:class:`NameTakenError`): rules and SLOs share one namespace, their alerts'.
        """
        chosen = list(rules)
        current = {stored.name: stored.rule for stored in self.store.rules()}
        for rule in chosen:
            held = current.get(rule.name)
            if held is not None and type(held) is not type(rule):
                raise NameTakenError(rule.name, held)
        return [self.store.put(rule, changed_by) for rule in chosen]

    def evaluate(
        self,
        now: datetime,
        rules: Sequence[StoredRule] | None = None,
        *,
        once_per_tick: bool = False,
    ) -> list[RuleEvaluation]:
        """Evaluate ``rules`` (every current rule and SLO by default) at ``now``
        (``once_per_tick``: leaving out those another process has recorded at ``now``; the
        scheduler's way)."""
        return self.evaluator.evaluate(
            self.store.rules() if rules is None else rules, now, once_per_tick=once_per_tick
        )

    def backtest(
        self, rule: Rule, since: datetime, until: datetime, step: timedelta | None = None
    ) -> BacktestView:
        """When ``rule`` (saved or not) would have fired over ``[since, until]``, replayed at
        its interval (or ``step``) through the live evaluation path; nothing is stored."""
        return backtest(self._metrics, rule, since, until, step)

    def alerts(
        self, *, rule: str | None = None, states: Iterable[AlertState] | None = None
    ) -> list[AlertView]:
        """Current alert instances (of one rule, in some states), by rule and labels.

        Inactive instances are left out unless ``states`` names them.
        """
        wanted = set(states) if states is not None else set(AlertState) - {AlertState.INACTIVE}
        current = {stored.name: stored for stored in self.store.rules()}
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

    def insights(
        self,
        *,
        now: datetime | None = None,
        window: str | TimeWindow = "6h",
        baseline: str = "7d",
        limit: int = 20,
    ) -> OptimizationReport:
        """Ranked insights and the recommendations they lead to, for ``[now - window, now)``
        against the ``baseline`` just before it (see :mod:`banking_analytics.monitor._insights`)."""
        return self.insight_engine.report(now=now, window=window, baseline=baseline, limit=limit)
