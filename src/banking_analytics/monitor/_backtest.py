"""Backtests: a rule, as written and not yet saved, replayed over a past range (PostHog's
"simulate").

The rule is evaluated at every tick of its interval (or of a coarser ``step``)
in ``[since, until]``, the multiples of it since the Unix epoch as the live
scheduler evaluates it, each with the clock set to the tick: the same query
(through the metric cache), the same readings and the same state machine
(:func:`.evaluate_rule`, which the live evaluator runs), starting from no
instances. Nothing is stored. The data are read as they are now: a replay
over data that arrived late sees them on time.

An **episode** is one instance's stretch of firing (recovering included): from
the tick it fired (``start``) to the first tick it no longer fired (``end``;
None when it still fired at the last tick), with its ``peak`` (the most severe
compared figure while firing: the lowest for ``below``, the highest for
``above``, the most extreme z-score for an anomaly rule) and the highest
severity it reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from banking_analytics.analytics import Shape
from banking_analytics.metrics import MetricService
from banking_analytics.monitor._anomaly import Direction
from banking_analytics.monitor._durations import format_duration, latest_tick
from banking_analytics.monitor._evaluate import evaluate_rule
from banking_analytics.monitor._rules import Condition, Rule, Severity
from banking_analytics.monitor._store import Labels, StoredInstance

__all__ = [
    "MAX_BACKTEST_INSTANCES",
    "MAX_BACKTEST_TICKS",
    "BacktestError",
    "BacktestInstance",
    "BacktestView",
    "Episode",
    "backtest",
]

#: The most evaluations one backtest makes: a longer range needs a coarser step.
MAX_BACKTEST_TICKS = 2_000
#: The most instances (label sets) a backtested rule may have at one tick.
MAX_BACKTEST_INSTANCES = 1_000


class BacktestError(ValueError):
    """A backtest that cannot be run as asked (the message says which field and why)."""


@dataclass(slots=True, eq=False)
class Episode(Shape):
    """One stretch of firing of one instance."""

    #: When the instance began to breach (pending started).
    active_at: datetime
    #: The tick it fired.
    start: datetime
    #: The first tick it no longer fired; null when it still fired at the end of the range.
    end: datetime | None
    #: The most severe compared figure while it fired (an anomaly rule: its z-score).
    peak: float | None
    #: The highest severity it reached: warning or critical.
    severity: str


@dataclass(slots=True, eq=False)
class BacktestInstance(Shape):
    """One instance (label set) that fired during the range, and its episodes."""

    labels: dict[str, str]
    episodes: list[Episode] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class BacktestView(Shape):
    """When a rule would have fired over a past range."""

    rule: str
    since: datetime
    until: datetime
    #: The time between evaluations (the rule's interval unless a step was given).
    step: str
    #: How many evaluations were made.
    ticks: int
    #: How many label sets were ever evaluated.
    instances: int
    #: How many evaluations' queries failed (their instances read ``error``).
    errors: int
    #: The instances that fired, by labels, each with its episodes in time order.
    firing: list[BacktestInstance]


def ticks_of(since: datetime, until: datetime, step: timedelta) -> list[datetime]:
    """The multiples of ``step`` since the epoch in ``[since, until]``."""
    first = latest_tick(since, step)
    if first < since:
        first += step
    count = 0 if first > until else (until - first) // step + 1
    return [first + k * step for k in range(count)]


def backtest(
    metrics: MetricService,
    rule: Rule,
    since: datetime,
    until: datetime,
    step: timedelta | None = None,
) -> BacktestView:
    """Replay ``rule`` over ``[since, until]`` (see the module); :class:`BacktestError` when
    the range is empty or too long, or the rule has too many instances."""
    step = rule.interval if step is None else step
    if until <= since:
        raise BacktestError("until: must be after since")
    if step < rule.interval:
        raise BacktestError(
            f"step: at least the rule's interval ({format_duration(rule.interval)})"
        )
    if (until - since) // step + 1 > MAX_BACKTEST_TICKS:
        raise BacktestError(
            f"until: {format_duration(until - since)} at a step of {format_duration(step)} "
            f"makes more than {MAX_BACKTEST_TICKS:,} evaluations; shorten the range or "
            "give a longer step"
        )
    ticks = ticks_of(since, until, step)
    current: dict[Labels, StoredInstance] = {}
    seen: set[Labels] = set()
    open_: dict[Labels, Episode] = {}
    episodes: dict[Labels, list[Episode]] = {}
    errors = 0
    for now in ticks:
        moved, _, _, error = evaluate_rule(metrics, rule, 0, current, now)
        errors += error is not None
        if len(moved) > MAX_BACKTEST_INSTANCES:
            raise BacktestError(
                f"rule: {len(moved):,} instances at {now.isoformat()}, more than "
                f"{MAX_BACKTEST_INSTANCES:,}; filter it or cut it by fewer dimensions"
            )
        for instance in moved:
            _follow(rule, instance, now, open_, episodes)
        current = {instance.labels: instance for instance in moved}
        seen.update(current)
        for labels in [labels for labels in open_ if labels not in current]:
            open_.pop(labels).end = now
    firing = [BacktestInstance(dict(labels), found) for labels, found in sorted(episodes.items())]
    return BacktestView(
        rule.name,
        since,
        until,
        format_duration(step),
        len(ticks),
        len(seen),
        errors,
        firing,
    )


def _follow(
    rule: Rule,
    instance: StoredInstance,
    now: datetime,
    open_: dict[Labels, Episode],
    episodes: dict[Labels, list[Episode]],
) -> None:
    """Open, extend or close the instance's episode after the evaluation at ``now``."""
    state = instance.state
    episode = open_.get(instance.labels)
    if not state.is_firing:
        if episode is not None:
            episode.end = now
            del open_[instance.labels]
        return
    if episode is None:
        assert state.active_at is not None
        assert state.fired_at is not None
        episode = Episode(state.active_at, state.fired_at, None, None, Severity.WARNING.value)
        open_[instance.labels] = episode
        episodes.setdefault(instance.labels, []).append(episode)
    if state.severity is Severity.CRITICAL:
        episode.severity = Severity.CRITICAL.value
    if instance.value is not None and state.severity is not None:
        episode.peak = (
            instance.value if episode.peak is None else _worse(rule, episode.peak, instance.value)
        )


def _worse(rule: Rule, a: float, b: float) -> float:
    """The more severe of two compared figures, by the rule's direction."""
    if rule.condition is Condition.BELOW or (
        rule.anomaly is not None and rule.anomaly.direction is Direction.DOWN
    ):
        return min(a, b)
    if rule.anomaly is not None and rule.anomaly.direction is Direction.BOTH:
        return max(a, b, key=abs)
    return max(a, b)
