"""The one place that decides which offsets may be committed."""

from __future__ import annotations

from collections.abc import Iterable

from wayline.streams.envelope import Envelope

TopicPartition = tuple[str, int]


def committable_offsets(processed: Iterable[Envelope]) -> dict[TopicPartition, int]:
    """The offset to commit per partition after every message of ``processed`` is done.

    Kafka's committed offset is the *next* offset to read, so it is the highest processed
    offset + 1. Every processed message counts, including ones that were dropped, filtered or
    dead-lettered: they are finished too, and leaving them out would replay them forever.
    Offsets within a partition may arrive in any order; the highest wins.
    """
    result: dict[TopicPartition, int] = {}
    for message in processed:
        if message.offset < 0:
            raise ValueError(f"invalid offset {message.offset} on {message.topic}")
        tp = (message.topic, message.partition)
        if message.offset + 1 > result.get(tp, -1):
            result[tp] = message.offset + 1
    return result
