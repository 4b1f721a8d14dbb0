"""Event-time order before identity resolution (replay mode).

A historical log reaches the identity worker in no useful order: several raw partitions are
read in chunks that interleave at random, and a client may have shuffled or re-sent events. The
dry run (``wayline segments test``) applies a log in ``(event time, messageId)`` order, so the
identity worker does the same: it holds each event in its ``order`` store and releases it once
no earlier event can still come.

When is that? Every raw partition reports how far its event time has got (a *mark*: the
validate worker sends one per partition per batch, on ``wayline.events`` with header
``wayline.kind: tick``). An event can be released once every raw partition is past it by the
reorder window (disorder within one partition, e.g. events shuffled by a few minutes).

The end of a log is told by the validate worker too: when a whole poll of its consumer gave
nothing and nothing has come for ``reorder.idle``, it marks each of its partitions *quiet*
(again every ``reorder.idle`` while it stays so). A quiet partition holds nothing back; when
every raw partition is quiet, everything held is released. An event, or a mark with events,
ends every quiet: a log replayed into an idle pipeline reaches all partitions, some later than
others. Silence at the identity worker itself means nothing: a validate worker that stalls,
restarts or rebalances holds events back instead of letting later ones overtake them. A raw
partition that has not reported holds everything until it is quiet. An event older than what
was already released (later than the window allows, or sent after the input went quiet) is
released at once and counted as late.

Held events and marks are store entries, so they go to the changelog with their batch and
survive crashes like any state.
"""

from __future__ import annotations

import heapq
import struct
from typing import NamedTuple

from wayline.streams.task import StoreView, TaskContext

TICK = b"tick"  # ``wayline.kind`` of a mark (raw partition, event time reached)
_MS = struct.Struct(">Q")
_MARK_VALUE = struct.Struct(">Q?")  # event time reached, quiet
_HELD, _MARK = b"e", b"w"


class Held(NamedTuple):
    at_ms: int
    message_id: str
    offset: int
    value: bytes


class OrderBuffer:
    """Events of one task held in ``(event time, messageId)`` order until marks pass them."""

    def __init__(self, window_ms: int, partitions: int, store: str = "order") -> None:
        self.window_ms = window_ms
        self.partitions = partitions
        self.store = store
        self.held = 0
        self.released = 0
        self.late = 0
        self._heap: list[tuple[int, str]] = []
        self._task: object | None = None
        self._released_to = -1
        self._quiet = False  # some partition may be marked quiet

    def hold(
        self, ctx: TaskContext, at_ms: int, message_id: str, offset: int, value: bytes
    ) -> None:
        self._sync(ctx)
        at = max(0, at_ms)
        view = ctx.store(self.store)
        if self._quiet:
            self._end_quiet(view)
        view.put(_key(at, message_id), _MS.pack(offset) + value)
        heapq.heappush(self._heap, (at, message_id))
        self.held += 1
        if at < self._released_to:
            self.late += 1

    def mark(self, ctx: TaskContext, partition: int, at_ms: int, quiet: bool = False) -> None:
        """Raw ``partition`` has reached event time ``at_ms`` (and, when ``quiet``, has
        nothing more for now). Events anywhere end every quiet: a log replayed into an idle
        pipeline reaches the other partitions too, maybe later."""
        self._sync(ctx)
        view = ctx.store(self.store)
        if not quiet and self._quiet:
            self._end_quiet(view)
        key = _MARK + _MS.pack(partition)
        before = view.get(key)
        reached = max(0, at_ms, _MARK_VALUE.unpack(before)[0] if before else 0)
        view.put(key, _MARK_VALUE.pack(reached, quiet))
        self._quiet = self._quiet or quiet

    def _end_quiet(self, view: StoreView) -> None:
        """Events came: no partition is quiet any more (each holds at what it reached)."""
        for key, value in view.items(_MARK):
            reached, quiet = _MARK_VALUE.unpack(value)
            if quiet:
                view.put(key, _MARK_VALUE.pack(reached, False))
        self._quiet = False

    def release(self, ctx: TaskContext) -> list[Held]:
        """The held events no raw partition can still precede, in order, removed from the
        store."""
        self._sync(ctx)
        until = self._until(ctx)
        view = ctx.store(self.store)
        out: list[Held] = []
        while self._heap and (until is None or self._heap[0][0] <= until):
            at, message_id = heapq.heappop(self._heap)
            key = _key(at, message_id)
            raw = view.get(key)
            if raw is None:
                continue
            view.delete(key)
            out.append(Held(at, message_id, _MS.unpack_from(raw)[0], raw[_MS.size :]))
            self._released_to = max(self._released_to, at)
        self.released += len(out)
        return out

    def _until(self, ctx: TaskContext) -> int | None:
        """Release what is at or before this (everything: ``None``): every raw partition that
        is not quiet is past it by the window. A partition that has not reported holds
        everything (it may have a backlog)."""
        view = ctx.store(self.store)
        lowest: int | None = None
        for partition in range(self.partitions):
            raw = view.get(_MARK + _MS.pack(partition))
            if raw is None:
                return -1
            reached, quiet = _MARK_VALUE.unpack(raw)
            if not quiet:
                lowest = reached if lowest is None else min(lowest, reached)
        return None if lowest is None else lowest - self.window_ms

    def forget(self) -> None:
        """The batch was rolled back: rebuild from the store at the next call."""
        self._task = None

    def _sync(self, ctx: TaskContext) -> None:
        """Rebuild the in-memory order from the store when the task is new (restore, rebalance)."""
        if self._task is ctx.task:
            return
        self._task = ctx.task
        self._heap = []
        self._quiet = True  # not known: look at the next event
        for key, _value in ctx.store(self.store).items(_HELD):
            (at,) = _MS.unpack_from(key, 1)
            self._heap.append((at, key[1 + _MS.size :].decode()))
        heapq.heapify(self._heap)


