"""Alert rules as data: a metric query, a condition, thresholds and timers.

A rule asks the metric layer one :class:`MetricQuery` (any catalogue metric,
filtered, over a trailing ``window``, cut ``by`` dimensions: one alert instance
per combination of their values) and compares each instance's figure with its
thresholds:

* ``condition: above`` / ``below``: the compared figure is above (below) the
  ``critical`` threshold → critical; else above (below) ``warning`` → warning.
  The compared figure is the metric's value (``compare: value``), its change
  since the window before (``change``: value - previous value), or that change
  in per cent of the previous value (``change_percent``: 100·(value - previous)
  ÷ |previous|).
* ``condition: no_data``: the instance breaches (at ``severity``) when it has no
  figure: no events, or fewer than the minimum sample.
* ``condition: anomaly``: the metric's series, bucketed by ``window``, is judged
  against the same time of week of the weeks before by the detector the
  ``anomaly`` mapping sets (:mod:`._anomaly`); the instance breaches at
  ``severity``.

A time metric (``sync_last_success_at``) is compared as its age in seconds at
the evaluation time (thresholds may then be written as durations: ``6h``).

A metric with a figure only per day (rolling active users, the revenue ledger's: see
:func:`per_day`) is asked with a day bucket, and the window's latest day compared.

An instance whose sample is below ``min_sample`` (at least the metric's own
minimum sample) has no figure: it is ``nodata``, never compared with a number
it does not have. ``for``, ``keep_firing_for`` and ``interval`` drive the
state machine (:mod:`._state`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from banking_analytics.metrics import (
    CATALOG,
    Derived,
    Metric,
    MetricQuery,
    Provided,
    QueryError,
    Rolling,
    TimeWindow,
    Unit,
)
from banking_analytics.monitor._anomaly import ANOMALY_BUCKETS, AnomalySpec
from banking_analytics.monitor._durations import format_duration, parse_duration
from banking_analytics.monitor._template import check_template

__all__ = [
    "MAX_RULE_WINDOW",
    "Compare",
    "Condition",
    "Problem",
    "Rule",
    "RuleError",
    "Severity",
]

#: The longest window a rule may look back over.
MAX_RULE_WINDOW = timedelta(days=90)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
#: Labels the evaluator sets itself.
_RESERVED_LABELS = frozenset({"alertname", "severity"})
_MAX_TEXT = 1000
_MAX_ENTRIES = 20
_MAX_SAMPLE = 10**9
#: Dimensions whose values are one end user's (or their connection's): no alert per value.
PERSONAL_DIMENSIONS = frozenset({"user", "connection"})
_E = TypeVar("_E", bound=StrEnum)
_FIELDS = (
    "name",
    "metric",
    "window",
    "by",
    "filters",
    "condition",
    "compare",
    "warning",
    "critical",
    "severity",
    "for",
    "keep_firing_for",
    "min_sample",
    "interval",
    "labels",
    "annotations",
    "anomaly",
)


class Condition(StrEnum):
    ABOVE = "above"
    BELOW = "below"
    NO_DATA = "no_data"
    ANOMALY = "anomaly"


class Compare(StrEnum):
    VALUE = "value"
    CHANGE = "change"
    CHANGE_PERCENT = "change_percent"


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


#: One thing wrong with a rule: where (a path of keys and indexes) and what.
Problem = tuple[tuple[str | int, ...], str]


class RuleError(ValueError):
    """A rule that cannot be made; ``problems`` lists each field at fault."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(
            "; ".join(f"{_path_text(path)}: {message}" for path, message in self.problems)
        )


