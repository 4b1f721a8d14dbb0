"""The step protocols: what a worker's step chain implements (``streams.worker`` calls them).

Every processor handles messages; the other protocols are optional, each found by
``isinstance`` when the worker is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import threading

    from wayline.streams.envelope import Envelope, Output
    from wayline.streams.task import TaskContext
    from wayline.streams.timers import Timer


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
