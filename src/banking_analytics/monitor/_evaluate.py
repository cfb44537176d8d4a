"""Evaluating rules: each rule's metric query, one reading per label set, and the state
machine of each instance advanced and stored.

:func:`observe` turns a figure into a :class:`Reading` (the same for the store's
figures and a rule test's series); :func:`advance_rule` moves every instance of
one rule forward by one evaluation; :class:`Evaluator` does both over a store,
reading instance states from it and writing them back with the history, so an
evaluator restarted (or in another process) carries on where the last stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from banking_analytics.metrics import MetricQuery, MetricService, QueryError, QueryResult
from banking_analytics.monitor._anomaly import AnomalySpec, series_of
from banking_analytics.monitor._rules import Compare, Condition, Rule
from banking_analytics.monitor._slo import Slo, burn_reading
from banking_analytics.monitor._state import (
    AlertState,
    InstanceState,
    Observation,
    Reading,
    advance,
)
from banking_analytics.monitor._store import (
    AlertStore,
    HistoryRow,
    Labels,
    StoredInstance,
    StoredRule,
)
from banking_analytics.monitor._template import render_template

__all__ = [
    "Evaluator",
    "RuleEvaluation",
    "advance_rule",
    "alert_labels",
    "evaluate_rule",
    "observe",
    "readings_of",
]

_log = logging.getLogger(__name__)


def observe(
    rule: Rule,
    value: float | datetime | None,
    sample_size: int | None,
    previous: float | None,
    now: datetime,
) -> Reading:
    """The reading of one label set: its figure compared as the rule says.

    No figure, or one resting on fewer than the rule's minimum sample, is no data.
    A time is compared as its age in seconds at ``now``. A change needs the
    previous window's figure, a per-cent change a non-zero one: without, no data.
    """
    compared: float | None
    compared = (now - value).total_seconds() if isinstance(value, datetime) else value
    thin = sample_size is not None and sample_size < rule.effective_min_sample
    if compared is not None and not thin and rule.compare is not Compare.VALUE:
        if previous is None or (rule.compare is Compare.CHANGE_PERCENT and previous == 0):
            compared = None
        elif rule.compare is Compare.CHANGE:
            compared -= previous
        else:
            compared = 100 * (compared - previous) / abs(previous)
    if compared is None or thin:
        if rule.condition is Condition.NO_DATA:
            return Reading(Observation.BREACH, rule.severity, None, sample_size)
        return Reading(Observation.NODATA, None, compared, sample_size)
    if rule.condition is Condition.NO_DATA:
        return Reading(Observation.OK, None, compared, sample_size)
    severity = rule.severity_of(compared)
    observed = Observation.OK if severity is None else Observation.BREACH
    return Reading(observed, severity, compared, sample_size)


def readings_of(
    rule: Rule,
    results: QueryResult | Sequence[QueryResult],
    now: datetime,
    firing: Collection[Labels] = frozenset(),
) -> dict[Labels, Reading]:
    """Each label set's reading from the results of the rule's queries (a missing value
    is '').

    An anomaly rule judges each label set's series (see :mod:`._anomaly`); ``firing``
    names the instances firing or recovering, which its recovery window holds.
    """
    answers = [results] if isinstance(results, QueryResult) else list(results)
    if rule.anomaly is not None:
        return _anomaly_readings(rule, rule.anomaly, answers, now, firing)
    found = {}
    rows = [row for result in answers for row in result.rows]
    # A per-day metric's rows are days (see ``per_day``): the latest is the one compared.
    rows.sort(key=lambda row: row.bucket or now)
    for row in rows:
        labels = tuple(sorted((dim, row.dimensions[dim] or "") for dim in rule.by))
        figure = row.values[rule.metric]
        previous = None
        if row.previous is not None:
            before = row.previous[rule.metric]
            if isinstance(before.value, int | float) and not _thin(rule, before.sample_size):
                previous = float(before.value)
        value = figure.value
        found[labels] = observe(
            rule,
            value if isinstance(value, datetime) or value is None else float(value),
            figure.sample_size,
            previous,
            now,
        )
    return found


def _anomaly_readings(
    rule: Rule,
    spec: AnomalySpec,
    results: Sequence[QueryResult],
    now: datetime,
    firing: Collection[Labels],
) -> dict[Labels, Reading]:
    found = {}
    series = series_of(results, rule.metric, rule.by, rule.effective_min_sample)
    for labels, points in series.items():
        verdict, value = spec.verdict(spec.scores(points, rule.window, now), labels in firing)
        observed = Observation(verdict)
        severity = rule.severity if observed is Observation.BREACH else None
        found[labels] = Reading(observed, severity, value)
    return found


def _thin(rule: Rule, sample_size: int | None) -> bool:
    return sample_size is not None and sample_size < rule.effective_min_sample


def alert_labels(
    rule: Rule | Slo, labels: Labels, state: InstanceState, value: float | None
) -> dict[str, str]:
    """An instance's labels as an alert carries them: its name, the rule's labels (rendered),
    its own label set, and its severity when it has one (not identifying: see :mod:`._state`)."""
    own = dict(labels)
    severity = None if state.severity is None else state.severity.value
    threshold = rule.threshold_of(state.severity)
    shown = {"alertname": rule.name}
    shown.update({k: render_template(v, own, value, severity, threshold) for k, v in rule.labels})
    shown.update(own)
    if severity is not None:
        shown["severity"] = severity
    return shown


def _annotations(
    rule: Rule | Slo, labels: Labels, state: InstanceState, value: float | None
) -> tuple[tuple[str, str], ...]:
    shown = {"alertname": rule.name, **dict(labels)}
    severity = None if state.severity is None else state.severity.value
    threshold = rule.threshold_of(state.severity)
    return tuple(
        (name, render_template(text, shown, value, severity, threshold))
        for name, text in rule.annotations
    )


def advance_rule(
    rule: Rule | Slo,
    version: int,
    previous: Mapping[Labels, StoredInstance],
    readings: Mapping[Labels, Reading] | None,
    now: datetime,
) -> tuple[list[StoredInstance], list[HistoryRow]]:
    """Every instance of a rule after one evaluation at ``now``, and the history it adds.

    ``readings`` None means the query failed: every known instance (or, with none,
    the rule's instance without labels, until the query answers again) reads
    ``error``. A known instance missing
    from the readings has no data (for a ``no_data`` rule: breaches), except an
    inactive one, which is forgotten: nothing about it is worth keeping.
    """
    if readings is None:
        failed: list[Labels] = list(previous) or [()]
        found = {labels: Reading(Observation.ERROR) for labels in failed}
    else:
        found = dict(readings)
        for labels, instance in previous.items():
            if labels in found:
                continue
            if len(labels) != len(rule.by):
                # The rule's own instance, made when its query failed before any label
                # set was known: the query answers again, so it is over.
                found[labels] = Reading(Observation.OK)
            elif isinstance(rule, Rule) and rule.condition is Condition.NO_DATA:
                found[labels] = Reading(Observation.BREACH, rule.severity)
            elif instance.state.state is not AlertState.INACTIVE:
                found[labels] = Reading(Observation.NODATA)
    instances, history = [], []
    for labels, reading in sorted(found.items()):
        known = previous.get(labels)
        before = known.state if known is not None else InstanceState()
        after = advance(before, reading, now, rule.for_, rule.keep_firing_for)
        instances.append(
            StoredInstance(
                rule.name,
                version,
                labels,
                after,
                reading.value,
                reading.sample_size,
                now,
                _annotations(rule, labels, after, reading.value),
            )
        )
        history.append(
            HistoryRow(
                rule.name,
                version,
                labels,
                now,
                reading.observation.value,
                before.state,
                after.state,
                before.severity,
                after.severity,
                reading.value,
                reading.sample_size,
                before.state is not after.state or before.severity is not after.severity,
            )
        )
    return instances, history


def evaluate_rule(
    metrics: MetricService,
    rule: Rule | Slo,
    version: int,
    current: Mapping[Labels, StoredInstance],
    now: datetime,
    versions: Mapping[str, Any] | None = None,
) -> tuple[list[StoredInstance], list[HistoryRow], int, str | None]:
    """One evaluation of one rule (or SLO) at ``now`` from its instances ``current``: its
    queries run (through the metric cache), each instance advanced. The live evaluator
    and a backtest both take this one path. Returns the instances, the history rows, how
    many statements the cache answered, and why the query failed (or None)."""
    try:
        readings, cached = _readings(metrics, rule, current, now, versions)
    # Any failure of one rule's query (a timeout, a lost connection, a metric the
    # engine cannot compute) is that rule's error state, not the end of the cycle.
    except Exception as exc:
        _log.warning("alert rule %s: evaluation failed: %s", rule.name, exc)
        moved, added = advance_rule(rule, version, current, None, now)
        return moved, added, 0, f"{type(exc).__name__}: {exc}"
    moved, added = advance_rule(rule, version, current, readings, now)
    return moved, added, cached, None


def _readings(
    metrics: MetricService,
    rule: Rule | Slo,
    current: Mapping[Labels, StoredInstance],
    now: datetime,
    versions: Mapping[str, Any] | None,
) -> tuple[dict[Labels, Reading], int]:
    """A rule's readings at ``now``, and how many statements the metric cache answered."""
    if isinstance(rule, Slo):
        counts, cached = rule.counts(metrics, now, rule.windows, versions)
        return {labels: burn_reading(rule, c) for labels, c in counts.items()}, cached
    firing = {labels for labels, known in current.items() if known.state.is_firing}
    results = [
        metrics.run(query, compare=rule.compare is not Compare.VALUE, versions=versions)
        for query in rule.queries(now)
    ]
    return readings_of(rule, results, now, firing), sum(result.cached for result in results)


@dataclass(frozen=True, slots=True)
class RuleEvaluation:
    """What one evaluation of one rule did."""

    rule_name: str
    evaluated_at: datetime
    instances: int
    transitions: int
    #: How many statements of its query the metric cache answered (unchanged data).
    cached: int
    #: Why the query failed (its instances then read ``error``), or None.
    error: str | None = None


class Evaluator:
    """Evaluates rules over a store's metrics and keeps their instances in the store."""

    def __init__(self, metrics: MetricService, store: AlertStore) -> None:
        self._metrics = metrics
        self._store = store

    def evaluate(
        self, rules: Sequence[StoredRule], now: datetime, *, once_per_tick: bool = False
    ) -> list[RuleEvaluation]:
        """Evaluate each rule at ``now``: run its query (cached per data version: rules
        asking the same question at the same time share one answer), advance its
        instances, and store them and their history in one transaction.

        ``once_per_tick``: rules another process has recorded at ``now`` (or later)
        are not saved again, nor reported (see :meth:`AlertStore.save_evaluation`)."""
        versions = self._versions(rules, now)
        by_rule: dict[str, dict[Labels, StoredInstance]] = {}
        for instance in self._store.instances():
            by_rule.setdefault(instance.rule_name, {})[instance.labels] = instance
        reports, instances, history = [], [], []
        for stored in rules:
            rule = stored.rule
            assert rule is not None, "deleted rules are not evaluated"
            known = by_rule.get(rule.name, {})
            # Instances of an older version were reset when the rule changed.
            current = {k: v for k, v in known.items() if v.rule_version == stored.version}
            moved, added, cached, error = evaluate_rule(
                self._metrics, rule, stored.version, current, now, versions
            )
            instances.extend(moved)
            history.extend(added)
            changed = sum(row.transition for row in added)
            reports.append(RuleEvaluation(rule.name, now, len(moved), changed, cached, error))
        saved = self._store.save_evaluation(
            [s.name for s in rules], instances, history, once_per_tick=once_per_tick
        )
        return [report for report in reports if report.rule_name in saved]

    def _versions(self, rules: Sequence[StoredRule], now: datetime) -> dict[str, int]:
        """The data versions of every table the rules read, in one reading: so every rule of
        a cycle sees the store as it was at one moment."""
        tables: set[str] = set()
        for stored in rules:
            assert stored.rule is not None
            try:
                for query in _queries(stored.rule, now):
                    for statement in self._metrics.compile(query):
                        tables.update(statement.depends_on)
            # A query that cannot be compiled (a stored rule a newer catalogue no longer
            # answers) fails again when its rule runs: that rule's error, not the cycle's.
            except QueryError:
                continue
        return self._metrics.versions(sorted(tables))


def _queries(rule: Rule | Slo, now: datetime) -> list[MetricQuery]:
    """The metric queries an evaluation at ``now`` runs: a rule's, an SLO's one per window."""
    if isinstance(rule, Slo):
        return [rule.query(now, window) for window in rule.windows]
    return rule.queries(now)
