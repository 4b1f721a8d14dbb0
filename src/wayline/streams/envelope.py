"""What steps receive and return: messages with their metadata, outputs with their topic.

The step protocols themselves are in ``streams.steps``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Headers = tuple[tuple[str, bytes], ...]

# The hot path's small classes write their ``__init__`` out (``init=False``): compiled, that is
# a few native stores, where the generated one runs interpreted — and, frozen, through
# ``object.__setattr__`` — at about ten times the cost. Envelopes and outputs are not mutated.


@dataclass(slots=True, init=False)
class Envelope:
    """One consumed message and where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: Headers

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int,
        headers: Headers = (),
    ) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset
        self.key, self.value, self.timestamp_ms, self.headers = key, value, timestamp_ms, headers

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


@dataclass(slots=True, init=False)
class Output:
    """A message a step wants produced. Produced and acknowledged before offsets commit."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    partition: int | None  # None: the producer's partitioner (murmur2) picks by key
    timestamp_ms: int | None  # None: the time of producing

    def __init__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers = (),
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        self.topic, self.key, self.value, self.headers = topic, key, value, headers
        self.partition, self.timestamp_ms = partition, timestamp_ms


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
