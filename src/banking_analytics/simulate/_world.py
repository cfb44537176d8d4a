"""The static world: institutions, planted outages, users and model parameters.

Times are float seconds since the start of the simulated window. Everything
here is drawn once per seed; ``_generate`` then plays the world forward a day
at a time.

Institutions (40-80). Popularity follows a power law, ``p_i ∝ (i + 1)^-1.05``
for popularity rank i. Institution-health success (the share of attempts that
succeed among those that did not fail because of the user or the client) is
``0.93 + 0.06·Beta(2, 2)`` for most and ``U(0.72, 0.88)`` for one in ten.
Connection latency is lognormal, ``median·exp(sigma·Z)``, with the median
log-uniform on 2-8 s and sigma ~ U(0.45, 0.85). Sync runs fail half as often as
link attempts. Transactions refresh every 6 h (10% of institutions), 12 h (45%)
or 24 h (45%; Finicity always nightly). A healthy connection starts needing a
fresh login (ITEM_LOGIN_REQUIRED) at a daily rate of about 0.006 with
credentials and 0.002 with OAuth (each ``x U(0.7, 1.3)``).

Outages: 3-5 windows of 2-6 hours at the five most popular institutions, in
the US afternoon of the later two thirds of the window. ``down`` windows let
3% of requests through and fail the rest fast with the aggregator's "down"
code; ``degraded`` windows succeed 50-70% of the time and are 2-3.5x slower.

Users sign up with density ``∝ 1 + t/T`` over the window (twice as many at the
end as at the start), at diurnal times of day; 20% are already present at the
start, linked before it. Each has a home institution (by popularity), a
primary device (iPhone 52%, Android phone 33%, web 15%) and for 30% a second
one. Engagement is lognormal with mean 1; 40% of users lose interest at
``onset = signup + Exp(30 days)``, after which their session rate decays as
``exp(-(t - onset)/τ)``, τ = 7 days. Feature adoption: see ``ADOPTION``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from banking_analytics.simulate._arrays import F64, I8
from banking_analytics.simulate._catalog import (
    AGGREGATORS,
    FEATURES,
    INSTITUTION_WORDS,
    ErrorTable,
    error_table,
    string_table,
)
from banking_analytics.simulate._config import SimulationConfig
from banking_analytics.simulate._ids import base62_strings, derive_key, digit_strings, uuid_strings
from banking_analytics.vocabulary import Aggregator, BankingFeature, DeviceType, Platform

__all__ = [
    "DAY",
    "FROM_TRANSACTIONS",
    "HOUR",
    "PRODUCT_FEATURES",
    "Institutions",
    "Outage",
    "Params",
    "Users",
    "World",
    "build_world",
    "diurnal_offsets",
]

DAY = 86_400.0
HOUR = 3_600.0


_F = BankingFeature


@dataclass(frozen=True, slots=True)
class Params:
    """The planted causal model: every number the analytics should recover."""

    #: Hazard ratio on the daily probability of converting to a paid plan (trial or
    #: direct subscription, and plus -> premium upgrades) for each adopted feature.
    upgrade_effects: tuple[float, ...] = (1.0, 1.0, 1.1, 1.5, 1.9, 1.3, 1.2, 2.2, 1.6, 2.6)
    #: Daily conversion hazard of a free user with no effective feature.
    upgrade_hazard: float = 0.0012
    #: Daily plus -> premium upgrade hazard with no effective feature.
    plus_upgrade_hazard: float = 0.003
    #: Daily churn hazard of a linked user with no driver present.
    churn_hazard: float = 0.0015
    #: Hazard ratio per failed connection attempt in the trailing 14 days (at most 3 count).
    failure_hazard_ratio: float = 1.8
    failure_cap: int = 3
    failure_window_days: int = 14
    #: Hazard ratio once a user's engagement has started to fall.
    disengaged_hazard_ratio: float = 12.0
    #: Hazard ratio while the user pays for a plan.
    paying_hazard_ratio: float = 0.5
    disengaged_share: float = 0.4
    disengage_mean_days: float = 30.0
    engagement_decay_days: float = 7.0
    #: Share of users already signed up (and linked) when the window starts.
    present_share: float = 0.2


#: Per feature: the probability that a user eventually adopts it (engagement 1),
#: the mean days from the first successful link until they do, and the minimum
#: seconds after the link (transactions need the initial sync, which ends within
#: 30 s; everything computed from them waits ten minutes). Transactions are an
#: optional product of the link: see ``TRANSACTIONS_AT_LINK``; their row is for
#: the users who do not grant them in the link flow.
ADOPTION: dict[BankingFeature, tuple[float, float, float]] = {
    _F.ACCOUNT_LINKING: (1.0, 0.0, 0.0),
    _F.TRANSACTION_SYNC: (0.5, 10.0, 60.0),
    _F.BALANCE_MONITORING: (0.6, 0.5, 600.0),
    _F.SPENDING_ANALYSIS: (0.55, 2.0, 600.0),
    _F.BUDGET_TRACKING: (0.35, 4.0, 600.0),
    _F.GOAL_SETTING: (0.22, 6.0, 600.0),
    _F.BILL_REMINDERS: (0.3, 5.0, 600.0),
    _F.INVESTMENT_TRACKING: (0.18, 6.0, 600.0),
    _F.CREDIT_MONITORING: (0.22, 6.0, 600.0),
    _F.TAX_OPTIMIZATION: (0.08, 12.0, 600.0),
}
#: Tax optimisation needs investment data: much likelier once investments are tracked.
TAX_WITH_INVESTMENTS = 0.35
#: Share of users who grant access to their transactions in the link flow (the app asks
#: for them as an optional product, as Plaid's optional products do). The others link
#: for balances only; some add transactions later through an add_product flow
#: (``ADOPTION``), the rest never do.
TRANSACTIONS_AT_LINK = 0.75
#: Features that may come through an add_product flow after the link: transactions (for
#: users who did not grant them in it), investments and credit (always).
PRODUCT_FEATURES: tuple[int, ...] = tuple(
    FEATURES.index(f) for f in (_F.TRANSACTION_SYNC, _F.INVESTMENT_TRACKING, _F.CREDIT_MONITORING)
)
#: Features computed from transactions: usable only once transactions are in.
FROM_TRANSACTIONS = np.isin(
    np.arange(len(FEATURES)),
    [
        FEATURES.index(f)
        for f in (
            _F.SPENDING_ANALYSIS,
            _F.BUDGET_TRACKING,
            _F.GOAL_SETTING,
            _F.BILL_REMINDERS,
            _F.TAX_OPTIMIZATION,
        )
    ],
)

# fmt: off
#: Relative activity by local hour of day (night low, morning, lunch, evening peak).
DIURNAL = np.asarray([
    0.3, 0.2, 0.15, 0.1, 0.1, 0.15, 0.4, 0.8, 1.1, 1.0, 0.9, 1.0,
    1.2, 1.1, 0.9, 0.9, 1.0, 1.2, 1.5, 1.7, 1.8, 1.6, 1.1, 0.6,
])
# fmt: on
#: UTC offsets of US users (ET, CT, MT, PT) and their shares; TrueLayer users are in the UK.
US_TIMEZONES = (np.asarray([-5, -6, -7, -8], dtype=np.int8), np.asarray([0.45, 0.3, 0.05, 0.2]))

#: Besides every feature at once, an outage may hit only logins or only transactions.
_OUTAGE_FEATURES = (
    FEATURES.index(BankingFeature.ACCOUNT_LINKING),
    FEATURES.index(BankingFeature.TRANSACTION_SYNC),
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PLATFORMS = tuple(Platform)
_DEVICES = tuple(DeviceType)


@dataclass(frozen=True, slots=True)
class Institutions:
    """Per-institution arrays, indexed by popularity rank."""

    ids: pa.StringArray
    names: pa.StringArray
    aggregator: I8
    popularity: F64
    oauth: NDArray[np.bool_]
    success: F64
    sync_success: F64
    latency_median_ms: F64
    latency_sigma: F64
    sync_interval_s: F64
    login_required_rate: F64

    @property
    def count(self) -> int:
        return int(self.popularity.size)


@dataclass(frozen=True, slots=True)
class Outage:
    """A planted window of trouble at one institution."""

    institution: int
    start: float
    end: float
    severity: str
    #: Index into FEATURES, or -1 when every feature is affected.
    feature: int
    success_rate: float
    latency_multiplier: float


@dataclass(frozen=True, slots=True)
class Users:
    """Per-user attributes fixed at sign-up, indexed in sign-up order."""

    count: int
    present_at_start: int
    signup: F64
    institution: NDArray[np.int16]
    engagement: F64
    tz_hours: I8
    platform: I8
    device: I8
    #: A second device (-1 when the user has only one).
    alt_platform: I8
    alt_device: I8
    onset: F64
    #: ``(users, features)``: adoption time after the first link, inf if never.
    adopt_delay: F64
    #: ``(users, features)``: whether the feature comes through an add_product flow.
    via_product: NDArray[np.bool_]
    #: ``(users, features)``: how much this user favours each feature.
    affinity: NDArray[np.float32]
    accounts: I8
    #: Fraction of the sync interval at which this user's connection refreshes.
    sync_phase: F64
    ids: pa.StringArray
    connection_ids: pa.StringArray


@dataclass(frozen=True, slots=True)
class World:
    config: SimulationConfig
    params: Params
    start: datetime
    start_us: int
    #: Length of the window in seconds.
    horizon: float
    #: UTC hour of day at which the window (and every simulated day) starts.
    start_hour: int
    institutions: Institutions
    outages: tuple[Outage, ...]
    users: Users
    errors: ErrorTable


def diurnal_offsets(rng: np.random.Generator, tz_hours: I8, start_hour: int) -> F64:
    """Seconds into a day that starts at UTC ``start_hour``, by local diurnal rhythm."""
    out = np.empty(tz_hours.size, dtype=np.float64)
    u = rng.random(tz_hours.size)
    hours = np.arange(24)
    for tz in np.unique(tz_hours):
        rows = tz_hours == tz
        weights = DIURNAL[(start_hour + hours + int(tz)) % 24]
        cdf = np.cumsum(weights) / weights.sum()
        out[rows] = np.searchsorted(cdf, u[rows], side="right").clip(0, 23)
    return (out + rng.random(tz_hours.size)) * HOUR


def _institutions(rng: np.random.Generator, asked: int | None) -> Institutions:
    # Drawn even when the count is asked for: the draws after it stay the seed's.
    default_count = int(rng.integers(40, 81))
    count = default_count if asked is None else asked
    ranks = np.arange(count)
    popularity = np.asarray((ranks + 1.0) ** -1.05, dtype=np.float64)
    popularity /= popularity.sum()
    numbers = np.sort(rng.choice(np.arange(1, 4 * count), size=count, replace=False))
    firsts, seconds, kinds = INSTITUTION_WORDS
    combos = rng.choice(len(firsts) * len(seconds) * len(kinds), size=count, replace=False)
    names = [
        f"{firsts[c % len(firsts)]} {seconds[c // len(firsts) % len(seconds)]} "
        f"{kinds[c // (len(firsts) * len(seconds))]}"
        for c in combos.tolist()
    ]
    others = (Aggregator.PLAID, Aggregator.MX, Aggregator.FINICITY, Aggregator.TRUELAYER)
    drawn = rng.choice(
        [AGGREGATORS.index(a) for a in (*others, Aggregator.YODLEE)],
        size=count,
        p=[0.45, 0.18, 0.13, 0.1, 0.14],
    )
    # The biggest banks sit behind the app's main aggregator.
    drawn[:3] = AGGREGATORS.index(Aggregator.PLAID)
    aggregator = drawn.astype(np.int8)
    oauth = rng.random(count) < np.where(ranks < 10, 0.7, 0.2)
    oauth |= aggregator == AGGREGATORS.index(Aggregator.TRUELAYER)
    poor = rng.random(count) < 0.1
    success = np.where(
        poor, rng.uniform(0.72, 0.88, count), 0.93 + 0.06 * rng.beta(2, 2, count)
    ).astype(np.float64)
    intervals = rng.choice([21_600.0, 43_200.0, 86_400.0], size=count, p=[0.1, 0.45, 0.45])
    # Finicity refreshes accounts in a nightly batch.
    intervals[aggregator == AGGREGATORS.index(Aggregator.FINICITY)] = DAY
    return Institutions(
        ids=string_table([f"ins_{n}" for n in numbers.tolist()]),
        names=string_table(names),
        aggregator=aggregator,
        popularity=popularity,
        oauth=oauth,
        success=np.round(success, 4),
        sync_success=np.round(1 - (1 - success) / 2, 4),
        latency_median_ms=np.round(
            np.exp(rng.uniform(np.log(2000), np.log(8000), count)), 1
        ).astype(np.float64),
        latency_sigma=np.round(rng.uniform(0.45, 0.85, count), 3),
        sync_interval_s=intervals,
        login_required_rate=np.round(
            np.where(oauth, 0.002, 0.006) * rng.uniform(0.7, 1.3, count), 5
        ),
    )


def _outages(
    rng: np.random.Generator, days: int, start_hour: int, institutions: Institutions
) -> tuple[Outage, ...]:
    count = int(rng.integers(3, 6))
    where = rng.choice(min(5, institutions.count), size=count, replace=False)
    horizon = days * DAY
    outages = []
    for i, institution in enumerate(where.tolist()):
        severity = ("down", "degraded")[i] if i < 2 else str(rng.choice(["down", "degraded"]))
        # The first two hit every feature, so link attempts always see a planted window.
        feature = -1 if i < 2 else int(rng.choice([-1, *_OUTAGE_FEATURES], p=[0.5, 0.25, 0.25]))
        duration = float(rng.integers(8, 25)) * 15 * 60
        first_day = min(int(np.ceil(0.35 * days)), days - 1)
        day = int(rng.integers(first_day, days))
        utc_hour = int(rng.integers(14, 22))
        start = day * DAY + ((utc_hour - start_hour) % 24) * HOUR + int(rng.integers(4)) * 900
        start = min(start, horizon - duration - HOUR)
        start = max(start, 0.0)
        if severity == "down":
            success_rate, latency = 0.03, 0.6
        else:
            success_rate = round(float(rng.uniform(0.5, 0.7)), 2)
            latency = round(float(rng.uniform(2.0, 3.5)), 2)
        outages.append(
            Outage(
                institution=institution,
                start=start,
                end=min(start + duration, horizon),
                severity=severity,
                feature=feature,
                success_rate=success_rate,
                latency_multiplier=latency,
            )
        )
    return tuple(sorted(outages, key=lambda o: o.start))


def _signups(
    rng: np.random.Generator, count: int, present: int, days: int, tz: I8, start_hour: int
) -> F64:
    horizon = days * DAY
    before = -rng.uniform(30, 720, present) * DAY
    # Inverse CDF of the density ∝ 1 + t/T on [0, T).
    raw = horizon * (np.sqrt(1 + 3 * rng.random(count - present)) - 1)
    day = np.floor(raw / DAY)
    after = day * DAY + diurnal_offsets(rng, tz[present:], start_hour)
    return np.concatenate([before, np.minimum(after, horizon - 1.0)])


def _devices(rng: np.random.Generator, count: int) -> tuple[I8, I8, I8, I8]:
    p = {name: _PLATFORMS.index(Platform(name)) for name in ("ios", "android", "web")}
    d = {name: _DEVICES.index(DeviceType(name)) for name in ("phone", "tablet", "desktop")}
    platform = rng.choice([p["ios"], p["android"], p["web"]], size=count, p=[0.52, 0.33, 0.15])
    device = np.where(platform == p["web"], d["desktop"], d["phone"])
    has_alt = rng.random(count) < 0.3
    tablet = rng.random(count) < 0.5
    # A phone user's second screen is a tablet of the same family or the web;
    # a web user's is a phone.
    alt_platform = np.where(
        platform == p["web"],
        np.where(tablet, p["ios"], p["android"]),
        np.where(tablet, platform, p["web"]),
    )
    alt_device = np.where(
        platform == p["web"], d["phone"], np.where(tablet, d["tablet"], d["desktop"])
    )
    alt_platform = np.where(has_alt, alt_platform, -1)
    alt_device = np.where(has_alt, alt_device, -1)
    return (
        platform.astype(np.int8),
        device.astype(np.int8),
        alt_platform.astype(np.int8),
        alt_device.astype(np.int8),
    )


def _adoption(rng: np.random.Generator, engagement: F64) -> tuple[F64, NDArray[np.bool_]]:
    """Each user's adoption delay per feature, and whether it comes through add_product."""
    count = engagement.size
    delay = np.full((count, len(FEATURES)), np.inf)
    via_product = np.zeros((count, len(FEATURES)), dtype=bool)
    via_product[:, list(PRODUCT_FEATURES)] = True
    for f, feature in enumerate(FEATURES):
        p, mean_days, minimum = ADOPTION[feature]
        if feature is _F.TAX_OPTIMIZATION:
            invest = np.isfinite(delay[:, FEATURES.index(_F.INVESTMENT_TRACKING)])
            p_user = np.where(invest, TAX_WITH_INVESTMENTS, p)
        else:
            p_user = np.full(count, p)
        # Engaged users try more features: P = 1 - (1 - p)^engagement.
        adopts = rng.random(count) < 1 - (1 - p_user) ** engagement
        wait = minimum + rng.exponential(mean_days * DAY, count) if mean_days else minimum
        if feature is _F.TRANSACTION_SYNC:
            at_link = rng.random(count) < TRANSACTIONS_AT_LINK
            adopts |= at_link
            wait = np.where(at_link, minimum, wait)
            via_product[:, f] = ~at_link
        delay[:, f] = np.where(adopts, wait, np.inf)
    return delay, via_product


