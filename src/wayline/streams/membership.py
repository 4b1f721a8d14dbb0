"""Whether a worker's consumer still takes part in its group, from librdkafka's statistics.

A consumer whose group coordinator is unknown (group state other than ``up``) while the
cluster answers has lost its way: librdkafka 2.16 can stay so for good after a broker outage
(it drops the coordinator's handle and never asks again), and the worker would sit without
partitions. Waiting for other members (``up`` while joining) is normal and never counts.
``Membership`` holds the worker's consumer and replaces such a one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition

from wayline.streams.clients import KafkaConfig

log = logging.getLogger(__name__)

STATS_INTERVAL_MS = 5000  # librdkafka emits statistics this often (``statistics.interval.ms``)


class GroupWatch:
    """``observe`` each statistics document; ``lost_for()`` says how long the coordinator has
    been unknown (0 while the group state is ``up``)."""

    def __init__(self) -> None:
        self.state = "init"
        self.join_state = "init"
        self._state_since: float | None = None  # monotonic time the current state began

    def observe(self, stats: str) -> None:
        """One statistics document (called from ``consume``: never raises)."""
        try:
            group = orjson.loads(stats)["cgrp"]
            state = str(group["state"])
            age_s = float(group.get("stateage", 0)) / 1000
            join_state = str(group.get("join_state", ""))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return  # not a consumer group's statistics: nothing learned
        if state != self.state or self._state_since is None:
            self._state_since = time.monotonic() - age_s
        self.state = state
        self.join_state = join_state

    def lost_for(self, now: float | None = None) -> float:
        if self.state == "up" or self._state_since is None:
            return 0.0
        return (now if now is not None else time.monotonic()) - self._state_since

    def describe(self) -> str:
        return f"group state {self.state} (join state {self.join_state})"


Rebalance = Callable[[Consumer, list[TopicPartition]], None]


@dataclass(frozen=True)
class Callbacks:
    on_assign: Rebalance
    on_revoke: Rebalance  # also for partitions lost


class Membership:
    """A worker's consumer, subscribed to its inputs in its group."""

    def __init__(
        self,
        kafka: KafkaConfig,
        worker: str,
        group: str,
        inputs: list[str],
        callbacks: Callbacks,
        overrides: Mapping[str, object],
        lost_after_s: float,
    ) -> None:
        self.kafka = kafka
        self.worker = worker
        self.group = group
        self.inputs = inputs
        self.callbacks = callbacks
        self.overrides = dict(overrides)
        self.lost_after_s = lost_after_s
        self.watch = GroupWatch()
        self.consumer = self._subscribe()

    def renewed_if_lost(self) -> bool:
        """A new consumer if this one has not known its group coordinator for
        ``lost_after_s`` while the cluster answers; True when it was replaced (the worker then
        drops the old one's tasks: the new one is assigned afresh)."""
        lost_s = self.watch.lost_for()
        if lost_s < self.lost_after_s:
            return False
        if not self._cluster_answers():
            return False  # the cluster is away: waiting for it is right
        self.renew(
            f"no group coordinator for {lost_s:.0f} s while the cluster answers "
            f"({self.watch.describe()})"
        )
        return True

    def renew(self, why: str) -> None:
        """Close this consumer (its partitions are revoked) and join with a new one."""
        log.warning("worker %s: %s; a new consumer", self.worker, why)
        try:
            self.consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("worker %s: the old consumer did not close cleanly: %s", self.worker, exc)
        self.watch = GroupWatch()
        self.consumer = self._subscribe()

    def _cluster_answers(self) -> bool:
        """Asked with a client of its own: the lost consumer's view of the brokers is the
        thing in doubt."""
        try:
            self.kafka.admin(log_level=0).list_topics(timeout=5)
        except KafkaException:
            return False
        return True

    def _subscribe(self) -> Consumer:
        watch = self.watch
        consumer = self.kafka.consumer(
            self.group,
            **{
                "statistics.interval.ms": STATS_INTERVAL_MS,
                "stats_cb": watch.observe,
                **self.overrides,
            },
        )
        consumer.subscribe(
            self.inputs,
            on_assign=self.callbacks.on_assign,
            on_revoke=self.callbacks.on_revoke,
            on_lost=self.callbacks.on_revoke,
        )
        log.info("worker %s consuming %s as group %s", self.worker, self.inputs, self.group)
        return consumer
