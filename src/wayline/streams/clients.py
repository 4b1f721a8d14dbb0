"""Kafka client configuration shared by every producer, consumer and admin client."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient

if TYPE_CHECKING:
    from wayline.streams.envelope import Output

log: Final = logging.getLogger(__name__)


class OncePerMinute(logging.Filter):
    """Lets one record through per (client facility, message start) per ``interval_s``."""

    def __init__(self, interval_s: float = 60.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        kind = message.split("]", 1)[-1][:60]  # drop the thread prefix, keep what it says
        now = record.created
        if now - self._last.get(kind, -self.interval_s) < self.interval_s:
            return False
        if len(self._last) > 1_000:
            self._last.clear()
        self._last[kind] = now
        return True


LIBRDKAFKA_LOG: Final = logging.getLogger("wayline.librdkafka")
LIBRDKAFKA_LOG.addFilter(OncePerMinute())


@dataclass(frozen=True)
class KafkaConfig:
    """Where the cluster is, plus librdkafka options passed through unchanged."""

    bootstrap: str
    options: dict[str, Any] = field(default_factory=dict)

    def base(self) -> dict[str, Any]:
        """Every client's settings: librdkafka's log goes through ``LIBRDKAFKA_LOG`` (one line
        per kind of message a minute: a broker away is said, not shouted 18 KB a second)."""
        return {"bootstrap.servers": self.bootstrap, "logger": LIBRDKAFKA_LOG, **self.options}

    def producer(self, **overrides: Any) -> Producer:
        """An idempotent, acks=all producer that partitions keys like Java and aiokafka.

        librdkafka's default partitioner (CRC32) differs from murmur2: keys written by other
        clients would land on other partitions.
        """
        config = {
            **self.base(),
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            **overrides,
        }
        return Producer(config)

    def consumer(self, group: str, **overrides: Any) -> Consumer:
        """A consumer-group member that never auto-commits: workers commit after their flush."""
        config = {
            "bootstrap.servers": self.bootstrap,
            "logger": LIBRDKAFKA_LOG,
            "fetch.wait.max.ms": 50,
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000,
            "partition.assignment.strategy": "cooperative-sticky",
            **self.options,  # an operator's librdkafka options may tune the defaults above
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            **overrides,
        }
        return Consumer(config)

    def admin(self, **overrides: Any) -> AdminClient:
        return AdminClient({**self.base(), **overrides})


def produce_output(
    producer: Producer, out: Output, delivered: Callable[[KafkaError | None, Message], None]
) -> None:
    """Produce ``out`` (by key with murmur2 unless it names a partition); a full local queue
    waits for acknowledgements instead of dropping."""
    partition = -1 if out.partition is None else out.partition  # -1: by key (murmur2)
    timestamp = 0 if out.timestamp_ms is None else out.timestamp_ms  # 0: now
    while True:
        try:
            producer.produce(
                out.topic,
                out.value,
                out.key,
                partition=partition,
                on_delivery=delivered,
                timestamp=timestamp,
                headers=list(out.headers),
            )
            return
        except BufferError:  # local queue full: wait for acknowledgements, drop nothing
            producer.poll(0.1)


def consumer_lag(consumer: Consumer) -> int:
    """Messages behind the partition ends (a lower bound on brokers that under-report them)."""
    total = 0
    try:
        for tp in consumer.position(consumer.assignment()):
            _low, high = consumer.get_watermark_offsets(tp, timeout=2, cached=False)
            if tp.offset is not None and tp.offset >= 0:
                total += max(0, high - tp.offset)
    except Exception as exc:  # lag is a report, never a reason to stop
        log.debug("lag unavailable: %s", exc)
    return total


def usable(message: Message) -> bool:
    """A message to process (not an error or a partition-end event; errors are logged)."""
    error = message.error()
    if error is None:
        return True
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("consumer error: %s", error)
    return False
