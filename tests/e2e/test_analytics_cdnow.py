"""The real CDNOW purchase log (23,570 customers, 69,659 orders) sent through the collector by
segment-analytics-python into ``wayline up``: ``/v1/analytics`` gives the KPIs a pandas oracle
computes from the file — with ``wayline up`` SIGKILLed while orders flow in, and again after
``wayline analytics backfill`` has filled an emptied store from the topics."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pandas as pd
import pytest
from segment.analytics import Client as SegmentClient

from cdnow_oracle import cdnow_log, expected_churn, expected_orders
from waylineproc import API_KEY, Running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
PERIODS = [
    (datetime(1997, 1, 1, tzinfo=UTC), datetime(1998, 7, 1, tzinfo=UTC)),
    (datetime(1997, 3, 1, tzinfo=UTC), datetime(1997, 9, 1, tzinfo=UTC)),
]
ALL = PERIODS[0]
REPORT = ("report", "--since", "1997-01-01", "--until", "1998-07-01")


def get(up: Running, part: str, since: datetime, until: datetime) -> Any:
    reply = httpx.get(f"{up.url}/v1/analytics/{part}", timeout=60,
                      params={"since": since.isoformat(), "until": until.isoformat()},
                      headers={"Authorization": f"Bearer {API_KEY}"})  # fmt: skip
    assert reply.status_code == 200, reply.text
    return reply.json()


def rounded(doc: Any) -> Any:
    """``doc`` with floats to 6 places: sums in another order differ in the last bits."""
    if isinstance(doc, float):
        return round(doc, 6)
    if isinstance(doc, dict):
        return {k: rounded(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [rounded(v) for v in doc]
    return doc


def orders_counted(up: Running) -> int:
    try:
        return int(get(up, "orders", *ALL)["orders"])
    except (httpx.HTTPError, AssertionError):
        return -1


def wait_for(up: Running, orders: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    seen = -1
    while time.monotonic() < deadline and (seen := orders_counted(up)) < orders:
        time.sleep(1)
    return seen


def send(up: Running, log: pd.DataFrame, errors: list[str]) -> None:
    """Every order through segment-analytics-python; what it gave up on lands in ``errors``."""
    logging.getLogger("segment").setLevel(logging.CRITICAL)
    client = SegmentClient(
        "wk_web_e2e_1",
        host=up.url,
        max_queue_size=len(log) + 1,
        upload_size=500,
        on_error=lambda e, _b: errors.append(str(e)),
    )
    for row in log.itertuples():
        properties = {"order_id": row.order_id, "revenue": float(row.dollar_value)}
        ok, _msg = client.track(user_id=f"C{row.customer_id}", event="Order Completed",
                                properties=properties, timestamp=row.at.to_pydatetime(),
                                message_id=row.order_id)  # fmt: skip
        if not ok:
            errors.append(f"not queued: {row.order_id}")
    client.flush()
    client.join()


def assert_kpis(up: Running, log: pd.DataFrame) -> None:
    for since, until in PERIODS:
        found = get(up, "orders", since, until)
        expected = expected_orders(log, since, until)
        assert (found["orders"], found["buyers"]) == (expected["orders"], expected["buyers"])
        for kpi in ("revenue", "aov", "historic_clv", "repeat_purchase_rate"):
            assert found[kpi] == pytest.approx(expected[kpi], rel=1e-9), kpi
        assert found["active_buyers_by_month"] == expected["active_buyers_by_month"]
        cohorts = get(up, "cohorts", since, until)["cohorts"]
        churn = [(c["cohort"], c["customers"], c["churned"]) for c in cohorts]
        assert churn == expected_churn(log, since, until)


def test_cdnow_through_the_collector_equals_pandas_across_a_crash_and_a_backfill(
    wayline_up_analytics: Running,
) -> None:
    up = wayline_up_analytics
    log = cdnow_log()
    started = time.monotonic()
    failures: list[str] = []
    sender = threading.Thread(target=send, args=(up, log, failures), daemon=True)
    sender.start()
    # SIGKILL while orders flow in: the collector, the pipeline and the sink all part-way; the
    # client retries what was refused, dedupe drops what arrived twice
    part_way = wait_for(up, len(log) // 5, 300)
    assert 0 < part_way < len(log), part_way
    assert up.process is not None
    up.process.kill()
    up.process.wait(10)
    up.start()
    sender.join(600)
    sent_s = time.monotonic() - started
    assert not sender.is_alive()
    assert failures == []
    assert wait_for(up, len(log), 400) == len(log)
    ingested_s = time.monotonic() - started
    time.sleep(3)  # nothing more arrives: a repeat would show as more orders
    assert orders_counted(up) == len(log)
    assert_kpis(up, log)
    status = httpx.get(f"{up.url}/v1/status", headers={"Authorization": f"Bearer {API_KEY}"})
    sink = status.json()["workers"]["analytics"]
    assert sink["dead_lettered"] == 0
    assert sink["steps"]["rows_inserted"] >= len(log) / 2  # since the restart
    before = {p: rounded(get(up, p, *ALL)) for p in ("orders", "cohorts", "funnel")}

    # `wayline report` asks the process that owns the engine, over its API
    assert "69,659 orders" in " ".join(up.cli(*REPORT, "--out", "live.html").split())
    assert "69,659" in (up.cwd / "live.html").read_text()

    up.stop()  # the embedded engine is the sink's: backfill needs it free
    refused = up.cli("analytics", "backfill", refused=True, code=2)
    assert "--replace" in refused
    out = up.cli("analytics", "backfill", "--replace", timeout_s=600)
    assert "events" in out
    # nobody owns the engine now: `wayline report` opens it itself, and draws the same page
    up.cli(*REPORT, "--out", "local.html")
    assert (up.cwd / "local.html").read_text() == (up.cwd / "live.html").read_text()
    up.start()
    assert orders_counted(up) == len(log)
    assert {p: rounded(get(up, p, *ALL)) for p in ("orders", "cohorts", "funnel")} == before
    assert_kpis(up, log)
    print(
        f"CDNOW: {len(log)} orders sent in {sent_s:.0f} s, in ClickHouse after "
        f"{ingested_s:.0f} s (with a SIGKILL and restart)"
    )
