"""Readiness: ClickHouse away degrades analytics and leaves the collector ready; the same
trouble in a pipeline worker makes the process unready."""

from __future__ import annotations

import time
from typing import Any

from wayline.health import BrokerProbe, verdict
from wayline.streams.clients import KafkaConfig


def answering() -> BrokerProbe:
    probe = BrokerProbe(KafkaConfig("127.0.0.1:1"))
    probe.last_ok = time.monotonic()  # as if the cluster answered just now
    return probe


def test_the_analytics_sink_waiting_for_clickhouse_leaves_the_process_ready() -> None:
    workers: dict[str, dict[str, Any]] = {
        "validate": {"assigned": ["raw-0"]},
        "analytics": {"assigned": ["events.resolved-0"], "retrying": "ClickHouse: refused",
                      "stalled": True, "lag": 40},
    }  # fmt: skip
    found = verdict(answering(), workers)
    assert found.ready
    assert found.reasons == []
    assert found.degraded == [
        "worker analytics stalled: 40 messages behind",
        "worker analytics retrying: ClickHouse: refused",
    ]


def test_a_pipeline_worker_retrying_makes_it_unready() -> None:
    workers: dict[str, dict[str, Any]] = {
        "validate": {"assigned": ["raw-0"], "retrying": "broker: all brokers down"},
        "analytics": {"assigned": []},
    }
    found = verdict(answering(), workers)
    assert not found.ready
    assert found.reasons == [
        "worker validate retrying: broker: all brokers down",
        "worker analytics holds no partitions (joining, restoring or idle)",
    ]
