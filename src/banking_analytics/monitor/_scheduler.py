"""Running rules on their intervals: a scheduler driven by any clock, and a background
thread that drives it by the wall clock (inside ``serve``, or alone as ``monitor``).

A rule with interval ``I`` is evaluated at the multiples of ``I`` since the Unix
epoch (at 12:00, 12:01, ... for one minute): every process, and every restart,
asks the same questions at the same instants, so their windows line up and
rules sharing a query share its cached answer. A tick missed (the evaluator
was stopped) is not made up for: the next evaluation is at the latest tick,
as Prometheus does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from banking_analytics.monitor._durations import latest_tick
from banking_analytics.monitor._evaluate import RuleEvaluation
from banking_analytics.monitor._namespace import MonitorNamespace
from banking_analytics.monitor._store import StoredRule

if TYPE_CHECKING:
    from banking_analytics.monitor._notify import Notifier

__all__ = ["BackgroundEvaluator", "Scheduler", "latest_tick"]

_log = logging.getLogger(__name__)


class Scheduler:
    """Evaluates each rule once per tick of its interval, at the tick's instant."""

    def __init__(self, monitor: MonitorNamespace) -> None:
        self._monitor = monitor
        # When each rule version was last evaluated; what the store says, at first.
        self._last: dict[tuple[str, int], datetime] = monitor.store.last_evaluations()

    def run_due(self, now: datetime) -> list[RuleEvaluation]:
        """Evaluate every rule whose latest tick at ``now`` it has not evaluated yet."""
        due: dict[datetime, list[StoredRule]] = {}
        for stored in self._monitor.store.rules():  # rules and SLOs alike
            assert stored.rule is not None
            tick = latest_tick(now, stored.rule.interval)
            last = self._last.get((stored.name, stored.version))
            if last is None or tick > last:
                due.setdefault(tick, []).append(stored)
        reports = []
        for tick in sorted(due):
            reports += self._monitor.evaluate(tick, due[tick])
            for stored in due[tick]:
                self._last[(stored.name, stored.version)] = tick
        return reports


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class BackgroundEvaluator:
    """A daemon thread running :meth:`Scheduler.run_due` every ``period_seconds``.

    ``on_cycle`` is called with each cycle's evaluations (the ``monitor`` command
    prints them); ``notifier``'s :meth:`~Notifier.tick` after each cycle, at the cycle's
    time. A failing cycle is logged and the next one runs as usual.
    """

    def __init__(
        self,
        monitor: MonitorNamespace,
        *,
        period_seconds: float = 1.0,
        clock: Callable[[], datetime] = _wall_clock,
        on_cycle: Callable[[list[RuleEvaluation]], None] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        if not period_seconds > 0:
            raise ValueError(f"period_seconds must be positive, got {period_seconds}")
        self._scheduler = Scheduler(monitor)
        self._period = period_seconds
        self._clock = clock
        self._on_cycle = on_cycle
        self._notifier = notifier
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="alert-evaluator", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop after the cycle under way (if any); returns once the thread has ended (and
        the notifier's connections are closed)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._notifier is not None:
            self._notifier.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                now = self._clock()
                reports = self._scheduler.run_due(now)
                if self._on_cycle is not None:
                    self._on_cycle(reports)
                if self._notifier is not None:
                    self._notifier.tick(now)
            # One cycle failing (the store unreachable for a moment) must not end
            # monitoring: the next cycle tries again.
            except Exception:
                _log.exception("alert evaluation cycle failed")
            self._stop.wait(self._period)
