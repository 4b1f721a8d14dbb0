"""A consumer that follows partitions without a group (a view: profiles, definitions, the live
view) and is replaced when it stops following.

After a broker outage librdkafka 2.16 can drop its handle of a broker that was briefly missing
from the cluster's metadata and never fetch from it again (librdkafka issue 5511): the view
would stay as it was at the outage. So a ``Tail`` that has received nothing for
``stuck_after_s`` asks where its partitions end; if they end past where it is, or its client
cannot say while a fresh client reaches the cluster, it goes on with a new consumer from the
positions it had reached.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from wayline.streams.clients import KafkaConfig
from wayline.streams.envelope import Envelope

log = logging.getLogger(__name__)


class Tail:
    def __init__(
        self,
        kafka: KafkaConfig,
        name: str,
        start: list[TopicPartition],
        settings: Mapping[str, object],
        stuck_after_s: float = 30.0,
    ) -> None:
        self.kafka = kafka
        self.name = name
        self.settings = dict(settings)
        self.stuck_after_s = stuck_after_s
        self.positions = {(tp.topic, tp.partition): tp.offset for tp in start}
        self.renewed = 0
        self._renewed_at: dict[tuple[str, int], int] | None = None  # positions of the last one
        self._last_message = time.monotonic()
        self._next_check = self._last_message + stuck_after_s
        self.consumer = self._assigned()

    def consume(self, limit: int, timeout_s: float) -> list[Message]:
        """Up to ``limit`` messages (errors and partition ends included, as ``consume`` gives
        them); positions move past every record."""
        messages = self.consumer.consume(limit, timeout_s)
        now = time.monotonic()
        for message in messages:
            if message.error() is None:
                self.positions[(message.topic() or "", message.partition() or 0)] = (
                    message.offset() or 0
                ) + 1
                self._last_message = now
        if now >= self._next_check:
            self._next_check = now + self.stuck_after_s
            idle = now - self._last_message >= self.stuck_after_s
            if idle and self.positions != self._renewed_at and (why := self._behind()):
                self._renew(why)  # once per position: records compaction removed stay behind
        return messages

    def close(self) -> None:
        self.consumer.close()

    def _behind(self) -> str:
        """Why this tail is stuck: records past its positions, or no answer from its client
        while a fresh client reaches the cluster; "" when it is not."""
        try:
            for (topic, partition), position in self.positions.items():
                tp = TopicPartition(topic, partition)
                low, high = self.consumer.get_watermark_offsets(tp, timeout=5, cached=False)
                if high > max(position, low):
                    return f"{topic}[{partition}] has records from offset {max(position, low)}"
        except KafkaException as exc:
            try:
                self.kafka.admin(log_level=0).list_topics(timeout=5)
            except KafkaException:
                return ""  # the cluster is away: waiting for it is right
            return f"its client gets no answer ({exc}) from a cluster that answers"
        return ""

    def _renew(self, why: str) -> None:
        log.warning(
            "%s: nothing received for %.0f s while %s; a new consumer",
            self.name,
            time.monotonic() - self._last_message,
            why,
        )
        try:
            self.consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("%s: the old consumer did not close cleanly: %s", self.name, exc)
        self.renewed += 1
        self._renewed_at = dict(self.positions)
        self._last_message = time.monotonic()
        self.consumer = self._assigned()

    def _assigned(self) -> Consumer:
        consumer = self.kafka.consumer("unused", **self.settings)
        consumer.assign([TopicPartition(t, p, o) for (t, p), o in self.positions.items()])
        return consumer


def read_topic(kafka: KafkaConfig, topic: str, follow: bool) -> Iterator[Envelope]:
    """Every record of ``topic`` from the beginning, partition by partition as they arrive;
    stops where every partition ends unless ``follow``. ``LookupError`` when there is no such
    topic."""
    consumer = kafka.consumer("unused", **{"enable.partition.eof": True, "log_level": 3})
    try:
        found = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise LookupError(f"{topic} does not exist on {kafka.bootstrap}")
        partitions = sorted(found.partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        ended: set[int] = set()
        while follow or ended != set(partitions):
            for message in consumer.consume(500, 0.2):
                error = message.error()
                if error is None:
                    ended.discard(message.partition() or 0)
                    yield Envelope.from_message(message)
                elif error.code() == KafkaError._PARTITION_EOF:
                    ended.add(message.partition() or 0)
            if follow:
                time.sleep(0.01)
    finally:
        consumer.close()
