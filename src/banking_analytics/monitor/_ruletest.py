"""Unit tests of alert rules in the shape of ``promtool test rules``.

A test file names rule files (``rule_files``, relative to it) or lists rules
inline (``rules``), and holds ``tests``; each test gives input series and the
alerts expected at chosen times::

    rule_files: [rules.yaml]
    evaluation_interval: 1m
    tests:
      - name: a bank goes down
        interval: 1m
        input_series:
          - series: 'connection_success_rate{institution="ins_1"}'
            values: '0.99x10 0.3x10'
            samples: '100x20'
        alert_rule_test:
          - eval_time: 15m
            alertname: institution_success_rate_low
            exp_alerts:
              - exp_labels: {institution: ins_1, severity: critical, team: integrations}
                exp_annotations: {summary: "ins_1: link success rate 30%"}

A series is a metric name (the rule's ``metric``) and labels: the rule's ``by``
dimensions (its instance) and, optionally, dimensions it filters on (with a
value it accepts). ``values`` (and the optional ``samples``, the sample size
behind each value) are in promtool's expanding notation: ``a+bxn`` is the n+1
values a, a+b, ..., a+n·b; ``axn`` is a repeated n+1 times; ``_`` is a missing
value and ``_xn`` n of them; ``stale`` is missing too. The k-th value is the
figure at ``k · interval``; after the last, the series has no data. A time
metric's values are its age in seconds. The figure of the window before (for a
``change`` rule) is the series' value ``window`` earlier.

An SLO (listed under ``slos``) reads its SLI's series differently, as promtool's
burn-rate tests read counters: the k-th value is the SLI over the events *at*
``k · interval`` and ``samples`` (required) how many there are; a window
``[t - w, t)`` counts the steps whose time falls in it, so each of the SLO's
windows has its own burn rate.

Every rule is evaluated at ``0, evaluation_interval, 2·evaluation_interval,
...`` (and at every ``eval_time``), with the same state machine and the same
readings as the evaluator over a store. At ``eval_time``, ``exp_alerts`` lists
**every instance that is not inactive** of ``alertname``: ``exp_labels`` (its
labels but ``alertname``, severity included), ``exp_annotations`` (compared
when given), and our extension ``exp_state`` (pending, firing, recovering,
nodata or error; ``firing`` when left out). Unlike promtool, a pending alert is
listed too: our states are part of what a rule test checks. An empty list
says no instance is active.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from banking_analytics.metrics import CATALOG
from banking_analytics.monitor._durations import format_duration, parse_duration
from banking_analytics.monitor._evaluate import advance_rule, alert_labels, observe
from banking_analytics.monitor._rules import Rule, _path_text
from banking_analytics.monitor._slo import Counts, Slo, burn_reading
from banking_analytics.monitor._state import AlertState, Reading
from banking_analytics.monitor._store import Labels, StoredInstance
from banking_analytics.monitor._yaml import (
    RuleFileError,
    line_of,
    load_yaml_with_lines,
    read_rule_file,
    rules_at,
)

__all__ = ["RuleTestReport", "expand_series", "run_rule_tests"]

#: Test time 0: an instant, so that times print as durations from it.
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_NUMBER = r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_TOKEN = re.compile(rf"^(?:(_|stale)(?:x([0-9]+))?|({_NUMBER})(?:([-+]{_NUMBER})?x([0-9]+))?)$")
_SERIES = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*(?:\{(.*)\})?\s*$")
_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
#: The longest expansion one token may make: a guard against ``1x999999999``.
_MAX_POINTS = 100_000


def expand_series(text: str) -> list[float | None]:
    """promtool's expanding notation; ``ValueError`` naming the token not understood."""
    points: list[float | None] = []
    for token in str(text).split():
        match = _TOKEN.match(token)
        if match is None:
            raise ValueError(f"{token!r} is not a value, _, stale, a+bxn or axn")
        missing, missing_times, start, step, times = match.groups()
        if missing is not None:
            count = int(missing_times) if missing_times is not None else 1
            points += [None] * min(count, _MAX_POINTS)
        elif times is None:
            points.append(float(start))
        else:
            first, delta = float(start), float(step) if step is not None else 0.0
            points += [first + i * delta for i in range(min(int(times), _MAX_POINTS) + 1)]
        if len(points) > _MAX_POINTS:
            raise ValueError(f"a series may hold at most {_MAX_POINTS:,} values")
    if any(p is not None and not math.isfinite(p) for p in points):
        raise ValueError("values must be finite numbers")
    return points


