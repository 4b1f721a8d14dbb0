"""Event-time order before identity resolution (replay mode).

A historical log reaches the identity worker in no useful order: several raw partitions are
read in chunks that interleave at random, and a client may have shuffled or re-sent events. The
dry run (``wayline segments test``) applies a log in ``(event time, messageId)`` order, so the
identity worker does the same: it holds each event in its ``order`` store and releases it once
no earlier event can still come.

When is that? Every raw partition reports how far its event time has got (a *mark*: the
validate worker sends one per partition per batch, on ``wayline.events`` with header
``wayline.kind: tick``). An event can be released once every raw partition is past it by the
reorder window (disorder within one partition, e.g. events shuffled by a few minutes). A raw
partition that has not moved for ``idle_ms`` of wall time (a source that stopped, a partition
no key hashes to) holds nobody back; when none moves, the input is idle and every held event is
released — the end of a replayed log. An event older than what was already released (later than
the window allows) is released at once and counted as late.

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
        self._started_ms: int | None = None
        self._moved_ms: dict[int, int] = {}  # raw partition → wall time its mark last moved
        self._input_ms = 0  # wall time of the last event or mark
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
            self._moved_ms[partition] = ctx.wall_ms

    def idle(self, ctx: TaskContext) -> bool:
        """Events are held and nothing has come in for ``idle_ms``."""
        self._sync(ctx)
        return bool(self._heap) and ctx.wall_ms - self._input_ms >= self.idle_ms

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

    def _until(self, ctx: TaskContext) -> int | None:
        """Release what is at or before this (None: everything; every raw partition is quiet)."""
        view = ctx.store(self.store)
        lowest: int | None = None
        for partition in range(self.partitions):
            moved = self._moved_ms.get(partition, self._started_ms or ctx.wall_ms)
            if ctx.wall_ms - moved >= self.idle_ms:
                continue
            raw = view.get(_MARK + _MS.pack(partition))
            if raw is None:
                return -1  # a partition that may still send its first events
            mark = int(_MS.unpack(raw)[0])
            lowest = mark if lowest is None else min(lowest, mark)
        return None if lowest is None else lowest - self.window_ms

    def _heard(self, ctx: TaskContext) -> None:
        """Input arrived. The first after a (re)start starts the clock of raw partitions that
        have not spoken yet: they get ``idle_ms`` from now to send their first events."""
        if self._started_ms is None:
            self._started_ms = ctx.wall_ms
        self._input_ms = ctx.wall_ms

    def _sync(self, ctx: TaskContext) -> None:
        """Rebuild the in-memory order from the store when the task is new (restore, rebalance)."""
        if self._task is ctx.task:
            return
        self._task = ctx.task
        self._started_ms = None
        self._input_ms = ctx.wall_ms
        self._moved_ms = {}
        self._heap = []
        for key, _value in ctx.store(self.store).items(_HELD):
            (at,) = _MS.unpack_from(key, 1)
            self._heap.append((at, key[1 + _MS.size :].decode()))
        heapq.heapify(self._heap)


def _key(at_ms: int, message_id: str) -> bytes:
    return _HELD + _MS.pack(at_ms) + message_id.encode()
