"""SLOs and their burn-rate alerts: the workbook's thresholds derived from budget fractions
(30 and 7 days), hand-worked burn rates, the two-window AND, the minimum-events guard, and
over a real store on every engine the alerts, burn rates and budget against pandas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from banking_analytics import BankingPerformanceAnalytics, EventStatus
from banking_analytics.monitor import (
    AlertState,
    Counts,
    NameTakenError,
    Observation,
    Rule,
    RuleError,
    RuleFileError,
    Severity,
    Slo,
    burn_reading,
    dump_rules,
    format_duration,
    parse_rules,
)
from banking_analytics.monitor._slo import pair_burns
from test_monitor_evaluate import RULE, attempts

H = timedelta(hours=1)
M = timedelta(minutes=1)
SLO = {
    "name": "link_success",
    "sli": "connection_success_rate",
    "objective": 0.99,
    "by": ["institution"],
    "min_events": 30,
    "labels": {"team": "integrations"},
    "annotations": {"summary": "{{ $labels.institution }} burns {{ $value }}x"},
}


def slo(**changes: Any) -> Slo:
    return Slo.from_dict({**SLO, **changes})


def uniform(error_ratio: float, events: int = 10_000) -> dict[timedelta, Counts]:
    """The same share of bad events in every window."""
    bad = round(error_ratio * events)
    return {w: Counts(events, bad) for w in slo().windows}


def test_thresholds_are_budget_fractions_of_the_period_over_the_long_window() -> None:
    # 30 days = 720 h: 2% in 1h, 5% in 6h, 10% in 24h, 10% in 72h.
    assert [(p.long, p.short, f, p.severity) for p, f in slo().factors()] == [
        (H, 5 * M, 14.4, Severity.CRITICAL),
        (6 * H, 30 * M, 6.0, Severity.CRITICAL),
        (24 * H, 2 * H, 3.0, Severity.WARNING),
        (72 * H, 6 * H, 1.0, Severity.WARNING),
    ]
    # 7 days = 168 h: 0.02 x 168 = 3.36, 0.05 x 28 = 1.4, 0.1 x 7 = 0.7, 0.1 x 7/3.
    factors = [f for _, f in slo(period="7d").factors()]
    assert factors == pytest.approx([3.36, 1.4, 0.7, 0.7 / 3])
    assert slo().threshold_of(Severity.CRITICAL) == 6.0
    assert slo().threshold_of(Severity.WARNING) == 1.0


def test_one_percent_errors_against_99_9_burns_ten_times_the_budget() -> None:
    target = slo(objective=0.999)
    assert target.budget == 0.001
    counts = uniform(0.01)
    assert counts[H].burn_rate(target.budget) == pytest.approx(10.0)
    # 10 < 14.4: the hour does not page; 10 > 6, 3 and 1: the others burn.
    assert [pair_burns(target, p, f, counts) for p, f in target.factors()] == [
        False,
        True,
        True,
        True,
    ]
    reading = burn_reading(target, counts)
    assert (reading.observation, reading.severity) == (Observation.BREACH, Severity.CRITICAL)
    assert reading.value == pytest.approx(10.0)  # over 6h, the pair that decided
    assert reading.sample_size == 10_000
    # The same errors against 99%: burn 1, which is no breach (above means above).
    assert burn_reading(slo(), counts).observation is Observation.OK
    # 2% against 99%: burn 2, a ticket only (3d/6h above 1x; 1d/2h not above 3x)...
    two = burn_reading(slo(), uniform(0.02))
    assert (two.observation, two.severity, two.value) == (
        Observation.BREACH,
        Severity.WARNING,
        pytest.approx(2.0),
    )
    # ... but over a 7-day period 2x spends 5% of the budget in 6 hours (above 1.4x): a page.
    assert burn_reading(slo(period="7d"), uniform(0.02)).severity is Severity.CRITICAL


def test_both_the_long_and_the_short_window_must_burn() -> None:
    target = slo(objective=0.999)  # 14.4x is 1.44% bad events
    counts = uniform(0.0)
    # An hour at 2% whose last five minutes are clean: the burn has stopped, no page.
    counts[H] = Counts(1000, 20)
    assert burn_reading(target, counts).observation is Observation.OK
    # Five minutes at 50% in an otherwise clean hour (2.5 of 1,000 bad): a blip, no page.
    counts[H], counts[5 * M] = Counts(1000, 2), Counts(100, 50)
    assert burn_reading(target, counts).observation is Observation.OK
    # Both: a page, valued at the hour's burn.
    counts[H], counts[5 * M] = Counts(1000, 20), Counts(100, 50)
    reading = burn_reading(target, counts)
    assert (reading.severity, reading.value) == (Severity.CRITICAL, pytest.approx(20.0))


def test_windows_with_too_few_events_are_not_judged() -> None:
    target = slo()  # at least 30 events in both windows of a pair
    bad = {w: Counts(29, 29) for w in target.windows}
    assert burn_reading(target, bad).observation is Observation.NODATA
    assert burn_reading(target, bad).sample_size == 29
    # The 6h short window reaching 30 events judges the 3d/6h pair (the only one).
    judged = {**bad, 6 * H: Counts(30, 0), 72 * H: Counts(30, 0)}
    assert [pair_burns(target, p, f, judged) for p, f in target.factors()] == [
        None,
        None,
        None,
        False,
    ]
    assert burn_reading(target, judged).observation is Observation.OK
    # The metric's own minimum (20 for a rate) holds when the SLO asks for less.
    assert slo(min_events=5).effective_min_events == 20


def test_slo_checks_name_every_field_at_fault() -> None:
    with pytest.raises(RuleError) as caught:
        Slo.from_dict(
            {
                "name": "x",
                "sli": "connection_attempts",
                "objective": 1,
                "period": "1d",
                "by": ["user"],
                "colour": "red",
            }
        )
    fields = [path for path, _ in caught.value.problems]
    assert fields == [("colour",), ("sli",), ("objective",), ("period",), ("by",)]
    assert "is not a rate of good (or bad) events" in str(caught.value)
    with pytest.raises(RuleError, match=r"at most 0\.999999"):
        slo(objective=0.9999999999999)
    with pytest.raises(RuleError, match="objective: required"):
        Slo.from_dict({"name": "x", "sli": "connection_success_rate"})


SLO_FILE = """\
rules:
  - name: success_low
    metric: connection_success_rate
    window: 30m
    condition: below
    critical: 0.5
