"""A consumer-group worker: poll a batch → process → produce and flush → commit.

The flush order is fixed: every output of the batch is acknowledged by the broker (acks=all)
before the batch's offsets are committed. A crash in between replays the batch (at-least-once);
idempotent effects downstream make the replay harmless.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Message, Producer, TopicPartition

from wayline.schemas.errors import RetryableError
from wayline.streams.clients import KafkaConfig
from wayline.streams.envelope import Envelope, Output, Processor
from wayline.streams.offsets import committable_offsets

log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    """Counters of one worker; ``Worker.stats()`` returns a copy."""

    events_in: int = 0
    events_out: int = 0
    dead_lettered: int = 0
    batches: int = 0
    commits: int = 0
    last_commit_at: float | None = None
    assigned: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WorkerOptions:
    batch_size: int = 500
    poll_timeout_s: float = 0.05
    stats_interval_s: float = 10.0
    consumer_overrides: dict[str, object] = field(default_factory=dict)


class Worker:
    """Runs one ``Processor`` over input topics in a consumer group until ``stop()``."""

    def __init__(
        self,
        name: str,
        group: str,
        inputs: list[str],
        processor: Processor,
        kafka: KafkaConfig,
        dead_letter_topic: str | None = None,
        options: WorkerOptions | None = None,
    ) -> None:
        self.name = name
        self.group = group
        self.inputs = inputs
        self.processor = processor
        self.kafka = kafka
        self.dead_letter_topic = dead_letter_topic
        self.options = options or WorkerOptions()
        self._stop = threading.Event()
        self._stats = WorkerStats()
        self._lock = threading.Lock()

    def stop(self) -> None:
        self._stop.set()

    def stats(self) -> WorkerStats:
        with self._lock:
            return WorkerStats(**vars(self._stats))

    def run(self) -> None:
        """Process until ``stop()``; offsets of a batch are committed only after its flush."""
        consumer = self.kafka.consumer(self.group, **self.options.consumer_overrides)
        producer = self.kafka.producer()
        consumer.subscribe(self.inputs, on_assign=self._on_assign, on_revoke=self._on_revoke)
        log.info("worker %s consuming %s as group %s", self.name, self.inputs, self.group)
        next_log = time.monotonic() + self.options.stats_interval_s
        try:
            while not self._stop.is_set():
                messages = consumer.consume(self.options.batch_size, self.options.poll_timeout_s)
                batch = [Envelope.from_message(m) for m in messages if _usable(m)]
                if batch:
                    self._process_batch(batch, producer)
                    offsets = committable_offsets(batch)
                    consumer.commit(
                        offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                        asynchronous=False,
                    )
                    self._count_commit()
                if time.monotonic() >= next_log:
                    next_log = time.monotonic() + self.options.stats_interval_s
                    log.info("worker %s %s", self.name, self.stats())
        finally:
            consumer.close()
            producer.flush(10)
            log.info("worker %s stopped", self.name)

    def _process_batch(self, batch: list[Envelope], producer: Producer) -> None:
        outputs: list[Output] = []
        for message in batch:
            outputs.extend(self.processor.process(message))
        failures: list[KafkaError] = []

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failures.append(err)

        for out in outputs:
            self._produce(producer, out, delivered)
        remaining = producer.flush(30)
        if remaining or failures:
            raise RetryableError(
                f"worker {self.name}: {remaining} outputs unacknowledged, "
                f"{len(failures)} failed ({failures[:1]}); offsets not committed"
            )
        with self._lock:
            self._stats.events_in += len(batch)
            self._stats.batches += 1
            for out in outputs:
                if out.topic == self.dead_letter_topic:
                    self._stats.dead_lettered += 1
                else:
                    self._stats.events_out += 1

    @staticmethod
    def _produce(
        producer: Producer, out: Output, delivered: Callable[[KafkaError | None, Message], None]
    ) -> None:
        while True:
            try:
                producer.produce(
                    out.topic, out.value, out.key, headers=list(out.headers), on_delivery=delivered
                )
                return
            except BufferError:  # local queue full: wait for acknowledgements, drop nothing
                producer.poll(0.1)

    def _count_commit(self) -> None:
        with self._lock:
            self._stats.commits += 1
            self._stats.last_commit_at = time.time()

    def _on_assign(self, _consumer: object, partitions: list[TopicPartition]) -> None:
        with self._lock:
            self._stats.assigned += [f"{p.topic}[{p.partition}]" for p in partitions]
        log.info("worker %s assigned %d partitions", self.name, len(partitions))

    def _on_revoke(self, _consumer: object, partitions: list[TopicPartition]) -> None:
        gone = {f"{p.topic}[{p.partition}]" for p in partitions}
        with self._lock:
            self._stats.assigned = [a for a in self._stats.assigned if a not in gone]


def _usable(message: Message) -> bool:
    error = message.error()
    if error is None:
        return True
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("consumer error: %s", error)
    return False
