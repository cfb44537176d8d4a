"""Rules as data: parsing and checking rule files (line-numbered problems), the written form,
templates, observing a figure, and the shipped default rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from banking_analytics.metrics import CATALOG
from banking_analytics.monitor import (
    Compare,
    Condition,
    Observation,
    Rule,
    RuleError,
    RuleFileError,
    Severity,
    default_rules,
    dump_rules,
    format_duration,
    observe,
    parse_duration,
    parse_rules,
)
from banking_analytics.monitor._template import render_template

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)

GOOD = """\
rules:
  - name: success_low
    metric: connection_success_rate
    window: 1h
    by: [institution]
    filters: {feature: account_linking}
    condition: below
    warning: 0.9
    critical: 0.5
    for: 5m
    keep_firing_for: 10m
    min_sample: 30
    labels: {team: integrations}
    annotations:
      summary: "{{ $labels.institution }} at {{ $value | percent }} ({{ $severity }})"
"""


def test_a_rule_file_reads_into_typed_rules_and_writes_back_the_same() -> None:
    [rule] = parse_rules(GOOD, "good.yaml")
    assert rule == Rule(
        name="success_low",
        metric="connection_success_rate",
        window=timedelta(hours=1),
        condition=Condition.BELOW,
        by=("institution",),
        filters=(("feature", ("account_linking",)),),
        warning=0.9,
        critical=0.5,
        for_=timedelta(minutes=5),
        keep_firing_for=timedelta(minutes=10),
        min_sample=30,
        labels=(("team", "integrations"),),
        annotations=(
            ("summary", "{{ $labels.institution }} at {{ $value | percent }} ({{ $severity }})"),
        ),
    )
    assert parse_rules(dump_rules([rule]), "again") == [rule]
    query = rule.query(NOW)
    assert (query.window.start, query.window.end) == (NOW - timedelta(hours=1), NOW)
    assert query.dimensions == ("institution",)
    assert query.filters == (("feature", ("account_linking",)),)


BAD = """\
rules:
  - name: Bad-Name
    metric: connection_success_rate
    window: 1h
    condition: below
    warning: 0.5
    critical: 0.9
  - name: two
    metric: no_such_metric
    window: forever
    condition: sideways
    critical: 1
    colour: red
  - name: three
    metric: connection_success_rate
    window: 1h
    by: [plan]
    condition: above
    critical: 0.1
    annotations: {summary: "{{ $labels.x }"}
  - name: three
    metric: sync_last_success_at
    window: 7d
    condition: above
    compare: change
    critical: 6h
