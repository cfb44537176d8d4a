"""The ground truth of a simulated world, as data and as JSON.

Analytics are checked against it: planted outage windows, every institution's
true health parameters, each feature's true effect on upgrades, the churn
drivers' true effect sizes and every churned user's churn date.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from banking_analytics.simulate._catalog import AGGREGATORS, FEATURES
from banking_analytics.simulate._config import SimulationConfig
from banking_analytics.simulate._world import World

__all__ = ["ChurnDriver", "GroundTruth", "InstitutionTruth", "OutageWindow", "build_truth"]


@dataclass(frozen=True)
class OutageWindow:
    """A planted outage at one institution.

    Link attempts whose credentials were submitted inside ``[start, end)``, and
    refreshes of existing connections (sync runs other than the initial and
    historical pulls right after a link) that started inside it, for
    ``feature`` (or every feature when it is ``"all"``), succeed with
    ``success_rate`` instead of the institution's normal rate (among outcomes
    that count for institution health) and take ``latency_multiplier`` times
    as long.
    """

    institution_id: str
    start: datetime
    end: datetime
    severity: str
    feature: str
    success_rate: float
    latency_multiplier: float


@dataclass(frozen=True)
class InstitutionTruth:
    """An institution's true parameters.

    ``base_success_rate`` is the probability that a link attempt which did not
    end in a user error, an abandon or a client-side error succeeds (the
    institution-health denominator); ``sync_success_rate`` the same for sync
    runs. Latency from credential submission to the outcome is lognormal:
    ``latency_median_ms · exp(latency_sigma · Z)``.
    """

    institution_id: str
    name: str
    aggregator: str
    popularity: float
    oauth: bool
    base_success_rate: float
    sync_success_rate: float
    latency_median_ms: float
    latency_sigma: float
    sync_interval_s: float
    login_required_daily_rate: float
    outages: tuple[OutageWindow, ...]


@dataclass(frozen=True)
class ChurnDriver:
    """A cause of churn: the daily churn hazard is multiplied by ``hazard_ratio``."""

    name: str
    hazard_ratio: float
    description: str


@dataclass(frozen=True)
class GroundTruth:
    """What the simulator planted in a world.

    Upgrades: a linked free user converts to a paid plan (a premium trial or a
    subscription) on a day with probability
    ``1 - exp(-upgrade_daily_hazard · Π_f feature_upgrade_effects[f])`` over the
    features used by the start of that day; a plus subscriber upgrades to
    premium with ``plus_upgrade_daily_hazard`` in place of
    ``upgrade_daily_hazard``. Churn: an active linked user churns on a day with
    probability ``1 - exp(-churn_daily_hazard · Π hazard ratios of the drivers
    present)``; users who give up linking churn when they do. ``churned_users``
    maps every churned user id to the UTC date of churn, after which the user
    has no more events but the refund of a recent payment. User ids are
    numbered in sign-up order, and the first ``users_present_at_start`` had
    signed up before the window; ``users_paying_at_start`` of them were paying
    subscribers when it began, their subscriptions started between their link
    and the window's start: their ``subscribed`` event, first charge and
    renewals are emitted at those past times (every event of the window but
    those is inside it), so a ledger opens with their MRR.

    Days are the 24-hour periods from ``start``. A feature is used from the user's first
    behaviour event of it after their first link (the link flow itself is not a use of
    account linking; repairing a connection or adding a product is).
    """

    config: SimulationConfig
    start: datetime
    institutions: tuple[InstitutionTruth, ...]
    feature_upgrade_effects: dict[str, float]
    upgrade_daily_hazard: float
    plus_upgrade_daily_hazard: float
    churn_daily_hazard: float
    churn_drivers: tuple[ChurnDriver, ...]
    users_present_at_start: int
    users_paying_at_start: int
    churned_users: dict[str, str]
    event_counts: dict[str, int]

    @property
    def outages(self) -> tuple[OutageWindow, ...]:
        """Every planted outage window, by start time."""
        return tuple(
            sorted((o for i in self.institutions for o in i.outages), key=lambda o: o.start)
        )

    def to_json(self) -> str:
        """The truth as an indented JSON document."""
        return json.dumps(_plain(self), indent=2)

    def write(self, path: str | Path) -> None:
        """Write the JSON document to ``path``."""
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, text: str) -> GroundTruth:
        """Read a document written by :meth:`to_json`."""
        data = json.loads(text)
        config = data["config"]
        return cls(
            config=SimulationConfig(
                users=config["users"],
                days=config["days"],
                seed=config["seed"],
                chunk_events=config["chunk_events"],
                end=datetime.fromisoformat(config["end"]),
                institutions=config.get("institutions"),
                # Documents written before the setting existed describe activity-1 worlds.
                activity=config.get("activity", 1.0),
            ),
            start=datetime.fromisoformat(data["start"]),
            institutions=tuple(
                InstitutionTruth(
                    **{
                        **i,
                        "outages": tuple(
                            OutageWindow(
                                **{
                                    **o,
                                    "start": datetime.fromisoformat(o["start"]),
                                    "end": datetime.fromisoformat(o["end"]),
                                }
                            )
                            for o in i["outages"]
                        ),
                    }
                )
                for i in data["institutions"]
            ),
            feature_upgrade_effects=data["feature_upgrade_effects"],
            upgrade_daily_hazard=data["upgrade_daily_hazard"],
            plus_upgrade_daily_hazard=data["plus_upgrade_daily_hazard"],
            churn_daily_hazard=data["churn_daily_hazard"],
            churn_drivers=tuple(ChurnDriver(**d) for d in data["churn_drivers"]),
            users_present_at_start=data["users_present_at_start"],
            users_paying_at_start=data["users_paying_at_start"],
            churned_users=data["churned_users"],
            event_counts=data["event_counts"],
        )

    @classmethod
    def read(cls, path: str | Path) -> GroundTruth:
        """Read a document written by :meth:`write`."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, GroundTruth | InstitutionTruth | OutageWindow | ChurnDriver):
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, SimulationConfig):
        return {
            "users": value.users,
            "days": value.days,
            "seed": value.seed,
            "chunk_events": value.chunk_events,
            "end": value.end.isoformat(),
            "institutions": value.institutions,
            "activity": value.activity,
        }
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def build_truth(
    world: World,
    churned: dict[str, date],
    event_counts: dict[str, int],
    paying_at_start: int,
) -> GroundTruth:
    """Collect the truth of a world that has been played to its end."""
    inst = world.institutions
    params = world.params
    ids = inst.ids.to_pylist()
    outages: dict[int, list[OutageWindow]] = {}
    for o in world.outages:
        outages.setdefault(o.institution, []).append(
            OutageWindow(
                institution_id=ids[o.institution],
                start=world.start + timedelta(seconds=o.start),
                end=world.start + timedelta(seconds=o.end),
                severity=o.severity,
                feature="all" if o.feature < 0 else FEATURES[o.feature].value,
                success_rate=o.success_rate,
                latency_multiplier=o.latency_multiplier,
            )
        )
    institutions = tuple(
        InstitutionTruth(
            institution_id=ids[i],
            name=str(inst.names[i]),
            aggregator=AGGREGATORS[int(inst.aggregator[i])].value,
            popularity=round(float(inst.popularity[i]), 6),
            oauth=bool(inst.oauth[i]),
            base_success_rate=float(inst.success[i]),
            sync_success_rate=float(inst.sync_success[i]),
            latency_median_ms=float(inst.latency_median_ms[i]),
            latency_sigma=float(inst.latency_sigma[i]),
            sync_interval_s=float(inst.sync_interval_s[i]),
            login_required_daily_rate=float(inst.login_required_rate[i]),
            outages=tuple(outages.get(i, ())),
        )
        for i in range(inst.count)
    )
    drivers = (
        ChurnDriver(
            "repeated_connection_failures",
            params.failure_hazard_ratio,
            f"per failed connection attempt (any flow, any category) in the trailing "
            f"{params.failure_window_days} days, counting at most {params.failure_cap}",
        ),
        ChurnDriver(
            "falling_engagement",
            params.disengaged_hazard_ratio,
            f"from the day a user starts losing interest; their session rate then decays "
            f"as exp(-t/{params.engagement_decay_days:g} days)",
        ),
        ChurnDriver(
            "paying_subscriber",
            params.paying_hazard_ratio,
            "while the user pays for a plan (active or past due)",
        ),
    )
    return GroundTruth(
        config=world.config,
        start=world.start,
        institutions=institutions,
        feature_upgrade_effects={
            f.value: e for f, e in zip(FEATURES, params.upgrade_effects, strict=True)
        },
        upgrade_daily_hazard=params.upgrade_hazard,
        plus_upgrade_daily_hazard=params.plus_upgrade_hazard,
        churn_daily_hazard=params.churn_hazard,
        churn_drivers=drivers,
        users_present_at_start=world.users.present_at_start,
        users_paying_at_start=paying_at_start,
        churned_users={user: day.isoformat() for user, day in churned.items()},
        event_counts=event_counts,
    )
