"""Monitoring that acts: alert rules as data, their state machine and evaluation.

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
from banking_analytics.monitor._lease import ALERT_RULE_LEASES, RuleLeases
from banking_analytics.monitor._namespace import AlertView, HistoryView, MonitorNamespace, RuleView
from banking_analytics.monitor._rules import Compare, Condition, Rule, RuleError, Severity
from banking_analytics.monitor._ruletest import RuleTestReport, expand_series, run_rule_tests
from banking_analytics.monitor._scheduler import BackgroundEvaluator, Scheduler, latest_tick
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
    RuleNotFoundError,
    StoredRule,
)
from banking_analytics.monitor._yaml import RuleFileError, dump_rules, parse_rules, read_rule_file

__all__ = [
    "ALERT_RULE_LEASES",
    "DEFAULT_RULES_YAML",
    "MONITOR_TABLES",
    "AlertState",
    "AlertStore",
    "AlertView",
    "BackgroundEvaluator",
    "Change",
    "Compare",
    "Condition",
    "Evaluator",
    "HistoryView",
    "InstanceState",
    "MonitorNamespace",
    "Observation",
    "Reading",
    "Rule",
    "RuleError",
    "RuleEvaluation",
    "RuleFileError",
    "RuleLeases",
    "RuleNotFoundError",
    "RuleTestReport",
    "RuleView",
    "Scheduler",
    "Severity",
    "StoredRule",
    "advance",
    "advance_rule",
    "alert_labels",
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
