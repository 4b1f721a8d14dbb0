"""The CDNOW purchase log as pandas sees it, and the KPIs of a period computed by pandas: the
independent oracle of the analytics tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from wayline.connectors.cdnow import cdnow_path


def cdnow_log() -> pd.DataFrame:
    """One row per order: customer_id, at (noon UTC of its day), dollar_value, order_id."""
    frame = pd.read_csv(cdnow_path(), sep=r"\s+", dtype={"customer_id": str, "date": str},
                        engine="python")  # fmt: skip
    frame["at"] = pd.to_datetime(frame["date"], format="%Y%m%d").dt.tz_localize("UTC")
    frame["at"] = frame["at"] + pd.Timedelta(hours=12)
    frame["order_id"] = [f"cdnow-{n}" for n in range(1, len(frame) + 1)]
    return frame


def within(log: pd.DataFrame, since: datetime, until: datetime) -> pd.DataFrame:
    return log[(log["at"] >= pd.Timestamp(since)) & (log["at"] < pd.Timestamp(until))]


def expected_orders(log: pd.DataFrame, since: datetime, until: datetime) -> dict[str, Any]:
    part = within(log, since, until)
    per_customer = part.groupby("customer_id").size()
    revenue = float(part["dollar_value"].sum())
    months = part["at"].dt.strftime("%Y-%m")
    return {"orders": len(part), "buyers": len(per_customer), "revenue": revenue,
            "aov": revenue / len(part), "historic_clv": revenue / len(per_customer),
            "repeat_purchase_rate": float((per_customer >= 2).mean()),
            "active_buyers_by_month":
                part.groupby(months)["customer_id"].nunique().to_dict()}  # fmt: skip


def expected_churn(log: pd.DataFrame, since: datetime, until: datetime,
                   inactive_days: int = 90) -> list[tuple[str, int, int]]:  # fmt: skip
    """(cohort month, customers, churned) in month order."""
    spans = within(log, since, until).groupby("customer_id")["at"].agg(["min", "max"])
    spans["cohort"] = spans["min"].dt.strftime("%Y-%m")
    spans["churned"] = spans["max"] < pd.Timestamp(until) - pd.Timedelta(days=inactive_days)
    table = spans.groupby("cohort")["churned"].agg(["size", "sum"])
    return [(str(month), int(row["size"]), int(row["sum"])) for month, row in table.iterrows()]
