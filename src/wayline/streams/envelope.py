"""What steps receive and return: messages with their metadata, outputs with their topic."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import threading

    from wayline.streams.task import TaskContext
    from wayline.streams.timers import Timer

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


class Processor(Protocol):
    """A worker's step chain: one message in, any number of outputs out (none = dropped).

    ``ctx`` gives the message's task: its stores, timers and stream time."""

    def process(self, message: Envelope, ctx: TaskContext) -> list[Output]: ...


@runtime_checkable
class TimerHandler(Protocol):
    """A processor that also handles the timers it scheduled."""

    def on_timer(self, timer: Timer, ctx: TaskContext) -> list[Output]: ...


@runtime_checkable
class BatchEnd(Protocol):
    """A processor that buffers per batch: called once per touched task after the batch's
    messages and timers, before anything is produced; its writes and outputs join the batch."""

    def end_batch(self, ctx: TaskContext) -> list[Output]: ...


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


@runtime_checkable
class BatchAbort(Protocol):
    """A processor that remembers a batch in progress (caches, in-memory order): forget it,
    the batch is rolled back and will be run again (``streams.failure``)."""

    def abort_batch(self) -> None: ...


@runtime_checkable
class Refresh(Protocol):
    """A processor with state to bring up to date before each batch (e.g. new definitions):
    called once per task per loop; its writes and outputs join the batch."""

    def refresh(self, ctx: TaskContext) -> list[Output]: ...


@runtime_checkable
class AfterCommit(Protocol):
    """A processor with side effects that may only start once its batch is durable (the
    delivery worker's connector calls): called after each committed batch."""

    def after_commit(self) -> None: ...


@runtime_checkable
class Lifecycle(Protocol):
    """A processor with resources of its own: ``open`` before the worker joins its group
    (returns once ready, or when ``stop`` is set), ``quiesce`` when it is asked to stop (let
    work under way finish; one more batch records it), ``close`` at the very end."""

    def open(self, stop: threading.Event) -> None: ...

    def quiesce(self) -> None: ...

    def close(self) -> None: ...