class RawMarks:
    """The validate worker's side: what each raw partition has reached, and when it is quiet.

    A partition is quiet when the previous poll gave nothing at all, no event has come for
    ``idle_ms`` and the partition has been assigned that long (a first fetch may be slow). It
    is reported quiet then and every ``idle_ms`` after, until events come again."""

    def __init__(self, idle_ms: int | None) -> None:
        self.idle_ms = idle_ms  # None: never quiet (live mode needs no order)
        self.reached: dict[int, int] = {}  # raw partition → newest event time given
        self._events = 0  # events seen by this worker
        self._looked: dict[int, int] = {}  # partition → ``_events`` at its last look
        self._input_ms = 0  # wall time of the last event
        self._since: dict[int, tuple[object, int]] = {}  # partition → (task, assigned at)
        self._told: dict[int, int] = {}  # partition → wall time it was last reported quiet
        self._fresh: set[int] = set()  # events since the partition's last mark

    def event(self, ctx: TaskContext, at_ms: int) -> None:
        partition = ctx.partition
        self._events += 1
        self._input_ms = ctx.wall_ms
        self._told.pop(partition, None)
        self._fresh.add(partition)
        if at_ms > self.reached.get(partition, -1):
            self.reached[partition] = at_ms

    def moved(self, ctx: TaskContext) -> bool:
        """After a batch: ``ctx``'s partition gave events since its last mark."""
        if ctx.partition not in self._fresh:
            return False
        self._fresh.discard(ctx.partition)
        return True

    def quiet(self, ctx: TaskContext) -> bool:
        """Called before each batch: ``ctx``'s partition is quiet and due to be told so."""
        partition, now = ctx.partition, ctx.wall_ms
        since = self._since.get(partition)
        if since is None or since[0] is not ctx.task:  # newly assigned
            self._since[partition] = (ctx.task, now)
            self._told.pop(partition, None)
            self._looked[partition] = self._events
            return False
        empty_poll = self._looked.get(partition) == self._events
        self._looked[partition] = self._events
        if self.idle_ms is None or not empty_poll:
            return False
        if now - max(self._input_ms, since[1]) < self.idle_ms:
            return False
        if now - self._told.get(partition, -self.idle_ms) < self.idle_ms:
            return False
        self._told[partition] = now
        return True


def _key(at_ms: int, message_id: str) -> bytes:
    return _HELD + _MS.pack(at_ms) + message_id.encode()
