"""A three-broker Apache Kafka cluster (KRaft, replication factor 3, min.insync.replicas 2):
one broker is SIGKILLed under load and nothing is lost — the collector keeps answering (or
asks for a retry), the workers carry on, and every acknowledged event is in the pipeline
exactly once."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_broker_faults import Sender, counted

from apachekafka import ApacheKafka
from conftest import _wayline
from kafkatest import read_events, wait_for
from wayline.streams.clients import KafkaConfig
from waylineproc import Running

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.timeout(300)]


def all_counted(running: Running, events: int) -> bool:
    return counted(running) == events


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafka]:
    nodes = ApacheKafka(tmp_path_factory.mktemp("cluster"), size=3)
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()


def test_losing_one_of_three_brokers_under_load_loses_nothing(
    cluster: ApacheKafka, tmp_path: Path
) -> None:
    kafka = KafkaConfig(cluster.bootstrap)
    env = {"WAYLINE_REPLICATION_FACTOR": "3"}
    running: Running
    for running in _wayline(kafka, tmp_path, env=env):
        sender = Sender(running.url)
        thread = threading.Thread(target=sender.run, daemon=True)
        thread.start()
        time.sleep(4)
        cluster.kill(cluster.nodes[1])  # a broker (and a controller) of three
        killed_at = time.monotonic()
        time.sleep(12)
        sender.stop.set()
        thread.join(60)
        assert running.process is not None
        assert running.process.poll() is None
        after = [s for t, s in sender.replies if t > killed_at + 5]
        assert after, "requests went on after the loss"
        assert after.count(200) >= len(after) - 2, after
        events = read_events(kafka, running.topics, expect=len(sender.sent), timeout_s=90)
        assert {e["messageId"] for e in events} == set(sender.sent), "none lost, none made up"
        wait_for(functools.partial(all_counted, running, len(sender.sent)), 60, "each once")
        print(f"one of three brokers lost: {len(sender.sent)} events, all there once")
