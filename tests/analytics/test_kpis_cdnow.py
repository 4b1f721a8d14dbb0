"""KPIs from the analytics tables equal an independent pandas computation on the real CDNOW
purchase log (23,570 customers, 69,659 orders): repeat-purchase rate, AOV, historic CLV,
monthly active buyers, churn and retention by cohort, for the whole period and for a part of it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
from cdnow_oracle import cdnow_log, expected_churn, expected_orders, within

from wayline.connectors.clickhouse import Client, connect, migrate
from wayline.connectors.kpis import churn_by_cohort, cohort_retention, monthly_active_buyers, orders
from wayline.connectors.warehouse import TABLES

pytestmark = pytest.mark.timeout(180)
PERIODS = [
    (datetime(1997, 1, 1, tzinfo=UTC), datetime(1998, 7, 1, tzinfo=UTC)),
    (datetime(1997, 3, 1, tzinfo=UTC), datetime(1997, 9, 1, tzinfo=UTC)),
]


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    return cdnow_log()


@pytest.fixture(scope="module")
def loaded(log: pd.DataFrame, chdb_path: Any) -> Any:
    """The log in the events table, as the sink writes resolved events (with each row twice
    under another offset, as a replay leaves it: FINAL must fold it)."""
    database = "kpis_cdnow"
    client = connect(None, chdb_path, database)
    client.command(f"DROP DATABASE IF EXISTS {database}")
    client.command(f"CREATE DATABASE {database}")
    migrate(client, database)
    table = TABLES["events.resolved"]
    rows = []
    for offset, order in enumerate(log.itertuples()):
        doc = {"profile_id": order.customer_id, "messageId": order.order_id, "type": "track",
               "event": "Order Completed", "context": {"channel": "store"},
               "timestamp": order.at.isoformat(), "receivedAt": order.at.isoformat(),
               "properties": {"order_id": order.order_id,
                              "revenue": order.dollar_value}}  # fmt: skip
        row = table.row(None, doc, {})
        assert row is not None
        rows.append([*row, 0, offset])
        if offset % 7 == 0:
            rows.append([*row, 1, offset])  # a replayed copy
    client.insert(f"{database}.events", rows, column_names=list(table.columns))
    yield client, database
    client.command(f"DROP DATABASE IF EXISTS {database}")


@pytest.mark.parametrize(("since", "until"), PERIODS)
def test_order_kpis_equal_pandas(
    loaded: tuple[Client, str], log: pd.DataFrame, since: datetime, until: datetime
) -> None:
    client, database = loaded
    expected = expected_orders(log, since, until)
    found = orders(client, database, since, until)
    assert (found.orders, found.buyers) == (expected["orders"], expected["buyers"])
    assert found.revenue == pytest.approx(expected["revenue"], rel=1e-9)
    assert found.aov == pytest.approx(expected["aov"], rel=1e-9)
    assert found.historic_clv == pytest.approx(expected["historic_clv"], rel=1e-9)
    assert found.repeat_purchase_rate == pytest.approx(expected["repeat_purchase_rate"])


@pytest.mark.parametrize(("since", "until"), PERIODS)
def test_monthly_buyers_and_cohort_churn_equal_pandas(
    loaded: tuple[Client, str], log: pd.DataFrame, since: datetime, until: datetime
) -> None:
    client, database = loaded
    expected = expected_orders(log, since, until)
    assert (
        monthly_active_buyers(client, database, since, until) == expected["active_buyers_by_month"]
    )
    cohorts = churn_by_cohort(client, database, since, until)
    assert [(c.month, c.customers, c.churned) for c in cohorts] == expected_churn(log, since, until)
    assert sum(c.customers for c in cohorts) == expected["buyers"]
    assert any(c.churned for c in cohorts)


@pytest.mark.parametrize(("since", "until"), PERIODS)
def test_cohort_retention_equals_pandas(
    loaded: tuple[Client, str], log: pd.DataFrame, since: datetime, until: datetime
) -> None:
    client, database = loaded
    part = within(log, since, until).copy()
    part["month"] = part["at"].dt.year * 12 + part["at"].dt.month - 1
    first = part.groupby("customer_id")["month"].min().rename("first")
    part = part.join(first, on="customer_id")
    part["k"] = part["month"] - part["first"]
    table = part.groupby(["first", "k"])["customer_id"].nunique()
    expected: dict[str, list[int]] = {}
    for (start, k), n in table.items():
        row = expected.setdefault(f"{start // 12}-{start % 12 + 1:02d}", [])
        row.extend([0] * (k + 1 - len(row)))
        row[k] = n
    found = cohort_retention(client, database, since, until)
    assert found == expected
    assert sum(row[0] for row in found.values()) == part["customer_id"].nunique()
