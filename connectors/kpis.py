"""The KPIs a marketer asks for, as SQL over the analytics tables (read ``FINAL``, so rows a
replay repeated count once). Every figure covers orders whose event time falls in
``[since, until)``; a customer is a profile.

- ``orders``: the period's order count, revenue, buyers; AOV = revenue / orders; historic CLV =
  revenue / buyers; repeat-purchase rate = buyers with two or more orders / buyers.
- ``monthly_active_buyers``: distinct buyers per calendar month (UTC).
- ``churn_by_cohort``: customers grouped by the month of their first order in the period; a
  customer has churned when they placed no order in the ``inactive_days`` before ``until``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wayline.connectors.clickhouse import Client
from wayline.segments.uplift import Arm

ORDER = "event = 'Order Completed'"


@dataclass(frozen=True)
class Orders:
    orders: int
    revenue: float
    buyers: int
    repeat_buyers: int

    @property
    def aov(self) -> float:
        return self.revenue / self.orders if self.orders else 0.0

    @property
    def historic_clv(self) -> float:
        return self.revenue / self.buyers if self.buyers else 0.0

    @property
    def repeat_purchase_rate(self) -> float:
        return self.repeat_buyers / self.buyers if self.buyers else 0.0


@dataclass(frozen=True)
class Cohort:
    month: str  # YYYY-MM of the first order
    customers: int
    churned: int

    @property
    def churn_rate(self) -> float:
        return self.churned / self.customers if self.customers else 0.0


def _period(since: datetime, until: datetime) -> dict[str, Any]:
    return {"since": since, "until": until}


def orders(client: Client, db: str, since: datetime, until: datetime) -> Orders:
    sql = f"""
        SELECT count(), sum(revenue), uniqExact(profile_id),
               (SELECT count() FROM (SELECT profile_id FROM {db}.events FINAL
                 WHERE {ORDER} AND timestamp >= %(since)s AND timestamp < %(until)s
                 GROUP BY profile_id HAVING count() >= 2))
        FROM {db}.events FINAL
        WHERE {ORDER} AND timestamp >= %(since)s AND timestamp < %(until)s"""
    n, revenue, buyers, repeat = client.query(sql, parameters=_period(since, until)).result_rows[0]
    return Orders(int(n), float(revenue or 0.0), int(buyers), int(repeat))


def monthly_active_buyers(client: Client, db: str, since: datetime, until: datetime
                          ) -> dict[str, int]:  # fmt: skip
    sql = f"""
        SELECT formatDateTime(timestamp, '%%Y-%%m') AS month, uniqExact(profile_id)
        FROM {db}.events FINAL
        WHERE {ORDER} AND timestamp >= %(since)s AND timestamp < %(until)s
        GROUP BY month ORDER BY month"""
    rows = client.query(sql, parameters=_period(since, until)).result_rows
    return {str(month): int(n) for month, n in rows}


def churn_by_cohort(client: Client, db: str, since: datetime, until: datetime,
                    inactive_days: int = 90) -> list[Cohort]:  # fmt: skip
    sql = f"""
        SELECT formatDateTime(first, '%%Y-%%m') AS month, count(),
               countIf(last < %(until)s - toIntervalDay(%(days)s))
        FROM (SELECT profile_id, min(timestamp) AS first, max(timestamp) AS last
              FROM {db}.events FINAL
              WHERE {ORDER} AND timestamp >= %(since)s AND timestamp < %(until)s
              GROUP BY profile_id)
        GROUP BY month ORDER BY month"""
    params = {**_period(since, until), "days": inactive_days}
    rows = client.query(sql, parameters=params).result_rows
    return [Cohort(str(month), int(n), int(churned)) for month, n, churned in rows]


def uplift_arms(client: Client, db: str, subscription: str, window_days: int,
                since: datetime, until: datetime) -> tuple[Arm, Arm]:  # fmt: skip
    """The treated and held-out arms of one subscription: the profiles it reached (``sent``,
    ``delivered``) and those it held out (holdout or control group) in ``[since, until)``, each
    from its first such delivery; converted = an order within ``window_days`` after it."""
    sql = f"""
        SELECT held, count(), countIf(orders > 0), groupArray(revenue)
        FROM (
            SELECT e.profile_id AS profile_id, e.held AS held,
                   countIf(o.timestamp > e.t0
                           AND o.timestamp <= e.t0 + toIntervalDay(%(days)s)) AS orders,
                   sumIf(o.revenue, o.timestamp > e.t0
                         AND o.timestamp <= e.t0 + toIntervalDay(%(days)s)) AS revenue
            FROM (SELECT profile_id, status = 'held_out' AS held, min(at) AS t0
                  FROM {db}.deliveries FINAL
                  WHERE subscription = %(sub)s AND final = 1
                    AND status IN ('sent', 'delivered', 'held_out')
                    AND at >= %(since)s AND at < %(until)s
                  GROUP BY profile_id, held) AS e
            LEFT JOIN (SELECT profile_id, timestamp, revenue FROM {db}.events FINAL
                       WHERE {ORDER}) AS o ON o.profile_id = e.profile_id
            GROUP BY profile_id, held)
        GROUP BY held"""
    params = {**_period(since, until), "sub": subscription, "days": window_days}
    rows = client.query(sql, parameters=params).result_rows
    arms = {bool(held): Arm(int(n), int(converted), [float(r) for r in revenue])
            for held, n, converted, revenue in rows}  # fmt: skip
    return arms.get(False, Arm(0, 0)), arms.get(True, Arm(0, 0))


FUNNEL = ("Product Viewed", "Product Added", "Order Completed")


def conversion_funnel(client: Client, db: str, since: datetime, until: datetime,
                      window_s: int = 7 * 86_400) -> list[int]:  # fmt: skip
    """Profiles that reached each step of view → add to cart → order, each step after the one
    before it and within ``window_s`` of the view that began the chain (``windowFunnel``)."""
    steps = ", ".join(f"event = '{name}'" for name in FUNNEL)
    sql = f"""
        SELECT level, count() FROM (
            SELECT profile_id, windowFunnel(%(window)s)(toDateTime(timestamp), {steps}) AS level
            FROM {db}.events FINAL
            WHERE timestamp >= %(since)s AND timestamp < %(until)s
            GROUP BY profile_id)
        GROUP BY level"""
    params = {**_period(since, until), "window": window_s}
    at_level = {int(level): int(n) for level, n in client.query(sql, parameters=params).result_rows}
    return [sum(n for level, n in at_level.items() if level >= step)
            for step in range(1, len(FUNNEL) + 1)]  # fmt: skip


def segment_sizes(client: Client, db: str, since: datetime, until: datetime
                  ) -> dict[str, dict[str, int]]:  # fmt: skip
    """Segment → day (YYYY-MM-DD, UTC) → members at the end of that day, for the days in the
    period on which the segment changed (it keeps its size on the days between)."""
    sql = f"""
        SELECT segment, toString(day), size FROM (
            SELECT segment, day,
                   sum(net) OVER (PARTITION BY segment ORDER BY day
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS size
            FROM (SELECT segment, toDate(at) AS day,
                         sum(if(transition = 'enter', 1, -1)) AS net
                  FROM {db}.segment_transitions FINAL
                  WHERE at < %(until)s
                  GROUP BY segment, day))
        WHERE day >= toDate(%(since)s)
        ORDER BY segment, day"""
    out: dict[str, dict[str, int]] = {}
    for segment, day, size in client.query(sql, parameters=_period(since, until)).result_rows:
        out.setdefault(str(segment), {})[str(day)] = int(size)
    return out


def delivery_outcomes(client: Client, db: str, since: datetime, until: datetime
                      ) -> dict[str, dict[str, int]]:  # fmt: skip
    """Subscription → final status → deliveries decided in the period (sent, delivered,
    suppressed, frequency_capped, held_out, failed, exhausted)."""
    sql = f"""
        SELECT subscription, status, count() FROM {db}.deliveries FINAL
        WHERE final = 1 AND at >= %(since)s AND at < %(until)s
        GROUP BY subscription, status ORDER BY subscription, status"""
    out: dict[str, dict[str, int]] = {}
    for sub, status, n in client.query(sql, parameters=_period(since, until)).result_rows:
        out.setdefault(str(sub), {})[str(status)] = int(n)
    return out
