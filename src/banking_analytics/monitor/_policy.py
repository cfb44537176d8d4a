"""The notification policy: which receiver gets which alerts, grouped how, and how often;
and which alerts mute others (inhibition). Alertmanager's configuration, flattened.

Routes are an ordered list. An alert goes to the first route whose matchers all
match its labels; when that route says ``continue``, matching goes on down the
list, so one alert may reach several receivers. An alert no route takes goes to
the default ``receiver`` (no default receiver: it is not notified). A route's
``group_by`` and timers default to the policy's.

Timers (Alertmanager's, with its defaults):

* ``group_wait`` (30s): a new group waits this long before its first
  notification, so alerts firing together arrive together; an alert resolved
  within it is never notified.
* ``group_interval`` (5m): after that, the group is looked at every
  ``group_interval``; a notification goes out when its firing or resolved
  alerts changed since the last one.
* ``repeat_interval`` (4h): an unchanged group still firing is notified again
  once this long has passed since its last notification.

Inhibition: a firing alert matching an inhibit rule's ``source_matchers`` mutes
every alert matching its ``target_matchers`` whose ``equal`` labels have the same
values; an alert matching both sides is never muted by one that also does
(Alertmanager's rule). The default: a critical alert mutes warnings of the same
institution, feature and aggregator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from banking_analytics.monitor._durations import format_duration, parse_duration
from banking_analytics.monitor._matchers import Matcher, MatcherError, matches_all, parse_matchers

__all__ = [
    "DEFAULT_INHIBIT_RULES",
    "InhibitRule",
    "NotificationPolicy",
    "PolicyError",
    "Route",
    "RoutedTo",
    "Timers",
]


class PolicyError(ValueError):
    """A policy (or silence, or receiver) that cannot be made; ``problems`` names each field."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{where}: {message}" for where, message in self.problems))


@dataclass(frozen=True, slots=True)
class Timers:
    group_wait: timedelta = timedelta(seconds=30)
    group_interval: timedelta = timedelta(minutes=5)
    repeat_interval: timedelta = timedelta(hours=4)


@dataclass(frozen=True, slots=True)
class Route:
    receiver: str
    matchers: tuple[Matcher, ...] = ()
    group_by: tuple[str, ...] | None = None
    group_wait: timedelta | None = None
    group_interval: timedelta | None = None
    repeat_interval: timedelta | None = None
    continue_: bool = False


@dataclass(frozen=True, slots=True)
class InhibitRule:
    source_matchers: tuple[Matcher, ...]
    target_matchers: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()

    def inhibits(self, source: Mapping[str, str], target: Mapping[str, str]) -> bool:
        """Whether the firing alert ``source`` mutes ``target`` under this rule."""
        if not (
            matches_all(self.source_matchers, source) and matches_all(self.target_matchers, target)
        ):
            return False
        if matches_all(self.source_matchers, target) and matches_all(self.target_matchers, source):
            return False  # both sides match both: they cannot mute each other
        return all(source.get(name, "") == target.get(name, "") for name in self.equal)


DEFAULT_INHIBIT_RULES = (
    InhibitRule(
        parse_matchers(['severity="critical"']),
        parse_matchers(['severity="warning"']),
        ("institution", "feature", "aggregator"),
    ),
)


@dataclass(frozen=True, slots=True)
class RoutedTo:
    """Where one alert goes by one route: its receiver, the group, the group's timers."""

    route: int  # the route's index; -1 for the default receiver
    receiver: str
    group_by: tuple[str, ...]
    timers: Timers


