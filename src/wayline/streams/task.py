"""A task: the state of one input partition of one worker — its stores, timers, stream time and
the offsets it has applied. Steps see it through ``TaskContext``.

Writes made while a batch is processed stay in each store view's overlay; ``prepare_commit``
turns them into changelog records and ``finish_commit`` applies them to the local stores with
the commit metadata in one atomic write, after the broker acknowledged everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final, Literal

from wayline.streams.changelog import (
    DATA_PREFIX,
    GROUP_PREFIX,
    MARKER_KEY,
    Marker,
    Record,
    encode_record,
    pack_pairs,
    unpack_pairs,
)
from wayline.streams.envelope import Output
from wayline.streams.store import StateStore
from wayline.streams.timers import TimerService

ClockMode = Literal["live", "replay"]
TIMERS_STORE: Final = "timers"
META_COMMIT: Final = b"commit"
_META_CHANGELOG_OFFSET: Final = b"changelog_offset"


class StoreView:
    """One store of one task as a step sees it: reads see the batch's own writes.

    ``put`` and ``delete`` are changelogged key by key; ``add_to_group`` writes a local member
    of a group, changelogged as one group record per batch (``streams.changelog``)."""

    def __init__(self, name: str, store: StateStore) -> None:
        self.name = name
        self.store = store
        self.dirty: dict[bytes, bytes | None] = {}
        self.before: dict[bytes, bytes | None] = {}
        self.local: dict[bytes, bytes | None] = {}  # group members: not on the changelog
        self.groups: dict[bytes, list[tuple[bytes, bytes]]] = {}  # this batch's, by group

    def get(self, key: bytes) -> bytes | None:
        if key in self.dirty:
            return self.dirty[key]
        if key in self.local:
            return self.local[key]
        return self.store.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self._remember(key)
        self.dirty[key] = value

    def delete(self, key: bytes) -> None:
        self._remember(key)
        self.dirty[key] = None

    def add_to_group(self, group: bytes, key: bytes, value: bytes) -> None:
        """``key`` = ``value`` as a member of ``group`` (keys added and dropped together)."""
        self.local[key] = value
        self.groups.setdefault(group, []).append((key, value))

    def group_records(
        self, group: bytes, start: bytes = b"", stop: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """The sealed records of ``group`` (every group whose name starts with it; with ``start``
        and ``stop``, those whose name goes on with ``start`` ≤ rest < ``stop``) as this batch
        left them: a record is only ever rewritten or deleted before it is sealed again, so only
        the committed keys need looking at, not the whole overlay."""
        head = len(GROUP_PREFIX) + len(group)
        for key, value in self.store.items(GROUP_PREFIX + group, start):
            if stop is not None and key[head:] >= stop:
                return
            now = self.dirty.get(key, value) if self.dirty else value
            if now is not None:
                yield key, now

    def drop_groups(self, group: bytes, start: bytes = b"", stop: bytes | None = None) -> int:
        """Delete every record of ``group`` (the range of groups as for ``group_records``),
        sealed or of this batch, and each member still holding its value; the number of
        members the group records held."""
        dropped = 0
        for key, value in list(self.group_records(group, start, stop)):
            dropped += self._drop_members(unpack_pairs(value))
            self.delete(key)
        for name in [n for n in self.groups if _in_range(n, group, start, stop)]:
            dropped += self._drop_members(self.groups.pop(name))
        return dropped

    def _drop_members(self, pairs: Iterable[tuple[bytes, bytes]]) -> int:
        count = 0
        for member, held in pairs:
            if self.get(member) == held:
                self.local[member] = None
            count += 1
        return count

    def items(self, prefix: bytes = b"", start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Committed items merged with this batch's writes, in key order."""
        first = prefix + start
        merged: dict[bytes, bytes | None] = dict(self.store.items(prefix, start))
        for overlay in (self.local, self.dirty):
            merged.update({k: v for k, v in overlay.items() if k.startswith(prefix) and k >= first})
        for key in sorted(merged):
            value = merged[key]
            if value is not None:
                yield key, value

    def seal_groups(self, seq: int) -> None:
        """This batch's group members as one record per group, keyed by the batch ``seq``.

        Such a key is new, so its before-image is "absent" without a read: a store holds only
        committed batches, and this batch's ``seq`` is past the last one committed (a batch
        rolled back or lost in a crash left nothing in the store)."""
        for group, pairs in self.groups.items():
            key = GROUP_PREFIX + group + seq.to_bytes(8, "big")
            self.before.setdefault(key, None)
            self.dirty[key] = pack_pairs(pairs)
        self.groups.clear()

    def clear(self) -> None:
        self.dirty.clear()
        self.before.clear()
        self.local.clear()
        self.groups.clear()

    @property
    def changed(self) -> bool:
        return bool(self.dirty or self.local or self.groups)

    def _remember(self, key: bytes) -> None:
        if key not in self.before:
            self.before[key] = self.store.get(key)


@dataclass
class Commit:
    """What one task must get acknowledged, then apply locally, for one batch."""

    records: list[Output]
    marker: Output
    tombstones: list[Output]


@dataclass(frozen=True)
class TaskCheckpoint:
    """A task's progress before a batch: what a rolled-back batch returns to."""

    seq: int
    offsets: dict[str, int]
    stream_time_ms: int


