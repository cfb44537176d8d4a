"""The fixed vocabulary of the simulated world: codes, plans, actions, names.

Everything here is data. Events carry small integer codes into these tables,
and the tables become Arrow dictionaries when a chunk is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from banking_analytics.vocabulary import (
    Aggregator,
    BankingFeature,
    BillingInterval,
    ErrorCategory,
)

__all__ = [
    "ACTIONS",
    "ACTION_CHOICES",
    "AGGREGATORS",
    "ERRORS",
    "FEATURES",
    "INSTITUTION_WORDS",
    "OPEN_LINK",
    "PLANS",
    "ROLES",
    "SYNC_FEATURES",
    "ErrorCode",
    "ErrorRole",
    "ErrorTable",
    "Plan",
    "error_table",
    "string_table",
]

FEATURES: tuple[BankingFeature, ...] = tuple(BankingFeature)
AGGREGATORS: tuple[Aggregator, ...] = tuple(Aggregator)
#: Features whose data is refreshed by sync runs, with their own cadence.
SYNC_FEATURES: tuple[BankingFeature, ...] = (
    BankingFeature.TRANSACTION_SYNC,
    BankingFeature.BALANCE_MONITORING,
    BankingFeature.INVESTMENT_TRACKING,
    BankingFeature.CREDIT_MONITORING,
)

_C = ErrorCategory


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One raw aggregator error as the client reports it."""

    code: str
    error_type: str | None
    category: ErrorCategory


@dataclass(frozen=True, slots=True)
class ErrorRole:
    """The codes an aggregator uses for one kind of failure, with their shares."""

    codes: tuple[ErrorCode, ...]
    weights: tuple[float, ...]


def _role(*entries: tuple[str, str | None, ErrorCategory, float]) -> ErrorRole:
    return ErrorRole(
        tuple(ErrorCode(code, kind, category) for code, kind, category, _ in entries),
        tuple(weight for *_, weight in entries),
    )


_ITEM = "ITEM_ERROR"
_INST = "INSTITUTION_ERROR"
_API = "API_ERROR"
_USER = _C.USER_ACTION_REQUIRED

