"""Durable timers of one partition: ``(key, due, tag)`` kept in a state store, fired in due order.

Two entries per timer in the store, so both "what is due next" and "is (key, tag) scheduled"
are one lookup: ``d`` + due (8 bytes, big-endian) + key length + key + tag, and ``i`` + key
length + key + tag → due. Because they are ordinary store writes, timers go to the changelog
with the batch that scheduled or fired them and survive crashes and rebalances exactly like the
rest of the state. A heap mirrors the ``d`` entries in memory; it is rebuilt on restore.
"""

from __future__ import annotations

import heapq
import struct
from dataclasses import dataclass
from typing import Protocol

_DUE = struct.Struct(">Q")
_LEN = struct.Struct(">H")


@dataclass(frozen=True, slots=True, order=True)
class Timer:
    due_ms: int
    key: bytes
    tag: str


class KeyValues(Protocol):
    """The slice of a store view the timers need."""

    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...


def _ident(key: bytes, tag: str) -> bytes:
    return _LEN.pack(len(key)) + key + tag.encode()


def _parse_ident(raw: bytes) -> tuple[bytes, str]:
    (length,) = _LEN.unpack_from(raw)
    start = _LEN.size
    return raw[start : start + length], raw[start + length :].decode()


class TimerService:
    """Schedule, cancel and pop due timers of one partition."""

    def __init__(self, store: KeyValues, entries: list[tuple[bytes, bytes]]) -> None:
        """``entries``: the store's ``d``-prefixed items at restore."""
        self._store = store
        self._heap: list[Timer] = []
        for raw, _ in entries:
            (due,) = _DUE.unpack_from(raw, 1)
            key, tag = _parse_ident(raw[1 + _DUE.size :])
            self._heap.append(Timer(due, key, tag))
        heapq.heapify(self._heap)
        self._pending = len(self._heap)

    @property
    def pending(self) -> int:
        return self._pending

    def schedule(self, key: bytes, due_ms: int, tag: str = "") -> None:
        """Set the timer ``(key, tag)`` to ``due_ms``, replacing an earlier due time."""
        ident = _ident(key, tag)
        previous = self._store.get(b"i" + ident)
        if previous is not None:
            self._store.delete(b"d" + previous + ident)
            self._pending -= 1
        due = _DUE.pack(max(0, due_ms))
        self._store.put(b"i" + ident, due)
        self._store.put(b"d" + due + ident, b"")
        heapq.heappush(self._heap, Timer(max(0, due_ms), key, tag))
        self._pending += 1

    def cancel(self, key: bytes, tag: str = "") -> bool:
        ident = _ident(key, tag)
        previous = self._store.get(b"i" + ident)
        if previous is None:
            return False
        self._store.delete(b"i" + ident)
        self._store.delete(b"d" + previous + ident)
        self._pending -= 1
        return True

    def due_at(self, key: bytes, tag: str = "") -> int | None:
        raw = self._store.get(b"i" + _ident(key, tag))
        return None if raw is None else int(_DUE.unpack(raw)[0])

    def next_due(self) -> int | None:
        self._drop_stale()
        return self._heap[0].due_ms if self._heap else None

    def pop_due(self, now_ms: int) -> Timer | None:
        """The earliest timer due at ``now_ms``, removed from the store; None when none is."""
        self._drop_stale()
        if not self._heap or self._heap[0].due_ms > now_ms:
            return None
        timer = heapq.heappop(self._heap)
        ident = _ident(timer.key, timer.tag)
        self._store.delete(b"i" + ident)
        self._store.delete(b"d" + _DUE.pack(timer.due_ms) + ident)
        self._pending -= 1
        return timer

    def _drop_stale(self) -> None:
        """Heap entries of cancelled or rescheduled timers are dropped lazily."""
        while self._heap:
            top = self._heap[0]
            if self._store.get(b"d" + _DUE.pack(top.due_ms) + _ident(top.key, top.tag)) is not None:
                return
            heapq.heappop(self._heap)