def _connection_ids(seed: int, aggregator: I8) -> pa.StringArray:
    """Each user's connection id, in the format of the aggregator it goes through.

    Plaid item ids are 37 base-62 characters, MX member guids ``MBR-`` + UUID,
    Finicity institution-login ids 10 digits, TrueLayer credentials UUIDs and
    Yodlee provider-account ids 8 digits.
    """
    key = derive_key(seed, 10)
    formats: dict[Aggregator, Callable[[NDArray[np.uint64]], pa.Array]] = {
        Aggregator.PLAID: lambda k: base62_strings("", k, key, 37),
        Aggregator.MX: lambda k: pc.binary_join_element_wise("MBR-", uuid_strings(k, key), ""),
        Aggregator.FINICITY: lambda k: digit_strings("", k, key, 10),
        Aggregator.TRUELAYER: lambda k: uuid_strings(k, key),
        Aggregator.YODLEE: lambda k: digit_strings("", k, key, 8),
    }
    # Format each aggregator's users together, then put every id back in user order.
    order = np.argsort(aggregator, kind="stable")
    pieces = [
        formats[AGGREGATORS[a]](order[aggregator[order] == a].astype(np.uint64))
        for a in np.unique(aggregator).tolist()
    ]
    result = pa.concat_arrays(pieces).take(pa.array(np.argsort(order, kind="stable")))
    assert isinstance(result, pa.StringArray)
    return result