#: Per aggregator, the codes of each kind of failure. Plaid uses its real
#: error_type/error_code pairs; MX its connection_status names; Finicity its
#: numeric aggregation status codes; Yodlee its additionalStatus values;
#: TrueLayer its OAuth-style error strings. A role missing for an aggregator
#: (``None``) never happens there.
ERRORS: dict[Aggregator, dict[str, ErrorRole | None]] = {
    Aggregator.PLAID: {
        "user": _role(
            ("INVALID_CREDENTIALS", _ITEM, _USER, 0.55),
            ("INVALID_MFA", _ITEM, _USER, 0.25),
            ("ITEM_LOCKED", _ITEM, _USER, 0.08),
            ("NO_ACCOUNTS", _ITEM, _USER, 0.07),
            ("ACCESS_NOT_GRANTED", _ITEM, _USER, 0.05),
        ),
        "institution": _role(
            ("INSTITUTION_NOT_RESPONDING", _INST, _C.INSTITUTION, 0.6),
            ("INSTITUTION_NOT_AVAILABLE", _INST, _C.INSTITUTION, 0.25),
            ("INSTITUTION_DOWN", _INST, _C.INSTITUTION, 0.15),
        ),
        "aggregator": _role(
            ("INTERNAL_SERVER_ERROR", _API, _C.AGGREGATOR, 0.9),
            ("PLANNED_MAINTENANCE", _API, _C.AGGREGATOR, 0.1),
        ),
        "down": _role(("INSTITUTION_DOWN", _INST, _C.INSTITUTION, 1.0)),
        "not_responding": _role(("INSTITUTION_NOT_RESPONDING", _INST, _C.INSTITUTION, 1.0)),
        "login_required": _role(("ITEM_LOGIN_REQUIRED", _ITEM, _USER, 1.0)),
        "rate_limited": _role(("RATE_LIMIT", "RATE_LIMIT_EXCEEDED", _C.RATE_LIMITED, 1.0)),
        "not_ready": _role(("PRODUCT_NOT_READY", _ITEM, _C.NOT_READY, 1.0)),
    },
    Aggregator.MX: {
        "user": _role(
            ("DENIED", None, _USER, 0.6),
            ("REJECTED", None, _USER, 0.25),
            ("LOCKED", None, _USER, 0.1),
            ("PREVENTED", None, _USER, 0.05),
        ),
        "institution": _role(
            ("DEGRADED", None, _C.INSTITUTION, 0.6), ("DELAYED", None, _C.INSTITUTION, 0.4)
        ),
        "aggregator": _role(("FAILED", None, _C.AGGREGATOR, 1.0)),
        "down": _role(("DEGRADED", None, _C.INSTITUTION, 1.0)),
        "not_responding": _role(("DELAYED", None, _C.INSTITUTION, 1.0)),
        "login_required": _role(("IMPAIRED", None, _USER, 1.0)),
        "rate_limited": None,
        "not_ready": None,
    },
    Aggregator.FINICITY: {
        "user": _role(
            ("103", None, _USER, 0.6),
            ("187", None, _USER, 0.2),
            ("108", None, _USER, 0.15),
            ("109", None, _USER, 0.05),
        ),
        "institution": _role(
            ("101", None, _C.INSTITUTION, 0.5), ("104", None, _C.INSTITUTION, 0.5)
        ),
        "aggregator": _role(("10027", None, _C.AGGREGATOR, 1.0)),
        "down": _role(("101", None, _C.INSTITUTION, 1.0)),
        "not_responding": _role(("104", None, _C.INSTITUTION, 1.0)),
        "login_required": _role(("948", None, _USER, 1.0)),
        "rate_limited": None,
        "not_ready": None,
    },
    Aggregator.TRUELAYER: {
        "user": _role(("access_denied", None, _USER, 1.0)),
        "institution": _role(("provider_error", None, _C.INSTITUTION, 1.0)),
        "aggregator": _role(("internal_server_error", None, _C.AGGREGATOR, 1.0)),
        "down": _role(("provider_error", None, _C.INSTITUTION, 1.0)),
        "not_responding": _role(("provider_error", None, _C.INSTITUTION, 1.0)),
        "login_required": _role(("invalid_grant", None, _USER, 1.0)),
        "rate_limited": _role(("too_many_requests", None, _C.RATE_LIMITED, 1.0)),
        "not_ready": None,
    },
    Aggregator.YODLEE: {
        "user": _role(
            ("INCORRECT_CREDENTIALS", None, _USER, 0.6),
            ("ADDL_AUTHENTICATION_REQUIRED", None, _USER, 0.25),
            ("ACCOUNT_LOCKED", None, _USER, 0.1),
            ("USER_ACTION_NEEDED_AT_SITE", None, _USER, 0.05),
        ),
        "institution": _role(
            ("SITE_UNAVAILABLE", None, _C.INSTITUTION, 0.4),
            ("UNEXPECTED_SITE_ERROR", None, _C.INSTITUTION, 0.4),
            ("SITE_BLOCKING_ERROR", None, _C.INSTITUTION, 0.2),
        ),
        "aggregator": _role(
            ("TECH_ERROR", None, _C.AGGREGATOR, 0.6),
            ("DATA_RETRIEVAL_FAILED", None, _C.AGGREGATOR, 0.2),
            ("REQUEST_TIME_OUT", None, _C.NETWORK_TIMEOUT, 0.2),
        ),
        "down": _role(("SITE_UNAVAILABLE", None, _C.INSTITUTION, 1.0)),
        "not_responding": _role(("UNEXPECTED_SITE_ERROR", None, _C.INSTITUTION, 1.0)),
        "login_required": _role(("CREDENTIALS_UPDATE_NEEDED", None, _USER, 1.0)),
        "rate_limited": None,
        "not_ready": _role(("DATA_RETRIEVAL_IN_PROGRESS", None, _C.NOT_READY, 1.0)),
    },
}

ROLES: tuple[str, ...] = (
    "user",
    "institution",
    "aggregator",
    "down",
    "not_responding",
    "login_required",
    "rate_limited",
    "not_ready",
)


@dataclass(frozen=True, slots=True)
class ErrorTable:
    """Every distinct error as a row, and per (aggregator, role) the rows to draw from."""

    codes: pa.StringArray
    types: pa.StringArray
    categories: pa.StringArray
    #: Row of each error's category in ``tuple(ErrorCategory)``.
    category_index: NDArray[np.int8]
    #: (aggregator index, role) -> (row indices, cumulative weights); absent when unused.
    draws: dict[tuple[int, str], tuple[NDArray[np.int16], NDArray[np.float64]]]


