"""The revenue policies vendors disagree on, as settings with documented defaults."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from banking_analytics.metrics import QueryError

__all__ = ["MINOR_UNIT_EXPONENTS", "ChurnRecognition", "RevenuePolicy", "minor_unit_exponent"]


class ChurnRecognition(StrEnum):
    """When a subscription that ends stops counting in MRR."""

    #: When the billing system reports it ended (a status other than active or past_due):
    #: ChartMogul's default.
    CANCELLATION = "cancellation"
    #: At the end of the service period paid for (``period_end``), when that is later:
    #: ProfitWell's rule, and an option of ChartMogul and Stripe.
    PERIOD_END = "period_end"


#: ISO 4217 currencies whose minor unit is not a hundredth of the major one.
MINOR_UNIT_EXPONENTS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"), 0),
    **dict.fromkeys(("RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def minor_unit_exponent(currency: str) -> int:
    """Decimal places of the currency's minor unit (2 unless ISO 4217 says otherwise)."""
    return MINOR_UNIT_EXPONENTS.get(currency, 2)


@dataclass(frozen=True, slots=True)
class RevenuePolicy:
    """How revenue is counted where vendors differ (docs/revenue.md, "Policies").

    - ``reporting_currency``: every amount is converted to it (default USD) at the rate
      valid on the date a subscription started, so rates never move MRR.
    - ``churn_recognition``: see :class:`ChurnRecognition` (default: at cancellation).
    - ``past_due_grace_days``: None (default, ChartMogul's) keeps a past-due subscription
      in MRR until its status changes; ``N`` drops it N days after it became past due.
    - ``count_joined_and_churned``: whether a customer who was not paying at a period's
      start and churned in it counts in that period's customer churn (default no,
      ChartMogul's and ProfitWell's rule; Baremetrics and Stripe count them).
    - ``free_customers_are_customers``: whether a customer with only $0 subscriptions
      (a free plan, or a 100% discount) in status active or past_due counts in customer
      numbers (default no: a customer pays, as ProfitWell, Baremetrics and Stripe count;
      ChartMogul keeps them). MRR and its movements are the same either way.
    """

    reporting_currency: str = "USD"
    churn_recognition: ChurnRecognition = ChurnRecognition.CANCELLATION
    past_due_grace_days: int | None = None
    count_joined_and_churned: bool = False
    free_customers_are_customers: bool = False

    def __post_init__(self) -> None:
        currency = self.reporting_currency
        if len(currency) != 3 or not currency.isascii() or not currency.isupper():
            raise QueryError(f"reporting_currency {currency!r} is not an ISO 4217 code")
        object.__setattr__(self, "churn_recognition", ChurnRecognition(self.churn_recognition))
        grace = self.past_due_grace_days
        if grace is not None and not 0 <= grace <= 365:
            raise QueryError(f"past_due_grace_days must be 0 to 365 days, got {grace}")
