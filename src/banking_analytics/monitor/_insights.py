"""Automated insights and recommendations: what changed, why, and what to do about it.

Each run compares a **current window** ``[now - window, now)`` with the **baseline**
just before it ``[now - window - baseline, now - window)`` and states, in one
sentence each, what it finds. Four kinds of insight:

``success_rate_drop``
    An institution's, aggregator's or feature's link (``connection_success_rate``)
    or sync (``sync_success_rate``) success rate fell: the failures among the
    bank-health events rose, by the two-proportion z-test at the Bonferroni level
    (see :mod:`._insight_stats`), by at least ``min_change``. Its evidence splits the
    change in the failure rate by error category and code (which kinds of failure
    grew) and by the other cuts (feature, aggregator, institution: rate and mix
    effects), so the sentence says which error, and where, explains the drop.
``latency_increase``
    An aggregator's or institution's p95 link latency (``connection_latency_p95_ms``
    over completed attempts) grew by ``min_latency_ratio`` or more, and the share of
    attempts slower than the baseline's p95 grew significantly (the same test on
    "slower than the baseline p95" counts: about 5% in the baseline by definition).
``platform_gap``
    A feature fails more often on one platform than on another (behaviour events'
    ``feature_success_rate`` over the baseline and the current window together): the
    platforms with the highest and the lowest failure rate, whose difference has a
    Newcombe interval (simultaneous over every pair compared, Bonferroni) above 0
    and whose ratio is at least ``min_gap_ratio``.
``sync_freshness``
    An institution has more stale connections (DELAYED or STOPPED at ``now``; see
    ``analytics.performance.sync_freshness``) than every other institution put
    together, by the same test, by at least ``min_change``.

**Score** = size x confidence: the size is the number of events the finding
concerns beyond what the comparison expects (failures above the baseline's rate;
attempts above the baseline's p95 beyond the baseline's share; failures above the
better platform's rate; stale connections above the other institutions' share),
and the confidence is ``1 - p`` of its test. Insights are ranked by score, then by
kind and subject, so two runs over the same data give the same list.

**One statement per finding** (:func:`_fold`). An aggregator's or feature's drop that
one institution with a drop of its own explains (that institution contributes at least
half of the change) is folded into the institution's insight (listed in its
``related``), and a feature's drop that one aggregator's drop explains into the
aggregator's; a subject's link and sync drops with one cause are one statement; a
subject's latency rise and stale connections join its drop.

**Recommendations** tie findings to actions, each with its expected effect in events
per window: route an institution's new links to the aggregator that does measurably
better there (the two-proportion test between aggregators at the same institution);
raise an aggregator's errors with it, or treat an institution's errors as its
incident; investigate a platform's client, an aggregator's latency, an institution's
sync pipeline.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from banking_analytics.analytics import InstitutionCatalogue, Period, Shape, SyncFreshness
from banking_analytics.analytics.behavior import newcombe_interval
from banking_analytics.metrics import (
    CATALOG,
    MIN_SAMPLE,
    All,
    Col,
    Compare,
    Count,
    DataVersions,
    Lit,
    Mean,
    Metric,
    MetricQuery,
    MetricService,
    QueryError,
    TimeWindow,
    Unit,
    parse_time_period,
)
from banking_analytics.monitor._insight_stats import (
    Contribution,
    bonferroni_z,
    decompose_kinds,
    decompose_rate,
    two_proportion_test,
)
from banking_analytics.vocabulary import ErrorCategory, ResponsibleParty

__all__ = [
    "MAX_INSIGHTS",
    "MAX_SPAN",
    "Breakdown",
    "Evidence",
    "Insight",
    "InsightEngine",
    "InsightList",
    "InsightSettings",
    "OptimizationReport",
    "QueryLink",
    "Recommendation",
]

MAX_INSIGHTS = 100
#: The longest current window, and the longest baseline, a report compares.
MAX_SPAN = timedelta(days=90)
_API = "/api/banking-analytics"
#: The error categories a failure counts in the bank-health denominator with.
_HEALTH_CATEGORIES = tuple(
    c.value
    for c in ErrorCategory
    if c.responsible_party in (ResponsibleParty.INSTITUTION, ResponsibleParty.AGGREGATOR)
)
_PARTY = {c.value: c.responsible_party for c in ErrorCategory}
_LEVELS = ("institution", "aggregator", "feature")


@dataclass(frozen=True, slots=True)
class InsightSettings:
    """How large and how sure a finding must be to be stated."""

    #: Smallest rise in a failure (or stale) share worth a statement, as a fraction.
    min_change: float = 0.02
    #: Smallest growth of p95 latency worth a statement (1.5: by half).
    min_latency_ratio: float = 1.5
    #: Smallest ratio of two platforms' failure rates worth a statement.
    min_gap_ratio: float = 1.5
    #: Fewest events on each side of a comparison.
    min_sample: int = MIN_SAMPLE
    #: A breakdown part explaining at least this share of a change is named in the sentence
    #: (and one institution explaining this much of a wider drop absorbs it).
    explains: float = 0.5


@dataclass(slots=True, eq=False)
class QueryLink(Shape):
    """A request that reproduces part of the evidence."""

    method: str
    path: str
    #: The JSON body (POST) or the query parameters (GET).
    body: dict[str, Any]


@dataclass(slots=True, eq=False)
class Breakdown(Shape):
    """One label value's part of a change (see :mod:`._insight_stats`)."""

    dimension: str
    value: str
    #: Its contribution ÷ the whole change.
    share: float
    rate_effect: float
    mix_effect: float
    #: Its events and failures (or slow attempts) in the baseline and the current window.
    baseline_events: int
    baseline_failures: int
    current_events: int
    current_failures: int


