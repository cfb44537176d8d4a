"""Monitoring that acts: alert rules and SLOs as data, their state machine and evaluation.

The layer above the analyses (see ARCHITECTURE.md): a rule names a metric query
of the metric layer and thresholds on it; the evaluator runs each rule's query
through the :class:`MetricService` (cached per data version) and moves one
state machine per label set, keeping states and history in the store.
"""

from banking_analytics.monitor._anomaly import AnomalySpec, Direction
from banking_analytics.monitor._backtest import (
    MAX_BACKTEST_INSTANCES,
    MAX_BACKTEST_TICKS,
    BacktestError,
    BacktestInstance,
    BacktestView,
    Episode,
    backtest,
)
from banking_analytics.monitor._defaults import DEFAULT_RULES_YAML, default_rules
from banking_analytics.monitor._deliveries import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    RetryPolicy,
    Sender,
    sign_notification,
)
from banking_analytics.monitor._durations import format_duration, parse_duration
from banking_analytics.monitor._evaluate import (
    Evaluator,
    RuleEvaluation,
    advance_rule,
    alert_labels,
    evaluate_rule,
    observe,
    readings_of,
)
from banking_analytics.monitor._insight_stats import (
    Contribution,
    bonferroni_z,
    decompose_kinds,
    decompose_rate,
    two_proportion_test,
)
from banking_analytics.monitor._insights import (
    MAX_INSIGHTS,
    Breakdown,
    Evidence,
    Insight,
    InsightEngine,
    InsightList,
    InsightSettings,
    OptimizationReport,
    QueryLink,
    Recommendation,
)
from banking_analytics.monitor._lease import ALERT_RULE_LEASES, RuleLeases
from banking_analytics.monitor._matchers import Matcher, MatcherError, parse_matchers
from banking_analytics.monitor._namespace import AlertView, HistoryView, MonitorNamespace, RuleView
from banking_analytics.monitor._notify import Notifier
from banking_analytics.monitor._notify_store import (
    NOTIFY_TABLES,
    Attempt,
    Delivery,
    NotificationStore,
    Receiver,
    Silence,
)
from banking_analytics.monitor._policy import NotificationPolicy, PolicyError
from banking_analytics.monitor._rules import Compare, Condition, Rule, RuleError, Severity
from banking_analytics.monitor._ruletest import RuleTestReport, expand_series, run_rule_tests
from banking_analytics.monitor._scheduler import BackgroundEvaluator, Scheduler, latest_tick
from banking_analytics.monitor._slo import BURN_WINDOWS, BurnWindow, Counts, Slo, burn_reading
from banking_analytics.monitor._slo_status import (
    BurnPairView,
    SloInstanceView,
    SloStatus,
    SloWindowView,
)
from banking_analytics.monitor._ssrf import UnsafeURLError, check_url, parse_networks
from banking_analytics.monitor._state import (
    AlertState,
    InstanceState,
    Observation,
    Reading,
    advance,
)
from banking_analytics.monitor._store import (
    MONITOR_TABLES,
    AlertStore,
    Change,
    NameTakenError,
    RuleNotFoundError,
    StoredRule,
)
from banking_analytics.monitor._yaml import RuleFileError, dump_rules, parse_rules, read_rule_file

__all__ = [
    "ALERT_RULE_LEASES",
    "BURN_WINDOWS",
    "DEFAULT_RULES_YAML",
    "DELIVERY_HEADER",
    "MAX_BACKTEST_INSTANCES",
    "MAX_BACKTEST_TICKS",
    "MAX_INSIGHTS",
    "MONITOR_TABLES",
    "NOTIFY_TABLES",
    "SIGNATURE_HEADER",
    "AlertState",
    "AlertStore",
    "AlertView",
    "AnomalySpec",
    "Attempt",
    "BackgroundEvaluator",
    "BacktestError",
    "BacktestInstance",
    "BacktestView",
    "Breakdown",
    "BurnPairView",
    "BurnWindow",
    "Change",
    "Compare",
    "Condition",
    "Contribution",
    "Counts",
    "Delivery",
    "Direction",
    "Episode",
    "Evaluator",
    "Evidence",
    "HistoryView",
    "Insight",
    "InsightEngine",
    "InsightList",
    "InsightSettings",
    "InstanceState",
    "Matcher",
    "MatcherError",
    "MonitorNamespace",
    "NameTakenError",
    "NotificationPolicy",
    "NotificationStore",
    "Notifier",
    "Observation",
    "OptimizationReport",
    "PolicyError",
    "QueryLink",
    "Reading",
    "Receiver",
    "Recommendation",
    "RetryPolicy",
    "Rule",
    "RuleError",
    "RuleEvaluation",
    "RuleFileError",
    "RuleLeases",
    "RuleNotFoundError",
    "RuleTestReport",
    "RuleView",
    "Scheduler",
    "Sender",
    "Severity",
    "Silence",
    "Slo",
    "SloInstanceView",
    "SloStatus",
    "SloWindowView",
    "StoredRule",
    "UnsafeURLError",
    "advance",
    "advance_rule",
    "alert_labels",
    "backtest",
    "bonferroni_z",
    "burn_reading",
    "check_url",
    "decompose_kinds",
    "decompose_rate",
    "default_rules",
    "dump_rules",
    "evaluate_rule",
    "expand_series",
    "format_duration",
    "latest_tick",
    "observe",
    "parse_duration",
    "parse_matchers",
    "parse_networks",
    "parse_rules",
    "read_rule_file",
    "readings_of",
    "run_rule_tests",
    "sign_notification",
    "two_proportion_test",
]
