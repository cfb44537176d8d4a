"""The fixed vocabulary of the system.

Every enum is a ``str`` enum whose values are the exact strings the REST API,
the CLI and the stored events use, so ``BankingFeature("account_linking")`` and
``BankingFeature.ACCOUNT_LINKING == "account_linking"`` both hold.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "Aggregator",
    "AuthMethod",
    "BankingFeature",
    "BillingInterval",
    "ConnectionFlow",
    "DeviceType",
    "DiscountDuration",
    "ErrorCategory",
    "EventType",
    "Outcome",
    "PerformanceMetric",
    "Platform",
    "ResponsibleParty",
    "RevenueMetric",
    "SubscriptionEventKind",
    "SubscriptionStatus",
    "SyncOutcome",
    "SyncTrigger",
]


class PerformanceMetric(StrEnum):
    """The eight performance metrics."""

    CONNECTION_SUCCESS_RATE = "connection_success_rate"
    CONNECTION_LATENCY = "connection_latency"
    DATA_SYNC_FREQUENCY = "data_sync_frequency"
    ERROR_RATE = "error_rate"
    USER_ENGAGEMENT = "user_engagement"
    FEATURE_USAGE = "feature_usage"
    REVENUE_IMPACT = "revenue_impact"
    CONVERSION_RATE = "conversion_rate"


class BankingFeature(StrEnum):
    """The ten banking features an app offers, in prerequisite order.

    Linking comes before syncing, and syncing before everything computed from
    transactions; the simulator relies on this order.
    """

    ACCOUNT_LINKING = "account_linking"
    TRANSACTION_SYNC = "transaction_sync"
    BALANCE_MONITORING = "balance_monitoring"
    SPENDING_ANALYSIS = "spending_analysis"
    BUDGET_TRACKING = "budget_tracking"
    GOAL_SETTING = "goal_setting"
    BILL_REMINDERS = "bill_reminders"
    INVESTMENT_TRACKING = "investment_tracking"
    CREDIT_MONITORING = "credit_monitoring"
    TAX_OPTIMIZATION = "tax_optimization"


class RevenueMetric(StrEnum):
    """The eight revenue metrics."""

    SUBSCRIPTION_UPGRADES = "subscription_upgrades"
    FEATURE_ADOPTION = "feature_adoption"
    USER_RETENTION = "user_retention"
    CUSTOMER_LIFETIME_VALUE = "customer_lifetime_value"
    CHURN_RATE = "churn_rate"
    REVENUE_PER_USER = "revenue_per_user"
    UPGRADE_CONVERSION = "upgrade_conversion"
    FEATURE_REVENUE = "feature_revenue"


class ResponsibleParty(StrEnum):
    """Who has to act on an error."""

    USER = "user"
    INSTITUTION = "institution"
    AGGREGATOR = "aggregator"
    CLIENT = "client"
    NONE = "none"


class ErrorCategory(StrEnum):
    """Why a connection or sync failed, grouped by who must act."""

    USER_ACTION_REQUIRED = "user_action_required"
    INSTITUTION = "institution"
    AGGREGATOR = "aggregator"
    INTEGRATION = "integration"
    RATE_LIMITED = "rate_limited"
    NOT_READY = "not_ready"
    NETWORK_TIMEOUT = "network_timeout"
    UNKNOWN = "unknown"

    @property
    def responsible_party(self) -> ResponsibleParty:
        """The party that has to act; a network timeout counts against the aggregator."""
        return _RESPONSIBLE[self]


_RESPONSIBLE = {
    ErrorCategory.USER_ACTION_REQUIRED: ResponsibleParty.USER,
    ErrorCategory.INSTITUTION: ResponsibleParty.INSTITUTION,
    ErrorCategory.AGGREGATOR: ResponsibleParty.AGGREGATOR,
    ErrorCategory.NETWORK_TIMEOUT: ResponsibleParty.AGGREGATOR,
    ErrorCategory.INTEGRATION: ResponsibleParty.CLIENT,
    ErrorCategory.RATE_LIMITED: ResponsibleParty.CLIENT,
    ErrorCategory.NOT_READY: ResponsibleParty.NONE,
    ErrorCategory.UNKNOWN: ResponsibleParty.NONE,
}


class Outcome(StrEnum):
    """How a connection attempt ended."""

    SUCCESS = "success"
    FAILURE = "failure"
    ABANDONED = "abandoned"
    PENDING = "pending"


class SyncOutcome(StrEnum):
    """How a data sync run ended."""

    SUCCESS = "success"
    FAILURE = "failure"
    PARTIAL = "partial"
    NOT_READY = "not_ready"


class SyncTrigger(StrEnum):
    """What started a sync run."""

    WEBHOOK = "webhook"
    SCHEDULED = "scheduled"
    MANUAL = "manual"
    INITIAL = "initial"
    HISTORICAL = "historical"


class Aggregator(StrEnum):
    """The data aggregator a connection goes through."""

    PLAID = "plaid"
    MX = "mx"
    FINICITY = "finicity"
    TRUELAYER = "truelayer"
    YODLEE = "yodlee"
    OTHER = "other"


class ConnectionFlow(StrEnum):
    """Whether a connection attempt links a new account or repairs one."""

    NEW = "new"
    REAUTH = "reauth"
    ADD_PRODUCT = "add_product"


class AuthMethod(StrEnum):
    """How the user authenticated with the institution."""

    OAUTH = "oauth"
    CREDENTIALS = "credentials"
    UNKNOWN = "unknown"


class DeviceType(StrEnum):
    """The kind of device a session ran on."""

    PHONE = "phone"
    TABLET = "tablet"
    DESKTOP = "desktop"
    OTHER = "other"


class Platform(StrEnum):
    """The client platform a session ran on."""

    IOS = "ios"
    ANDROID = "android"
    WEB = "web"
    OTHER = "other"


class SubscriptionEventKind(StrEnum):
    """Lifecycle and money events of a subscription."""

    TRIAL_STARTED = "trial_started"
    SUBSCRIBED = "subscribed"
    UPGRADED = "upgraded"
    DOWNGRADED = "downgraded"
    CANCELED = "canceled"
    REACTIVATED = "reactivated"
    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAYMENT_FAILED = "payment_failed"
    REFUNDED = "refunded"


class SubscriptionStatus(StrEnum):
    """A subscription's status after the event, as billing systems report it."""

    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELED = "canceled"
    UNPAID = "unpaid"
    PAUSED = "paused"


class BillingInterval(StrEnum):
    """The unit of a billing period."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


class DiscountDuration(StrEnum):
    """How long a discount lasts, as Stripe's coupons say it."""

    #: The first billing period only.
    ONCE = "once"
    #: ``discount_months`` months from the discount's start.
    REPEATING = "repeating"
    FOREVER = "forever"


class EventType(StrEnum):
    """The five kinds of event the system stores."""

    PERFORMANCE_METRIC = "performance_metric"
    CONNECTION_ATTEMPT = "connection_attempt"
    SYNC_RUN = "sync_run"
    BEHAVIOR = "behavior"
    SUBSCRIPTION = "subscription"