def _users(
    rng: np.random.Generator,
    config: SimulationConfig,
    params: Params,
    start_hour: int,
    institutions: Institutions,
) -> Users:
    count = config.users
    present = round(params.present_share * count)
    institution = rng.choice(institutions.count, size=count, p=institutions.popularity)
    uk = institutions.aggregator[institution] == AGGREGATORS.index(Aggregator.TRUELAYER)
    tz = np.where(uk, 0, rng.choice(US_TIMEZONES[0], size=count, p=US_TIMEZONES[1]))
    tz = tz.astype(np.int8)
    signup = _signups(rng, count, present, config.days, tz, start_hour)
    # User ids are numbered in sign-up order, like an auto-increment key.
    order = np.argsort(signup, kind="stable")
    signup, tz, institution = signup[order], tz[order], institution[order]
    sigma = 0.7
    engagement = rng.lognormal(-(sigma**2) / 2, sigma, count)
    platform, device, alt_platform, alt_device = _devices(rng, count)
    disengages = rng.random(count) < params.disengaged_share
    onset = np.where(
        disengages,
        np.maximum(signup, 0.0) + rng.exponential(params.disengage_mean_days * DAY, count),
        np.inf,
    )
    adopt_delay, via_product = _adoption(rng, engagement)
    return Users(
        count=count,
        present_at_start=present,
        signup=signup,
        institution=institution.astype(np.int16),
        engagement=engagement,
        tz_hours=tz,
        platform=platform,
        device=device,
        alt_platform=alt_platform,
        alt_device=alt_device,
        onset=onset,
        adopt_delay=adopt_delay,
        via_product=via_product,
        affinity=rng.lognormal(0.0, 0.5, (count, len(FEATURES))).astype(np.float32),
        accounts=rng.choice([1, 2, 3, 4], size=count, p=[0.35, 0.35, 0.2, 0.1]).astype(np.int8),
        sync_phase=rng.random(count),
        ids=string_table([f"usr_{n}" for n in range(1, count + 1)]),
        connection_ids=_connection_ids(config.seed, institutions.aggregator[institution]),
    )


def build_world(config: SimulationConfig) -> World:
    """Draw the static world of a configuration."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1]))
    params = Params()
    start = config.start
    start_hour = start.hour
    institutions = _institutions(rng, config.institutions)
    return World(
        config=config,
        params=params,
        start=start,
        start_us=(start - _EPOCH) // timedelta(microseconds=1),
        horizon=config.days * DAY,
        start_hour=start_hour,
        institutions=institutions,
        outages=_outages(rng, config.days, start_hour, institutions),
        users=_users(rng, config, params, start_hour, institutions),
        errors=error_table(),
    )