@dataclass(slots=True, eq=False)
class Evidence(Shape):
    """The figures a statement rests on."""

    metric: str
    #: The cut the figures are of, e.g. ``{"institution": "ins_chase"}``.
    subject: dict[str, str]
    baseline: Period
    current: Period
    baseline_value: float | None
    current_value: float | None
    #: The events behind each figure (the rate's denominator, the percentile's values).
    baseline_sample: int
    current_sample: int
    #: What the test compared, and its outcome.
    test: str
    z: float
    p_value: float
    #: The interval of the difference, where one is reported.
    interval: list[float] | None = None
    #: What the compared counts are, when the test is on others than the headline's.
    compared: dict[str, float] = field(default_factory=dict)
    breakdown: list[Breakdown] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Insight(Shape):
    """One finding, stated once."""

    #: Stable across runs: the kind and the subject.
    id: str
    kind: str
    statement: str
    #: size x confidence.
    score: float
    #: Events concerned beyond what the comparison expects.
    size: float
    #: 1 - the p-value of its test.
    confidence: float
    evidence: Evidence
    queries: list[QueryLink]
    #: Ids of the narrower findings this one explains (not stated again).
    related: list[str] = field(default_factory=list)

    @classmethod
    def scored(
        cls,
        key: tuple[str, ...],
        statement: str,
        size: float,
        p_value: float,
        evidence: Evidence,
        queries: list[QueryLink],
    ) -> Insight:
        """An insight of kind ``key[0]`` about ``key[1:]``: its id from the key, its score
        ``size x (1 - p_value)``."""
        return cls(
            _id(*key), key[0], statement, size * (1 - p_value), size, 1 - p_value, evidence, queries
        )


@dataclass(slots=True, eq=False)
class Recommendation(Shape):
    """An action, what it should change, and why."""

    id: str
    kind: str
    action: str
    expected_effect: str
    #: Events per window the action should save (failures avoided, attempts sped up, ...).
    expected_gain: float
    confidence: float
    #: The insight it acts on, if any.
    insight: str | None
    evidence: Evidence
    queries: list[QueryLink]


@dataclass(slots=True, eq=False)
class InsightList(Shape):
    """Ranked insights over one comparison of windows."""

    current: Period
    baseline: Period
    insights: list[Insight]


@dataclass(slots=True, eq=False)
class OptimizationReport(Shape):
    """Insights and the recommendations they lead to, over one comparison of windows."""

    current: Period
    baseline: Period
    insights: list[Insight]
    recommendations: list[Recommendation]

    def listing(self) -> InsightList:
        """The insights alone."""
        return InsightList(self.current, self.baseline, self.insights)


# -- the families of success rates ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Family:
    name: str
    noun: str
    rate: str
    successes: str
    health: str
    failures: str


_FAMILIES = (
    _Family(
        "link",
        "link success rate",
        "connection_success_rate",
        "connection_successes",
        "connection_health_attempts",
        "connection_failures",
    ),
    _Family(
        "sync",
        "sync success rate",
        "sync_success_rate",
        "sync_successes",
        "sync_health_runs",
        "sync_failures",
    ),
)

#: (institution, aggregator, feature) → (events, failures).
_Cells = dict[tuple[str, str, str], tuple[int, int]]
#: (institution, aggregator, feature, category, code) → failures.
_Failures = dict[tuple[str, str, str, str, str], int]


@dataclass(slots=True)
class _Finding:
    """An insight before it is ranked and folded."""

    insight: Insight
    level: str
    value: str
    family: str | None = None
    #: For a success-rate drop: how its headline reads when another family's statement
    #: of the same subject absorbs it ("its link success rate fell too, from 92% to 5%").
    too: str = ""
    #: The breakdown by each other level: value → share of the change.
    explained_by: dict[str, tuple[str, float]] = field(default_factory=dict)
    #: For a success-rate drop: the top error category and code, and their contribution.
    category: Contribution | None = None
    code: str | None = None


def _id(kind: str, *parts: str) -> str:
    digest = hashlib.sha256("\x1f".join((kind, *parts)).encode()).hexdigest()[:12]
    return f"{kind}:{digest}"


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%" if abs(x) >= 0.1 or x == 0 else f"{100 * x:.1f}%"


def _part(share: float) -> str:
    """A share of a change in a sentence: one part can exceed the whole when another part
    moved the other way (the evidence keeps the exact share)."""
    return "all" if share >= 0.995 else _pct(share)


