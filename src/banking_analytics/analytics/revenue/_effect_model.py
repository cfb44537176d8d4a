"""The causal effect of adopting each banking feature on converting to a paid plan.

A discrete-time proportional-hazards model over user-days (Prentice and Gloeckler's
grouped-time model): on an at-risk day ``d`` a user converts with probability

    P(convert on d) = 1 - exp(-exp(b0 + Σ_f b_f·A_f(d) + tenure_d + engagement_d))

i.e. a binomial GLM with the complementary log-log link, where ``A_f(d)`` is 1
once feature f is adopted (from the day after its first use) and ``tenure`` and
``engagement`` are bucket effects. ``exp(b_f)`` is the hazard ratio of adopting f,
adjusted for the other features, tenure and engagement; its 95% interval is
``exp(b_f ± 1.96·se_f)`` (Wald). The complementary log-log link is chosen because
it is exactly the form of a daily hazard ``1 - exp(-h·Π e_f)`` (what the
simulator plants); a logistic link estimates odds ratios, close to hazard ratios
only while conversions are rare.

The fit reads cells (covariate pattern, at-risk days, conversions), never user-days:
each cell enters twice with frequency weights, once as ``events`` conversions and
once as ``days - events`` non-conversions.

The naive lift beside it is the crude ratio of daily conversion rates,
``(events_a / days_a) / (events_n / days_n)`` over adopters' and non-adopters'
at-risk days. A feature whose adopters converted fewer than
:data:`MIN_ADOPTER_CONVERSIONS` times on their adopted days (or with as few
conversions on non-adopted days) has no estimate: ``insufficient_data``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["MIN_ADOPTER_CONVERSIONS", "Cells", "Effect", "fit_effects"]

#: Conversions on adopted days (and on non-adopted days) below which no ratio is estimated.
MIN_ADOPTER_CONVERSIONS = 30
_Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Cells:
    """The model's cells: adoption flags ``(cells, features)``, bucket codes, at-risk days
    and conversions."""

    adopted: NDArray[np.int64]
    tenure: NDArray[np.int64]
    engagement: NDArray[np.int64]
    days: NDArray[np.int64]
    events: NDArray[np.int64]

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]], features: int) -> Cells:
        """Cells from the rows of the cells statement (``a0``..., ``tenure_bucket``,
        ``engagement_bucket``, ``days``, ``events``), in a fixed order: an engine returns
        groups in any, and the fit's sums follow it."""
        ordered = sorted(rows, key=lambda row: tuple(row.values()))

        def column(name: str) -> NDArray[np.int64]:
            return np.asarray([row[name] for row in ordered], dtype=np.int64)

        adopted = np.column_stack([column(f"a{i}") for i in range(features)]) if ordered else None
        return cls(
            adopted=adopted if adopted is not None else np.zeros((0, features), dtype=np.int64),
            tenure=column("tenure_bucket"),
            engagement=column("engagement_bucket"),
            days=column("days"),
            events=column("events"),
        )


@dataclass(frozen=True, slots=True)
class Effect:
    """One feature's estimate (None where there is none) and the counts behind it."""

    hazard_ratio: float | None
    ci_low: float | None
    ci_high: float | None
    naive_lift: float | None
    adopter_days: int
    adopter_conversions: int
    non_adopter_days: int
    non_adopter_conversions: int

    @property
    def sufficient(self) -> bool:
        return (
            self.adopter_conversions >= MIN_ADOPTER_CONVERSIONS
            and self.non_adopter_conversions >= MIN_ADOPTER_CONVERSIONS
        )

    @property
    def baseline_daily_hazard(self) -> float | None:
        """Conversions per at-risk day of non-adopters (the cloglog hazard of one day)."""
        if not self.non_adopter_days or not self.non_adopter_conversions:
            return None
        return -math.log1p(-self.non_adopter_conversions / self.non_adopter_days)


def _dummies(codes: NDArray[np.int64]) -> NDArray[np.float64]:
    """Indicator columns for every level present but the lowest (the reference)."""
    levels = np.unique(codes)[1:]
    indicators: NDArray[np.float64] = (codes[:, None] == levels[None, :]).astype(np.float64)
    return indicators


def fit_effects(cells: Cells) -> list[Effect]:
    """Every feature's effect, in the order of ``cells.adopted``'s columns."""
    days, events = cells.days.astype(np.float64), cells.events.astype(np.float64)
    counts = []
    for f in range(cells.adopted.shape[1]):
        on = cells.adopted[:, f] == 1
        counts.append(
            (
                int(cells.days[on].sum()),
                int(cells.events[on].sum()),
                int(cells.days[~on].sum()),
                int(cells.events[~on].sum()),
            )
        )
    estimable = [
        f
        for f, (_, ev_a, _, ev_n) in enumerate(counts)
        if ev_a >= MIN_ADOPTER_CONVERSIONS and ev_n >= MIN_ADOPTER_CONVERSIONS
    ]
    ratios: dict[int, tuple[float, float, float]] = {}
    if estimable:
        design = np.column_stack(
            [
                np.ones(days.size),
                cells.adopted[:, estimable].astype(np.float64),
                _dummies(cells.tenure),
                _dummies(cells.engagement),
            ]
        )
        rows = np.concatenate([design, design])
        outcome = np.concatenate([np.ones(days.size), np.zeros(days.size)])
        weights = np.concatenate([events, days - events])
        kept = weights > 0
        # Imported here: statsmodels takes about 3 s to import, which every process that
        # serves the API or runs a command would pay, whether it fits a model or not.
        from statsmodels.genmod import families
        from statsmodels.genmod.generalized_linear_model import GLM

        model = GLM(
            outcome[kept],
            rows[kept],
            family=families.Binomial(link=families.links.CLogLog()),
            freq_weights=weights[kept],
        )
        with warnings.catch_warnings():
            # A separated bucket's coefficient runs off; the features' ratios stay usable.
            warnings.simplefilter("ignore")
            result = model.fit()
        params, errors = np.asarray(result.params), np.asarray(result.bse)
        for column, f in enumerate(estimable, start=1):
            b, se = float(params[column]), float(errors[column])
            ratios[f] = (math.exp(b), math.exp(b - _Z95 * se), math.exp(b + _Z95 * se))
    effects = []
    for f, (days_a, ev_a, days_n, ev_n) in enumerate(counts):
        naive = (ev_a / days_a) / (ev_n / days_n) if days_a and days_n and ev_n else None
        ratio, low, high = ratios.get(f, (None, None, None))
        effects.append(Effect(ratio, low, high, naive, days_a, ev_a, days_n, ev_n))
    return effects
