"""Anomaly rules and backtests: the detector by hand (a weekly rhythm with one dip, the MAD
floor, direction, trigger and recovery windows), an anomaly rule over a real store on
every engine (its z-scores checked against pandas), and backtests that agree with live
evaluation tick by tick, through the library and over HTTP."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from api_fixtures import LiveAPI
from banking_analytics import BankingPerformanceAnalytics, EventStatus
from banking_analytics.monitor import (
    AnomalySpec,
    BacktestError,
    BacktestView,
    Direction,
    Rule,
    RuleError,
    RuleFileError,
    run_rule_tests,
)
from banking_analytics.monitor._anomaly import modified_z
from test_monitor_evaluate import RULE, T0, attempts, hand_worked

HOUR = timedelta(hours=1)
WEEK = timedelta(weeks=1)
MINUTE = timedelta(minutes=1)

# -- the detector, by hand ---------------------------------------------------------------


def test_modified_z_score_of_a_hand_worked_baseline() -> None:
    # median 0.965; |deviations| 0.015, 0.005, 0.005, 0.015 -> MAD 0.01 (above the floor
    # 0.01·0.965); z = 0.6745·(0.90 - 0.965)/0.01.
    baseline = np.array([0.95, 0.96, 0.97, 0.98])
    assert modified_z(0.90, baseline) == pytest.approx(0.6745 * -0.065 / 0.01)
    assert modified_z(0.965, baseline) == 0.0


def test_the_mad_floor_keeps_a_flat_baseline_from_exploding() -> None:
    flat = np.array([1.0, 1.0, 1.0, 1.0])  # MAD 0: the floor is 1% of the median
    assert modified_z(0.99, flat) == pytest.approx(-0.6745)
    assert modified_z(0.90, flat) == pytest.approx(-6.745)
    zeros = np.array([0.0, 0.0, 0.0])  # median 0 as well: 1e-6, unless min_mad says more
    assert modified_z(0.05, zeros) == pytest.approx(0.6745 * 0.05 / 1e-6)
    assert modified_z(0.05, zeros, min_mad=0.1) == pytest.approx(0.33725)


def weekly_rhythm(weeks: int, start: datetime) -> dict[datetime, float]:
    """Hourly success rates with a daily and weekly rhythm: 0.95 by day, 0.70 at night and
    0.55 on weekend nights (few, hard logins), with a little deterministic noise."""
    rng = np.random.default_rng(5)
    series = {}
    for hour in range(weeks * 168):
        at = start + hour * HOUR
        night = at.hour < 6
        base = (0.55 if at.weekday() >= 5 else 0.70) if night else 0.95
        series[at] = base + float(rng.normal(0, 0.01))
    return series


def test_a_weekly_rhythm_fires_at_the_injected_dip_not_at_its_troughs() -> None:
    start = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday
    series = weekly_rhythm(5, start)
    dip = start + 4 * WEEK + 2 * 24 * HOUR + 14 * HOUR  # the fifth Wednesday, 14:00-16:00
    for k in range(2):
        series[dip + k * HOUR] = 0.80  # higher than every night, low for an afternoon
    spec = AnomalySpec(direction=Direction.DOWN)
    fired = []
    for hour in range(168):
        now = start + 4 * WEEK + (hour + 1) * HOUR  # each hour of the fifth week, judged
        verdict, _ = spec.verdict(spec.scores(series, HOUR, now), firing=False)
        if verdict == "breach":
            fired.append(now)
    # 2 of the last 3 hours anomalous: once both dip hours are in, and one hour on.
    assert fired == [dip + 2 * HOUR, dip + 3 * HOUR]
    # A fixed threshold below which the dip falls would fire every night instead.
    assert sum(1 for at, v in series.items() if at >= start + 4 * WEEK and v < 0.85) == 2 + 42


def test_direction_decides_which_side_is_anomalous() -> None:
    start = datetime(2026, 10, 5, tzinfo=UTC)
    series = weekly_rhythm(5, start)
    spike = start + 4 * WEEK + 10 * HOUR
    series[spike] = series[spike - HOUR] = 1.5
    now = spike + HOUR
    for direction, expected in (("down", "ok"), ("up", "breach"), ("both", "breach")):
        spec = AnomalySpec(direction=Direction(direction))
        verdict, value = spec.verdict(spec.scores(series, HOUR, now), firing=False)
        assert verdict == expected, direction
        if expected == "breach":
            assert value is not None
            assert value > 3.5


@pytest.mark.parametrize(
    ("scores", "firing", "verdict"),
    [
        ([0.0, 0.0, -5.0], False, "ok"),  # 1 of 3: not enough to trigger
        ([0.0, -5.0, -5.0], False, "breach"),  # 2 of 3
        ([-5.0, None, -5.0], False, "breach"),  # an unjudged bucket counts as not anomalous
        ([-5.0, 0.0, 0.0], True, "ok"),  # recovered: the last 2 judged and normal
        ([-5.0, -5.0, 0.0], True, "breach"),  # held by the recovery window
        ([-5.0, 0.0, None], True, "breach"),  # an unjudged bucket does not recover it
        ([None, None, None], True, "nodata"),
        ([-3.5, -3.5, 0.0], False, "ok"),  # strictly beyond the sensitivity
    ],
)
def test_trigger_and_recovery_windows(
    scores: list[float | None], firing: bool, verdict: str
) -> None:
    spec = AnomalySpec(direction=Direction.DOWN, trigger_count=2, trigger_window=3)
    assert spec.verdict(scores, firing)[0] == verdict


def test_anomaly_rules_are_checked() -> None:
    base = {"name": "a", "metric": "connection_success_rate", "condition": "anomaly"}
    rule = Rule.from_dict({**base, "window": "1h", "anomaly": {"direction": "down"}})
    assert rule.anomaly == AnomalySpec(direction=Direction.DOWN)
    assert Rule.from_dict(rule.as_dict()) == rule
    with pytest.raises(RuleError) as caught:
        Rule.from_dict(
            {
                **base,
                "window": "2h",
                "critical": 3,
                "anomaly": {"direction": "sideways", "trigger_count": 4, "weeks": 0},
            }
        )
    message = str(caught.value)
    for expected in (
        "critical: an anomaly rule has no thresholds",
        "anomaly.direction: one of up, down, both",
        "anomaly.weeks: a whole number from 1 to 8",
        "anomaly.trigger_count: at most trigger_window (3)",
        "window: an anomaly rule's window is the bucket it judges: 15m, 1h or 1d",
    ):
        assert expected in message
    with pytest.raises(RuleError, match="anomaly: only an anomaly rule"):
        Rule.from_dict({**RULE, "anomaly": {}})


# -- an anomaly rule over a real store ------------------------------------------------------

#: The judged hour boundary: at T the rule judges [T - 3h, T).
T = datetime(2026, 11, 11, 15, 0, tzinfo=UTC)
#: Successes of 25 counted attempts in each hour of each of the four weeks before.
BASELINE = [24, 23, 24, 22]  # rates 0.96, 0.92, 0.96, 0.88: median 0.94, MAD 0.02
#: This week's successes of 25 in the hours T - 4h ... T + 1h.
NOW = {"ins_a": [24, 24, 10, 8, 24, 23], "ins_b": [24, 24, 23, 24, 24, 24]}
ANOMALY_RULE = {
    "name": "success_anomaly",
    "metric": "connection_success_rate",
    "window": "1h",
    "by": ["institution"],
    "condition": "anomaly",
    "interval": "1h",
    "anomaly": {"direction": "down"},
}
TICKS = [T + k * HOUR for k in range(-1, 3)]


def weekly_attempts() -> list[dict[str, Any]]:
    events = []
    for institution, current in NOW.items():
        for i, successes in enumerate(current):
            hour = T + (i - 4) * HOUR
            for week, before in enumerate([successes, *BASELINE]):
                at = hour - week * WEEK + 10 * MINUTE
                events += attempts(institution, at, success=before, institution=25 - before)
    return events


def pandas_z(events: list[dict[str, Any]], institution: str, hour: datetime) -> float:
    """The modified z-score of one hour, computed from the events with pandas."""
    frame = pd.DataFrame(events)
    frame = frame[frame.institution_id == institution]
    at = pd.to_datetime(frame.occurred_at).dt.floor("h")
    rates = (frame.outcome == "success").groupby(at).mean()
    baseline = pd.Series([rates[pd.Timestamp(hour - w * WEEK)] for w in range(1, 5)])
    median = baseline.median()
    mad = (baseline - median).abs().median()
    return float(0.6745 * (rates[pd.Timestamp(hour)] - median) / max(mad, 0.01 * abs(median)))


def live_episodes(analytics: BankingPerformanceAnalytics, rule: str) -> dict[str, list[Any]]:
    """Firing episodes rebuilt from the live evaluations' stored history: (start, end, peak,
    severity) per institution."""
    rows = sorted(
        analytics.monitor.history(rule=rule, transitions_only=False),
        key=lambda h: h.evaluated_at,
    )
    found: dict[str, list[Any]] = {}
    open_: dict[str, list[Any]] = {}
    for row in rows:
        key = row.labels["institution"]
        firing = row.state in ("firing", "recovering")
        if firing and key not in open_:
            open_[key] = [row.evaluated_at, None, row.value, row.severity]
            found.setdefault(key, []).append(open_[key])
        elif firing:
            episode = open_[key]
            if row.value is not None and row.severity is not None:
                episode[2] = min(episode[2], row.value)
            if row.severity == "critical":
                episode[3] = "critical"
        elif key in open_:
            open_.pop(key)[1] = row.evaluated_at
    return {k: [tuple(e) for e in v] for k, v in found.items()}


def backtest_episodes(view: BacktestView) -> dict[str, list[Any]]:
    return {
        i.labels["institution"]: [(e.start, e.end, e.peak, e.severity) for e in i.episodes]
        for i in view.firing
    }


def test_an_anomaly_rule_fires_at_the_dip_and_its_backtest_matches_live_evaluation(
    store_url: str,
) -> None:
    events = weekly_attempts()
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        assert {r.status for r in analytics.ingest(events)} == {EventStatus.ACCEPTED}
        rule = Rule.from_dict(ANOMALY_RULE)
        replay = analytics.monitor.backtest(rule, TICKS[0], TICKS[-1])
        monitor = analytics.monitor
        monitor.apply([rule], "test")
        seen = []
        for tick in TICKS:
            monitor.evaluate(tick)
            seen.append({a.labels["institution"]: (a.state, a.value) for a in monitor.alerts()})
        live = live_episodes(analytics, "success_anomaly")

    # z(0.40) = 0.6745·(0.40 - 0.94)/0.02 and z(0.32) = 0.6745·(0.32 - 0.94)/0.02.
    z_40, z_32 = 0.6745 * -0.54 / 0.02, 0.6745 * -0.62 / 0.02
    assert z_32 == pytest.approx(pandas_z(events, "ins_a", T - HOUR))
    assert z_40 == pytest.approx(pandas_z(events, "ins_a", T - 2 * HOUR))
    assert seen[0] == {}  # 1 of 3 hours anomalous: not yet
    assert seen[1] == {"ins_a": ("firing", pytest.approx(z_32))}  # 2 of 3: fires at once
    assert seen[2] == {"ins_a": ("firing", pytest.approx(z_32))}
    assert seen[3] == {}  # two normal hours: recovered
    assert live == {"ins_a": [(T, T + 2 * HOUR, pytest.approx(z_32), "critical")]}
    assert backtest_episodes(replay) == live
    assert (replay.ticks, replay.instances, replay.errors, replay.step) == (4, 2, 0, "1h")
    assert [e.active_at for e in replay.firing[0].episodes] == [T]


def test_a_threshold_rule_backtest_matches_live_evaluation(store_url: str) -> None:
    rule = Rule.from_dict({**RULE, "keep_firing_for": "2m"})
    ticks = [T0 + k * MINUTE for k in range(28, 56)]
    with BankingPerformanceAnalytics.open(store_url) as analytics:
        analytics.ingest(hand_worked())
        # ins_b gets better at minute 35: 0.8 (warning) from then on.
        analytics.ingest(attempts("ins_b", T0 + 35 * MINUTE, success=40))
        replay = analytics.monitor.backtest(rule, ticks[0], ticks[-1])
        analytics.monitor.apply([rule], "test")
        for tick in ticks:
            analytics.monitor.evaluate(tick)
        live = live_episodes(analytics, "success_low")
    # Events from minute 20 on sit in the 30-minute window [now - 30m, now) until minute 50:
    # ins_a (0.88) and ins_b (0.40, then 0.80 from minute 36) breach from the first tick
    # (28), fire at 30 (for = 2m), have no data from 51 and stop at 53 (keep_firing_for).
    assert backtest_episodes(replay) == live
    assert live == {
        "ins_a": [(T0 + 30 * MINUTE, T0 + 53 * MINUTE, pytest.approx(0.88), "warning")],
        "ins_b": [(T0 + 30 * MINUTE, T0 + 53 * MINUTE, pytest.approx(0.40), "critical")],
    }


def test_a_backtest_refuses_ranges_it_cannot_replay(analytics: BankingPerformanceAnalytics) -> None:
    rule = Rule.from_dict(RULE)
    monitor = analytics.monitor
    with pytest.raises(BacktestError, match="until: must be after since"):
        monitor.backtest(rule, T0, T0)
    with pytest.raises(BacktestError, match="more than 2,000 evaluations"):
        monitor.backtest(rule, T0, T0 + timedelta(days=2))
    with pytest.raises(BacktestError, match="step: at least the rule's interval"):
        monitor.backtest(rule, T0, T0 + HOUR, timedelta(seconds=10))
    assert monitor.backtest(rule, T0, T0 + timedelta(days=2), timedelta(hours=1)).ticks == 49
    assert monitor.rules() == []  # nothing is saved


# -- over HTTP ----------------------------------------------------------------------------

BACKTESTS = "/api/banking-analytics/backtests"


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_backtests_over_http(live_api: LiveAPI) -> None:
    api = live_api
    api.analytics.ingest(weekly_attempts())
    body = {
        "rule": {k: v for k, v in ANOMALY_RULE.items() if k != "name"},
        "since": iso(TICKS[0]),
        "until": iso(TICKS[-1]),
    }
    for role in ("ingest",):
        assert api.client.post(BACKTESTS, json=body, headers=api.as_key(role)).status_code == 403
    assert api.client.post(BACKTESTS, json=body, headers=api.as_user("u1")).status_code == 403
    assert api.client.post(BACKTESTS, json=body).status_code == 401
    for role in ("analyst", "admin"):
        answer = api.client.post(BACKTESTS, json=body, headers=api.as_key(role))
        assert answer.status_code == 200, answer.text
        found = answer.json()
        assert (found["rule"], found["ticks"], found["step"]) == ("backtest", 4, "1h")
        [instance] = found["firing"]
        assert instance["labels"] == {"institution": "ins_a"}
        [episode] = instance["episodes"]
        assert (episode["start"], episode["end"], episode["severity"]) == (
            iso(T),
            iso(T + 2 * HOUR),
            "critical",
        )
        assert math.isclose(episode["peak"], 0.6745 * -0.62 / 0.02)
    assert api.client.get("/api/banking-analytics/rules", headers=api.as_key("admin")).json() == []

    for bad, field in (
        ({**body, "rule": {**body["rule"], "window": "2h"}}, "rule.window"),
        ({**body, "until": body["since"]}, "until"),
        ({**body, "step": "fortnight"}, "step"),
        ({**body, "since": "yesterday"}, "since"),
        ({**body, "colour": "red"}, "colour"),
        ({**body, "since": iso(T - timedelta(days=200))}, "until"),
    ):
        answer = api.client.post(BACKTESTS, json=bad, headers=api.as_key("analyst"))
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert field in answer.text


def test_a_rule_test_file_refuses_anomaly_rules(tmp_path: Path) -> None:
    test_file = tmp_path / "t.yaml"
    test_file.write_text(yaml.safe_dump({"rules": [ANOMALY_RULE], "tests": [{"input_series": []}]}))
    with pytest.raises(RuleFileError, match="success_anomaly: an anomaly rule is tried with"):
        run_rule_tests(str(test_file))