slos:
  - name: link_success
    sli: connection_success_rate
    objective: 0.995
    by: [institution]
  - name: success_low
    sli: sync_success_rate
    objective: 99.5
    period: 100d
"""


def test_a_rule_file_holds_rules_and_slos_in_one_namespace_with_line_numbered_errors() -> None:
    with pytest.raises(RuleFileError) as caught:
        parse_rules(SLO_FILE, "slos.yaml")
    assert caught.value.lines == [
        "slos.yaml:12: slos[1].name: 'success_low' is already rule 0",
        "slos.yaml:14: slos[1].objective: above 0 and at most 0.999999 (a budget of one "
        "event in a million), got 99.5",
        "slos.yaml:15: slos[1].period: between 3d and 90d, got 100d",
    ]
    good = parse_rules(SLO_FILE.split("  - name: success_low\n    sli")[0], "slos.yaml")
    assert [type(r).__name__ for r in good] == ["Rule", "Slo"]
    assert parse_rules(dump_rules(good), "again") == good


# -- over a store ---------------------------------------------------------------------------

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def world() -> list[dict[str, Any]]:
    """ins_a burns slowly (a ticket), ins_c fast (a page), ins_b has too few events."""
    return (
        attempts("ins_a", NOW - timedelta(days=20), success=2000)
        + attempts("ins_a", NOW - timedelta(days=2), success=198, institution=2)
        + attempts("ins_a", NOW - 3 * H, success=88, institution=12)
        + attempts("ins_a", NOW - 20 * M, success=95, aggregator=5)
        + attempts("ins_a", NOW - 2 * M, success=50, user_action_required=3)
        + attempts("ins_b", NOW - 2 * M, success=5, institution=5)
        + attempts("ins_c", NOW - 2 * M, success=30, institution=10)
    )


def pandas_counts(events: list[dict[str, Any]], now: datetime, window: timedelta) -> pd.DataFrame:
    """Per institution over [now - window, now): the bank-health events and the bad ones."""
    frame = pd.DataFrame(events)
    frame["when"] = pd.to_datetime(frame.occurred_at)
    counted = frame[
        (frame.when >= now - window)
        & (frame.when < now)
        & ((frame.outcome == "success") | frame.error_category.isin(["institution", "aggregator"]))
    ]
    return counted.groupby("institution_id").agg(
        total=("outcome", "size"), bad=("outcome", lambda s: int((s != "success").sum()))
    )


def test_burn_rates_budget_and_alerts_over_a_store_agree_with_pandas(store_url: str) -> None:
    events = world()
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        assert {r.status for r in analytics.ingest(events)} == {EventStatus.ACCEPTED}
        monitor = analytics.monitor
        target = slo()
        [stored] = monitor.apply([target], "test")
        assert (stored.version, stored.change.value) == (1, "created")
        assert monitor.rules() == []
        assert [s.name for s in monitor.slos()] == ["link_success"]

        [evaluation] = monitor.evaluate(NOW)
        assert (evaluation.instances, evaluation.error) == (3, None)
        alerts = {a.labels["institution"]: a for a in monitor.alerts()}
        assert {k: (a.state, a.severity) for k, a in alerts.items()} == {
            "ins_a": ("firing", "warning"),  # 1d/2h: 6.8x and 3.3x above 3x; 6h/30m: 3.3x < 6x
            "ins_b": ("nodata", None),  # 10 events in every window, fewer than 30
            "ins_c": ("firing", "critical"),  # 1h/5m: 25x above 14.4x
        }
        assert alerts["ins_a"].value == pytest.approx(17 / 250 / 0.01)
        assert alerts["ins_c"].value == pytest.approx(10 / 40 / 0.01)
        assert alerts["ins_c"].labels == {
            "alertname": "link_success",
            "team": "integrations",
            "institution": "ins_c",
            "severity": "critical",
        }
        assert alerts["ins_c"].annotations == {"summary": "ins_c burns 25x"}

        view = monitor.slo("link_success", NOW)
        assert view.error_budget == 0.01
        assert [
            (p.long_window, p.short_window, p.burn_rate_threshold) for p in view.burn_rates or []
        ] == [
            ("1h", "5m", 14.4),
            ("6h", "30m", 6.0),
            ("1d", "2h", 3.0),
            ("3d", "6h", 1.0),
        ]
        instances = {i.labels["institution"]: i for i in view.instances or []}
        assert instances["ins_a"].burning == [False, False, True, True]
        assert instances["ins_b"].burning == [None, None, None, None]
        assert instances["ins_c"].burning == [True, True, True, True]
        assert (instances["ins_c"].alert_state, instances["ins_c"].alert_severity) == (
            "firing",
            "critical",
        )
        # Every window's burn rate and the period's budget, against pandas.
        for name, instance in instances.items():
            windows = {format_duration(w): w for w in target.windows}
            for shown in instance.windows:
                window = windows[shown.window]
                expected = pandas_counts(events, NOW, window).loc[name]
                # Under the rate's own minimum sample (20) the metric gives no figure.
                bad = expected.bad if expected.total >= 20 else None
                assert (shown.events, shown.bad_events) == (expected.total, bad)
                burn = None if bad is None else bad / expected.total / 0.01
                assert shown.burn_rate == pytest.approx(burn)
            period = pandas_counts(events, NOW, timedelta(days=30)).loc[name]
            assert instance.events == period.total
            if period.total >= 30:
                consumed = period.bad / period.total / 0.01
                assert instance.budget_consumed == pytest.approx(consumed)
                assert instance.budget_remaining == pytest.approx(1 - consumed)
            else:
                assert instance.budget_remaining is None
        # Hand-worked: ins_a spent 19 of 2,450 events; the budget is 1% of them.
        assert instances["ins_a"].budget_remaining == pytest.approx(1 - 19 / 2450 / 0.01)
        assert instances["ins_c"].budget_remaining == pytest.approx(1 - 25)  # overspent

        # Ten minutes on, the 5m window is empty: the page holds on 6h/30m; forty minutes
        # on the 30m window is empty too, and the same alert moves to a ticket.
        monitor.evaluate(NOW + 10 * M)
        assert _states(analytics)["ins_c"] == ("firing", "critical")
        monitor.evaluate(NOW + 40 * M)
        assert _states(analytics)["ins_c"] == ("firing", "warning")
        history = monitor.history(rule="link_success")
        assert (history[0].labels, history[0].previous_severity, history[0].severity) == (
            {"institution": "ins_c"},
            Severity.CRITICAL,
            Severity.WARNING,
        )


def _states(analytics: BankingPerformanceAnalytics) -> dict[str, tuple[str, str | None]]:
    return {
        a.labels["institution"]: (a.state, a.severity)
        for a in analytics.monitor.alerts(states=list(AlertState))
    }


def test_rules_and_slos_share_names_and_a_change_resets_the_alerts(store_url: str) -> None:
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        analytics.ingest(world())
        monitor = analytics.monitor
        monitor.apply([Rule.from_dict({**RULE, "name": "link_success"})], "test")
        with pytest.raises(NameTakenError, match="is the name of an alert rule"):
            monitor.apply([slo()], "test")
        monitor.store.delete("link_success", "test")
        monitor.apply([slo()], "test")
        with pytest.raises(NameTakenError, match="is the name of an SLO"):
            monitor.store.put(Rule.from_dict({**RULE, "name": "link_success"}), "test")
        monitor.evaluate(NOW)
        assert len(monitor.alerts()) == 3
        # New words keep the alerts; a new objective resets them.
        [same] = monitor.apply([slo(annotations={"summary": "x"})], "test")
        assert same.version == 4
        assert len(monitor.alerts()) == 3
        monitor.apply([slo(objective=0.9)], "test")
        assert monitor.alerts() == []
        # At 90% only ins_c (25% bad: 2.5x) still burns, on the slow pairs.
        monitor.evaluate(NOW)
        assert _states(analytics)["ins_c"] == ("firing", "warning")


def test_a_rule_whose_query_fails_errs_alone_and_the_slo_is_evaluated(
    store_url: str,
) -> None:
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        analytics.ingest(world())
        monitor = analytics.monitor
        # Revenue is reported in one currency (USD by default): asked in another, the
        # rule's query fails when it runs.
        euros = {**RULE, "name": "mrr_low", "metric": "mrr", "by": []}
        euros["filters"] = {"currency": "EUR"}
        monitor.apply([Rule.from_dict(euros), slo()], "test")
        reports = {r.rule_name: r for r in monitor.evaluate(NOW)}
        assert reports["mrr_low"].error is not None
        assert "revenue is reported in USD, not EUR" in reports["mrr_low"].error
        assert reports["link_success"].error is None
        firing = {a.labels["institution"]: a.severity for a in monitor.alerts(rule="link_success")}
        assert firing["ins_c"] == "critical"
