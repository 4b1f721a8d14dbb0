"""Uplift against a holdout (pure): what a subscription changed, with an interval that is
right for small arms.

- Conversion: the difference of two proportions with Newcombe's hybrid score interval (built
  from each arm's Wilson interval; good coverage at small counts and near 0 or 1, where the
  normal approximation fails).
- Revenue per profile: the difference of two means with Welch's t interval (unequal variances,
  Welch–Satterthwaite degrees of freedom), every profile of an arm counted, zero included.

Both come from statsmodels (``confint_proportions_2indep(method="newcomb")``, ``CompareMeans``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Arm:
    """One arm of an experiment: its profiles, how many converted, revenue per profile."""

    profiles: int
    converted: int
    revenue: Sequence[float] = ()  # one value per profile (zeros too); empty: not measured

    @property
    def rate(self) -> float:
        return self.converted / self.profiles if self.profiles else 0.0


@dataclass(frozen=True)
class Uplift:
    treated_rate: float
    held_out_rate: float
    absolute: float  # treated − held out, in conversion rate
    low: float  # the interval of ``absolute``
    high: float
    relative: float | None  # absolute / held-out rate; None when nobody held out converted
    incremental_conversions: float  # absolute × treated profiles
    revenue_per_profile: float | None = None  # treated − held out, in revenue per profile
    revenue_low: float | None = None
    revenue_high: float | None = None
    incremental_revenue: float | None = None


def uplift(treated: Arm, held_out: Arm, confidence: float = 0.95) -> Uplift:
    from statsmodels.stats.proportion import confint_proportions_2indep

    if treated.profiles < 1 or held_out.profiles < 1:
        raise ValueError("both arms need at least one profile")
    low, high = confint_proportions_2indep(
        treated.converted, treated.profiles, held_out.converted, held_out.profiles,
        method="newcomb", compare="diff", alpha=1 - confidence,
    )  # fmt: skip
    absolute = treated.rate - held_out.rate
    relative = absolute / held_out.rate if held_out.rate > 0 else None
    out = Uplift(treated.rate, held_out.rate, absolute, float(low), float(high), relative,
                 absolute * treated.profiles)  # fmt: skip
    if len(treated.revenue) < 2 or len(held_out.revenue) < 2:
        return out
    diff, r_low, r_high = _welch(treated.revenue, held_out.revenue, confidence)
    return replace(out, revenue_per_profile=diff, revenue_low=r_low, revenue_high=r_high,
                   incremental_revenue=diff * treated.profiles)  # fmt: skip


def _welch(a: Sequence[float], b: Sequence[float], confidence: float) -> tuple[float, float, float]:
    import numpy as np
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

    left, right = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    compare = CompareMeans(DescrStatsW(left), DescrStatsW(right))
    low, high = compare.tconfint_diff(alpha=1 - confidence, usevar="unequal")
    return float(left.mean() - right.mean()), float(low), float(high)
