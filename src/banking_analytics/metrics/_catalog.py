"""The metric catalogue: every figure the analytics compute, defined once.

Connection health follows Plaid's bank-health view: successes ÷ (successes +
institution failures + aggregator failures). A failure counts against the
institution or the aggregator by its error category's responsible party (a
network timeout counts against the aggregator). User errors, abandons,
pending attempts, our own client errors (integration, rate limiting) and
unattributed failures stay outside the denominator and are counted apart.
"""

from __future__ import annotations

from collections.abc import Iterable

from banking_analytics.metrics._expr import Case, Coalesce, Col, Lit
from banking_analytics.metrics._model import (
    PERIOD_DAYS,
    All,
    AnyOf,
    Condition,
    Count,
    CountDistinct,
    Derived,
    Is,
    IsNull,
    Max,
    Mean,
    Metric,
    NotNull,
    Percentile,
    Provided,
    Ratio,
    Rolling,
    Sum,
    Unit,
)
from banking_analytics.metrics._revenue_catalog import LEDGER, REVENUE_METRICS
from banking_analytics.metrics._source import DERIVED_SOURCES, EVENT_SOURCES, Source
from banking_analytics.vocabulary import (
    ErrorCategory,
    EventType,
    Outcome,
    PerformanceMetric,
    ResponsibleParty,
    SubscriptionEventKind,
    SyncOutcome,
)

__all__ = [
    "CATALOG",
    "LATENCY_PERCENTILES",
    "MIN_SAMPLE",
    "SUCCESS_BREAKDOWN",
    "error_rate_metric",
]

#: Below this many events in the denominator a rate or percentile is "insufficient data".
MIN_SAMPLE = 20
LATENCY_PERCENTILES = (50, 95, 99)
#: The three shares of the bank-health denominator; they sum to 1.
SUCCESS_BREAKDOWN = (
    "connection_success_rate",
    "connection_institution_error_share",
    "connection_aggregator_error_share",
)

_ATTEMPT = EventType.CONNECTION_ATTEMPT
_SYNC = EventType.SYNC_RUN
_ATTEMPTS = EVENT_SOURCES[_ATTEMPT]
_SYNCS = EVENT_SOURCES[_SYNC]
_BEHAVIOR = EVENT_SOURCES[EventType.BEHAVIOR]
_SUBSCRIPTIONS = EVENT_SOURCES[EventType.SUBSCRIPTION]
_REPORTS = EVENT_SOURCES[EventType.PERFORMANCE_METRIC]


def _categories(party: ResponsibleParty) -> tuple[str, ...]:
    return tuple(c.value for c in ErrorCategory if c.responsible_party is party)


def _failed(outcome: str, categories: Iterable[str]) -> Condition:
    return All((Is("outcome", (outcome,)), Is("error_category", tuple(categories))))


_UNATTRIBUTED = (*_categories(ResponsibleParty.NONE),)

# Connection attempts.
_LINKED = Is("outcome", (Outcome.SUCCESS.value,))
_INSTITUTION_FAILURE = _failed(Outcome.FAILURE, _categories(ResponsibleParty.INSTITUTION))
_AGGREGATOR_FAILURE = _failed(Outcome.FAILURE, _categories(ResponsibleParty.AGGREGATOR))
_HEALTH = AnyOf((_LINKED, _INSTITUTION_FAILURE, _AGGREGATOR_FAILURE))
_COMPLETED = Is("outcome", (Outcome.SUCCESS.value, Outcome.FAILURE.value))

# Sync runs: a partial refresh still reached the institution, so it counts as a success.
_SYNCED = Is("outcome", (SyncOutcome.SUCCESS.value, SyncOutcome.PARTIAL.value))
_SYNC_INSTITUTION_FAILURE = _failed(SyncOutcome.FAILURE, _categories(ResponsibleParty.INSTITUTION))
_SYNC_AGGREGATOR_FAILURE = _failed(SyncOutcome.FAILURE, _categories(ResponsibleParty.AGGREGATOR))
_SYNC_HEALTH = AnyOf((_SYNCED, _SYNC_INSTITUTION_FAILURE, _SYNC_AGGREGATOR_FAILURE))


