"""Drop events whose ``messageId`` was already seen in the last 24 hours.

Seen ids live in the task's ``dedupe`` store, so the memory survives restarts of the collector
and of the worker (it is restored from the changelog like any state). Each id is one local key;
the changelog gets one group record per batch and hour with that batch's ids
(``streams.changelog``), not a record per id. Entries expire by hour: one timer per hour drops
that hour's groups once the window has passed — a handful of timers, not one per event.
Stores written before groups (each id also indexed under its hour, changelogged key by key)
expire the same way.
"""

from __future__ import annotations

import struct

from wayline.streams.task import StoreView, TaskContext
from wayline.streams.timers import Timer

HOUR_MS = 3_600_000
_MS = struct.Struct(">Q")
EXPIRY_TAG = "dedupe-expiry"


class Dedupe:
    """``first_time(message_id, ctx)`` is True once per id within ``window_ms``."""

    def __init__(self, window_ms: int = 24 * HOUR_MS, store: str = "dedupe") -> None:
        self.window_ms = window_ms
        self.store = store
        self.duplicates = 0
        self.expired = 0

    def first_time(self, message_id: str, ctx: TaskContext, at_ms: int) -> bool:
        seen = ctx.store(self.store)
        key = b"i" + message_id.encode()
        previous = seen.get(key)
        if previous is not None and at_ms - _MS.unpack(previous)[0] < self.window_ms:
            self.duplicates += 1
            return False
        hour = at_ms // HOUR_MS
        packed_hour = _MS.pack(hour)
        seen.add_to_group(b"dedupe:" + packed_hour, key, _MS.pack(at_ms))
        bucket = b"dedupe-hour:" + packed_hour
        if ctx.timers.due_at(bucket, EXPIRY_TAG) is None:
            ctx.timers.schedule(bucket, (hour + 1) * HOUR_MS + self.window_ms, EXPIRY_TAG)
        return True

    def on_timer(self, timer: Timer, ctx: TaskContext) -> bool:
        """Forget the ids of one expired hour; False when the timer is not ours."""
        if timer.tag != EXPIRY_TAG:
            return False
        hour = timer.key.removeprefix(b"dedupe-hour:")
        seen = ctx.store(self.store)
        self.expired += seen.drop_groups(b"dedupe:" + hour)
        self.expired += _forget(seen, b"h" + hour)  # ids indexed one by one (older stores)
        return True


def _forget(seen: StoreView, prefix: bytes) -> int:
    count = 0
    for index_key, _ in list(seen.items(prefix)):
        id_key = index_key[len(prefix) :]
        seen.delete(index_key)
        stamp = seen.get(id_key)
        # the id may have been seen again in a later hour; only its latest index entry owns it
        if stamp is not None and _MS.unpack(stamp)[0] // HOUR_MS == _MS.unpack(prefix[1:9])[0]:
            seen.delete(id_key)
        count += 1
    return count
