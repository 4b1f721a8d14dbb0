"""The KPIs a marketer asks for, as SQL over the analytics tables (read ``FINAL``, so rows a
replay repeated count once). Money is summed as Decimal(38, 6), from each amount as written,
so a sum does not depend on the order the engine adds the rows in. Every figure covers orders
whose event time falls in ``[since, until)``; a customer is a profile.

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

from wayline.connectors.clickhouse import Queries
from wayline.segments.clv import Customers
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


def orders(client: Queries, db: str, since: datetime, until: datetime) -> Orders:
    sql = f"""
        SELECT count(), toFloat64(sum(toDecimal128(toString(revenue), 6))), uniqExact(profile_id),
               (SELECT count() FROM (SELECT profile_id FROM {db}.events FINAL
                 WHERE {ORDER} AND timestamp >= %(since)s AND timestamp < %(until)s
                 GROUP BY profile_id HAVING count() >= 2))
        FROM {db}.events FINAL
        WHERE {ORDER} AND timestamp >= %(since)s AND timestamp < %(until)s"""
    n, revenue, buyers, repeat = client.query(sql, parameters=_period(since, until)).result_rows[0]
    return Orders(int(n), float(revenue or 0.0), int(buyers), int(repeat))


def monthly_active_buyers(client: Queries, db: str, since: datetime, until: datetime
                          ) -> dict[str, int]:  # fmt: skip
    sql = f"""
        SELECT formatDateTime(timestamp, '%%Y-%%m') AS month, uniqExact(profile_id)
        FROM {db}.events FINAL
        WHERE {ORDER} AND timestamp >= %(since)s AND timestamp < %(until)s
        GROUP BY month ORDER BY month"""
    rows = client.query(sql, parameters=_period(since, until)).result_rows
    return {str(month): int(n) for month, n in rows}


def churn_by_cohort(client: Queries, db: str, since: datetime, until: datetime,
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


def uplift_arms(client: Queries, db: str, subscription: str | None, window_days: int,
                since: datetime, until: datetime) -> tuple[Arm, Arm]:  # fmt: skip
    """The treated and held-out arms of one subscription: the profiles it reached (``sent``,
    ``delivered``) and those it held out (holdout or control group) in ``[since, until)``, each
    from its first such delivery; converted = an order within ``window_days`` after it.

    ``subscription=None``: every message against the global control group — treated are the
    profiles any subscription reached, held out those the control group kept from all of them
    (a subscription's own holdout is neither)."""
    if subscription is None:
        arm = "multiIf(status != 'held_out', 0, reason = 'control_group', 1, -1)"
        which = "1"
    else:
        arm = "if(status = 'held_out', 1, 0)"
        which = "subscription = %(sub)s"
    sql = f"""
        SELECT held, count(), countIf(orders > 0), groupArray(revenue)
        FROM (
            SELECT e.profile_id AS profile_id, e.held AS held,
                   countIf(o.timestamp > e.t0
                           AND o.timestamp <= e.t0 + toIntervalDay(%(days)s)) AS orders,
                   toFloat64(sumIf(toDecimal128(toString(o.revenue), 6), o.timestamp > e.t0
                         AND o.timestamp <= e.t0 + toIntervalDay(%(days)s))) AS revenue
            FROM (SELECT profile_id, held, min(at) AS t0
                  FROM (SELECT profile_id, {arm} AS held, at FROM {db}.deliveries FINAL
                        WHERE {which} AND final = 1
                          AND status IN ('sent', 'delivered', 'held_out')
                          AND at >= %(since)s AND at < %(until)s)
                  WHERE held >= 0
                  GROUP BY profile_id, held) AS e
            LEFT JOIN (SELECT profile_id, timestamp, revenue FROM {db}.events FINAL
                       WHERE {ORDER}) AS o ON o.profile_id = e.profile_id
            GROUP BY profile_id, held)
        GROUP BY held"""
    params = {**_period(since, until), "sub": subscription or "", "days": window_days}
    rows = client.query(sql, parameters=params).result_rows
    arms = {bool(held): Arm(int(n), int(converted), [float(r) for r in revenue])
            for held, n, converted, revenue in rows}  # fmt: skip
    return arms.get(False, Arm(0, 0)), arms.get(True, Arm(0, 0))


def subscriptions_decided(client: Queries, db: str, since: datetime, until: datetime
                          ) -> list[str]:  # fmt: skip
    """The marketing subscriptions that decided deliveries in the period (transactional ones
    are never held out: there is no uplift to measure)."""
    sql = f"""SELECT DISTINCT subscription FROM {db}.deliveries FINAL
              WHERE final = 1 AND kind = 'marketing' AND at >= %(since)s AND at < %(until)s
              ORDER BY subscription"""
    return [str(r[0]) for r in client.query(sql, parameters=_period(since, until)).result_rows]


def cohort_retention(client: Queries, db: str, since: datetime, until: datetime
                     ) -> dict[str, list[int]]:  # fmt: skip
    """Cohort (YYYY-MM of the first order in the period) → buyers in month 0, 1, 2, … after
    it (month 0: the cohort's size), up to the period's last month."""
    sql = f"""
        SELECT formatDateTime(f.start, '%%Y-%%m'), dateDiff('month', f.start,
               toStartOfMonth(o.timestamp)) AS k, uniqExact(o.profile_id)
        FROM (SELECT profile_id, timestamp FROM {db}.events FINAL
              WHERE {ORDER} AND timestamp >= %(since)s AND timestamp < %(until)s) AS o
        JOIN (SELECT profile_id, toStartOfMonth(min(timestamp)) AS start FROM {db}.events FINAL
              WHERE {ORDER} AND timestamp >= %(since)s AND timestamp < %(until)s
              GROUP BY profile_id) AS f ON f.profile_id = o.profile_id
        GROUP BY f.start, k ORDER BY f.start, k"""
    out: dict[str, list[int]] = {}
    for month, k, n in client.query(sql, parameters=_period(since, until)).result_rows:
        row = out.setdefault(str(month), [])
        row.extend([0] * (int(k) + 1 - len(row)))
        row[int(k)] = int(n)
    return out


FUNNEL = ("Product Viewed", "Product Added", "Order Completed")


def conversion_funnel(client: Queries, db: str, since: datetime, until: datetime,
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


def segment_sizes(client: Queries, db: str, since: datetime, until: datetime,
                  bucket_s: int = 86_400) -> dict[str, dict[str, int]]:  # fmt: skip
    """Segment → bucket → members at the end of that bucket, for the buckets in the period in
    which the segment changed (it keeps its size in the buckets between). Buckets are days
    (``YYYY-MM-DD``, UTC) by default, else ``bucket_s`` seconds (ISO times of their starts)."""
    day = bucket_s == 86_400
    start = "toDate(at)" if day else "toStartOfInterval(at, toIntervalSecond(%(bucket)s))"
    label = "toString(bucket)" if day else "formatDateTime(bucket, '%%Y-%%m-%%dT%%H:%%i:%%S')"
    since_at = "toDateTime(%(since)s, 'UTC')"
    first = f"toStartOfInterval({since_at}, toIntervalSecond(%(bucket)s))"
    if day:
        first = "toDate(%(since)s)"
    sql = f"""
        SELECT segment, {label}, size FROM (
            SELECT segment, bucket,
                   sum(net) OVER (PARTITION BY segment ORDER BY bucket
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS size
            FROM (SELECT segment, {start} AS bucket,
                         sum(if(transition = 'enter', 1, -1)) AS net
                  FROM {db}.segment_transitions FINAL
                  WHERE at < %(until)s
                  GROUP BY segment, bucket))
        WHERE bucket >= {first}
        ORDER BY segment, bucket"""
    out: dict[str, dict[str, int]] = {}
    params = {**_period(since, until), "bucket": bucket_s}
    for segment, at, size in client.query(sql, parameters=params).result_rows:
        out.setdefault(str(segment), {})[str(at)] = int(size)
    return out


def delivery_outcomes(client: Queries, db: str, since: datetime, until: datetime
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


ENGAGEMENT = {  # event → (channel type, funnel step)
    "Email Delivered": ("email", "delivered"),
    "Email Opened": ("email", "opened"),
    "Email Link Clicked": ("email", "clicked"),
    "Unsubscribed": ("email", "unsubscribed"),
    "SMS Opted Out": ("sms", "unsubscribed"),
}
FUNNEL_STEPS = ("sent", "delivered", "opened", "clicked", "unsubscribed")


def delivery_funnel(client: Queries, db: str, since: datetime, until: datetime,
                    attribution_days: int = 7) -> dict[str, dict[str, int]]:  # fmt: skip
    """Subscription → sent, delivered, opened, clicked, unsubscribed: deliveries (final in the
    period) that reached the provider, and of those the ones a later event of the recipient
    answered. An engagement event (an e-mail opened, clicked, unsubscribed; an SMS STOP) is
    credited to the latest delivery on its channel to that profile at or before it, within
    ``attribution_days``; a delivery counts once per step. ``delivered``: the connector's own
    confirmation (a webhook's 2xx) or an ``Email Delivered`` event."""
    period = _period(since, until)
    sent = f"""
        SELECT subscription, count(), countIf(status = 'delivered') FROM {db}.deliveries FINAL
        WHERE final = 1 AND status IN ('sent', 'delivered') AND at >= %(since)s AND at < %(until)s
        GROUP BY subscription"""
    out = {str(sub): {"sent": int(n), "delivered": int(confirmed), "opened": 0, "clicked": 0,
                      "unsubscribed": 0}
           for sub, n, confirmed in client.query(sent, parameters=period).result_rows}  # fmt: skip
    cases = " ".join(f"WHEN '{name}' THEN '{kind}'" for name, (kind, _s) in ENGAGEMENT.items())
    steps = " ".join(f"WHEN '{name}' THEN '{step}'" for name, (_k, step) in ENGAGEMENT.items())
    names = ", ".join(f"'{name}'" for name in ENGAGEMENT)
    engaged = f"""
        SELECT d.subscription, e.step, uniqExact(d.delivery_id)
        FROM (SELECT profile_id, timestamp, CASE event {cases} END AS channel_type,
                     CASE event {steps} END AS step
              FROM {db}.events FINAL
              WHERE event IN ({names}) AND timestamp >= %(since)s) AS e
        ASOF JOIN (SELECT profile_id, channel_type, delivery_id, subscription, status, at
                   FROM {db}.deliveries FINAL
                   WHERE final = 1 AND status IN ('sent', 'delivered')
                     AND at >= %(since)s AND at < %(until)s) AS d
          ON e.profile_id = d.profile_id AND e.channel_type = d.channel_type
             AND e.timestamp >= d.at
        WHERE e.timestamp < d.at + toIntervalDay(%(days)s)
          AND NOT (e.step = 'delivered' AND d.status = 'delivered')
        GROUP BY d.subscription, e.step"""
    params = {**period, "days": attribution_days}
    for sub, step, n in client.query(engaged, parameters=params).result_rows:
        out.setdefault(str(sub), dict.fromkeys(FUNNEL_STEPS, 0))[str(step)] += int(n)
    return out


def clv_customers(client: Queries, db: str, since: datetime, until: datetime
                  ) -> tuple[Customers, float]:  # fmt: skip
    """Each buyer's order history in the period as the CLV model reads it, in days (order days,
    the end of observation being the last day before ``until``), and the mean first-day value."""
    sql = f"""
        SELECT count() - 1, dateDiff('day', min(day), max(day)),
               dateDiff('day', min(day), toDate(%(until)s - toIntervalSecond(1))),
               if(count() > 1,
                  toFloat64(sum(value) - argMin(value, day)) / (count() - 1), 0),
               toFloat64(argMin(value, day))
        FROM (SELECT profile_id, toDate(timestamp) AS day,
                     sum(toDecimal128(toString(revenue), 6)) AS value
              FROM {db}.events FINAL
              WHERE {ORDER} AND timestamp >= %(since)s AND timestamp < %(until)s
              GROUP BY profile_id, day)
        GROUP BY profile_id ORDER BY profile_id"""
    rows = client.query(sql, parameters=_period(since, until)).result_rows
    columns = list(zip(*rows, strict=True)) if rows else [(), (), (), (), ()]
    customers = Customers(*(tuple(float(v) for v in col) for col in columns[:4]))
    first = columns[4]
    return customers, (sum(float(v) for v in first) / len(first) if first else 0.0)