def _rate(
    name: str,
    source: Source,
    numerator: Condition,
    denominator: Condition | None,
    description: str,
    *,
    higher_is_better: bool,
    serves: PerformanceMetric | None = None,
) -> Metric:
    return Metric(
        name,
        source,
        Ratio(Count(numerator), Count(denominator)),
        Unit.RATIO,
        description,
        higher_is_better=higher_is_better,
        min_sample=MIN_SAMPLE,
        serves=serves,
    )


def _count(name: str, source: Source, where: Condition | None, description: str) -> Metric:
    return Metric(name, source, Count(where), Unit.COUNT, description)


def error_rate_metric(event_type: EventType, category: ErrorCategory) -> str:
    """Name of the error-rate metric of one category: ``<source>_error_rate_<category>``."""
    source = "connection" if event_type is _ATTEMPT else "sync"
    return f"{source}_error_rate_{category.value}"


def _failures(event_type: EventType) -> Iterable[Metric]:
    """A source's failures (to cut by error_category), its failure rate, and its rate per
    error category."""
    failure = Outcome.FAILURE.value if event_type is _ATTEMPT else SyncOutcome.FAILURE.value
    noun = "connection attempts" if event_type is _ATTEMPT else "sync runs"
    source = "connection" if event_type is _ATTEMPT else "sync"
    events = EVENT_SOURCES[event_type]
    yield _count(
        f"{source}_failures",
        events,
        Is("outcome", (failure,)),
        f"Failed {noun} of any category (cut by error_category for the mix)",
    )
    yield _rate(
        f"{source}_error_rate",
        events,
        Is("outcome", (failure,)),
        None,
        f"Failures (any category) ÷ all {noun}",
        higher_is_better=False,
        serves=PerformanceMetric.ERROR_RATE,
    )
    for category in ErrorCategory:
        yield _rate(
            error_rate_metric(event_type, category),
            events,
            _failed(failure, (category.value,)),
            None,
            f"Failures in category {category.value} ÷ all {noun}",
            higher_is_better=False,
            serves=PerformanceMetric.ERROR_RATE,
        )


def _latencies() -> Iterable[Metric]:
    for suffix, where, scope in (
        ("", _COMPLETED, "completed (succeeded or failed) attempts"),
        ("_success", _LINKED, "successful attempts"),
    ):
        yield Metric(
            f"connection_latency_mean_ms{suffix}",
            _ATTEMPTS,
            Mean("latency_ms", where),
            Unit.MILLISECONDS,
            f"Mean credential-submit-to-outcome latency of {scope}",
            higher_is_better=False,
            min_sample=MIN_SAMPLE,
            serves=PerformanceMetric.CONNECTION_LATENCY,
        )
        for p in LATENCY_PERCENTILES:
            yield Metric(
                f"connection_latency_p{p}_ms{suffix}",
                _ATTEMPTS,
                Percentile("latency_ms", p / 100, where),
                Unit.MILLISECONDS,
                f"Nearest-rank p{p} latency of {scope}",
                higher_is_better=False,
                min_sample=MIN_SAMPLE,
                serves=PerformanceMetric.CONNECTION_LATENCY,
            )


_SUCCESS = Is("success", (True,))
_PAID = SubscriptionEventKind.PAYMENT_SUCCEEDED.value
#: A free user converting, a plan upgrade, a comeback: the billing system's upgrades.
_UPGRADES = tuple(
    k.value
    for k in (
        SubscriptionEventKind.SUBSCRIBED,
        SubscriptionEventKind.UPGRADED,
        SubscriptionEventKind.REACTIVATED,
    )
)
_REFUNDED = SubscriptionEventKind.REFUNDED.value

_SYNCS_PER_CONNECTION = Metric(
    "sync_successes_per_connection",
    _SYNCS,
    Ratio(Count(_SYNCED), CountDistinct("connection_id")),
    Unit.COUNT,
    "Successful or partial syncs ÷ connections with any sync run in the period",
    higher_is_better=True,
    min_sample=1,
)

