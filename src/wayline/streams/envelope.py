"""What steps receive and return: messages with their metadata, outputs with their topic.

The step protocols themselves are in ``streams.steps``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Envelope:
    """One consumed message and where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: Headers = ()

    @classmethod
    def from_message(cls, message: Any) -> Envelope:
        """Wrap a confluent-kafka ``Message``."""
        _kind, timestamp = message.timestamp()
        headers = tuple((k, v or b"") for k, v in (message.headers() or ()))
        return cls(
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
            key=message.key(),
            value=message.value(),
            timestamp_ms=timestamp,
            headers=headers,
        )

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Output:
    """A message a step wants produced. Produced and acknowledged before offsets commit."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default=())
    partition: int | None = None  # None: the producer's partitioner (murmur2) picks by key
    timestamp_ms: int | None = None  # None: the time of producing


def dead_letter(message: Envelope, topic: str, worker: str, reason: str, detail: str) -> Output:
    """The dead-letter copy of ``message``: original key, bytes and headers, plus why."""
    headers: Headers = (
        *message.headers,
        ("wayline.dlq.reason", reason.encode()),
        ("wayline.dlq.detail", detail.encode()[:4096]),
        ("wayline.dlq.topic", message.topic.encode()),
        ("wayline.dlq.partition", str(message.partition).encode()),
        ("wayline.dlq.offset", str(message.offset).encode()),
        ("wayline.dlq.worker", worker.encode()),
    )
    return Output(topic, message.key, message.value, headers)
