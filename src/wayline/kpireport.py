"""The KPIs of one period as one JSON document: what ``/v1/analytics/...`` answers and what
``wayline report`` draws. Every part is a query of ``connectors.kpis``; nothing is computed
twice or anywhere else."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from wayline.connectors import kpis
from wayline.connectors.clickhouse import Queries
from wayline.segments.uplift import Arm, uplift

DEFAULT_DAYS = 90


@dataclass(frozen=True)
class Period:
    since: datetime
    until: datetime

    @classmethod
    def parse(cls, since: str | None, until: str | None, now: datetime) -> Period:
        """``[since, until)`` from ISO dates or times (UTC when no offset is given); until
        defaults to now, since to 90 days before until. ``ValueError`` names the bad one."""
        end = _moment("until", until) if until else now
        start = _moment("since", since) if since else end - timedelta(days=DEFAULT_DAYS)
        if start >= end:
            raise ValueError(
                f"since ({start.isoformat()}) must be before until ({end.isoformat()})"
            )
        return cls(start, end)

    def json(self) -> dict[str, str]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat()}


def _moment(name: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not an ISO date or time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def orders(client: Queries, db: str, p: Period) -> dict[str, Any]:
    found = kpis.orders(client, db, p.since, p.until)
    by_month = kpis.monthly_active_buyers(client, db, p.since, p.until)
    return {**asdict(found), "aov": found.aov, "historic_clv": found.historic_clv,
            "repeat_purchase_rate": found.repeat_purchase_rate,
            "active_buyers_by_month": by_month}  # fmt: skip


def clv(client: Queries, db: str, p: Period, horizon_days: int = 365) -> dict[str, Any]:
    """Predicted orders and revenue of the period's buyers over the next ``horizon_days``."""
    from wayline.segments.clv import forecast

    customers, first_mean = kpis.clv_customers(client, db, p.since, p.until)
    found = forecast(customers, horizon_days, first_mean)
    if found is None:
        return {"horizon_days": horizon_days, "forecast": None}
    return {"horizon_days": horizon_days, "model": "BG/NBD + Gamma-Gamma",
            "forecast": {**asdict(found), "clv_per_customer": found.clv_per_customer}}  # fmt: skip


def funnel(client: Queries, db: str, p: Period, window_hours: int = 168) -> dict[str, Any]:
    counts = kpis.conversion_funnel(client, db, p.since, p.until, window_hours * 3600)
    steps = [{"step": name, "profiles": n,
              "of_first": n / counts[0] if counts[0] else 0.0,
              "of_previous": n / counts[i - 1] if i and counts[i - 1] else (1.0 if n else 0.0)}
             for i, (name, n) in enumerate(zip(kpis.FUNNEL, counts, strict=True))]  # fmt: skip
    return {"window_hours": window_hours, "steps": steps}


def cohorts(client: Queries, db: str, p: Period, inactive_days: int = 90) -> dict[str, Any]:
    churn = {c.month: c for c in kpis.churn_by_cohort(client, db, p.since, p.until, inactive_days)}
    retention = kpis.cohort_retention(client, db, p.since, p.until)
    rows = [{"cohort": month, "customers": c.customers, "churned": c.churned,
             "churn_rate": c.churn_rate,
             "retention": [n / c.customers for n in retention.get(month, [])]}
            for month, c in churn.items()]  # fmt: skip
    return {"inactive_days": inactive_days, "cohorts": rows}


def segments(client: Queries, db: str, p: Period) -> dict[str, Any]:
    """Sizes by day; by hour for a period under three days, by minute under three hours."""
    span = (p.until - p.since).total_seconds()
    bucket = 86_400 if span >= 3 * 86_400 else 3600 if span >= 3 * 3600 else 60
    return {"bucket_s": bucket, "sizes": kpis.segment_sizes(client, db, p.since, p.until, bucket)}


def deliveries(client: Queries, db: str, p: Period) -> dict[str, Any]:
    return {"outcomes": kpis.delivery_outcomes(client, db, p.since, p.until),
            "funnel": kpis.delivery_funnel(client, db, p.since, p.until)}  # fmt: skip


def uplifts(client: Queries, db: str, p: Period, window_days: int = 7) -> dict[str, Any]:
    """Per subscription against its holdout, and every message against the control group."""
    names: list[str | None] = [None, *kpis.subscriptions_decided(client, db, p.since, p.until)]
    rows = []
    for name in names:
        treated, held = kpis.uplift_arms(client, db, name, window_days, p.since, p.until)
        rows.append({"subscription": name or "all (against the control group)",
                     "global": name is None, "treated": _arm(treated), "held_out": _arm(held),
                     "uplift": _uplift(treated, held)})  # fmt: skip
    return {"window_days": window_days, "confidence": 0.95, "uplift": rows}


def _arm(arm: Arm) -> dict[str, Any]:
    revenue = sum(arm.revenue)
    return {"profiles": arm.profiles, "converted": arm.converted, "rate": arm.rate,
            "revenue": revenue}  # fmt: skip


def _uplift(treated: Arm, held: Arm) -> dict[str, Any] | None:
    if treated.profiles < 1 or held.profiles < 1:
        return None  # nothing to compare: no profile reached, or none held out
    return asdict(uplift(treated, held))


def report(client: Queries, db: str, p: Period, window_days: int = 7) -> dict[str, Any]:
    """Every part, as ``GET /v1/analytics/report`` answers it."""
    return {"period": p.json(), "orders": orders(client, db, p), "funnel": funnel(client, db, p),
            "cohorts": cohorts(client, db, p), "segments": segments(client, db, p),
            "clv": clv(client, db, p),
            "deliveries": deliveries(client, db, p),
            "uplift": uplifts(client, db, p, window_days)}  # fmt: skip