# Engagement, as PostHog counts it: a user is active on a day with any behaviour event;
# weekly and monthly active users at a day are those active in the 7 or 30 days ending
# with it. Daily active users are `unique_users` asked with a day bucket.
_UNIQUE_USERS = Metric(
    "unique_users",
    _BEHAVIOR,
    CountDistinct("user_id"),
    Unit.COUNT,
    "Distinct users with at least one interaction (at a day bucket: daily active users)",
)
_MONTHLY_ACTIVE = Metric(
    "monthly_active_users",
    _BEHAVIOR,
    Rolling(CountDistinct("user_id"), 30),
    Unit.COUNT,
    "At each day: distinct users with an interaction in the 30 days ending with it (MAU)",
    higher_is_better=True,
    serves=PerformanceMetric.USER_ENGAGEMENT,
)
_PAYING_USERS = Metric(
    "paying_users",
    _SUBSCRIPTIONS,
    CountDistinct("user_id", Is("kind", (_PAID,))),
    Unit.COUNT,
    "Distinct users with a successful payment",
    higher_is_better=True,
)

#: A subscription's price for one billing period, after discounts: unit_amount x quantity,
#: less discount_percent, less discount_amount (absent quantity is 1; absent discounts 0).
_PERIOD_PRICE = Col("unit_amount") * Coalesce((Col("quantity"), Lit(1))) * (
    Lit(1) - Coalesce((Col("discount_percent"), Lit(0))) / 100
) - Coalesce((Col("discount_amount"), Lit(0)))
_INTERVALS = Coalesce((Col("interval_count"), Lit(1)))
#: The period price normalised to a month: year ÷ 12, week x 52/12, day x 365/12, each
#: ÷ interval_count (ARCHITECTURE.md's MRR normalisation).
_MONTHLY_PRICE = Case(
    (
        (Is("interval", ("year",)), _PERIOD_PRICE / (Lit(12) * _INTERVALS)),
        (Is("interval", ("week",)), _PERIOD_PRICE * 52 / 12 / _INTERVALS),
        (Is("interval", ("day",)), _PERIOD_PRICE * 365 / 12 / _INTERVALS),
    ),
    _PERIOD_PRICE / _INTERVALS,
)

