"""The statistics behind insights: a two-proportion test, and how a change in a rate splits.

**Two-proportion z-test** (pooled). Of ``n0`` events ``k0`` failed in the baseline,
of ``n1`` events ``k1`` in the current window; with ``p = (k0 + k1) / (n0 + n1)``,
``z = (k1/n1 - k0/n0) / √(p(1 - p)(1/n0 + 1/n1))`` and the two-sided p-value is
``erfc(|z| / √2)``. Many cuts are tested in one run, so a finding must pass at the
**Bonferroni** level: with ``m`` tests of a kind, each at ``alpha / m`` (``alpha = 0.05``
family-wise), i.e. ``|z| ≥ Φ⁻¹(1 - alpha / 2m)`` (:func:`bonferroni_z`).

**Decomposing a change in a failure rate.** The failure rate of a population cut
into segments ``g`` (features, platforms, aggregators, ...) is ``f = Σ w_g·r_g``,
``w_g = n_g / n`` the segment's share of the events and ``r_g = k_g / n_g`` its own
failure rate. Between a baseline (0) and the current window (1), each segment's part
of ``Δf = f1 - f0`` is split symmetrically (the two-factor Shapley split, so the
order of the factors does not matter and the parts add up to ``Δf`` exactly)::

    rate effect  = (r_g1 - r_g0) · (w_g0 + w_g1) / 2
    mix effect   = (w_g1 - w_g0) · (r_g0 + r_g1) / 2
    contribution = rate effect + mix effect = w_g1·r_g1 - w_g0·r_g0

A segment present in one window only takes the rate it has there for the other, so
its whole part is mix. Failures cut by *kind* (error category, error code) are not
segments of the events but of the failures: each kind's part is simply
``k_c1 / n1 - k_c0 / n0``, which add up to ``Δf`` too. A segment's **share** of the
change is its contribution ÷ ``Δf``: the segment that explains most of the change is
the one with the largest share, which need not be the one with the most failures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from statistics import NormalDist

__all__ = [
    "FAMILY_ALPHA",
    "Contribution",
    "bonferroni_z",
    "decompose_kinds",
    "decompose_rate",
    "two_proportion_test",
]

#: The family-wise false-positive rate of one kind of insight in one run.
FAMILY_ALPHA = 0.05


def two_proportion_test(k0: int, n0: int, k1: int, n1: int) -> tuple[float, float]:
    """``(z, two-sided p)`` of ``k1/n1`` against ``k0/n0`` (pooled; see the module).

    No variance (every event failed, or none did, in both) is ``(0, 1)``.
    """
    if n0 <= 0 or n1 <= 0:
        raise ValueError("both samples must hold events")
    pooled = (k0 + k1) / (n0 + n1)
    variance = pooled * (1 - pooled) * (1 / n0 + 1 / n1)
    if variance <= 0:
        return 0.0, 1.0
    z = (k1 / n1 - k0 / n0) / math.sqrt(variance)
    return z, math.erfc(abs(z) / math.sqrt(2))


def bonferroni_z(tests: int, alpha: float = FAMILY_ALPHA) -> float:
    """The two-sided critical ``|z|`` of ``tests`` tests at family-wise level ``alpha``."""
    return NormalDist().inv_cdf(1 - alpha / (2 * max(tests, 1)))


@dataclass(frozen=True, slots=True)
class Contribution:
    """One segment's part of a change in a failure rate (see the module)."""

    segment: str
    #: Events and failures in the baseline and the current window.
    n0: int
    k0: int
    n1: int
    k1: int
    rate_effect: float
    mix_effect: float

    @property
    def contribution(self) -> float:
        return self.rate_effect + self.mix_effect

    def share(self, delta: float) -> float:
        """The part of ``delta`` this segment explains (0 when nothing changed)."""
        return self.contribution / delta if delta else 0.0


def decompose_rate(
    baseline: Mapping[str, tuple[int, int]], current: Mapping[str, tuple[int, int]]
) -> list[Contribution]:
    """Each segment's rate and mix effect on the change in the failure rate, from
    ``(events, failures)`` per segment in each window; largest contribution first
    (ties by segment)."""
    n0 = sum(n for n, _ in baseline.values())
    n1 = sum(n for n, _ in current.values())
    if n0 <= 0 or n1 <= 0:
        raise ValueError("both windows must hold events")
    parts = []
    for segment in sorted(set(baseline) | set(current)):
        m0, f0 = baseline.get(segment, (0, 0))
        m1, f1 = current.get(segment, (0, 0))
        w0, w1 = m0 / n0, m1 / n1
        r0 = f0 / m0 if m0 else None
        r1 = f1 / m1 if m1 else None
        # Absent from a window: its rate there is taken as the other window's.
        a = r1 if r0 is None else r0
        b = r0 if r1 is None else r1
        a = a or 0.0
        b = b or 0.0
        parts.append(
            Contribution(segment, m0, f0, m1, f1, (b - a) * (w0 + w1) / 2, (w1 - w0) * (a + b) / 2)
        )
    return _ranked(parts)


def decompose_kinds(
    n0: int, n1: int, baseline: Mapping[str, int], current: Mapping[str, int]
) -> list[Contribution]:
    """Each kind of failure's part of the change in the failure rate, from the events in
    each window and the failures of each kind; all of it is a rate effect."""
    if n0 <= 0 or n1 <= 0:
        raise ValueError("both windows must hold events")
    parts = [
        Contribution(
            kind,
            n0,
            baseline.get(kind, 0),
            n1,
            current.get(kind, 0),
            current.get(kind, 0) / n1 - baseline.get(kind, 0) / n0,
            0.0,
        )
        for kind in sorted(set(baseline) | set(current))
    ]
    return _ranked(parts)


def _ranked(parts: Iterable[Contribution]) -> list[Contribution]:
    return sorted(parts, key=lambda c: (-c.contribution, c.segment))
