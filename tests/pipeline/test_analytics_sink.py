"""The analytics sink on the real broker and the embedded ClickHouse engine (chdb): every event,
trigger and profile the pipeline wrote is one row, duplicates sent by clients are not rows, and
a full replay of the topics (a new consumer group, from the beginning) changes no count."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from kafkatest import TEST_CONSUMER, produce, read_topic, replay_pipeline, running
from wayline.config.workspace import parse_config
from wayline.connectors.clickhouse import Client, Queries, applied, connect, migrate, migrations
from wayline.schemas.topics import Topics
from wayline.streams.broker import free_port
from wayline.streams.clients import KafkaConfig
from wayline.streams.registry import WorkerContext, default_registry
from wayline.streams.worker import WorkerOptions

pytestmark = pytest.mark.timeout(240)
CONFIG = parse_config("triggers: {milestones: {orders: [1, 2]}}")


def test_migrations_apply_once_in_order(warehouse: tuple[Client, str]) -> None:
    client, database = warehouse
    first = migrate(client, database)
    assert [m.version for m in first] == [m.version for m in migrations()]
    assert migrate(client, database) == []  # a second start applies nothing
    assert [v for v, _name, _at in applied(client, database)] == [m.version for m in first]


def count(client: Client, database: str, table: str, final: bool = True) -> int:
    rows = client.query(f"SELECT count() FROM {database}.{table}{' FINAL' if final else ''}")
    return int(rows.result_rows[0][0])


def test_every_record_once_and_a_full_replay_changes_nothing(
    kafka: KafkaConfig, tmp_path: Path, warehouse: tuple[Client, str]
) -> None:
    client, database = warehouse
    migrate(client, database)
    events: list[dict[str, Any]] = []
    for i in range(60):
        user = f"u{i % 12}"
        name = "Order Completed" if i % 5 == 0 else "Product Viewed"
        props = {"order_id": f"o{i}", "revenue": 10.0 + i} if i % 5 == 0 else {"product_id": "P"}
        at = f"2026-11-0{1 + i % 9}T10:00:00Z"
        events.append({"type": "track", "userId": user, "event": name, "messageId": f"m{i}",
                       "timestamp": at, "properties": props, "receivedAt": at,
                       "context": {"channel": "web"}})  # fmt: skip
    payloads = [(e["userId"].encode(), orjson.dumps(e)) for e in events]
    with replay_pipeline(kafka, CONFIG, 3, tmp_path / "state") as (topics, _workers):
        produce(kafka, topics.raw, payloads + payloads[:10])  # ten sent twice
        resolved = read_topic(kafka, topics.resolved, 60, timeout_s=60, settle_s=1)
        triggers = read_topic(kafka, topics.triggers, 1, timeout_s=30, settle_s=2)
        profiles = {m.key for m in read_topic(kafka, topics.profiles, 12, timeout_s=30)}

        def sink(group_suffix: str) -> int:
            options = WorkerOptions(consumer_overrides={**TEST_CONSUMER, "group.id": group_suffix},
                                    state_dir=tmp_path / "sink")  # fmt: skip
            context = WorkerContext(topics=topics, kafka=kafka, options=options,
                                    warehouse=lambda: client, database=database)  # fmt: skip
            spec = default_registry()["analytics"]
            records = len(resolved) + len(triggers) + len(profiles)
            with running(spec.create(context)) as worker:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and worker.stats().events_in < records:
                    time.sleep(0.3)
                return worker.stats().events_in

        assert sink("first") >= 60
        counted = {t: count(client, database, t) for t in ("events", "triggers", "profiles")}
        raw_before = count(client, database, "events", final=False)
        assert sink("replay") >= 60  # another group: every topic read again from the beginning
        again = {t: count(client, database, t) for t in ("events", "triggers", "profiles")}
    events_kept = sum(1 for m in resolved if m.header("wayline.kind") == b"event")
    assert counted == {"events": 60, "triggers": len(triggers), "profiles": len(profiles)}
    assert events_kept == 60
    assert again == counted  # the replay folded away
    assert count(client, database, "events", final=False) >= raw_before
    revenue = client.query(f"SELECT sum(revenue) FROM {database}.events FINAL").result_rows[0][0]
    assert revenue == pytest.approx(sum(10.0 + i for i in range(0, 60, 5)))


def test_clickhouse_away_pauses_the_sink_and_loses_nothing(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path, warehouse: tuple[Client, str]
) -> None:
    """A ClickHouse server that refuses connections (a real client against a closed port) for
    the first seconds: the sink retries with backoff, says what it waits for, keeps its lag, and
    once ClickHouse answers writes every event exactly once."""
    client, database = warehouse
    migrate(client, database)
    away_until = time.monotonic() + 6
    attempts: list[float] = []

    def reach() -> Queries:
        attempts.append(time.monotonic())
        if time.monotonic() < away_until:
            return connect(f"http://127.0.0.1:{free_port()}", tmp_path, database)
        return client

    docs: list[dict[str, Any]] = [{"profile_id": f"p{i % 7}", "messageId": f"m{i}", "type": "track",
             "event": "Product Viewed", "timestamp": "2026-11-02T10:00:00Z",
             "receivedAt": "2026-11-02T10:00:00Z", "context": {"channel": "web"},
             "properties": {}} for i in range(40)]  # fmt: skip
    produce(
        kafka, topics.resolved, [(str(d["profile_id"]).encode(), orjson.dumps(d)) for d in docs]
    )
    options = WorkerOptions(consumer_overrides=TEST_CONSUMER, state_dir=tmp_path / "sink")
    context = WorkerContext(topics=topics, kafka=kafka, options=options, warehouse=reach,
                            database=database)  # fmt: skip
    waited: list[str] = []
    with running(default_registry()["analytics"].create(context)) as worker:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and count(client, database, "events") < 40:
            if worker.stats().retrying:
                waited.append(worker.stats().retrying)
            time.sleep(0.2)
        time.sleep(1)
        stats = worker.stats()
    assert count(client, database, "events") == 40
    assert count(client, database, "events", final=False) == 40  # no batch went in twice
    assert waited
    assert "ClickHouse" in waited[0]
    assert len([a for a in attempts if a < away_until]) >= 2  # it tried again while away
    assert stats.retries >= 1
    assert stats.dead_lettered == 0