@dataclass
class Task:
    """Stores, timers and progress of partition ``partition`` of one worker."""

    partition: int
    views: dict[str, StoreView]
    changelogs: dict[str, str]  # store name -> changelog topic
    clock: ClockMode = "live"
    grace_ms: int = 0
    seq: int = 0
    offsets: dict[str, int] = field(default_factory=dict)
    stream_time_ms: int = 0
    timers: TimerService | None = None
    deferred_tombstones: list[Output] = field(default_factory=list)

    def __post_init__(self) -> None:
        if TIMERS_STORE in self.views:
            view = self.views[TIMERS_STORE]
            self.timers = TimerService(view)

    @property
    def primary(self) -> str:
        return next(iter(self.views))

    def applied(self, topic: str, offset: int) -> bool:
        """True when the message at ``offset`` was applied by a committed batch."""
        return offset < self.offsets.get(topic, 0)

    def advance(self, event_time_ms: int | None) -> None:
        if event_time_ms is not None and event_time_ms > self.stream_time_ms:
            self.stream_time_ms = event_time_ms

    def partition_time_ms(self, wall_ms: int) -> int:
        """Stream time; in live mode also the wall clock minus the grace period."""
        if self.clock == "replay":
            return self.stream_time_ms
        return max(self.stream_time_ms, wall_ms - self.grace_ms)

    def checkpoint(self) -> TaskCheckpoint:
        return TaskCheckpoint(self.seq, dict(self.offsets), self.stream_time_ms)

    def roll_back(self, to: TaskCheckpoint) -> None:
        """Undo a batch that was not committed: its writes, its timers, its progress."""
        for view in self.views.values():
            view.clear()
        if self.timers is not None:
            view = self.views[TIMERS_STORE]
            self.timers = TimerService(view)
        self.seq, self.offsets, self.stream_time_ms = to.seq, dict(to.offsets), to.stream_time_ms

    @property
    def dirty(self) -> bool:
        return any(v.changed for v in self.views.values()) or bool(self.deferred_tombstones)

    def prepare_commit(self) -> Commit:
        """Changelog records of this batch (produced with the outputs), and its marker (produced
        once those are acknowledged). Deletes committed by the previous batch become tombstones."""
        self.seq += 1
        records: list[Output] = list(self.deferred_tombstones)
        self.deferred_tombstones = []
        tombstones = []
        for name, view in self.views.items():
            topic = self.changelogs[name]
            view.seal_groups(self.seq)
            for key, value in view.dirty.items():
                record = Record(self.seq, value, view.before.get(key))
                records.append(_to(topic, self.partition, DATA_PREFIX + key, encode_record(record)))
                if value is None:
                    tombstones.append(_to(topic, self.partition, DATA_PREFIX + key, None))
        marker = Marker(self.seq, dict(self.offsets), self.stream_time_ms)
        primary_log = self.changelogs[self.primary]
        marker_output = _to(primary_log, self.partition, MARKER_KEY, marker.encode())
        return Commit(records, marker_output, tombstones)

    def finish_commit(self, commit: Commit, changelog_ends: dict[str, int]) -> None:
        """Apply the batch locally, atomically with the commit metadata; after the marker."""
        meta = {META_COMMIT: commit.marker.value or b""}
        for name, view in self.views.items():
            end = changelog_ends.get(self.changelogs[name])
            store_meta = dict(meta)
            if end is not None:
                store_meta[_META_CHANGELOG_OFFSET] = str(end).encode()
            view.store.write_batch(view.local | view.dirty, store_meta)
            view.clear()
        self.deferred_tombstones = commit.tombstones

    def close(self) -> None:
        for view in self.views.values():
            view.store.close()


def local_checkpoint(store: StateStore) -> tuple[Marker | None, int | None]:
    """The last commit a local store applied and the changelog offset it reflects."""
    raw_commit = store.meta(META_COMMIT)
    raw_offset = store.meta(_META_CHANGELOG_OFFSET)
    marker = Marker.decode(raw_commit) if raw_commit else None
    return marker, int(raw_offset) if raw_offset else None


def checkpoint_meta(marker: Marker, changelog_offset: int) -> dict[bytes, bytes]:
    return {META_COMMIT: marker.encode(), _META_CHANGELOG_OFFSET: str(changelog_offset).encode()}


def _to(topic: str, partition: int, key: bytes, value: bytes | None) -> Output:
    return Output(topic, key, value, partition=partition)


class TaskContext:
    """What a step sees of its task while it handles one message or timer."""

    __slots__ = ("task", "wall_ms")

    def __init__(self, task: Task, wall_ms: int) -> None:
        self.task = task
        self.wall_ms = wall_ms

    @property
    def partition(self) -> int:
        return self.task.partition

    def store(self, name: str) -> StoreView:
        try:
            return self.task.views[name]
        except KeyError:
            raise KeyError(f"no store {name!r}; stores: {list(self.task.views)}") from None

    @property
    def timers(self) -> TimerService:
        if self.task.timers is None:
            raise KeyError(f"this worker has no {TIMERS_STORE!r} store")
        return self.task.timers

    @property
    def stream_time_ms(self) -> int:
        """The largest event time seen on this partition."""
        return self.task.stream_time_ms

    @property
    def now_ms(self) -> int:
        """The partition's time: stream time, and in live mode at least wall clock − grace."""
        return self.task.partition_time_ms(self.wall_ms)


def _in_range(name: bytes, group: bytes, start: bytes, stop: bytes | None) -> bool:
    if not name.startswith(group):
        return False
    rest = name[len(group) :]
    return rest >= start and (stop is None or rest < stop)