def error_table() -> ErrorTable:
    """Flatten ``ERRORS`` into one table of distinct errors."""
    rows: list[ErrorCode] = []
    index: dict[ErrorCode, int] = {}
    draws: dict[tuple[int, str], tuple[NDArray[np.int16], NDArray[np.float64]]] = {}
    for aggregator, roles in ERRORS.items():
        for role in ROLES:
            spec = roles[role]
            if spec is None:
                continue
            members = []
            for error in spec.codes:
                if error not in index:
                    index[error] = len(rows)
                    rows.append(error)
                members.append(index[error])
            weights = np.cumsum(np.asarray(spec.weights, dtype=np.float64))
            draws[(AGGREGATORS.index(aggregator), role)] = (
                np.asarray(members, dtype=np.int16),
                weights / weights[-1],
            )
    categories = tuple(ErrorCategory)
    return ErrorTable(
        codes=string_table([e.code for e in rows]),
        types=string_table([e.error_type for e in rows]),
        categories=string_table([e.category.value for e in rows]),
        category_index=np.asarray([categories.index(e.category) for e in rows], dtype=np.int8),
        draws=draws,
    )


def string_table(values: list[str | None] | list[str] | tuple[str, ...]) -> pa.StringArray:
    """An Arrow string array to ``take`` codes from."""
    array = pa.array(list(values), pa.string())
    assert isinstance(array, pa.StringArray)
    return array


@dataclass(frozen=True, slots=True)
class Plan:
    """A price point of the app's subscription."""

    plan_id: str
    tier: str
    unit_amount: int
    interval: BillingInterval
    period_days: float


PLANS: tuple[Plan, ...] = (
    Plan("plus_monthly", "plus", 499, BillingInterval.MONTH, 30.4375),
    Plan("premium_monthly", "premium", 999, BillingInterval.MONTH, 30.4375),
    Plan("premium_annual", "premium", 9999, BillingInterval.YEAR, 365.25),
)

_F = BankingFeature
#: What a user does with each feature, the first action the most common.
ACTION_CHOICES: dict[BankingFeature, tuple[tuple[str, float], ...]] = {
    _F.ACCOUNT_LINKING: (("view_linked_accounts", 0.7), ("manage_connections", 0.3)),
    _F.TRANSACTION_SYNC: (
        ("view_transactions", 0.55),
        ("search_transactions", 0.2),
        ("categorize_transaction", 0.15),
        ("refresh_transactions", 0.1),
    ),
    _F.BALANCE_MONITORING: (("view_balance", 0.8), ("set_balance_alert", 0.2)),
    _F.SPENDING_ANALYSIS: (
        ("view_spending_report", 0.6),
        ("drill_down_category", 0.25),
        ("compare_months", 0.15),
    ),
    _F.BUDGET_TRACKING: (("view_budget", 0.7), ("edit_budget", 0.2), ("create_budget", 0.1)),
    _F.GOAL_SETTING: (
        ("view_goal_progress", 0.6),
        ("contribute_to_goal", 0.3),
        ("create_goal", 0.1),
    ),
    _F.BILL_REMINDERS: (
        ("view_upcoming_bills", 0.6),
        ("mark_bill_paid", 0.3),
        ("create_reminder", 0.1),
    ),
    _F.INVESTMENT_TRACKING: (
        ("view_portfolio", 0.6),
        ("view_holding", 0.25),
        ("view_performance", 0.15),
    ),
    _F.CREDIT_MONITORING: (("view_credit_score", 0.75), ("view_credit_report", 0.25)),
    _F.TAX_OPTIMIZATION: (("view_tax_summary", 0.7), ("export_tax_report", 0.3)),
}
#: Opening the link widget: logged once per link session, before anything else.
OPEN_LINK = "open_link"
ACTIONS: tuple[str, ...] = (
    *(action for f in FEATURES for action, _ in ACTION_CHOICES[f]),
    OPEN_LINK,
)

#: Institution names are drawn as "<first> <second> <kind>" (First National Bank, Pacific
#: Valley Credit Union): the words of US banks and credit unions, not real ones.
INSTITUTION_WORDS = (
    (
        "First",
        "Northern",
        "Pacific",
        "Summit",
        "Liberty",
        "Golden",
        "Union",
        "Heritage",
        "Pioneer",
        "Harbor",
        "Citizens",
        "Frontier",
        "Evergreen",
        "Granite",
        "Prairie",
        "Coastal",
        "Keystone",
        "Cascade",
        "Meridian",
        "Sterling",
    ),
    (
        "Valley",
        "River",
        "Lakes",
        "State",
        "County",
        "National",
        "Community",
        "Peoples",
        "Farmers",
        "Mutual",
        "Commonwealth",
        "Commerce",
        "Midland",
        "Capital",
        "Security",
        "Hometown",
    ),
    (
        "Bank",
        "Credit Union",
        "Savings Bank",
        "Bank & Trust",
        "Federal Credit Union",
        "Financial",
    ),
)
