"""Drop events whose ``messageId`` was already seen in the last 24 hours of arrival.

Seen ids live in the task's ``dedupe`` store, so the memory survives restarts of the collector
and of the worker (it is restored from the changelog like any state). Each id is one local key;
the changelog gets one group record per batch and hour with that batch's ids
(``streams.changelog``), not a record per id.

Ids expire by hour on the clock they are compared on — arrival (``receivedAt``), not the wall
clock or event time: once an event arrives a window after an hour ended, that hour's groups are
dropped and the store's floor (the first hour kept, one key) moves past it. Events replayed or
mirrored long after they arrived are deduplicated among themselves as they were live, and the
expiry costs one range read per hour of arrivals, whatever the clocks say. Stores written before
groups (each id also indexed under its hour, changelogged key by key) expire the same way;
expiry timers such stores scheduled are consumed without effect.
"""

from __future__ import annotations

import struct
from typing import Final

from wayline.streams.task import StoreView, TaskContext
from wayline.streams.timers import Timer

HOUR_MS: Final = 3_600_000
_MS: Final = struct.Struct(">Q")
EXPIRY_TAG: Final = "dedupe-expiry"
FLOOR_KEY: Final = b"f"  # the first hour whose ids are kept
GROUP: Final = b"dedupe:"
LEGACY_INDEX: Final = b"h"


class Dedupe:
    """``first_time(message_id, ctx, at_ms)`` is True once per id within ``window_ms`` of
    arrival."""

    def __init__(self, window_ms: int = 24 * HOUR_MS, store: str = "dedupe") -> None:
        self.window_ms = window_ms
        self.store = store
        self.duplicates = 0
        self.expired = 0
        self._floors: dict[int, int] = {}  # partition → its floor as this batch left it

    def first_time(self, message_id: str, ctx: TaskContext, at_ms: int) -> bool:
        seen = ctx.store(self.store)
        cutoff = max(0, (at_ms - self.window_ms) // HOUR_MS)
        floor = self._floors.get(ctx.partition)
        if floor is None or cutoff > floor:
            self._floors[ctx.partition] = self._expire(seen, cutoff)
        key = b"i" + message_id.encode()
        previous = seen.get(key)
        if previous is not None and at_ms - _MS.unpack(previous)[0] < self.window_ms:
            self.duplicates += 1
            return False
        seen.add_to_group(GROUP + _MS.pack(max(0, at_ms) // HOUR_MS), key, _MS.pack(at_ms))
        return True

    def _expire(self, seen: StoreView, cutoff: int) -> int:
        """Drop the hours before ``cutoff`` not dropped yet; the floor after."""
        stored = seen.get(FLOOR_KEY)
        floor = _MS.unpack(stored)[0] if stored is not None else 0
        if cutoff <= floor:
            return floor
        start, stop = _MS.pack(floor), _MS.pack(cutoff)
        self.expired += seen.drop_groups(GROUP, start, stop)
        self.expired += _forget(seen, start, stop)
        seen.put(FLOOR_KEY, stop)
        return cutoff

    def on_timer(self, timer: Timer, ctx: TaskContext) -> bool:
        """Consume an expiry timer an older store scheduled; False when the timer is not ours."""
        return timer.tag == EXPIRY_TAG

    def abort_batch(self) -> None:
        """The batch's floors were not committed: read them from the stores again."""
        self._floors.clear()


def _forget(seen: StoreView, start: bytes, stop: bytes) -> int:
    """Ids indexed one by one under their hour (older stores), hours ``start`` ≤ h < ``stop``."""
    count = 0
    for index_key, _ in list(seen.items(LEGACY_INDEX, start)):
        hour = index_key[1:9]
        if hour >= stop:
            break
        id_key = index_key[9:]
        seen.delete(index_key)
        stamp = seen.get(id_key)
        # the id may have been seen again in a later hour; only its latest index entry owns it
        if stamp is not None and _MS.pack(_MS.unpack(stamp)[0] // HOUR_MS) == hour:
            seen.delete(id_key)
        count += 1
    return count
