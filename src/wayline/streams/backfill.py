"""Backfill: every record of the analytics sink's topics, from the beginning to where each
partition ends now, into ClickHouse — the tables the sink would have written.

Reads with no consumer group (nothing is committed; the sink's own group is untouched) up to
partition EOF, the end the broker reports as it reads, not the high watermark (which some
Kafka-protocol brokers under-report). Rows go in with the sink's own code
(``AnalyticsStep.add``/``flush``), so the tables equal the sink's: the same rows, deduplicated
the same way. ``progress(done, total)`` is called as it goes; ``total`` is the watermarks' count
of records, so it may grow while it runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from wayline.connectors.clickhouse import Queries
from wayline.schemas.errors import RetryableError
from wayline.schemas.topics import Topics
from wayline.streams.analytics import AnalyticsStep
from wayline.streams.clients import KafkaConfig
from wayline.streams.envelope import Envelope

log = logging.getLogger(__name__)
FLUSH_EVERY = 50_000  # records held before an insert
Progress = Callable[[int, int], None]


def backfill(kafka: KafkaConfig, topics: Topics, names: list[str], client: Queries,
             database: str, progress: Progress | None = None, timeout_s: float = 3600.0
             ) -> int:  # fmt: skip
    """Read ``names`` (topics) from their beginnings to their ends; the records read."""
    eof = {"enable.partition.eof": True, "fetch.wait.max.ms": 50}
    consumer = kafka.consumer(f"{topics.prefix}.backfill", **eof)
    try:
        metadata = consumer.list_topics(timeout=10)
        parts = [TopicPartition(t, p, OFFSET_BEGINNING)
                 for t in names if t in metadata.topics
                 for p in sorted(metadata.topics[t].partitions)]  # fmt: skip
        total = sum(_count(consumer, tp) for tp in parts)
        consumer.assign(parts)
        step = AnalyticsStep(topics, lambda: client, database)
        return _read(consumer, step, {(tp.topic, tp.partition) for tp in parts}, total, progress,
                     time.monotonic() + timeout_s)  # fmt: skip
    finally:
        consumer.close()


def _count(consumer: Consumer, tp: TopicPartition) -> int:
    low, high = consumer.get_watermark_offsets(tp, timeout=10)
    return max(0, int(high) - int(low))


def _read(consumer: Consumer, step: AnalyticsStep, open_parts: set[tuple[str, int]], total: int,
          progress: Progress | None, deadline: float) -> int:  # fmt: skip
    done = held = 0
    while open_parts:
        if time.monotonic() > deadline:
            raise RetryableError(f"backfill did not reach the end of {sorted(open_parts)[:3]}")
        for message in consumer.consume(10_000, 0.5):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    open_parts.discard((message.topic(), message.partition()))
                else:
                    log.warning("backfill: %s", error)
                continue
            envelope = Envelope.from_message(message)
            step.add(envelope, envelope.partition)
            done += 1
            held += 1
        if held >= FLUSH_EVERY or not open_parts:
            for task in sorted(set(step.pending())):
                step.flush(task)
            held = 0
        if progress is not None:
            progress(done, max(total, done))
    return done
