"""Uplift intervals that a marketer can trust: a planted effect is inside the interval, no
effect gives an interval around 0, and over many simulated experiments — small arms included —
the 95 % intervals hold the truth about 95 % of the time."""

from __future__ import annotations

import numpy as np
import pytest

from wayline.segments.uplift import Arm, uplift


def experiment(rng: np.random.Generator, n: int, holdout: float, base: float, lift: float
               ) -> tuple[Arm, Arm]:  # fmt: skip
    held = rng.random(n) < holdout
    rate = np.where(held, base, base + lift)
    converted = rng.random(n) < rate
    revenue = np.where(converted, rng.gamma(2.0, 30.0, n), 0.0)
    treated = Arm(int((~held).sum()), int(converted[~held].sum()), revenue[~held].tolist())
    control = Arm(int(held.sum()), int(converted[held].sum()), revenue[held].tolist())
    return treated, control


def test_a_planted_effect_is_found_with_its_revenue() -> None:
    treated, control = experiment(np.random.default_rng(1), 20_000, 0.10, 0.10, 0.03)
    found = uplift(treated, control)
    assert found.low < 0.03 < found.high
    assert found.low > 0  # the effect is told apart from none
    assert found.relative == pytest.approx(found.absolute / control.rate)
    assert found.incremental_conversions == pytest.approx(found.absolute * treated.profiles)
    assert found.revenue_low is not None
    assert found.revenue_high is not None
    planted = 0.03 * 60.0  # 3 more converters per 100 profiles, 60 each on average
    assert found.revenue_low < planted < found.revenue_high


def test_no_effect_gives_an_interval_around_zero() -> None:
    treated, control = experiment(np.random.default_rng(2), 20_000, 0.10, 0.10, 0.0)
    found = uplift(treated, control)
    assert found.low < 0 < found.high
    assert found.revenue_low is not None
    assert found.revenue_high is not None
    assert found.revenue_low < 0 < found.revenue_high


@pytest.mark.parametrize(("n", "base"), [(60, 0.1), (400, 0.05), (4000, 0.1)])
def test_95_percent_intervals_cover_the_truth_95_percent_of_the_time(n: int, base: float) -> None:
    rng = np.random.default_rng(n)
    runs, held = 400, 0
    for _ in range(runs):
        treated, control = experiment(rng, n, 0.5, base, 0.02)
        found = uplift(treated, control)
        held += found.low <= 0.02 <= found.high
    assert 0.91 <= held / runs <= 0.99  # Newcombe stays near nominal where Wald does not


def test_an_empty_arm_is_refused() -> None:
    with pytest.raises(ValueError, match="both arms"):
        uplift(Arm(0, 0), Arm(10, 1))
