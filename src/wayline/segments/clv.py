"""Predictive customer lifetime value (pure): how many orders each customer will place in the
next ``horizon`` days and what they will be worth, from their history alone.

- Purchases: BG/NBD (Fader, Hardie and Lee, "Counting your customers the easy way", 2005).
  While active a customer buys at a Poisson rate (gamma-distributed across customers: r, α)
  and after each purchase drops out with a probability (beta-distributed: a, b).
- Value: Gamma-Gamma (Fader, Hardie and Lee, "RFM and CLV", 2005) over the repeat customers'
  mean order values (p, q, v); a customer's expected order value shrinks their own mean
  toward the population's by how many orders it rests on.

Each is fitted by maximum likelihood (scipy's L-BFGS-B on log parameters, so they stay
positive; customers with the same history are one weighted term). Inputs
per customer, in days, as ``lifetimes``' ``summary_data_from_transaction_data`` counts them:
``frequency`` = days with an order after the first; ``recency`` = first to last order day;
``age`` (T) = first order day to the end of the observation; ``value`` = mean of the repeat
order days' revenue (0 without a repeat).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Customers:
    frequency: Sequence[float]
    recency: Sequence[float]
    age: Sequence[float]
    value: Sequence[float]


@dataclass(frozen=True)
class Forecast:
    horizon_days: int
    customers: int
    expected_orders: float
    expected_revenue: float
    bgnbd: dict[str, float]  # r, alpha, a, b
    gamma_gamma: dict[str, float] | None  # p, q, v (None: fewer than 2 repeat customers)

    @property
    def clv_per_customer(self) -> float:
        return self.expected_revenue / self.customers if self.customers else 0.0


def _arrays(c: Customers) -> tuple[Any, Any, Any, Any]:
    import numpy as np

    return tuple(np.asarray(v, dtype=float) for v in (c.frequency, c.recency, c.age, c.value))  # type: ignore[return-value]


def _bgnbd_ll(log_params: Any, x: Any, tx: Any, big_t: Any, weight: Any) -> float:
    import numpy as np
    from scipy.special import betaln, gammaln

    r, alpha, a, b = np.exp(log_params)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + big_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300))
                      - (r + x) * np.log(alpha + tx), -np.inf)  # fmt: skip
    return float(-((a1 + a2 + np.logaddexp(a3, a4)) * weight).sum())


def fit_bgnbd(c: Customers) -> dict[str, float]:
    import numpy as np
    from scipy.optimize import minimize

    x, tx, big_t, _value = _arrays(c)
    # customers with the same history count once, weighted: far fewer terms to sum
    unique, weight = np.unique(np.stack([x, tx, big_t]), axis=1, return_counts=True)
    found = minimize(_bgnbd_ll, np.log([1.0, 1.0, 1.0, 1.0]), args=(*unique, weight),
                     method="L-BFGS-B", options={"ftol": 1e-12, "gtol": 1e-9})  # fmt: skip
    r, alpha, a, b = (float(v) for v in np.exp(found.x))
    return {"r": r, "alpha": alpha, "a": a, "b": b}


def expected_orders(params: dict[str, float], c: Customers, horizon: float) -> Any:
    """Each customer's expected number of order days in the next ``horizon`` days."""
    import numpy as np
    from scipy.special import hyp2f1

    x, tx, big_t, _value = _arrays(c)
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    z = horizon / (alpha + big_t + horizon)
    head = (a + b + x - 1) / (a - 1)
    body = 1 - ((alpha + big_t) / (alpha + big_t + horizon)) ** (r + x) * hyp2f1(
        r + x, b + x, a + b + x - 1, z
    )
    active = np.where(x > 0, (a / np.maximum(b + x - 1, 1e-300))
                      * ((alpha + big_t) / (alpha + tx)) ** (r + x), 0.0)  # fmt: skip
    return head * body / (1 + active)


def _gg_ll(log_params: Any, x: Any, m: Any) -> float:
    import numpy as np
    from scipy.special import gammaln

    p, q, v = np.exp(log_params)
    shape = p * x
    ll = gammaln(shape + q) - gammaln(shape) - gammaln(q) + q * np.log(v)
    ll += (shape - 1) * np.log(m) + shape * np.log(x) - (shape + q) * np.log(x * m + v)
    return float(-ll.sum())


def fit_gamma_gamma(c: Customers) -> dict[str, float] | None:
    import numpy as np
    from scipy.optimize import minimize

    x, _tx, _t, m = _arrays(c)
    repeat = (x > 0) & (m > 0)
    if repeat.sum() < 2:
        return None
    found = minimize(_gg_ll, np.log([1.0, 1.0, 1.0]), args=(x[repeat], m[repeat]),
                     method="L-BFGS-B", options={"ftol": 1e-12, "gtol": 1e-9})  # fmt: skip
    p, q, v = (float(k) for k in np.exp(found.x))
    return {"p": p, "q": q, "v": v}


def expected_value(params: dict[str, float], c: Customers, population_mean: float) -> Any:
    """Each customer's expected order value; the population's mean for one-time buyers."""
    import numpy as np

    x, _tx, _t, m = _arrays(c)
    p, q, v = params["p"], params["q"], params["v"]
    conditional = (p * (v + x * m)) / np.maximum(p * x + q - 1, 1e-300)
    return np.where((x > 0) & (m > 0), conditional, population_mean)


def forecast(c: Customers, horizon_days: int, first_order_mean: float) -> Forecast | None:
    """The next ``horizon_days`` for these customers (None: too few to fit a model)."""
    import numpy as np

    if len(c.frequency) < 10 or not any(f > 0 for f in c.frequency):
        return None
    bgnbd = fit_bgnbd(c)
    orders = expected_orders(bgnbd, c, horizon_days)
    gg = fit_gamma_gamma(c)
    if gg is not None and gg["q"] > 1:
        population = gg["p"] * gg["v"] / (gg["q"] - 1)
        value = expected_value(gg, c, population)
    else:
        value = np.full(len(c.frequency), first_order_mean)
    return Forecast(horizon_days, len(c.frequency), float(orders.sum()),
                    float((orders * value).sum()), bgnbd, gg)  # fmt: skip
