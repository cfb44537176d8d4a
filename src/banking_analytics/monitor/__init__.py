"""Monitoring that acts: alert rules and SLOs as data, their state machine and evaluation.

The layer above the analyses (see ARCHITECTURE.md): a rule names a metric query
of the metric layer and thresholds on it; the evaluator runs each rule's query
through the :class:`MetricService` (cached per data version) and moves one
state machine per label set, keeping states and history in the store.
"""

from banking_analytics.monitor._defaults import DEFAULT_RULES_YAML, default_rules
from banking_analytics.monitor._durations import format_duration, parse_duration
from banking_analytics.monitor._evaluate import (
    Evaluator,
    RuleEvaluation,
    advance_rule,
    alert_labels,
    observe,
    readings_of,
)
from banking_analytics.monitor._namespace import AlertView, HistoryView, MonitorNamespace, RuleView
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
    "BURN_WINDOWS",
    "DEFAULT_RULES_YAML",
    "MONITOR_TABLES",
    "AlertState",
    "AlertStore",
    "AlertView",
    "BackgroundEvaluator",
    "BurnPairView",
    "BurnWindow",
    "Change",
    "Compare",
    "Condition",
    "Counts",
    "Evaluator",
    "HistoryView",
    "InstanceState",
    "MonitorNamespace",
    "NameTakenError",
    "Observation",
    "Reading",
    "Rule",
    "RuleError",
    "RuleEvaluation",
    "RuleFileError",
    "RuleNotFoundError",
    "RuleTestReport",
    "RuleView",
    "Scheduler",
    "Severity",
    "Slo",
    "SloInstanceView",
    "SloStatus",
    "SloWindowView",
    "StoredRule",
    "advance",
    "advance_rule",
    "alert_labels",
    "burn_reading",
    "default_rules",
    "dump_rules",
    "expand_series",
    "format_duration",
    "latest_tick",
    "observe",
    "parse_duration",
    "parse_rules",
    "read_rule_file",
    "readings_of",
    "run_rule_tests",
]