@dataclass(frozen=True, slots=True)
class _Series:
    metric: str
    labels: dict[str, str]
    values: list[float | None]
    samples: list[float | None] | None

    def sums(self) -> tuple[list[int], list[int]]:
        """Running totals of the events (samples) and of the SLI's numerators
        (``round(value x sample)``) before each step: a window's are two differences."""
        events, numerators = [0], [0]
        for index in range(len(self.values)):
            value, sample = self.at(index)
            counted = sample or 0 if value is not None else 0
            events.append(events[-1] + counted)
            numerators.append(numerators[-1] + round((value or 0.0) * counted))
        return events, numerators

    def at(self, index: int) -> tuple[float | None, int | None]:
        if not 0 <= index < len(self.values):
            return None, None
        sample = None
        if self.samples is not None and index < len(self.samples):
            found = self.samples[index]
            sample = None if found is None else int(found)
        return self.values[index], sample


@dataclass(frozen=True, slots=True)
class _Expected:
    eval_time: timedelta
    alertname: str
    alerts: list[tuple[dict[str, str], dict[str, str] | None, str]]
    line: int


@dataclass(slots=True)
class RuleTestReport:
    """How a test file went: how many checks ran, and each failure as promtool words it."""

    checks: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _series(entry: Any, where: tuple[str | int, ...]) -> _Series:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("series"), str):
        raise _TestFileError(where, "each input series has a series: 'metric{label=\"value\"}'")
    match = _SERIES.match(entry["series"])
    if match is None:
        raise _TestFileError(
            (*where, "series"), f'{entry["series"]!r} is not metric{{label="value"}}'
        )
    labels_text = match[2] or ""
    labels = {m[1]: m[2].replace('\\"', '"') for m in _LABEL.finditer(labels_text)}
    if _LABEL.sub("", labels_text).strip():
        raise _TestFileError(
            (*where, "series"), f'labels {labels_text!r} are not name="value", ...'
        )
    try:
        values = expand_series(entry.get("values", ""))
        samples = None if entry.get("samples") is None else expand_series(entry["samples"])
    except ValueError as exc:
        raise _TestFileError((*where, "values"), str(exc)) from None
    return _Series(match[1], labels, values, samples)


class _TestFileError(Exception):
    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _duration(value: Any, where: tuple[str | int, ...], default: timedelta | None) -> timedelta:
    if value is None and default is not None:
        return default
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise _TestFileError(where, str(exc)) from None


def _instance_of(rule: Rule | Slo, series: _Series) -> Labels | None:
    """The instance a series feeds, or None when it is not the rule's (the SLO's)."""
    metric = rule.sli if isinstance(rule, Slo) else rule.metric
    if series.metric != metric or not set(rule.by) <= set(series.labels):
        return None
    allowed = dict(rule.filters)
    for name, value in series.labels.items():
        if name not in rule.by and value not in allowed.get(name, ()):
            return None
    return tuple(sorted((name, series.labels[name]) for name in rule.by))


