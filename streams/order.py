"""Event-time order before identity resolution (replay mode).

A historical log reaches the identity worker in no useful order: several raw partitions are
read in chunks that interleave at random, and a client may have shuffled or re-sent events. The
dry run (``wayline segments test``) applies a log in ``(event time, messageId)`` order, so the
identity worker does the same: it holds each event in its ``order`` store and releases it once
no earlier event can still come.

When is that? Every raw partition reports how far its event time has got (a *mark*: the
validate worker sends one per partition per batch, on ``wayline.events`` with header
``wayline.kind: tick``). An event can be released once every raw partition is past it by the
reorder window (disorder within one partition, e.g. events shuffled by a few minutes). When no
input has come for ``idle_ms`` of wall time (and a whole poll gave nothing), every held event is
released — the end of a replayed log; so a raw partition that gets no events, or stopped
getting them, holds events until the input goes quiet. An event older than what was already
released (later than the window allows) is released at once and counted as late.

Held events and marks are store entries, so they go to the changelog with their batch and
survive crashes like any state.
"""

from __future__ import annotations

import heapq
import struct
from typing import NamedTuple

from wayline.streams.task import TaskContext

TICK = b"tick"  # ``wayline.kind`` of a mark (raw partition, event time reached)
_MS = struct.Struct(">Q")
_HELD, _MARK = b"e", b"w"


class Held(NamedTuple):
    at_ms: int
    message_id: str
    offset: int
    value: bytes


class OrderBuffer:
    """Events of one task held in ``(event time, messageId)`` order until marks pass them."""

    def __init__(self, window_ms: int, idle_ms: int, partitions: int, store: str = "order") -> None:
        self.window_ms = window_ms
        self.idle_ms = idle_ms
        self.partitions = partitions
        self.store = store
        self.held = 0
        self.released = 0
        self.late = 0
        self._heap: list[tuple[int, str]] = []
        self._task: object | None = None
        self._input_ms = 0  # wall time of the last event or mark
        self._inputs = 0  # events and marks taken in
        self._looked_at = -1  # ``_inputs`` when ``idle`` last looked
        self._released_to = -1

    def hold(
        self, ctx: TaskContext, at_ms: int, message_id: str, offset: int, value: bytes
    ) -> None:
        self._sync(ctx)
        at = max(0, at_ms)
        ctx.store(self.store).put(_key(at, message_id), _MS.pack(offset) + value)
        heapq.heappush(self._heap, (at, message_id))
        self.held += 1
        if at < self._released_to:
            self.late += 1

    def mark(self, ctx: TaskContext, partition: int, at_ms: int) -> None:
        """Raw ``partition`` has reached event time ``at_ms``."""
        self._sync(ctx)
        self._heard(ctx)
        view = ctx.store(self.store)
        key = _MARK + _MS.pack(partition)
        before = view.get(key)
        if before is None or _MS.unpack(before)[0] < at_ms:
            view.put(key, _MS.pack(max(0, at_ms)))

    def idle(self, ctx: TaskContext) -> bool:
        """Events are held, nothing has come in since the last look (a whole poll of the
        consumer gave nothing: a slow batch is not idleness) and nothing for ``idle_ms``."""
        self._sync(ctx)
        quiet = self._inputs == self._looked_at
        self._looked_at = self._inputs
        return quiet and bool(self._heap) and ctx.wall_ms - self._input_ms >= self.idle_ms

    def release(self, ctx: TaskContext, everything: bool = False) -> list[Held]:
        """The held events no raw partition can still precede, in order (all of them when
        ``everything``), removed from the store."""
        self._sync(ctx)
        until = None if everything else self._until(ctx)
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

    def _until(self, ctx: TaskContext) -> int:
        """Release what is at or before this: every raw partition is past it by the window.
        A partition that has not reported holds everything (it may have a backlog): what it
        holds is released when the input goes quiet."""
        view = ctx.store(self.store)
        lowest: int | None = None
        for partition in range(self.partitions):
            raw = view.get(_MARK + _MS.pack(partition))
            if raw is None:
                return -1
            mark = int(_MS.unpack(raw)[0])
            lowest = mark if lowest is None else min(lowest, mark)
        return -1 if lowest is None else lowest - self.window_ms

    def _heard(self, ctx: TaskContext) -> None:
        self._input_ms = ctx.wall_ms
        self._inputs += 1

    def _sync(self, ctx: TaskContext) -> None:
        """Rebuild the in-memory order from the store when the task is new (restore, rebalance)."""
        if self._task is ctx.task:
            return
        self._task = ctx.task
        self._input_ms = ctx.wall_ms
        self._heap = []
        for key, _value in ctx.store(self.store).items(_HELD):
            (at,) = _MS.unpack_from(key, 1)
            self._heap.append((at, key[1 + _MS.size :].decode()))
        heapq.heapify(self._heap)


def _key(at_ms: int, message_id: str) -> bytes:
    return _HELD + _MS.pack(at_ms) + message_id.encode()
