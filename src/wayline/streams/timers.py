"""Durable timers of one partition: ``(key, due, tag)`` kept in a state store, fired in due order.

One entry per timer in the store: ``i`` + key length + key + tag → due (8 bytes, big-endian).
Because it is an ordinary store write, a timer goes to the changelog with the batch that
scheduled, moved or fired it — one record, whatever it replaced — and survives crashes and
rebalances exactly like the rest of the state. What is due next is a heap in memory, rebuilt
from the entries on restore; an entry of the heap whose timer moved or went is dropped when it
comes up. (Stores written before kept a second, due-ordered entry per timer, ``d`` + due + key
length + key + tag; loading such a store deletes those.)
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Protocol

_DUE: Final = struct.Struct(">Q")
_LEN: Final = struct.Struct(">H")


@dataclass(slots=True, order=True, init=False)
class Timer:
    due_ms: int
    key: bytes
    tag: str

    def __init__(self, due_ms: int, key: bytes, tag: str) -> None:  # see streams.envelope
        self.due_ms, self.key, self.tag = due_ms, key, tag


class KeyValues(Protocol):
    """The slice of a store view the timers need."""

    def get(self, key: bytes) -> bytes | None: ...

    def items(self, prefix: bytes = b"", start: bytes = b"") -> Iterator[tuple[bytes, bytes]]: ...

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

    def __init__(self, store: KeyValues) -> None:
        """The timers of ``store`` as it is (on restore, and after a rolled-back batch)."""
        self._store = store
        self._heap: list[Timer] = []
        for raw, due in store.items(b"i"):
            key, tag = _parse_ident(raw[1:])
            self._heap.append(Timer(_DUE.unpack(due)[0], key, tag))
        heapq.heapify(self._heap)
        self._pending = len(self._heap)
        for legacy, _ in list(store.items(b"d")):  # the due-ordered entries of older stores
            store.delete(legacy)

    @property
    def pending(self) -> int:
        return self._pending

    def schedule(self, key: bytes, due_ms: int, tag: str = "") -> None:
        """Set the timer ``(key, tag)`` to ``due_ms``, replacing an earlier due time."""
        ident = _ident(key, tag)
        if self._store.get(b"i" + ident) is None:
            self._pending += 1
        due = max(0, due_ms)
        self._store.put(b"i" + ident, _DUE.pack(due))
        heapq.heappush(self._heap, Timer(due, key, tag))

    def cancel(self, key: bytes, tag: str = "") -> bool:
        ident = _ident(key, tag)
        if self._store.get(b"i" + ident) is None:
            return False
        self._store.delete(b"i" + ident)
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
        self._store.delete(b"i" + _ident(timer.key, timer.tag))
        self._pending -= 1
        return timer

    def _drop_stale(self) -> None:
        """Heap entries of cancelled or moved timers (and repeats) are dropped lazily."""
        heap = self._heap
        while heap:
            top = heap[0]
            if self._store.get(b"i" + _ident(top.key, top.tag)) == _DUE.pack(top.due_ms):
                return
            heapq.heappop(heap)