def _slo_readings(
    slo: Slo,
    series: Sequence[tuple[_Series, tuple[list[int], list[int]]]],
    at: timedelta,
    interval: timedelta,
) -> dict[Labels, Reading]:
    """An SLO's series give the SLI over the events at each step (``samples`` of them):
    a window ``[at - w, at)`` counts the steps whose time falls in it."""
    good_is_higher = CATALOG[slo.sli].higher_is_better
    found: dict[Labels, dict[timedelta, Counts]] = {}
    for one, (events, numerators) in series:
        labels = _instance_of(slo, one)
        if labels is None:
            continue
        by_window = found.setdefault(labels, {})
        last = min(-(-at // interval), len(events) - 1)  # the first step at or after at
        for window in slo.windows:
            first = min(max(0, -((window - at) // interval)), last)  # ... after at - w
            total = events[last] - events[first]
            numerator = numerators[last] - numerators[first]
            bad = total - numerator if good_is_higher else numerator
            before = by_window.get(window, Counts(0, 0))
            by_window[window] = Counts(before.total + total, (before.bad or 0) + bad)
    return {
        labels: burn_reading(slo, {w: c for w, c in counts.items() if c.total})
        for labels, counts in found.items()
        if any(c.total for c in counts.values())
    }


def _readings(
    rule: Rule, series: Sequence[_Series], at: timedelta, interval: timedelta
) -> dict[Labels, Reading]:
    now = _EPOCH + at
    found: dict[Labels, Reading] = {}
    for one in series:
        labels = _instance_of(rule, one)
        if labels is None:
            continue
        value, sample = one.at(int(at / interval))
        if value is None and sample is None:
            continue  # no data point at all: the instance is absent from the result
        before = at - rule.window
        previous = one.at(int(before / interval))[0] if before >= timedelta(0) else None
        found[labels] = observe(rule, value, sample, previous, now)
    return found


def _actual(
    rule: Rule | Slo, instances: Sequence[StoredInstance]
) -> list[tuple[dict[str, str], dict[str, str], str]]:
    shown = []
    for instance in instances:
        if instance.state.state is AlertState.INACTIVE:
            continue
        labels = alert_labels(rule, instance.labels, instance.state, instance.value)
        labels.pop("alertname")
        shown.append((_sorted(labels), dict(instance.annotations), instance.state.state.value))
    return sorted(shown, key=repr)


def _sorted(mapping: Mapping[Any, Any]) -> dict[str, str]:
    """Text to text, in name order: so that alerts sort and print alike."""
    return {str(k): str(v) for k, v in sorted(mapping.items(), key=lambda kv: str(kv[0]))}


def _check_alerts(
    test: str | None,
    expected: _Expected,
    rule: Rule | Slo,
    instances: Sequence[StoredInstance],
    report: RuleTestReport,
) -> None:
    report.checks += 1
    actual = _actual(rule, instances)
    got = sorted(
        (
            (labels, annotations if want is not None else None, state)
            for (labels, annotations, state), want in _pair_annotations(actual, expected.alerts)
        ),
        key=repr,
    )
    wanted = sorted(expected.alerts, key=repr)
    if got != wanted:
        report.failures.append(
            ("" if test is None else f"[{test}] ")
            + f"line {expected.line}: alertname: {expected.alertname}, "
            f"time: {format_duration(expected.eval_time)},\n"
            f"    exp: {_describe(wanted)}\n"
            f"    got: {_describe(actual)}"
        )


def _pair_annotations(
    actual: list[tuple[dict[str, str], dict[str, str], str]],
    expected: list[tuple[dict[str, str], dict[str, str] | None, str]],
) -> list[tuple[tuple[dict[str, str], dict[str, str], str], dict[str, str] | None]]:
    """Each actual alert with the expectation for the same labels (whose annotations are
    compared only when it gives them)."""
    by_labels = {repr(sorted(labels.items())): annotations for labels, annotations, _ in expected}
    return [(a, by_labels.get(repr(sorted(a[0].items())))) for a in actual]


def _describe(alerts: Sequence[tuple[dict[str, str], dict[str, str] | None, str]]) -> str:
    if not alerts:
        return "[]"
    parts = []
    for labels, notes, state in alerts:
        text = f"{state} {labels}"
        if notes:
            text += f" annotations={notes}"
        parts.append(text)
    return "[" + ", ".join(parts) + "]"


def _expected(entry: Any, where: tuple[str | int, ...], node: yaml.Node | None) -> _Expected:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("alertname"), str):
        raise _TestFileError(where, "each alert_rule_test has an eval_time and an alertname")
    listed = entry.get("exp_alerts") or []
    if not isinstance(listed, list):
        raise _TestFileError((*where, "exp_alerts"), "a list of expected alerts")
    alerts = []
    for index, alert in enumerate(listed):
        at = (*where, "exp_alerts", index)
        if not isinstance(alert, Mapping):
            raise _TestFileError(at, "an expected alert has exp_labels, exp_annotations, exp_state")
        labels = alert.get("exp_labels") or {}
        annotations = alert.get("exp_annotations")
        state = alert.get("exp_state", "firing")
        if state not in {s.value for s in AlertState} - {AlertState.INACTIVE.value}:
            raise _TestFileError(
                (*at, "exp_state"), "one of pending, firing, recovering, nodata, error"
            )
        if not isinstance(labels, Mapping) or not (
            annotations is None or isinstance(annotations, Mapping)
        ):
            raise _TestFileError(at, "exp_labels and exp_annotations are mappings")
        alerts.append(
            (_sorted(labels), None if annotations is None else _sorted(annotations), state)
        )
    return _Expected(
        _duration(entry.get("eval_time"), (*where, "eval_time"), None),
        entry["alertname"],
        alerts,
        line_of(node, where),
    )


def run_rule_tests(path: str) -> RuleTestReport:
    """Run a test file; :class:`RuleFileError` (with line numbers) when it cannot be run."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError([f"{path}: cannot read: {exc}"]) from None
    data, node = load_yaml_with_lines(text, path)
    if not isinstance(data, Mapping):
        raise RuleFileError([f"{path}:1: a rule test file is a mapping with tests"])
    try:
        rules = _rules(data, node, path)
        interval = _duration(
            data.get("evaluation_interval"), ("evaluation_interval",), timedelta(minutes=1)
        )
        tests = data.get("tests")
        if not isinstance(tests, list) or not tests:
            raise _TestFileError(("tests",), "a list of tests")
        report = RuleTestReport()
        for index, test in enumerate(tests):
            _run_test(test, ("tests", index), rules, interval, node, report)
    except _TestFileError as problem:
        raise RuleFileError(
            [f"{path}:{line_of(node, problem.path)}: {_path_text(problem.path)}: {problem.message}"]
        ) from None
    return report


def _rules(data: Mapping[str, Any], node: yaml.Node | None, path: str) -> dict[str, Rule | Slo]:
    rules: list[Rule | Slo] = []
    if "rules" in data or "slos" in data:
        rules += rules_at(data, node, path)
    files = data.get("rule_files") or []
    if not isinstance(files, list):
        raise _TestFileError(("rule_files",), "a list of rule files (relative to this file)")
    for name in files:
        rules += read_rule_file(str(Path(path).parent / str(name)))
    if not rules:
        raise _TestFileError(("rule_files",), "name rule files, or list rules inline")
    anomalies = [rule.name for rule in rules if isinstance(rule, Rule) and rule.anomaly is not None]
    if anomalies:
        # A detector judges weeks of bucketed history, not sample series: replay it over
        # the store's data instead.
        raise _TestFileError(
            ("rules",),
            f"{', '.join(anomalies)}: an anomaly rule is tried with rules backtest, "
            "not a rule test",
        )
    return {rule.name: rule for rule in rules}


def _run_test(
    test: Any,
    where: tuple[str | int, ...],
    rules: Mapping[str, Rule | Slo],
    evaluation_interval: timedelta,
    node: yaml.Node | None,
    report: RuleTestReport,
) -> None:
    if not isinstance(test, Mapping):
        raise _TestFileError(where, "a test has input_series and alert_rule_test")
    interval = _duration(test.get("interval"), (*where, "interval"), evaluation_interval)
    if interval <= timedelta(0) or evaluation_interval <= timedelta(0):
        raise _TestFileError((*where, "interval"), "intervals must be longer than zero")
    series = [
        _series(s, (*where, "input_series", i))
        for i, s in enumerate(test.get("input_series") or [])
    ]
    slis = {rule.sli for rule in rules.values() if isinstance(rule, Slo)}
    for i, one in enumerate(series):
        if one.metric in slis and one.samples is None:
            raise _TestFileError(
                (*where, "input_series", i),
                "a series of an SLO's SLI gives samples: the events behind each value",
            )
    checks = [
        _expected(e, (*where, "alert_rule_test", i), node)
        for i, e in enumerate(test.get("alert_rule_test") or [])
    ]
    for i, check in enumerate(checks):
        if check.alertname not in rules:
            raise _TestFileError(
                (*where, "alert_rule_test", i, "alertname"), f"no rule named {check.alertname!r}"
            )
    title = None if test.get("name") is None else str(test["name"])
    last = max((c.eval_time for c in checks), default=timedelta(0))
    steps = int(last / evaluation_interval)
    times = sorted(
        {*(k * evaluation_interval for k in range(steps + 1)), *(c.eval_time for c in checks)}
    )
    states: dict[str, dict[Labels, StoredInstance]] = {name: {} for name in rules}
    summed = [(one, one.sums()) for one in series]
    for at in times:
        for name, rule in rules.items():
            readings = (
                _slo_readings(rule, summed, at, interval)
                if isinstance(rule, Slo)
                else _readings(rule, series, at, interval)
            )
            moved, _ = advance_rule(rule, 1, states[name], readings, _EPOCH + at)
            states[name] = {i.labels: i for i in moved}
        for check in checks:
            if check.eval_time == at:
                instances = list(states[check.alertname].values())
                _check_alerts(title, check, rules[check.alertname], instances, report)
