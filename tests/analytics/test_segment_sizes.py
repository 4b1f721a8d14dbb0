"""Segment sizes over time and delivery outcomes per subscription, from the analytics tables,
equal to a pandas fold of the same transitions and deliveries (replayed copies included)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from warehousetest import insert_docs
from wayline.connectors.clickhouse import Client
from wayline.connectors.kpis import delivery_outcomes, segment_sizes

pytestmark = pytest.mark.timeout(120)
START = datetime(2026, 9, 1, tzinfo=UTC)


def test_sizes_over_time_and_outcomes_equal_pandas(migrated: tuple[Client, str]) -> None:
    client, database = migrated
    rng = random.Random(4)
    transitions: list[dict[str, Any]] = []
    inside: dict[tuple[str, str], bool] = {}
    for n in range(3000):
        segment, pid = rng.choice(["vip", "lapsed"]), f"p{rng.randrange(300)}"
        key = (segment, pid)
        kind = "exit" if inside.get(key) else "enter"  # a profile alternates, as in the stream
        inside[key] = kind == "enter"
        at = START + timedelta(minutes=n * 13)
        transitions.append({"id": f"t{n}", "segment": segment, "profile_id": pid,
                            "transition": kind, "rule_version": 1, "at": at.isoformat(),
                            "cause": "test"})  # fmt: skip
    records = [{"profile_id": t["profile_id"], "transitions": [t]} for t in transitions]
    insert_docs(client, database, "segments", records, again_every=5)
    statuses = ["sent", "suppressed", "held_out", "frequency_capped", "delivered"]
    deliveries = [{"profile_id": f"p{i}", "delivery_id": f"d{i}", "trigger_id": f"t{i}",
                   "trigger": "cart_abandoned", "subscription": rng.choice(["a", "b"]),
                   "channel": "mail", "channel_type": "email", "kind": "marketing",
                   "status": rng.choice(statuses), "final": True, "reason": "x", "attempt": 1,
                   "at": (START + timedelta(hours=i)).isoformat()} for i in range(500)]  # fmt: skip
    insert_docs(client, database, "deliveries", deliveries, again_every=5)
    since, until = START + timedelta(days=3), START + timedelta(days=20)

    frame = pd.DataFrame(transitions)
    frame["at"] = pd.to_datetime(frame["at"])
    frame = frame[frame["at"] < pd.Timestamp(until)]
    frame["day"] = frame["at"].dt.strftime("%Y-%m-%d")
    frame["net"] = frame["transition"].map({"enter": 1, "exit": -1})
    daily = frame.groupby(["segment", "day"])["net"].sum().groupby(level=0).cumsum()
    expected = {s: {d: int(v) for (seg, d), v in daily.items() if seg == s and d >= "2026-09-04"}
                for s in ("lapsed", "vip")}  # fmt: skip
    assert segment_sizes(client, database, since, until) == expected
    # by hour: the sizes at the end of each hour that changed, from the hour of `since` on
    frame["hour"] = frame["at"].dt.floor("h")
    hourly = frame.groupby(["segment", "hour"])["net"].sum().groupby(level=0).cumsum()
    first_hour = pd.Timestamp(since)
    by_hour = {s: {h.strftime("%Y-%m-%dT%H:%M:%S"): int(v) for (seg, h), v in hourly.items()
                   if seg == s and h >= first_hour} for s in ("lapsed", "vip")}  # fmt: skip
    assert segment_sizes(client, database, since, until, 3600) == by_hour

    chosen = pd.DataFrame(deliveries)
    chosen["at"] = pd.to_datetime(chosen["at"])
    chosen = chosen[(chosen["at"] >= pd.Timestamp(since)) & (chosen["at"] < pd.Timestamp(until))]
    counts = chosen.groupby(["subscription", "status"]).size()
    expected_outcomes: dict[str, dict[str, int]] = {}
    for (sub, status), n in counts.items():
        expected_outcomes.setdefault(sub, {})[status] = int(n)
    assert delivery_outcomes(client, database, since, until) == expected_outcomes