def _path_text(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "rule"


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert rule (see the module). Build it with :meth:`from_dict`, which checks it."""

    name: str
    metric: str
    window: timedelta
    condition: Condition
    by: tuple[str, ...] = ()
    #: (dimension, allowed values), sorted by dimension.
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()
    compare: Compare = Compare.VALUE
    warning: float | None = None
    critical: float | None = None
    #: The severity a ``no_data`` or ``anomaly`` rule fires at.
    severity: Severity | None = None
    for_: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)
    min_sample: int = 0
    interval: timedelta = timedelta(minutes=1)
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    #: An ``anomaly`` rule's detector.
    anomaly: AnomalySpec | None = None

    @property
    def is_time(self) -> bool:
        """Whether the metric is a time, compared as its age in seconds."""
        return CATALOG[self.metric].unit is Unit.TIMESTAMP

    @property
    def effective_min_sample(self) -> int:
        """The sample below which an instance is nodata: the rule's, at least the metric's."""
        return max(self.min_sample, CATALOG[self.metric].min_sample)

    def query(self, now: datetime) -> MetricQuery:
        """The metric query of an evaluation at ``now``: the window ``[now - window, now)``
        (an anomaly rule: the first of :meth:`queries`)."""
        return self.queries(now)[0]

    def queries(self, now: datetime) -> list[MetricQuery]:
        """Every metric query of an evaluation at ``now``: the rule's :meth:`query`, or an
        anomaly rule's bucketed series (see :meth:`AnomalySpec.queries`)."""
        if self.anomaly is not None:
            return self.anomaly.queries(self.metric, self.window, self.by, dict(self.filters), now)
        return [self._query(now)]

    def _query(self, now: datetime) -> MetricQuery:
        return MetricQuery.build(
            [self.metric],
            TimeWindow(now - self.window, now, format_duration(self.window)),
            dimensions=self.by,
            filters=dict(self.filters),
            bucket="day" if per_day(CATALOG[self.metric]) else None,
        )

    def severity_of(self, compared: float) -> Severity | None:
        """The severity a compared figure breaches, or None when it breaches neither threshold."""
        above = self.condition is Condition.ABOVE
        for level, threshold in (
            (Severity.CRITICAL, self.critical),
            (Severity.WARNING, self.warning),
        ):
            if threshold is not None and (compared > threshold if above else compared < threshold):
                return level
        return None

    def threshold_of(self, severity: Severity | None) -> float | None:
        if severity is Severity.CRITICAL:
            return self.critical
        if severity is Severity.WARNING:
            return self.warning
        return None

    def as_dict(self) -> dict[str, Any]:
        """The rule as it is written in YAML or JSON (defaults left out)."""
        written: dict[str, Any] = {
            "name": self.name,
            "metric": self.metric,
            "window": format_duration(self.window),
            "condition": self.condition.value,
        }
        optional: dict[str, Any] = {
            "by": list(self.by),
            "filters": {dim: list(values) for dim, values in self.filters},
            "compare": None if self.compare is Compare.VALUE else self.compare.value,
            "warning": self.warning,
            "critical": self.critical,
            "severity": None if self.severity is None else self.severity.value,
            **written_timing(self, "min_sample", self.min_sample),
            "anomaly": None if self.anomaly is None else self.anomaly.as_dict(),
        }
        written.update({k: v for k, v in optional.items() if v not in (None, [], {})})
        return written

    @classmethod
    def from_dict(cls, data: object) -> Rule:
        """A rule from its written form; :class:`RuleError` lists every field at fault."""
        return _Checker(data).rule()


def same_but_annotations(old: object, new: object) -> bool:
    """Whether two versions (of a rule, or of an SLO) differ at most in annotations, which
    keep their instances."""
    return (
        type(old) is type(new)
        and is_dataclass(old)
        and all(
            getattr(old, f.name) == getattr(new, f.name)
            for f in fields(old)
            if f.name != "annotations"
        )
    )


def written_timing(
    rule: Any, minimum_key: str, minimum: int
) -> dict[str, str | int | dict[str, str] | None]:
    """The timers, minimum sample, labels and annotations of a rule or SLO as written
    (None and empty ones left out by the caller)."""
    return {
        "for": None if not rule.for_ else format_duration(rule.for_),
        "keep_firing_for": (
            None if not rule.keep_firing_for else format_duration(rule.keep_firing_for)
        ),
        minimum_key: minimum or None,
        "interval": format_duration(rule.interval),
        "labels": dict(rule.labels),
        "annotations": dict(rule.annotations),
    }


class _Checker:
    """Reads a rule's fields one by one, collecting every problem rather than the first."""

    def __init__(self, data: object, fields: Sequence[str] = _FIELDS, what: str = "a rule") -> None:
        self.problems: list[Problem] = []
        self.data: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
        if not isinstance(data, Mapping):
            self.problems.append(
                ((), f"{what} is a mapping of its fields ({', '.join(fields[:2])}, ...)")
            )
        for key in self.data:
            if key not in fields:
                self.problems.append(
                    ((str(key),), f"unknown field; fields are {', '.join(fields)}")
                )

    def _fail(self, key: str | tuple[str | int, ...], message: str) -> None:
        self.problems.append(((key,) if isinstance(key, str) else key, message))

    def _text(self, key: str, pattern: re.Pattern[str] | None = None) -> str | None:
        value = self.data.get(key)
        if value is None:
            self._fail(key, "required")
            return None
        if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
            what = "text" if pattern is None else f"text matching {pattern.pattern}"
            self._fail(key, f"{what}, got {value!r}")
            return None
        return value

    def _choice(self, key: str, kind: type[_E], default: _E | None) -> _E | None:
        value = self.data.get(key)
        if value is None:
            if default is None:
                self._fail(key, f"required: one of {', '.join(kind)}")
            return default
        try:
            return kind(value)
        except ValueError:
            self._fail(key, f"one of {', '.join(kind)}, got {value!r}")
            return default

    def _duration(self, key: str, default: timedelta | None, low: timedelta) -> timedelta:
        value = self.data.get(key)
        if value is None:
            if default is None:
                self._fail(key, "required: a duration like 5m or 1h")
                return low
            return default
        try:
            span = parse_duration(value)
        except ValueError as exc:
            self._fail(key, str(exc))
            return low
        if span < low or span > MAX_RULE_WINDOW:
            self._fail(
                key,
                f"between {format_duration(low)} and {format_duration(MAX_RULE_WINDOW)}, "
                f"got {value}",
            )
        return span

    def _threshold(self, key: str, is_time: bool) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        if is_time and isinstance(value, str):
            try:
                return parse_duration(value).total_seconds()
            except ValueError as exc:
                self._fail(key, str(exc))
                return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._fail(key, f"a number, got {value!r}")
            return None
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            self._fail(key, "a finite number")
            return None
        return number

    def _mapping(self, key: str, values: re.Pattern[str] | None) -> tuple[tuple[str, str], ...]:
        found = self.data.get(key) or {}
        if not isinstance(found, Mapping) or len(found) > _MAX_ENTRIES:
            self._fail(key, f"a mapping of at most {_MAX_ENTRIES} names to text")
            return ()
        pairs = []
        for name, text in found.items():
            where = (key, str(name))
            if not isinstance(name, str) or not _LABEL.match(name):
                self._fail(where, f"a name matching {_LABEL.pattern}")
            elif key == "labels" and name in _RESERVED_LABELS:
                self._fail(where, f"{name} is set by the evaluator")
            elif not isinstance(text, str) or len(text) > _MAX_TEXT:
                self._fail(where, f"text of at most {_MAX_TEXT} characters")
            else:
                try:
                    check_template(text)
                except ValueError as exc:
                    self._fail(where, str(exc))
                    continue
                pairs.append((name, text))
        return tuple(sorted(pairs))

    def _names(self, key: str) -> tuple[str, ...]:
        found = self.data.get(key) or []
        if not isinstance(found, list) or not all(isinstance(v, str) for v in found):
            self._fail(key, "a list of dimension names")
            return ()
        return tuple(found)

    def _filters(self) -> dict[str, list[str]]:
        found = self.data.get("filters") or {}
        if not isinstance(found, Mapping):
            self._fail("filters", "a mapping of dimension to a value or a list of values")
            return {}
        checked = {}
        for dim, values in found.items():
            listed = [values] if isinstance(values, str) else values
            if not isinstance(listed, list) or not all(isinstance(v, str) for v in listed):
                self._fail(("filters", str(dim)), "a value or a list of values (text)")
                continue
            checked[str(dim)] = listed
        return checked

    def timing(self) -> dict[str, Any]:
        """``for``, ``keep_firing_for``, ``interval``, labels and annotations, as the fields
        of a rule (or SLO) are named."""
        return {
            "for_": self._duration("for", timedelta(0), timedelta(0)),
            "keep_firing_for": self._duration("keep_firing_for", timedelta(0), timedelta(0)),
            "interval": self._duration("interval", timedelta(minutes=1), timedelta(seconds=1)),
            "labels": self._mapping("labels", None),
            "annotations": self._mapping("annotations", None),
        }

    def sample(self, key: str) -> int:
        """A minimum sample: a whole number, 0 when left out."""
        found = self.data.get(key, 0)
        if isinstance(found, bool) or not isinstance(found, int) or not 0 <= found <= _MAX_SAMPLE:
            self._fail(key, f"a whole number from 0 to {_MAX_SAMPLE:,}, got {found!r}")
            return 0
        return found

    def breakdown(
        self, metric: str | None, window: timedelta
    ) -> tuple[tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...]]:
        """The ``by`` dimensions and the ``filters``, checked against the metric."""
        by, filters = self._names("by"), self._filters()
        personal = [d for d in by if d in PERSONAL_DIMENSIONS]
        if personal:
            # An instance per end user would keep one user's data in every alert and grow
            # the alert tables with the user base: alerts are about integrations.
            self._fail(
                "by",
                f"{', '.join(personal)} names one user's data: cut alerts by institution, "
                "aggregator, feature or another shared dimension",
            )
            by = tuple(d for d in by if d not in PERSONAL_DIMENSIONS)
        if metric is not None and window >= timedelta(minutes=1):
            try:
                MetricQuery.build(
                    [metric], TimeWindow(_EPOCH, _EPOCH + window), dimensions=by, filters=filters
                )
            except QueryError as exc:
                self._fail("filters" if str(exc).startswith("filters") else "by", str(exc))
        return tuple(dict.fromkeys(by)), tuple(
            sorted((d, tuple(dict.fromkeys(v))) for d, v in filters.items())
        )

    def rule(self) -> Rule:
        name = self._text("name", _NAME)
        metric = self._text("metric")
        if metric is not None and metric not in CATALOG:
            self._fail("metric", f"unknown metric {metric!r}; see GET .../metrics")
            metric = None
        is_time = metric is not None and CATALOG[metric].unit is Unit.TIMESTAMP
        window = self._duration("window", None, timedelta(minutes=1))
        condition = self._choice("condition", Condition, None)
        compare = self._choice("compare", Compare, Compare.VALUE) or Compare.VALUE
        warning = self._threshold("warning", is_time)
        critical = self._threshold("critical", is_time)
        severity = self._choice("severity", Severity, Severity.CRITICAL)
        self._check_levels(condition, compare, warning, critical, is_time)
        anomaly = self._anomaly(condition, window, is_time)
        if metric is not None and per_day(CATALOG[metric]):
            if anomaly is not None:
                self._fail(
                    "metric", f"{metric} has a figure per day: an anomaly rule cannot judge it"
                )
            elif compare is not Compare.VALUE:
                self._fail(
                    "compare",
                    f"{metric} has a figure per day, read at the window's last day: compare "
                    "must be value",
                )
        min_sample = self.sample("min_sample")
        by, filters = self.breakdown(metric, window)
        rule = Rule(
            name=name or "",
            metric=metric or "",
            window=window,
            condition=condition or Condition.ABOVE,
            by=by,
            filters=filters,
            compare=compare,
            warning=warning,
            critical=critical,
            severity=severity if condition in _FIXED_SEVERITY else None,
            min_sample=min_sample,
            anomaly=anomaly,
            **self.timing(),
        )
        if self.problems:
            raise RuleError(self.problems)
        return rule

    def _check_levels(
        self,
        condition: Condition | None,
        compare: Compare,
        warning: float | None,
        critical: float | None,
        is_time: bool,
    ) -> None:
        if condition in _FIXED_SEVERITY:
            for key in ("warning", "critical", "compare"):
                if self.data.get(key) is not None:
                    article = "an" if condition is Condition.ANOMALY else "a"
                    self._fail(
                        key,
                        f"{article} {condition.value} rule has no thresholds: give its severity",
                    )
            return
        if self.data.get("severity") is not None:
            self._fail("severity", "only a no_data or anomaly rule has a fixed severity")
        if condition is None:
            return
        if self.data.get("warning") is None and self.data.get("critical") is None:
            self._fail("critical", "give a warning or a critical threshold (or both)")
        if is_time and compare is not Compare.VALUE:
            self._fail("compare", "a time metric is compared by its age: compare must be value")
        if warning is not None and critical is not None:
            more_severe = (
                critical >= warning if condition is Condition.ABOVE else critical <= warning
            )
            if not more_severe:
                side = "above" if condition is Condition.ABOVE else "below"
                self._fail(
                    "critical",
                    f"must be {'≥' if side == 'above' else '≤'} warning for a rule that fires "
                    f"{side} them (critical is the more severe level)",
                )

    def _anomaly(
        self, condition: Condition | None, window: timedelta, is_time: bool
    ) -> AnomalySpec | None:
        if condition is not Condition.ANOMALY:
            if self.data.get("anomaly") is not None:
                self._fail("anomaly", "only an anomaly rule (condition: anomaly) has a detector")
            return None
        spec, problems = AnomalySpec.parse(self.data.get("anomaly"))
        for key, message in problems:
            self._fail(("anomaly",) if key is None else ("anomaly", key), message)
        if window not in ANOMALY_BUCKETS:
            self._fail(
                "window",
                "an anomaly rule's window is the bucket it judges: 15m, 1h or 1d",
            )
        if is_time:
            self._fail("metric", "a time metric cannot be judged for anomalies")
        return spec


def per_day(metric: Metric) -> bool:
    """Whether a metric has a figure only per day (or calendar period), not over any window:
    rolling distinct users (weekly and monthly active users, and what derives from them)
    and the revenue ledger's metrics. A threshold rule reads such a metric with a day
    bucket (UTC) and compares the latest day's figure in its window."""
    match metric.measure:
        case Rolling() | Provided():
            return True
        case Derived(inputs=inputs):
            return any(per_day(m) for m in inputs)
    return False


_FIXED_SEVERITY = (Condition.NO_DATA, Condition.ANOMALY)
_EPOCH = datetime.fromisoformat("2000-01-01T00:00:00+00:00")
