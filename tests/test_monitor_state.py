"""The alert state machine against hand-worked timelines and against a literal transcription
of Prometheus's own alerting-rule loop (rules/alerting.go), over random breach sequences."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from banking_analytics.monitor import (
    AlertState,
    InstanceState,
    Observation,
    Reading,
    Severity,
    advance,
)

T0 = datetime(2026, 12, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
OK = Reading(Observation.OK, value=1.0)
WARN = Reading(Observation.BREACH, Severity.WARNING, 0.8)
CRIT = Reading(Observation.BREACH, Severity.CRITICAL, 0.3)
NODATA = Reading(Observation.NODATA)
ERROR = Reading(Observation.ERROR)


def run(
    readings: list[Reading], for_: timedelta, keep: timedelta = timedelta(0)
) -> list[InstanceState]:
    """The state after each evaluation, one a minute from T0."""
    state, states = InstanceState(), []
    for i, reading in enumerate(readings):
        state = advance(state, reading, T0 + i * MINUTE, for_, keep)
        states.append(state)
    return states


def names(states: list[InstanceState]) -> list[str]:
    return [s.state.value for s in states]


def test_for_holds_an_alert_pending_until_it_has_breached_that_long() -> None:
    # for = 2m: active at 0, pending at 0 and 1, firing at 2 (2m - 0 >= 2m).
    states = run([OK, WARN, WARN, WARN, WARN, OK], 2 * MINUTE)
    assert names(states) == ["inactive", "pending", "pending", "firing", "firing", "inactive"]
    assert states[3].active_at == T0 + MINUTE
    assert states[3].fired_at == T0 + 3 * MINUTE
    assert states[5].active_at is None
    assert states[5].changed_at == T0 + 5 * MINUTE


def test_without_for_an_alert_fires_on_its_first_breach() -> None:
    assert names(run([WARN, OK], timedelta(0))) == ["firing", "inactive"]


def test_a_pending_alert_that_stops_breaching_starts_again_from_zero() -> None:
    states = run([WARN, OK, WARN, WARN, WARN], 2 * MINUTE)
    assert names(states) == ["pending", "inactive", "pending", "pending", "firing"]
    assert states[4].active_at == T0 + 2 * MINUTE


def test_keep_firing_for_counts_from_the_first_evaluation_that_no_longer_breaches() -> None:
    # keep 2m: not breaching from minute 2; recovering at 2 and 3, resolved at 4 (4 - 2 >= 2).
    states = run([CRIT, CRIT, OK, OK, OK], timedelta(0), 2 * MINUTE)
    assert names(states) == ["firing", "firing", "recovering", "recovering", "inactive"]
    assert states[2].recovering_since == T0 + 2 * MINUTE
    assert states[3].severity is Severity.CRITICAL
    assert states[3].is_firing
    # A breach while recovering fires again, the same alert: its fired_at is kept.
    again = run([CRIT, OK, WARN, OK, OK, OK], timedelta(0), 2 * MINUTE)
    assert names(again) == [
        "firing",
        "recovering",
        "firing",
        "recovering",
        "recovering",
        "inactive",
    ]
    assert again[2].fired_at == T0
    assert again[2].recovering_since is None
    assert again[3].recovering_since == T0 + 3 * MINUTE


def test_severity_moves_between_warning_and_critical_without_resetting_the_alert() -> None:
    states = run([WARN, CRIT, CRIT, WARN, CRIT], MINUTE)
    assert names(states) == ["pending", "firing", "firing", "firing", "firing"]
    assert [s.severity for s in states] == [
        Severity.WARNING,
        Severity.CRITICAL,
        Severity.CRITICAL,
        Severity.WARNING,
        Severity.CRITICAL,
    ]
    assert {s.active_at for s in states} == {T0}
    assert {s.fired_at for s in states[1:]} == {T0 + MINUTE}
    assert {s.changed_at for s in states[1:]} == {T0 + MINUTE}


def test_no_data_goes_through_pending_and_never_resolves_an_alert_as_healthy() -> None:
    # Grafana: Normal -> Pending -> NoData once the pending period has passed.
    assert names(run([NODATA, NODATA, NODATA, OK], 2 * MINUTE)) == [
        "pending",
        "pending",
        "nodata",
        "inactive",
    ]
    # A firing alert that loses its data is nodata, not resolved: after keep_firing_for.
    states = run([CRIT, NODATA, NODATA, NODATA], timedelta(0), 2 * MINUTE)
    assert names(states) == ["firing", "recovering", "recovering", "nodata"]
    assert states[3].active_at == T0 + 3 * MINUTE
    assert states[3].severity is None
    assert names(run([CRIT, NODATA], timedelta(0))) == ["firing", "nodata"]
    # Pending counts breach and no data alike; the state it settles in is the latest's.
    assert names(run([WARN, NODATA, WARN], 2 * MINUTE)) == ["pending", "pending", "firing"]
    # From no data, a breach starts a new pending period.
    assert names(run([NODATA, NODATA, WARN, WARN], MINUTE)) == [
        "pending",
        "nodata",
        "pending",
        "firing",
    ]


def test_errors_behave_like_no_data_and_switch_with_it() -> None:
    assert names(run([ERROR, ERROR, NODATA, ERROR, OK], MINUTE)) == [
        "pending",
        "error",
        "nodata",
        "error",
        "inactive",
    ]


# -- Prometheus's loop, transcribed -----------------------------------------------------------


@dataclass
class _PromAlert:
    state: str
    active_at: datetime
    fired_at: datetime | None = None
    keep_firing_since: datetime | None = None


def prometheus(
    active: list[bool], for_: timedelta, keep: timedelta
) -> list[tuple[str, datetime | None]]:
    """The state of one series' alert after each evaluation, as rules/alerting.go's Eval
    computes it (one series: present in the result when ``active``); ``inactive`` when
    Prometheus holds no alert for it or holds one resolved."""
    alert: _PromAlert | None = None
    out: list[tuple[str, datetime | None]] = []
    for i, is_active in enumerate(active):
        ts = T0 + i * MINUTE
        if is_active and (alert is None or alert.state == "inactive"):
            alert = _PromAlert("pending", ts)
        if alert is not None:
            keep_firing = False
            if not is_active:
                if alert.state == "firing" and keep > timedelta(0):
                    if alert.keep_firing_since is None:
                        alert.keep_firing_since = ts
                    keep_firing = ts - alert.keep_firing_since < keep
                if alert.state == "pending":
                    alert = None
                elif not keep_firing:
                    alert.state = "inactive"
            else:
                alert.keep_firing_since = None
            if alert is not None and alert.state == "pending" and ts - alert.active_at >= for_:
                alert.state = "firing"
                alert.fired_at = ts
        if alert is None or alert.state == "inactive":
            out.append(("inactive", None))
        elif alert.state == "firing" and alert.keep_firing_since is not None:
            out.append(("recovering", alert.active_at))  # Grafana's name for it
        else:
            out.append((alert.state, alert.active_at))
    return out


@settings(max_examples=300, deadline=None)
@given(
    active=st.lists(st.booleans(), min_size=1, max_size=30),
    for_minutes=st.integers(0, 5),
    keep_minutes=st.integers(0, 5),
)
def test_breaches_move_states_exactly_as_prometheus_does(
    active: list[bool], for_minutes: int, keep_minutes: int
) -> None:
    for_, keep = for_minutes * MINUTE, keep_minutes * MINUTE
    ours = run([WARN if a else OK for a in active], for_, keep)
    assert [(s.state.value, s.active_at) for s in ours] == prometheus(active, for_, keep)
    assert all(s.state is not AlertState.NODATA for s in ours)