def _since(window: TimeWindow) -> str:
    start = window.start
    if window.length < timedelta(days=1):
        return f"since {start:%H:%M} UTC"
    return f"since {start:%Y-%m-%d %H:%M} UTC"


def _metric_link(
    metrics: Sequence[str],
    window: TimeWindow,
    filters: Mapping[str, str | Sequence[str]],
    dimensions: Sequence[str] = (),
) -> QueryLink:
    return QueryLink(
        "POST",
        f"{_API}/metrics/query",
        {
            "metrics": list(metrics),
            "start": window.start.isoformat(),
            "end": window.end.isoformat(),
            "filters": {k: v if isinstance(v, str) else list(v) for k, v in filters.items()},
            "dimensions": list(dimensions),
        },
    )


class InsightEngine:
    """Finds, explains, ranks and folds insights over the metric layer (see the module)."""

    def __init__(self, metrics: MetricService, settings: InsightSettings | None = None) -> None:
        self._metrics = metrics
        self._catalogue = InstitutionCatalogue(metrics)
        self._freshness = SyncFreshness(metrics)
        self.settings = settings or InsightSettings()

    # -- entry point ---------------------------------------------------------------------

    def report(
        self,
        *,
        now: datetime | None = None,
        window: str | TimeWindow = "6h",
        baseline: str = "7d",
        limit: int = 20,
    ) -> OptimizationReport:
        """Insights (the ``limit`` best) and recommendations for ``[now - window, now)`` (or
        the window given as is) against the ``baseline`` before it (``now`` defaults to the
        next whole minute)."""
        if not 1 <= limit <= MAX_INSIGHTS:
            raise QueryError(f"limit: between 1 and {MAX_INSIGHTS}")
        current = parse_time_period(window, now)
        length = parse_time_period(baseline, current.start)
        for name, span in (("window", current), ("baseline", length)):
            if span.length > MAX_SPAN:
                raise QueryError(f"{name}: at most {MAX_SPAN.days}d")
        previous = TimeWindow(length.start, current.start, f"{baseline} before")
        versions = self._metrics.versions()
        names = self._catalogue.names(versions)
        findings: list[_Finding] = []
        recommendations: list[Recommendation] = []
        cells_of: dict[str, tuple[_Cells, _Cells]] = {}
        for family in _FAMILIES:
            cells0 = self._cells(family, previous, versions)
            cells1 = self._cells(family, current, versions)
            cells_of[family.name] = (cells0, cells1)
            failures0 = self._failures(family, previous, versions)
            failures1 = self._failures(family, current, versions)
            findings += self._drops(
                family, (previous, current), (cells0, cells1), (failures0, failures1), names
            )
        findings += self._latency(previous, current, versions, names)
        findings += self._platform_gaps(previous, current, versions)
        findings += self._stale(previous, current, versions, names)
        kept = _fold(findings, self.settings.explains)
        ranked = sorted(kept, key=lambda f: (-f.insight.score, f.insight.kind, f.insight.id))
        recommendations += [r for f in ranked if (r := _recommend(f, names)) is not None]
        recommendations += self._routing(previous, current, cells_of["link"], names, ranked)
        recommendations.sort(key=lambda r: (-r.expected_gain * r.confidence, r.kind, r.id))
        return OptimizationReport(
            Period.of(current),
            Period.of(previous),
            [f.insight for f in ranked[:limit]],
            recommendations[:limit],
        )

    # -- success rates -------------------------------------------------------------------

    def _cells(self, family: _Family, window: TimeWindow, versions: DataVersions) -> _Cells:
        query = MetricQuery.build([family.successes, family.health], window, dimensions=_LEVELS)
        cells: _Cells = {}
        for row in self._metrics.run(query, versions=versions).rows:
            n = row.count(family.health)
            if n:
                institution, aggregator, feature = (_text(row.dimensions[d]) for d in _LEVELS)
                cells[(institution, aggregator, feature)] = (n, n - row.count(family.successes))
        return cells

    def _failures(self, family: _Family, window: TimeWindow, versions: DataVersions) -> _Failures:
        query = MetricQuery.build(
            [family.failures],
            window,
            dimensions=(*_LEVELS, "error_category", "error_code"),
            filters={"error_category": _HEALTH_CATEGORIES},
        )
        found: _Failures = {}
        for row in self._metrics.run(query, versions=versions).rows:
            d = row.dimensions
            key = (
                _text(d["institution"]),
                _text(d["aggregator"]),
                _text(d["feature"]),
                _text(d["error_category"]),
                _text(d["error_code"]),
            )
            found[key] = row.count(family.failures)
        return found

    def _drops(
        self,
        family: _Family,
        windows: tuple[TimeWindow, TimeWindow],
        cells: tuple[_Cells, _Cells],
        failures: tuple[_Failures, _Failures],
        names: Mapping[str, str],
    ) -> list[_Finding]:
        s = self.settings
        totals = [_by_level(c) for c in cells]
        tested = []
        for level_index, level in enumerate(_LEVELS):
            for value in sorted(set(totals[0][level]) | set(totals[1][level])):
                n0, k0 = totals[0][level].get(value, (0, 0))
                n1, k1 = totals[1][level].get(value, (0, 0))
                if n0 >= s.min_sample and n1 >= s.min_sample:
                    tested.append((level_index, level, value, n0, k0, n1, k1))
        critical = bonferroni_z(len(tested))
        found = []
        for level_index, _level, value, n0, k0, n1, k1 in tested:
            z, p = two_proportion_test(k0, n0, k1, n1)
            delta = k1 / n1 - k0 / n0
            if z < critical or delta < s.min_change:
                continue
            found.append(
                self._drop(
                    family,
                    windows,
                    level_index,
                    value,
                    cells,
                    failures,
                    (n0, k0, n1, k1, z, p),
                    names,
                )
            )
        return found

    def _drop(
        self,
        family: _Family,
        windows: tuple[TimeWindow, TimeWindow],
        level_index: int,
        value: str,
        cells: tuple[_Cells, _Cells],
        failures: tuple[_Failures, _Failures],
        test: tuple[int, int, int, int, float, float],
        names: Mapping[str, str],
    ) -> _Finding:
        level = _LEVELS[level_index]
        n0, k0, n1, k1, z, p = test
        delta = k1 / n1 - k0 / n0
        kinds: list[tuple[str, list[Contribution]]] = []
        for by in ("error_category", "error_code"):
            counts = []
            for window_failures in failures:
                tally: dict[str, int] = defaultdict(int)
                for failure, k in window_failures.items():
                    if failure[level_index] == value:
                        label = (
                            failure[3] if by == "error_category" else f"{failure[3]}:{failure[4]}"
                        )
                        tally[label] += k
                counts.append(tally)
            kinds.append((by, decompose_kinds(n0, n1, counts[0], counts[1])))
        segments: list[tuple[str, list[Contribution]]] = []
        for other_index, other in enumerate(_LEVELS):
            if other_index == level_index:
                continue
            split = []
            for window_cells in cells:
                tally2: dict[str, list[int]] = defaultdict(lambda: [0, 0])
                for key, (n, k) in window_cells.items():
                    if key[level_index] == value:
                        tally2[key[other_index]][0] += n
                        tally2[key[other_index]][1] += k
                split.append({g: (v[0], v[1]) for g, v in tally2.items()})
            segments.append((other, decompose_rate(split[0], split[1])))
        category = kinds[0][1][0] if kinds[0][1] else None
        code = None
        if category is not None:
            codes = [c for c in kinds[1][1] if c.segment.startswith(category.segment + ":")]
            if codes and codes[0].contribution >= self.settings.explains * category.contribution:
                code = codes[0].segment.split(":", 1)[1]
                code = None if code == _NONE else code
        explained = {
            other: (parts[0].segment, parts[0].share(delta))
            for other, parts in segments
            if parts and parts[0].contribution > 0
        }
        # Where the drop is: named only along a cut with several values (an institution
        # linked through one aggregator has all of its drop there, which says nothing).
        several = {other for other, parts in segments if len(parts) > 1}
        subject = _subject(level, value, names)
        sentence = (
            f"{_headline(level, subject, family.noun)} fell from {_pct(1 - k0 / n0)} to "
            f"{_pct(1 - k1 / n1)} {_since(windows[1])}"
        )
        if category is not None and category.contribution > 0:
            sentence += (
                f"; {_part(category.share(delta))} of the drop is {category.segment} errors"
                + (f" ({code})" if code else "")
            )
        where = [
            f"{_part(share)} of it {_where(other, seg, names)}"
            for other, (seg, share) in explained.items()
            if share >= self.settings.explains and other in several
        ]
        if where:
            sentence += ", " + " and ".join(where)
        filters = {level: value}
        evidence = Evidence(
            metric=family.rate,
            subject=dict(filters),
            baseline=Period.of(windows[0]),
            current=Period.of(windows[1]),
            baseline_value=1 - k0 / n0,
            current_value=1 - k1 / n1,
            baseline_sample=n0,
            current_sample=n1,
            test="two-proportion z-test on failures among bank-health events (Bonferroni)",
            z=z,
            p_value=p,
            compared={
                "baseline_failures": k0,
                "current_failures": k1,
                "failure_rate_change": delta,
            },
            breakdown=[
                _breakdown(by, c, delta) for by, parts in (*kinds, *segments) for c in parts
            ][:30],
        )
        size = delta * n1
        insight = Insight.scored(
            ("success_rate_drop", family.name, level, value),
            sentence + ".",
            size,
            p,
            evidence=evidence,
            queries=[
                _metric_link([family.rate], windows[1], filters),
                _metric_link([family.rate], windows[0], filters),
                _metric_link(
                    [family.failures],
                    windows[1],
                    {**filters, "error_category": _HEALTH_CATEGORIES},
                    ["error_category", "error_code"],
                ),
            ],
        )
        too = f"its {family.noun} fell too, from {_pct(1 - k0 / n0)} to {_pct(1 - k1 / n1)}"
        return _Finding(insight, level, value, family.name, too, explained, category, code)

    # -- latency -------------------------------------------------------------------------

    def _latency(
        self,
        previous: TimeWindow,
        current: TimeWindow,
        versions: DataVersions,
        names: Mapping[str, str],
    ) -> list[_Finding]:
        s = self.settings
        metric = "connection_latency_p95_ms"
        candidates = []
        for level in ("aggregator", "institution"):
            figures: list[dict[str, tuple[float | None, int]]] = []
            for window in (previous, current):
                query = MetricQuery.build([metric], window, dimensions=(level,))
                figures.append(
                    {
                        _text(r.dimensions[level]): (
                            r.number(metric),
                            r.values[metric].sample_size or 0,
                        )
                        for r in self._metrics.run(query, versions=versions).rows
                    }
                )
            for value in sorted(set(figures[0]) & set(figures[1])):
                (p95_0, n0), (p95_1, n1) = figures[0][value], figures[1][value]
                if p95_0 is None or p95_1 is None or not p95_0 or min(n0, n1) < s.min_sample:
                    continue
                if p95_1 / p95_0 >= s.min_latency_ratio:
                    candidates.append((level, value, p95_0, p95_1, n0, n1))
        critical = bonferroni_z(len(candidates))
        found = []
        for level, value, p95_0, p95_1, n0, n1 in candidates:
            slower = _slower_than(p95_0)
            # An aggregator's slow attempts per institution: which of them slowed it down.
            cut = ("institution",) if level == "aggregator" else ()
            slow: list[dict[str, int]] = []
            for window in (previous, current):
                query = MetricQuery(
                    (slower,), window, cut, filters=((level, (value,)),), timezone="UTC"
                )
                slow.append(
                    {
                        _text(r.dimensions.get("institution", value)): r.count(slower.name)
                        for r in self._metrics.run(query, versions=versions).rows
                    }
                )
            k0, k1 = sum(slow[0].values()), sum(slow[1].values())
            parts = decompose_kinds(n0, n1, slow[0], slow[1]) if cut else []
            z, p = two_proportion_test(k0, n0, k1, n1)
            if z < critical:
                continue
            delta = k1 / n1 - k0 / n0
            size = delta * n1
            subject = _subject(level, value, names)
            ratio = p95_1 / p95_0
            change = "doubled" if 1.95 <= ratio < 2.05 else f"rose {ratio:.1f}x"
            sentence = (
                f"p95 link latency {_at(level)} {subject} {change} from {_seconds(p95_0)} to "
                f"{_seconds(p95_1)} {_since(current)}; {_pct(k1 / n1)} of attempts took longer "
                f"than the baseline's p95 ({_pct(k0 / n0)} before)."
            )
            filters = {level: value}
            insight = Insight.scored(
                ("latency_increase", level, value),
                sentence,
                size,
                p,
                evidence=Evidence(
                    metric=metric,
                    subject=dict(filters),
                    baseline=Period.of(previous),
                    current=Period.of(current),
                    baseline_value=p95_0,
                    current_value=p95_1,
                    baseline_sample=n0,
                    current_sample=n1,
                    test="two-proportion z-test on attempts slower than the baseline p95 "
                    "(Bonferroni)",
                    z=z,
                    p_value=p,
                    compared={
                        "threshold_ms": p95_0,
                        "baseline_slower": k0,
                        "current_slower": k1,
                    },
                    breakdown=[_breakdown("institution", c, delta) for c in parts][:30],
                ),
                queries=[
                    _metric_link([metric, "connection_attempts"], current, filters),
                    _metric_link([metric, "connection_attempts"], previous, filters),
                ],
            )
            explained = {"institution": (parts[0].segment, parts[0].share(delta))} if parts else {}
            too = f"its p95 link latency rose from {_seconds(p95_0)} to {_seconds(p95_1)}"
            found.append(_Finding(insight, level, value, too=too, explained_by=explained))
        return found

    # -- platforms -----------------------------------------------------------------------

    def _platform_gaps(
        self, previous: TimeWindow, current: TimeWindow, versions: DataVersions
    ) -> list[_Finding]:
        s = self.settings
        span = _span(previous, current)
        metric = "feature_success_rate"
        query = MetricQuery.build([metric], span, dimensions=("feature", "platform"))
        by_feature: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
        for row in self._metrics.run(query, versions=versions).rows:
            figure = row.values[metric]
            platform = row.dimensions["platform"]
            if figure.value is None or platform is None or (figure.sample_size or 0) < s.min_sample:
                continue
            n = int(figure.sample_size or 0)
            failures = n - round(float(figure.value) * n)  # type: ignore[arg-type]
            by_feature[_text(row.dimensions["feature"])][platform] = (n, failures)
        pairs = sum(len(p) * (len(p) - 1) // 2 for p in by_feature.values())
        critical = bonferroni_z(pairs)
        found = []
        for feature in sorted(by_feature):
            platforms = by_feature[feature]
            if len(platforms) < 2:
                continue
            order = sorted(platforms, key=lambda p: (platforms[p][1] / platforms[p][0], p))
            best, worst = order[0], order[-1]
            nb, kb = platforms[best]
            nw, kw = platforms[worst]
            fb, fw = kb / nb, kw / nw
            low, high = newcombe_interval(kw, nw, kb, nb, critical)
            if low <= 0 or (fb > 0 and fw / fb < s.min_gap_ratio):
                continue
            z, p = two_proportion_test(kb, nb, kw, nw)
            size = (fw - fb) * nw
            times = f"{fw / fb:.1f}x as often" if fb > 0 else "where it never does"
            sentence = (
                f"{feature} fails {times} on {worst} ({_pct(fw)} of {nw} interactions) as on "
                f"{best} ({_pct(fb)} of {nb}) {_since(span)}; the gap is "
                f"{100 * (fw - fb):.1f} points (simultaneous 95% interval {100 * low:.1f} to "
                f"{100 * high:.1f})."
            )
            if fb == 0:
                sentence = sentence.replace(f" as on {best}", f", never on {best}", 1)
            insight = Insight.scored(
                ("platform_gap", feature, worst, best),
                sentence,
                size,
                p,
                evidence=Evidence(
                    metric=metric,
                    subject={"feature": feature, "platform": worst, "compared_with": best},
                    baseline=Period.of(span),
                    current=Period.of(span),
                    baseline_value=1 - fb,
                    current_value=1 - fw,
                    baseline_sample=nb,
                    current_sample=nw,
                    test="Newcombe hybrid score interval of the failure-rate difference, "
                    "simultaneous over every pair of platforms compared (Bonferroni); "
                    "two-proportion z-test for the confidence",
                    z=z,
                    p_value=p,
                    interval=[low, high],
                    compared={"worse_failures": kw, "better_failures": kb},
                ),
                queries=[_metric_link([metric], span, {"feature": feature}, ["platform"])],
            )
            found.append(_Finding(insight, "feature", feature))
        return found

    # -- freshness -----------------------------------------------------------------------

    def _stale(
        self,
        previous: TimeWindow,
        current: TimeWindow,
        versions: DataVersions,
        names: Mapping[str, str],
    ) -> list[_Finding]:
        s = self.settings
        lookback = _span(previous, current)
        answer = self._freshness.sync_freshness(lookback, versions=versions, stale_limit=0)
        per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for group in answer["by_institution"]:
            counts = per[group["institution_id"]]
            counts[0] += group["NORMAL"] + group["DELAYED"] + group["STOPPED"]
            counts[1] += group["DELAYED"] + group["STOPPED"]
            counts[2] += group["STOPPED"]
        total_n = sum(c[0] for c in per.values())
        total_k = sum(c[1] for c in per.values())
        tested = [
            (inst, n, k, stopped)
            for inst, (n, k, stopped) in sorted(per.items())
            if n >= s.min_sample and total_n - n >= s.min_sample
        ]
        critical = bonferroni_z(len(tested))
        found = []
        for inst, n, k, stopped in tested:
            rest_n, rest_k = total_n - n, total_k - k
            z, p = two_proportion_test(rest_k, rest_n, k, n)
            delta = k / n - rest_k / rest_n
            if z < critical or delta < s.min_change:
                continue
            size = delta * n
            subject = _subject("institution", inst, names)
            sentence = (
                f"{subject}: {k} of {n} connections ({_pct(k / n)}) have not refreshed in over "
                f"1.5x their expected interval ({stopped} stopped) at {current.end:%H:%M} UTC, "
                f"against {_pct(rest_k / rest_n)} at other institutions."
            )
            insight = Insight.scored(
                ("sync_freshness", inst),
                sentence,
                size,
                p,
                evidence=Evidence(
                    metric="sync_last_success_at",
                    subject={"institution": inst},
                    baseline=Period.of(lookback),
                    current=Period.of(lookback),
                    baseline_value=rest_k / rest_n,
                    current_value=k / n,
                    baseline_sample=rest_n,
                    current_sample=n,
                    test="two-proportion z-test of the stale share against the other "
                    "institutions' (Bonferroni)",
                    z=z,
                    p_value=p,
                    compared={"stale": k, "stopped": stopped, "other_stale": rest_k},
                ),
                queries=[
                    QueryLink(
                        "GET",
                        f"{_API}/performance/sync-freshness",
                        {
                            "lookback": f"{round(lookback.length.total_seconds() / 3600)}h",
                            "end": current.end.isoformat(),
                        },
                    )
                ],
            )
            too = f"{k} of its {n} connections are stale"
            found.append(_Finding(insight, "institution", inst, "freshness", too))
        return found

    # -- routing -------------------------------------------------------------------------

    def _routing(
        self,
        previous: TimeWindow,
        current: TimeWindow,
        cells: tuple[_Cells, _Cells],
        names: Mapping[str, str],
        findings: Sequence[_Finding],
    ) -> list[Recommendation]:
        """Route an institution's links to the aggregator that does measurably better
        there, over both windows; the gain is counted on the current window's attempts."""
        s = self.settings
        both: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        now_n: dict[tuple[str, str], int] = defaultdict(int)
        for window_index, window_cells in enumerate(cells):
            for (inst, agg, _), (n, k) in window_cells.items():
                both[inst][agg][0] += n
                both[inst][agg][1] += k
                if window_index == 1:
                    now_n[(inst, agg)] += n
        comparisons = []
        for inst in sorted(both):
            aggs = {a: v for a, v in both[inst].items() if v[0] >= s.min_sample}
            if len(aggs) < 2:
                continue
            best = min(aggs, key=lambda a: (aggs[a][1] / aggs[a][0], a))
            comparisons += [(inst, best, a, aggs) for a in sorted(aggs) if a != best]
        critical = bonferroni_z(len(comparisons))
        drops = {
            f.value: f.insight.id
            for f in findings
            if f.family == "link" and f.level == "institution"
        }
        span = _span(previous, current)
        out = []
        for inst, best, other, aggs in comparisons:
            nb, kb = aggs[best]
            no, ko = aggs[other]
            z, p = two_proportion_test(kb, nb, ko, no)
            gain_rate = ko / no - kb / nb
            if z < critical or gain_rate < s.min_change:
                continue
            gain = gain_rate * now_n[(inst, other)]
            subject = _subject("institution", inst, names)
            out.append(
                Recommendation(
                    id=_id("route_links", inst, other, best),
                    kind="route_links",
                    action=(
                        f"Route new links for {subject} from {other} to {best}, whose link "
                        f"success rate there is {_pct(1 - kb / nb)} (against {_pct(1 - ko / no)} "
                        f"through {other})."
                    ),
                    expected_effect=(
                        f"About {gain:.0f} more successful links per {current.label} "
                        f"({100 * gain_rate:.1f} points on {now_n[(inst, other)]} attempts)."
                    ),
                    expected_gain=gain,
                    confidence=1 - p,
                    insight=drops.get(inst),
                    evidence=Evidence(
                        metric="connection_success_rate",
                        subject={"institution": inst, "aggregator": other, "better": best},
                        baseline=Period.of(span),
                        current=Period.of(span),
                        baseline_value=1 - kb / nb,
                        current_value=1 - ko / no,
                        baseline_sample=nb,
                        current_sample=no,
                        test="two-proportion z-test between the aggregators at the "
                        "institution (Bonferroni)",
                        z=z,
                        p_value=p,
                    ),
                    queries=[
                        _metric_link(
                            ["connection_success_rate"], span, {"institution": inst}, ["aggregator"]
                        )
                    ],
                )
            )
        return out


def _span(previous: TimeWindow, current: TimeWindow) -> TimeWindow:
    """The baseline and the current window together."""
    return TimeWindow(previous.start, current.end, f"{previous.label} and {current.label}")


def _slower_than(threshold_ms: float) -> Metric:
    """Completed attempts slower than ``threshold_ms``: the latency percentiles' own
    population (successes and failures), counted above a threshold."""
    p95 = CATALOG["connection_latency_p95_ms"]
    mean = CATALOG["connection_latency_mean_ms"].measure
    assert isinstance(mean, Mean)
    assert mean.where is not None
    population = mean.where
    return Metric(
        "connection_attempts_slower_than",
        p95.source,
        Count(All((population, Compare(">", Col("latency_ms"), Lit(threshold_ms))))),
        Unit.COUNT,
        "Completed attempts slower than a threshold",
    )


def _by_level(cells: _Cells) -> dict[str, dict[str, tuple[int, int]]]:
    out: dict[str, dict[str, list[int]]] = {level: defaultdict(lambda: [0, 0]) for level in _LEVELS}
    for key, (n, k) in cells.items():
        for i, level in enumerate(_LEVELS):
            out[level][key[i]][0] += n
            out[level][key[i]][1] += k
    return {level: {v: (c[0], c[1]) for v, c in values.items()} for level, values in out.items()}


def _breakdown(by: str, part: Contribution, delta: float) -> Breakdown:
    return Breakdown(
        by,
        part.segment,
        part.share(delta),
        part.rate_effect,
        part.mix_effect,
        part.n0,
        part.k0,
        part.n1,
        part.k1,
    )


#: How a missing label value reads (an uncoded failure, an event without a platform).
_NONE = "(none)"


def _text(value: object) -> str:
    return _NONE if value is None else str(value)


def _subject(level: str, value: str, names: Mapping[str, str]) -> str:
    if level == "institution":
        return names.get(value, value)
    if level == "aggregator":
        return _AGGREGATOR_NAMES.get(value, value)
    return value


def _headline(level: str, subject: str, noun: str) -> str:
    """``Chase's link success rate``; a feature's: ``The link success rate of goal_setting``."""
    return f"The {noun} of {subject}" if level == "feature" else f"{subject}'s {noun}"


_AGGREGATOR_NAMES = {
    "plaid": "Plaid",
    "mx": "MX",
    "finicity": "Finicity",
    "truelayer": "TrueLayer",
    "yodlee": "Yodlee",
}


def _where(level: str, value: str, names: Mapping[str, str]) -> str:
    if level == "feature":
        return f"on {value}"
    return f"at {_subject(level, value, names)}"


def _at(level: str) -> str:
    return "via" if level == "aggregator" else "at"


def _seconds(ms: float) -> str:
    return f"{ms / 1000:.1f} s"


def _fold(findings: Iterable[_Finding], explains: float) -> list[_Finding]:
    """One statement per finding (see the module).

    Success-rate drops first, institutions first: a narrower drop that one wider drop
    explains is folded into it (listed in its ``related``); the link and the sync drop of
    one subject with the same leading error category are one finding, stated by the
    larger. Then the other kinds: a subject's latency rise and stale connections are
    folded into its drop, and an aggregator's latency rise that one institution's
    explains into that institution's. A fold of the same subject adds its clause
    ("its link success rate fell too, ...") to the statement.
    """
    ordered = sorted(
        findings, key=lambda f: (f.insight.kind != "success_rate_drop", _LEVELS.index(f.level))
    )
    home = {(f.insight.kind, f.family, f.level, f.value): f for f in ordered}
    folded: dict[int, _Finding] = {}
    kept: list[_Finding] = []
    for f in ordered:
        target = _home_of(f, home, explains)
        if target is None and f.insight.kind == "success_rate_drop":
            twin = next(
                (
                    k
                    for k in kept
                    if k.insight.kind == f.insight.kind
                    and (k.level, k.value) == (f.level, f.value)
                    and k.family != f.family
                    and _cause(k) == _cause(f)
                ),
                None,
            )
            if twin is not None:
                major, minor = sorted((twin, f), key=lambda x: (-x.insight.score, x.insight.id))
                kept[kept.index(twin)] = major
                _absorb(major, minor, folded, same_subject=True)
                continue
        if target is None:
            kept.append(f)
            continue
        while id(target) in folded:
            target = folded[id(target)]
        _absorb(target, f, folded, same_subject=(target.level, target.value) == (f.level, f.value))
    for f in kept:
        f.insight.related.sort()
    return kept


def _home_of(
    f: _Finding, home: Mapping[tuple[str, str | None, str, str], _Finding], explains: float
) -> _Finding | None:
    """The finding ``f`` is part of, if any (see :func:`_fold`)."""
    kind = f.insight.kind
    if kind == "sync_freshness":
        return home.get(("success_rate_drop", "sync", "institution", f.value))
    if kind == "latency_increase":
        own = home.get(("success_rate_drop", "link", f.level, f.value))
        if own is not None:
            return own
    if f.level == "institution":
        return None
    for other in ("institution", "aggregator"):
        if other == f.level or other not in f.explained_by:
            continue
        value, share = f.explained_by[other]
        candidate = home.get((kind, f.family, other, value))
        if share >= explains and candidate is not None:
            return candidate
    return None


def _absorb(
    into: _Finding, part: _Finding, folded: dict[int, _Finding], *, same_subject: bool
) -> None:
    folded[id(part)] = into
    into.insight.related.append(part.insight.id)
    if same_subject and part.too:
        into.insight.statement = into.insight.statement[:-1] + f"; {part.too}."


def _cause(finding: _Finding) -> str | None:
    return None if finding.category is None else finding.category.segment


def _recommend(finding: _Finding, names: Mapping[str, str]) -> Recommendation | None:
    insight = finding.insight
    evidence = insight.evidence
    subject = _subject(finding.level, finding.value, names)
    if insight.kind == "success_rate_drop":
        category = finding.category
        if category is None or category.contribution <= 0:
            return None
        gain = category.contribution * evidence.current_sample
        code = f" ({finding.code})" if finding.code else ""
        party = _PARTY.get(category.segment)
        if party is ResponsibleParty.INSTITUTION:
            kind = "institution_incident"
            action = (
                f"Treat {subject} as an institution incident{code}: tell affected users it "
                "is the bank's outage, hold automatic retries and re-check when its errors stop."
            )
        else:
            kind = "aggregator_incident"
            action = (
                f"Raise {category.segment} errors{code} on {subject} with the aggregator; "
                "check its status page and our request logs."
            )
        effect = (
            f"{gain:.0f} fewer failures per window once {category.segment} errors return to "
            "the baseline's rate."
        )
    elif insight.kind == "latency_increase":
        kind, gain = "investigate_latency", insight.size
        action = f"Investigate link latency {_at(finding.level)} {subject}; check timeouts."
        effect = f"{gain:.0f} attempts per window back under the baseline's p95."
    elif insight.kind == "platform_gap":
        worse, better = evidence.subject["platform"], evidence.subject["compared_with"]
        kind, gain = "investigate_platform", insight.size
        action = (
            f"{finding.value} on {worse}: investigate the {worse} client's failures "
            f"(compare its errors with {better}'s)."
        )
        effect = f"{gain:.0f} fewer failed interactions if {worse} failed as rarely as {better}."
    else:
        kind, gain = "resync", insight.size
        action = f"Check {subject}'s sync pipeline (webhooks, scheduled refreshes) and re-sync."
        effect = f"{gain:.0f} stale connections back to normal."
    return Recommendation(
        id=_id(kind, insight.id),
        kind=kind,
        action=action,
        expected_effect=effect,
        expected_gain=gain,
        confidence=insight.confidence,
        insight=insight.id,
        evidence=evidence,
        queries=insight.queries,
    )
