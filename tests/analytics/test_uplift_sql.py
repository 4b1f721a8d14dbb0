"""Uplift from the analytics tables: a synthetic experiment of 12,000 profiles (10 % held out)
with a planted effect — conversion 10 % without the message, 13 % with it, within 7 days — is
found with an interval holding 3 points; with no effect planted, the interval holds 0. Orders
before the message, or after the window, do not count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from warehousetest import table_row
from wayline.connectors.clickhouse import Client
from wayline.connectors.kpis import uplift_arms
from wayline.connectors.warehouse import TABLES
from wayline.segments.policy import in_holdout
from wayline.segments.uplift import uplift

pytestmark = pytest.mark.timeout(180)
START = datetime(2026, 10, 1, tzinfo=UTC)


def plant(client: Client, database: str, lift: float, seed: int) -> dict[bool, int]:
    """The experiment, in the tables; returns the converted profiles per arm (held out: True)."""
    rng = np.random.default_rng(seed)
    deliveries: list[list[Any]] = []
    events: list[list[Any]] = []
    converted = {True: 0, False: 0}
    for i in range(12_000):
        pid = f"p{i:05d}"
        held = in_holdout(pid, "winback", 10)
        sent_at = START + timedelta(minutes=int(rng.integers(0, 20 * 1440)))
        status = "held_out" if held else "sent"
        record = {"profile_id": pid, "delivery_id": f"d{i}", "trigger_id": f"t{i}",
                  "trigger": "churn_risk", "subscription": "winback", "channel": "mail",
                  "channel_type": "email", "kind": "marketing", "status": status, "final": True,
                  "reason": "holdout" if held else "smtp_250", "attempt": 0 if held else 1,
                  "at": sent_at.isoformat()}  # fmt: skip
        deliveries.append(table_row("deliveries", record, i))
        before = sent_at - timedelta(days=2)  # an order before the message: not a conversion
        late = sent_at + timedelta(days=9)  # after the 7-day window: not a conversion either
        orders = [before, late] if i % 11 == 0 else []
        if rng.random() < (0.10 if held else 0.10 + lift):
            orders.append(sent_at + timedelta(hours=int(rng.integers(1, 7 * 24))))
            converted[held] += 1
        for n, at in enumerate(orders):
            doc = {"profile_id": pid, "messageId": f"o{i}-{n}", "type": "track",
                   "event": "Order Completed", "timestamp": at.isoformat(),
                   "receivedAt": at.isoformat(), "context": {"channel": "web"},
                   "properties": {"order_id": f"o{i}-{n}", "revenue": 50.0}}  # fmt: skip
            events.append(table_row("events.resolved", doc, len(events)))
    for table, rows in (("deliveries", deliveries), ("events.resolved", events)):
        columns = list(TABLES[table].columns)
        client.insert(f"{database}.{TABLES[table].name}", rows, column_names=columns)
    return converted


@pytest.mark.parametrize(("lift", "seed"), [(0.03, 3), (0.0, 4)])
def test_uplift_against_the_holdout(migrated: tuple[Client, str], lift: float, seed: int) -> None:
    client, database = migrated
    converted = plant(client, database, lift, seed)
    treated, held = uplift_arms(client, database, "winback", 7, START, START + timedelta(days=30))
    assert treated.profiles + held.profiles == 12_000
    assert abs(held.profiles / 12_000 - 0.10) < 0.01
    assert (treated.converted, held.converted) == (converted[False], converted[True])
    assert sum(treated.revenue) == 50.0 * converted[False]  # only orders inside the window
    found = uplift(treated, held)
    assert found.low < lift < found.high
    assert found.revenue_low is not None
    assert found.revenue_high is not None
    assert found.revenue_low < lift * 50.0 < found.revenue_high
