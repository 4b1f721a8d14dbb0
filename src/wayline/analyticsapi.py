"""``GET /v1/analytics/...``: the KPIs of a period (``?since=&until=``, ISO dates or times;
default the last 90 days) as JSON, for a Bearer API key.

Answered by the process that may query ClickHouse (``wayline.warehouse``): 503 with a reason
elsewhere, and 503 with ``Retry-After`` while ClickHouse cannot be reached — never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse

from wayline import kpireport
from wayline.config.workspace import WaylineConfig
from wayline.connectors.clickhouse import ClickHouseError, Queries
from wayline.kpireport import Period
from wayline.profileapi import Answer, Credentials
from wayline.routes import ErrorReply
from wayline.schemas.errors import RetryableError
from wayline.warehouse import Warehouse

log = logging.getLogger(__name__)
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
Part = Callable[[Queries, str, Period], dict[str, Any]]
Since = Annotated[str | None, Query(description="start, ISO date or time (default: until − 90 d)")]
Until = Annotated[str | None, Query(description="end, exclusive (default: now)")]
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorReply, "description": "`since` or `until` is not a time, or not in order"},
    401: {"model": ErrorReply, "description": "missing or unknown API key"},
    503: {"model": ErrorReply, "description": "ClickHouse is not reachable from this process"},
}


class _Answer:
    """401 without a key, 400 for a bad period, 503 when ClickHouse cannot answer, else the
    part of the report asked for, with its period."""

    def __init__(self, config: WaylineConfig, warehouse: Warehouse | None, unavailable: str):
        self.keys = Answer(config)
        self.warehouse = warehouse
        self.unavailable = unavailable

    def __call__(self, credentials: Any, since: str | None, until: str | None, part: Part) -> Any:
        if not self.keys.authorized(credentials):
            return self.keys(credentials, None, "analytics")
        try:
            period = Period.parse(since, until, datetime.now(UTC))
        except ValueError as exc:
            return JSONResponse({"code": "invalid_period", "message": str(exc)}, status_code=400)
        w = self.warehouse
        if w is None:
            body = {"code": "analytics_unavailable", "message": self.unavailable}
            return JSONResponse(body, status_code=503)
        try:
            return {"period": period.json(), **part(w.client(), w.database, period)}
        except (RetryableError, ClickHouseError, OSError) as exc:
            log.warning("analytics query failed: %s", exc)
            body = {"code": "clickhouse_unavailable", "message": f"ClickHouse: {exc}"[:500]}
            return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


def mount_analytics(app: FastAPI, config: WaylineConfig, warehouse: Warehouse | None,
                    unavailable: str) -> None:  # fmt: skip
    """``unavailable``: why this process cannot answer, when ``warehouse`` is None."""
    run = _Answer(config, warehouse, unavailable)

    def get(path: str, summary: str) -> Callable[[Endpoint], Endpoint]:
        return app.get(f"/v1/analytics/{path}", summary=summary, responses=RESPONSES)

    @get("report", "Every KPI of the period in one document (what `wayline report` draws)")
    def report(credentials: Credentials, since: Since = None, until: Until = None,
               window_days: Annotated[int, Query(ge=1, le=90)] = 7) -> Any:  # fmt: skip
        return run(credentials, since, until,
                   lambda c, db, p: kpireport.report(c, db, p, window_days))  # fmt: skip

    @get("orders", "Orders, revenue, AOV, historic CLV, repeat-purchase rate, buyers by month")
    def orders(credentials: Credentials, since: Since = None, until: Until = None) -> Any:
        return run(credentials, since, until, kpireport.orders)

    @get("clv", "Predicted orders and revenue of the period's buyers (BG/NBD + Gamma-Gamma)")
    def clv(credentials: Credentials, since: Since = None, until: Until = None,
            horizon_days: Annotated[int, Query(ge=1, le=3650)] = 365) -> Any:  # fmt: skip
        return run(credentials, since, until,
                   lambda c, db, p: kpireport.clv(c, db, p, horizon_days))  # fmt: skip

    @get("funnel", "Conversion: product viewed → added → order, within a window of the view")
    def funnel(credentials: Credentials, since: Since = None, until: Until = None,
               window_hours: Annotated[int, Query(ge=1, le=24 * 90)] = 168) -> Any:  # fmt: skip
        return run(credentials, since, until,
                   lambda c, db, p: kpireport.funnel(c, db, p, window_hours))  # fmt: skip

    @get("cohorts", "Cohorts by month of first order: size, churn, retention by month")
    def cohorts(credentials: Credentials, since: Since = None, until: Until = None,
                inactive_days: Annotated[int, Query(ge=1, le=730)] = 90) -> Any:  # fmt: skip
        return run(credentials, since, until,
                   lambda c, db, p: kpireport.cohorts(c, db, p, inactive_days))  # fmt: skip

    @get("segments", "Segment sizes over time (members at the end of each day they changed)")
    def segments(credentials: Credentials, since: Since = None, until: Until = None) -> Any:
        return run(credentials, since, until, kpireport.segments)

    @get("deliveries", "Outcomes and the funnel (sent … unsubscribed) per subscription")
    def deliveries(credentials: Credentials, since: Since = None, until: Until = None) -> Any:
        return run(credentials, since, until, kpireport.deliveries)

    @get("uplift", "Uplift against the holdout per subscription, and against the control group")
    def uplift(credentials: Credentials, since: Since = None, until: Until = None,
               window_days: Annotated[int, Query(ge=1, le=90)] = 7) -> Any:  # fmt: skip
        return run(credentials, since, until,
                   lambda c, db, p: kpireport.uplifts(c, db, p, window_days))  # fmt: skip