_METRICS: tuple[Metric, ...] = (
    # Connection health (bank-health view).
    _rate(
        "connection_success_rate",
        _ATTEMPTS,
        _LINKED,
        _HEALTH,
        "Successes ÷ (successes + institution failures + aggregator failures)",
        higher_is_better=True,
        serves=PerformanceMetric.CONNECTION_SUCCESS_RATE,
    ),
    _rate(
        "connection_institution_error_share",
        _ATTEMPTS,
        _INSTITUTION_FAILURE,
        _HEALTH,
        "Institution failures ÷ the bank-health denominator",
        higher_is_better=False,
    ),
    _rate(
        "connection_aggregator_error_share",
        _ATTEMPTS,
        _AGGREGATOR_FAILURE,
        _HEALTH,
        "Aggregator failures (timeouts included) ÷ the bank-health denominator",
        higher_is_better=False,
    ),
    _count("connection_attempts", _ATTEMPTS, None, "Connection attempts of any outcome"),
    _count("connection_health_attempts", _ATTEMPTS, _HEALTH, "The bank-health denominator"),
    _count("connection_successes", _ATTEMPTS, _LINKED, "Successful attempts"),
    _count(
        "connection_user_errors",
        _ATTEMPTS,
        _failed(Outcome.FAILURE, _categories(ResponsibleParty.USER)),
        "Failures the user must act on (credentials, MFA, consent)",
    ),
    _count(
        "connection_client_errors",
        _ATTEMPTS,
        _failed(Outcome.FAILURE, _categories(ResponsibleParty.CLIENT)),
        "Failures of our own integration (bad request, rate limited)",
    ),
    _count(
        "connection_unattributed_failures",
        _ATTEMPTS,
        All(
            (
                Is("outcome", (Outcome.FAILURE.value,)),
                AnyOf((Is("error_category", _UNATTRIBUTED), IsNull("error_category"))),
            )
        ),
        "Failures with no responsible party (not ready, unknown, uncategorised)",
    ),
    _count("connection_abandoned", _ATTEMPTS, Is("outcome", ("abandoned",)), "Abandoned attempts"),
    _count("connection_pending", _ATTEMPTS, Is("outcome", ("pending",)), "Attempts still pending"),
    *_failures(_ATTEMPT),
    *_latencies(),
    # Link conversion, as Plaid measures it: sessions that linked ÷ sessions opened.
    Metric(
        "link_conversion_rate",
        _ATTEMPTS,
        Ratio(CountDistinct("link_session_id", _LINKED), CountDistinct("link_session_id")),
        Unit.RATIO,
        "Distinct link sessions with a successful attempt ÷ distinct link sessions opened",
        higher_is_better=True,
        min_sample=MIN_SAMPLE,
        serves=PerformanceMetric.CONVERSION_RATE,
    ),
    Metric(
        "link_abandonment_rate",
        _ATTEMPTS,
        Ratio(
            CountDistinct("link_session_id", Is("outcome", ("abandoned",))),
            CountDistinct("link_session_id"),
        ),
        Unit.RATIO,
        "Distinct link sessions with an abandoned attempt ÷ distinct link sessions opened",
        higher_is_better=False,
        min_sample=MIN_SAMPLE,
    ),
    Metric(
        "link_sessions",
        _ATTEMPTS,
        CountDistinct("link_session_id"),
        Unit.COUNT,
        "Distinct link sessions opened",
    ),
    # Sync runs.
    _rate(
        "sync_success_rate",
        _SYNCS,
        _SYNCED,
        _SYNC_HEALTH,
        "Successful or partial syncs ÷ (those + institution failures + aggregator failures)",
        higher_is_better=True,
    ),
    _count("sync_runs", _SYNCS, None, "Sync runs of any outcome"),
    _count("sync_successes", _SYNCS, _SYNCED, "Successful or partial sync runs"),
    _count("sync_health_runs", _SYNCS, _SYNC_HEALTH, "The sync bank-health denominator"),
    _SYNCS_PER_CONNECTION,
    Metric(
        "sync_frequency_per_day",
        None,
        Derived(Col(_SYNCS_PER_CONNECTION.name) / Col(PERIOD_DAYS), (_SYNCS_PER_CONNECTION,)),
        Unit.PER_DAY,
        "Successful syncs per connection ÷ days in the period",
        higher_is_better=True,
        serves=PerformanceMetric.DATA_SYNC_FREQUENCY,
    ),
    Metric(
        "sync_connections",
        _SYNCS,
        CountDistinct("connection_id"),
        Unit.COUNT,
        "Distinct connections with a sync run",
    ),
    Metric(
        "sync_last_success_at",
        _SYNCS,
        Max("occurred_at", _SYNCED),
        Unit.TIMESTAMP,
        "When the latest successful or partial sync ran (cut by connection for freshness)",
    ),
    Metric(
        "sync_last_run_at",
        _SYNCS,
        Max("occurred_at"),
        Unit.TIMESTAMP,
        "When the latest sync of any outcome ran",
    ),
    Metric(
        "sync_expected_interval_s",
        _SYNCS,
        Max("expected_interval_s"),
        Unit.SECONDS,
        "Expected seconds between syncs (the largest reported, so freshness errs lenient)",
    ),
    *_failures(_SYNC),
    # Behaviour.
    Metric(
        "feature_interactions",
        _BEHAVIOR,
        Count(),
        Unit.COUNT,
        "Interactions with a feature (behaviour events)",
        serves=PerformanceMetric.FEATURE_USAGE,
    ),
    _UNIQUE_USERS,
    Metric(
        "weekly_active_users",
        _BEHAVIOR,
        Rolling(CountDistinct("user_id"), 7),
        Unit.COUNT,
        "At each day: distinct users with an interaction in the 7 days ending with it (WAU)",
        higher_is_better=True,
        serves=PerformanceMetric.USER_ENGAGEMENT,
    ),
    _MONTHLY_ACTIVE,
    Metric(
        "dau_mau_stickiness",
        None,
        Derived(
            Col(_UNIQUE_USERS.name) / Col(_MONTHLY_ACTIVE.name), (_UNIQUE_USERS, _MONTHLY_ACTIVE)
        ),
        Unit.RATIO,
        "At each day: daily active users ÷ monthly active users (how many days a month "
        "the typical user comes back, ÷ 30)",
        higher_is_better=True,
        serves=PerformanceMetric.USER_ENGAGEMENT,
    ),
    Metric(
        "new_users",
        DERIVED_SOURCES["user_first_seen"],
        Count(),
        Unit.COUNT,
        "Users whose first interaction ever falls in the period",
        higher_is_better=True,
    ),
    Metric(
        "sessions",
        _BEHAVIOR,
        CountDistinct("session_id"),
        Unit.COUNT,
        "Distinct app sessions with at least one interaction",
    ),
    _rate(
        "feature_success_rate",
        _BEHAVIOR,
        _SUCCESS,
        NotNull("success"),
        "Successful interactions ÷ interactions that report success or failure",
        higher_is_better=True,
    ),
    Metric(
        "feature_mean_duration_s",
        _BEHAVIOR,
        Mean("duration_s"),
        Unit.SECONDS,
        "Mean duration of interactions that report one",
        min_sample=1,
    ),
    Metric(
        "interactions_per_user",
        _BEHAVIOR,
        Ratio(Count(), CountDistinct("user_id")),
        Unit.COUNT,
        "Interactions ÷ distinct users: how much each active user does",
        higher_is_better=True,
        min_sample=1,
        serves=PerformanceMetric.USER_ENGAGEMENT,
    ),
    Metric(
        "sessions_per_user",
        _BEHAVIOR,
        Ratio(CountDistinct("session_id"), CountDistinct("user_id")),
        Unit.COUNT,
        "Distinct sessions ÷ distinct users",
        higher_is_better=True,
        min_sample=1,
    ),
    # Money attributed to features.
    Metric(
        "net_revenue",
        _SUBSCRIPTIONS,
        Sum(
            Case(((Is("kind", (_REFUNDED,)), Lit(0) - Col("amount")),), Col("amount")),
            Is("kind", (_PAID, _REFUNDED)),
        ),
        Unit.MINOR_UNITS,
        "Payments collected minus refunds, in minor units (cut by attributed_feature for "
        "each feature's revenue impact)",
        higher_is_better=True,
        serves=PerformanceMetric.REVENUE_IMPACT,
    ),
    _PAYING_USERS,
    Metric(
        "paying_user_share",
        None,
        Derived(Col(_PAYING_USERS.name) / Col(_UNIQUE_USERS.name), (_PAYING_USERS, _UNIQUE_USERS)),
        Unit.RATIO,
        "Paying users ÷ active users (users with an interaction) in the period",
        higher_is_better=True,
        serves=PerformanceMetric.CONVERSION_RATE,
    ),
    Metric(
        "gross_payments",
        _SUBSCRIPTIONS,
        Sum("amount", Is("kind", (_PAID,))),
        Unit.MINOR_UNITS,
        "Money collected by successful payments, before refunds, in minor units",
        higher_is_better=True,
    ),
    Metric(
        "subscription_upgrades",
        _SUBSCRIPTIONS,
        Count(Is("kind", _UPGRADES)),
        Unit.COUNT,
        "Subscription events of kind subscribed, upgraded or reactivated (cut by "
        "attributed_feature for the upgrades each feature is credited with)",
        higher_is_better=True,
    ),
    Metric(
        "payments_monthly_normalised",
        _SUBSCRIPTIONS,
        Sum(_MONTHLY_PRICE, Is("kind", (_PAID,))),
        Unit.MINOR_UNITS,
        "Successful payments' prices after discounts, normalised to a month "
        "(year ÷ 12, week x 52/12, day x 365/12, each ÷ interval_count), in minor units",
        higher_is_better=True,
    ),
    # What clients report through record_performance_metric.
    Metric(
        "reported_value_mean",
        _REPORTS,
        Mean("value"),
        Unit.COUNT,
        "Mean of client-reported values (cut by metric_type; the unit is the reporter's)",
        min_sample=1,
    ),
    _count(
        "reported_measurements",
        _REPORTS,
        None,
        "Client-reported performance measurements",
    ),
)

#: Every metric, by name.
_COMPUTED = {m.name for m in _METRICS}
# The revenue metrics the ledger provides; a figure one aggregate gives (upgrades, a
# count of events) stays a metric of its own source.
_METRICS += tuple(
    Metric(
        d.name,
        None,
        Provided(LEDGER, ("currency", "feature") if d.by_feature else ("currency",)),
        d.unit,
        f"{d.formula} (as {d.source} defines it)",
        higher_is_better=d.higher_is_better,
    )
    for d in REVENUE_METRICS.values()
    if d.name not in _COMPUTED
)
CATALOG: dict[str, Metric] = {m.name: m for m in _METRICS}
if len(CATALOG) != len(_METRICS):
    raise RuntimeError("two metrics share a name")