"""


def test_every_problem_of_a_rule_file_is_reported_with_its_line() -> None:
    with pytest.raises(RuleFileError) as caught:
        parse_rules(BAD, "bad.yaml")
    assert caught.value.lines == [
        "bad.yaml:2: rules[0].name: text matching ^[a-z][a-z0-9_]{0,63}$, got 'Bad-Name'",
        "bad.yaml:7: rules[0].critical: must be ≤ warning for a rule that fires below them "
        "(critical is the more severe level)",
        "bad.yaml:9: rules[1].metric: unknown metric 'no_such_metric'; see GET .../metrics",
        "bad.yaml:10: rules[1].window: a duration like 30s, 5m, 1h30m or 2d, got 'forever'",
        "bad.yaml:11: rules[1].condition: one of above, below, no_data, anomaly, got 'sideways'",
        "bad.yaml:13: rules[1].colour: unknown field; fields are name, metric, window, by, "
        "filters, condition, compare, warning, critical, severity, for, keep_firing_for, "
        "min_sample, interval, labels, annotations, anomaly",
        "bad.yaml:17: rules[2].by: dimensions: metric 'connection_success_rate' cannot be cut "
        f"by 'plan'; it allows {', '.join(CATALOG['connection_success_rate'].dimensions)}",
        "bad.yaml:20: rules[2].annotations.summary: a {{ is not closed by }}",
        "bad.yaml:21: rules[3].name: 'three' is already rule 2",
        "bad.yaml:25: rules[3].compare: a time metric is compared by its age: compare must "
        "be value",
    ]


def test_bad_yaml_and_a_missing_list_are_one_line_each() -> None:
    with pytest.raises(RuleFileError) as caught:
        parse_rules("rules:\n  - name: [unclosed\n", "broken.yaml")
    assert len(caught.value.lines) == 1
    assert caught.value.lines[0].startswith("broken.yaml:3: not valid YAML: ")
    with pytest.raises(RuleFileError, match=r"^empty.yaml:1: rules: a list of rules$"):
        parse_rules("{}", "empty.yaml")


def test_rule_checks_that_need_no_file() -> None:
    base = {"name": "r", "metric": "connection_error_rate", "window": "30m"}
    with pytest.raises(RuleError, match="critical: give a warning or a critical threshold"):
        Rule.from_dict({**base, "condition": "above"})
    with pytest.raises(RuleError, match="severity: only a no_data or anomaly rule"):
        Rule.from_dict({**base, "condition": "above", "critical": 0.1, "severity": "warning"})
    with pytest.raises(RuleError, match="warning: a no_data rule has no thresholds"):
        Rule.from_dict({**base, "condition": "no_data", "warning": 0.1})
    with pytest.raises(RuleError, match=r"labels\.severity: severity is set by the evaluator"):
        Rule.from_dict({**base, "condition": "above", "critical": 1, "labels": {"severity": "x"}})
    with pytest.raises(RuleError, match=r"interval: between 1s and 90d, got 0"):
        Rule.from_dict({**base, "condition": "above", "critical": 1, "interval": "0"})
    with pytest.raises(RuleError, match=r"^rule: a rule is a mapping"):
        Rule.from_dict(["not", "a", "mapping"])
    with pytest.raises(RuleError, match=r"by: user names one user's data"):
        Rule.from_dict({**base, "condition": "above", "critical": 1, "by": ["user"]})
    no_data = Rule.from_dict({**base, "condition": "no_data"})
    assert no_data.severity is Severity.CRITICAL


def test_durations_read_and_write_as_prometheus_spells_them() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2w1d") == timedelta(days=15)
    assert parse_duration("0") == timedelta(0)
    for bad in ("", "5", "1m1h", "1.5h", "-5m", True):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)
    assert format_duration(timedelta(days=1, hours=2, seconds=5)) == "1d2h5s"
    assert format_duration(timedelta(weeks=2)) == "14d"


def test_templates_render_labels_value_severity_and_threshold() -> None:
    text = (
        "{{$labels.institution}}: {{ $value | percent }} < {{ $threshold|percent }} {{ $severity }}"
    )
    assert (
        render_template(text, {"institution": "ins_1"}, 0.71234, "critical", 0.5)
        == "ins_1: 71.23% < 50% critical"
    )
    assert render_template("{{ $labels.gone }}|{{ $value }}", {}, None, None, None) == "|no data"
    assert render_template("{{ $value | duration }}", {}, 5400.4, None, None) == "1h30m"


def rule(**fields: object) -> Rule:
    written: dict[str, object] = {
        "name": "r",
        "metric": "connection_success_rate",
        "window": "1h",
        "condition": "below",
        "warning": 0.9,
        "critical": 0.5,
        **fields,
    }
    return Rule.from_dict(written)


def test_observing_a_figure_compares_it_as_the_rule_says() -> None:
    below = rule()
    assert observe(below, 0.95, 100, None, NOW).observation is Observation.OK
    assert observe(below, 0.9, 100, None, NOW).observation is Observation.OK  # not below 0.9
    assert observe(below, 0.7, 100, None, NOW).severity is Severity.WARNING
    assert observe(below, 0.2, 100, None, NOW).severity is Severity.CRITICAL
    # The metric's own minimum sample (20) when the rule's is lower; the rule's when higher.
    assert observe(below, 0.2, 19, None, NOW).observation is Observation.NODATA
    assert observe(rule(min_sample=50), 0.2, 49, None, NOW).observation is Observation.NODATA
    assert observe(below, None, 0, None, NOW).observation is Observation.NODATA
    # A change: 0.6 - 0.95 = -0.35 is below -0.3 (critical), not -0.1 - -0.3 (warning).
    drop = rule(compare="change", warning=-0.1, critical=-0.3)
    assert drop.compare is Compare.CHANGE
    reading = observe(drop, 0.6, 100, 0.95, NOW)
    assert (reading.severity, reading.value) == (Severity.CRITICAL, pytest.approx(-0.35))
    assert observe(drop, 0.6, 100, None, NOW).observation is Observation.NODATA
    # A per-cent change: 100 * (300 - 200) / 200 = +50%.
    rise = Rule.from_dict(
        {
            "name": "p95",
            "metric": "connection_latency_p95_ms",
            "window": "1h",
            "condition": "above",
            "compare": "change_percent",
            "warning": 25,
            "critical": 100,
        }
    )
    reading = observe(rise, 300.0, 100, 200.0, NOW)
    assert (reading.severity, reading.value) == (Severity.WARNING, 50.0)
    assert observe(rise, 300.0, 100, 0.0, NOW).observation is Observation.NODATA
    # A time is compared by its age: 7h old is critical over 6h.
    stale = Rule.from_dict(
        {
            "name": "stale",
            "metric": "sync_last_success_at",
            "window": "7d",
            "condition": "above",
            "warning": "2h",
            "critical": "6h",
        }
    )
    reading = observe(stale, NOW - timedelta(hours=7), None, None, NOW)
    assert (reading.severity, reading.value) == (Severity.CRITICAL, 7 * 3600.0)
    # A no_data rule breaches exactly when there is no figure.
    absent = rule(condition="no_data", warning=None, critical=None, severity="warning")
    assert observe(absent, None, 0, None, NOW).severity is Severity.WARNING
    assert observe(absent, 0.99, 100, None, NOW).observation is Observation.OK


def test_the_default_rules_cover_the_bank_integration_metrics() -> None:
    rules = {r.name: r for r in default_rules()}
    assert {r.metric for r in rules.values()} == {
        "connection_success_rate",
        "sync_success_rate",
        "connection_latency_p95_ms",
        "sync_last_success_at",
        "connection_error_rate_aggregator",
        "connection_error_rate_integration",
        "connection_error_rate_rate_limited",
    }
    success = rules["institution_success_rate_low"]
    # Institution health's DEGRADED and DOWN thresholds, and the metric's minimum sample.
    assert (success.warning, success.critical, success.min_sample) == (0.90, 0.50, 20)
    assert rules["sync_pipeline_stale"].critical == 2 * 3600.0
