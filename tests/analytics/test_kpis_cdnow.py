"""KPIs from the analytics tables equal an independent pandas computation on the real CDNOW
purchase log (23,570 customers, 69,659 orders): repeat-purchase rate, AOV, historic CLV,
monthly active buyers, churn and retention by cohort, for the whole period and for a part of it."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from cdnow_oracle import cdnow_log, expected_churn, expected_orders, within
from wayline.connectors.cdnow import cdnow_path
from wayline.connectors.clickhouse import Client, connect, migrate
from wayline.connectors.kpis import (
    churn_by_cohort,
    clv_customers,
    cohort_retention,
    monthly_active_buyers,
    orders,
)
from wayline.connectors.warehouse import TABLES
from wayline.segments import clv

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
        (row,) = table.rows(None, doc, {})
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


LIFETIMES = """
import json, sys
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data
since, until, path = sys.argv[1:4]
frame = pd.read_csv(path, sep=r"\\s+", dtype={"customer_id": str, "date": str}, engine="python")
frame["day"] = pd.to_datetime(frame["date"], format="%Y%m%d")
frame = frame[(frame["day"] >= since) & (frame["day"] < until)]
end = pd.Timestamp(until) - pd.Timedelta(days=1)
s = summary_data_from_transaction_data(frame, "customer_id", "day", "dollar_value",
                                       observation_period_end=end, freq="D").sort_index()
bg = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
orders = bg.conditional_expected_number_of_purchases_up_to_time(365, s["frequency"],
                                                                s["recency"], s["T"])
repeat = s[(s["frequency"] > 0) & (s["monetary_value"] > 0)]
gg = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
value = gg.conditional_expected_average_profit(repeat["frequency"], repeat["monetary_value"])
print(json.dumps({"summary": s[["frequency", "recency", "T", "monetary_value"]].values.tolist(),
                  "bgnbd": dict(bg.params_), "gamma_gamma": dict(gg.params_),
                  "orders": float(orders.sum()), "repeat_value": float(value.sum())}))
"""


def test_predictive_clv_equals_lifetimes(loaded: tuple[Client, str]) -> None:
    """BG/NBD and Gamma-Gamma fitted to the customers' histories read from ClickHouse equal
    the ``lifetimes`` package's fit of the same log (its own summary, in a process of its own:
    importing it changes pandas options)."""
    since, until = PERIODS[0]
    client, database = loaded
    out = subprocess.run([sys.executable, "-c", LIFETIMES, since.date().isoformat(),
                          until.date().isoformat(), str(cdnow_path())],
                         capture_output=True, text=True, check=True, timeout=300)  # fmt: skip
    oracle = json.loads(out.stdout.strip().splitlines()[-1])
    customers, _first = clv_customers(client, database, since, until)
    rows = list(zip(customers.frequency, customers.recency, customers.age, customers.value,
                    strict=True))  # fmt: skip
    assert len(rows) == len(oracle["summary"]) == 23_570
    expected = sorted(map(tuple, oracle["summary"]))
    assert [r[:3] for r in sorted(rows)] == [r[:3] for r in expected]  # counts of days: exact
    assert [r[3] for r in sorted(rows)] == pytest.approx([r[3] for r in expected], rel=1e-9)
    bgnbd = clv.fit_bgnbd(customers)
    for name, value in oracle["bgnbd"].items():
        assert bgnbd[name] == pytest.approx(value, rel=2e-3), name
    assert clv.expected_orders(bgnbd, customers, 365).sum() == pytest.approx(
        oracle["orders"], rel=1e-3
    )
    gg = clv.fit_gamma_gamma(customers)
    assert gg is not None
    for name, value in oracle["gamma_gamma"].items():
        assert gg[name] == pytest.approx(value, rel=1e-2), name
    found = clv.forecast(customers, 365, 0.0)
    assert found is not None
    assert found.expected_revenue > 0
    assert found.clv_per_customer == pytest.approx(found.expected_revenue / 23_570)