@dataclass(frozen=True, slots=True)
class NotificationPolicy:
    receiver: str | None = None
    group_by: tuple[str, ...] = ("alertname",)
    timers: Timers = Timers()
    routes: tuple[Route, ...] = ()
    inhibit_rules: tuple[InhibitRule, ...] = field(default=DEFAULT_INHIBIT_RULES)

    @property
    def receivers(self) -> set[str]:
        """Every receiver the policy names."""
        named = {route.receiver for route in self.routes}
        return named | ({self.receiver} if self.receiver else set())

    def route(self, labels: Mapping[str, str]) -> list[RoutedTo]:
        """The routes an alert with ``labels`` takes (see the module)."""
        taken = []
        for index, route in enumerate(self.routes):
            if matches_all(route.matchers, labels):
                timers = Timers(
                    *(
                        getattr(self.timers, name)
                        if getattr(route, name) is None
                        else getattr(route, name)
                        for name in _TIMERS
                    )
                )
                group_by = self.group_by if route.group_by is None else route.group_by
                taken.append(RoutedTo(index, route.receiver, group_by, timers))
                if not route.continue_:
                    return taken
        if not taken and self.receiver is not None:
            taken.append(RoutedTo(-1, self.receiver, self.group_by, self.timers))
        return taken

    def inhibited(self, target: Mapping[str, str], firing: Sequence[Mapping[str, str]]) -> bool:
        """Whether any of the ``firing`` alerts mutes ``target``."""
        return any(
            rule.inhibits(source, target) for rule in self.inhibit_rules for source in firing
        )

    # -- as written -----------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any) -> NotificationPolicy:
        """The policy as written in ``PUT /notification-policy``; :class:`PolicyError`."""
        problems: list[tuple[str, str]] = []
        if not isinstance(data, Mapping):
            raise PolicyError([("policy", "an object")])
        _unknown(
            data,
            {"receiver", "group_by", "routes", "inhibit_rules", *_TIMERS},
            "policy",
            problems,
        )
        receiver = data.get("receiver")
        if receiver is not None and not isinstance(receiver, str):
            problems.append(("receiver", "a receiver's name"))
        group_by = _names(data.get("group_by", ["alertname"]), "group_by", problems)
        timers = Timers(
            *(_duration(data, name, Timers(), problems) for name in _TIMERS)  # type: ignore[arg-type]
        )
        routes = []
        raw_routes = data.get("routes", [])
        if not isinstance(raw_routes, list):
            problems.append(("routes", "a list"))
            raw_routes = []
        for i, raw in enumerate(raw_routes):
            where = f"routes[{i}]"
            if not isinstance(raw, Mapping):
                problems.append((where, "an object"))
                continue
            _unknown(
                raw, {"receiver", "matchers", "group_by", "continue", *_TIMERS}, where, problems
            )
            name = raw.get("receiver")
            if not isinstance(name, str):
                problems.append((f"{where}.receiver", "a receiver's name"))
                name = ""
            wait, interval, repeat = (_duration(raw, t, None, problems, where) for t in _TIMERS)
            routes.append(
                Route(
                    name,
                    _matchers(raw.get("matchers", []), f"{where}.matchers", problems),
                    None
                    if raw.get("group_by") is None
                    else _names(raw["group_by"], f"{where}.group_by", problems),
                    wait,
                    interval,
                    repeat,
                    _bool(raw.get("continue", False), f"{where}.continue", problems),
                )
            )
        inhibit = []
        raw_inhibit = data.get("inhibit_rules")
        if raw_inhibit is not None and not isinstance(raw_inhibit, list):
            problems.append(("inhibit_rules", "a list"))
            raw_inhibit = []
        for i, raw in enumerate(raw_inhibit or []):
            where = f"inhibit_rules[{i}]"
            if not isinstance(raw, Mapping):
                problems.append((where, "an object"))
                continue
            _unknown(raw, {"source_matchers", "target_matchers", "equal"}, where, problems)
            inhibit.append(
                InhibitRule(
                    _matchers(raw.get("source_matchers", []), f"{where}.source_matchers", problems),
                    _matchers(raw.get("target_matchers", []), f"{where}.target_matchers", problems),
                    _names(raw.get("equal", []), f"{where}.equal", problems),
                )
            )
        if problems:
            raise PolicyError(problems)
        return cls(
            receiver,
            group_by,
            timers,
            tuple(routes),
            DEFAULT_INHIBIT_RULES if raw_inhibit is None else tuple(inhibit),
        )

    def as_dict(self) -> dict[str, Any]:
        def matchers(found: Sequence[Matcher]) -> list[str]:
            return [str(m) for m in found]

        def route(r: Route) -> dict[str, Any]:
            written: dict[str, Any] = {"receiver": r.receiver, "matchers": matchers(r.matchers)}
            if r.group_by is not None:
                written["group_by"] = list(r.group_by)
            for name in _TIMERS:
                value = getattr(r, name)
                if value is not None:
                    written[name] = format_duration(value)
            written["continue"] = r.continue_
            return written

        return {
            "receiver": self.receiver,
            "group_by": list(self.group_by),
            **{name: format_duration(getattr(self.timers, name)) for name in _TIMERS},
            "routes": [route(r) for r in self.routes],
            "inhibit_rules": [
                {
                    "source_matchers": matchers(rule.source_matchers),
                    "target_matchers": matchers(rule.target_matchers),
                    "equal": list(rule.equal),
                }
                for rule in self.inhibit_rules
            ],
        }


_TIMERS = ("group_wait", "group_interval", "repeat_interval")


def _unknown(
    data: Mapping[str, Any], known: set[str], where: str, problems: list[tuple[str, str]]
) -> None:
    for name in data:
        if name not in known:
            problems.append((f"{where}.{name}" if where != "policy" else name, "unknown field"))


def _names(value: Any, where: str, problems: list[tuple[str, str]]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.append((where, "a list of label names"))
        return ()
    return tuple(value)


def _bool(value: Any, where: str, problems: list[tuple[str, str]]) -> bool:
    if not isinstance(value, bool):
        problems.append((where, "true or false"))
        return False
    return value


def _timer(timers: Timers, name: str) -> timedelta:
    value: timedelta = getattr(timers, name)
    return value


def _matchers(value: Any, where: str, problems: list[tuple[str, str]]) -> tuple[Matcher, ...]:
    if not isinstance(value, list):
        problems.append((where, 'a list of matchers like severity="critical"'))
        return ()
    found = []
    for i, text in enumerate(value):
        try:
            found.append(Matcher.parse(text))
        except MatcherError as exc:
            problems.append((f"{where}[{i}]", str(exc)))
    return tuple(found)


def _duration(
    data: Mapping[str, Any],
    name: str,
    default: Timers | None,
    problems: list[tuple[str, str]],
    where: str = "",
) -> timedelta | None:
    if name not in data:
        return None if default is None else _timer(default, name)
    try:
        value = parse_duration(data[name])
    except ValueError as exc:
        problems.append((f"{where}.{name}" if where else name, str(exc)))
        return None
    if value <= timedelta(0) and name != "group_wait":  # notifying at once is fine
        problems.append((f"{where}.{name}" if where else name, "must be longer than 0"))
    return value
