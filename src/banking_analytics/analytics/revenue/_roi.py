"""What improving a feature is worth: projected MRR uplift, payback, ROI and NPV.

*Projection.* ``new_adopters`` users start using the feature now. A non-adopter
converts to a paid plan with the daily hazard ``h0`` (the model's non-adopters:
conversions ÷ at-risk days, as ``-ln(1 - rate)``); an adopter with ``h0·HR``. After
``m`` months (``D = m·365.25/12`` days) the extra paying customers are

    extra(m) = new_adopters · (exp(-D·h0) - exp(-D·h0·HR))

and the MRR uplift at the end of month m is ``extra(m) · ARPA``, ARPA being the mean
MRR of a new paid conversion. Churn of the new customers is not modelled (stated in
the assumptions). An improvement is either ``adoption_points`` (+N points of the
active users adopting, capped by those who have not) or ``success_rate_to`` (the
feature's connection success rate raised to X: ``new_adopters = users who attempted
its connection · (X - current rate)``).

*Appraisal* of a cost ``C`` against monthly cash ``c_1..c_H`` (the revenue of month m
is the uplift MRR reached at its end), at an annual discount rate ``r``
(default :data:`DEFAULT_DISCOUNT_RATE`):

- ``total_uplift = Σ c_m``; ``roi = (Σ c_m - C) / C``;
- ``payback_months`` = the first m with ``Σ_{k≤m} c_k ≥ C`` (None within the horizon);
- ``npv = -C + Σ c_m / (1 + r)^(m/12)``.

Money is Decimal throughout and answered in integer minor units, rounded half up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext

from banking_analytics.analytics._shape import Shape

__all__ = [
    "DEFAULT_DISCOUNT_RATE",
    "DEFAULT_HORIZON_MONTHS",
    "Appraisal",
    "RoiAssumptions",
    "RoiProjection",
    "appraise",
    "uplift_path",
]

#: Annual rate the cash is discounted at (a common hurdle rate for product investments).
DEFAULT_DISCOUNT_RATE = Decimal("0.10")
DEFAULT_HORIZON_MONTHS = 12
_DAYS_PER_MONTH = Decimal("365.25") / 12
_CENT = Decimal(1)


def _minor(value: Decimal) -> int:
    return int(value.quantize(_CENT, rounding=ROUND_HALF_UP))


def uplift_path(
    new_adopters: Decimal,
    baseline_daily_hazard: Decimal,
    hazard_ratio: Decimal,
    arpa: Decimal,
    months: int,
) -> list[Decimal]:
    """The MRR uplift at the end of each month 1..``months`` (see the module)."""
    path = []
    with localcontext() as ctx:
        ctx.prec = 28
        for m in range(1, months + 1):
            exposure = m * _DAYS_PER_MONTH * baseline_daily_hazard
            extra = new_adopters * ((-exposure).exp() - (-exposure * hazard_ratio).exp())
            path.append(extra * arpa)
    return path


@dataclass(frozen=True, slots=True)
class Appraisal:
    total_uplift: int
    roi: float
    payback_months: int | None
    npv: int


def appraise(cost: int, monthly_cash: Sequence[Decimal], discount_rate: Decimal) -> Appraisal:
    """Payback, ROI and NPV of paying ``cost`` (minor units, > 0) for ``monthly_cash``."""
    if cost <= 0:
        raise ValueError("cost must be positive")
    total = sum(monthly_cash, Decimal(0))
    payback = None
    running = Decimal(0)
    present = Decimal(0)
    with localcontext() as ctx:
        ctx.prec = 28
        for m, cash in enumerate(monthly_cash, start=1):
            running += cash
            if payback is None and running >= cost:
                payback = m
            present += cash / (1 + discount_rate) ** (Decimal(m) / 12)
        roi = (total - cost) / cost
    return Appraisal(
        total_uplift=_minor(total),
        roi=float(roi.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)),
        payback_months=payback,
        npv=_minor(present - cost),
    )


@dataclass(slots=True, eq=False)
class RoiAssumptions(Shape):
    """What a projection rests on, echoed back."""

    feature: str
    adoption_points: float | None
    success_rate_to: float | None
    current_success_rate: float | None
    new_adopters: float
    baseline_daily_hazard: float
    hazard_ratio: float
    hazard_ratio_ci: list[float]
    arpa: int
    """Mean MRR of a new paid conversion, minor units"""
    currency: str
    cost: int
    horizon_months: int
    discount_rate: float
    churn_modelled: bool


@dataclass(slots=True, eq=False)
class RoiProjection(Shape):
    """A feature improvement's projected MRR uplift and its return."""

    assumptions: RoiAssumptions
    currency: str
    monthly_mrr_uplift: list[int]
    """MRR uplift at the end of each month, minor units"""
    mrr_uplift: int
    """At the horizon"""
    mrr_uplift_low: int
    mrr_uplift_high: int
    total_uplift: int
    """Revenue over the horizon"""
    payback_months: int | None
    roi: float
    npv: int
