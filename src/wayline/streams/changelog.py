"""Changelog records and restore: how a store's partition is rebuilt from its compacted topic.

Every batch a task writes to a store goes to the store's changelog partition as one record per
changed key: the batch sequence number, the new value (or "deleted") and the value the key had
before the batch (the *before-image*). After the batch's outputs and changelog records are
acknowledged, one **marker** goes to the primary store's changelog: ``{seq, offsets,
stream_time}``. A batch is committed exactly when its marker is written.

Restore reads a changelog partition to its end, keeps the latest record per key (what compaction
keeps too) and, knowing the last committed sequence number M:

- a record with ``seq <= M`` is committed: its new value is the state;
- a record with ``seq > M`` belongs to a batch that crashed before its marker: the key gets its
  before-image back, and the worker writes that as a *compensation* before processing, so the
  log never again shows the uncommitted value as the latest.

Because each record carries its before-image, this stays correct under compaction: whatever
compaction removed, the latest record of a key alone decides the key's value.

**Groups.** A store may write many small keys that are only ever added and later dropped
together (the dedupe's message ids: 24 hours of them). One record per key would double the
records of every event, so such keys are written as *group* records: one key per batch and
group (``GROUP_PREFIX + group + seq``) whose value packs the batch's ``(key, value)`` pairs. The
members are local keys (in RocksDB, not on the changelog); restore expands a committed group
into its members, and dropping a group drops each member that still holds the group's value
(a key written again later belongs to the later group). A group record may be rewritten with
fewer members (some were forgotten): restore drops the members it no longer lists.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

import orjson

DATA_PREFIX: Final = b"k"
MARKER_KEY: Final = b"m:applied"
GROUP_PREFIX: Final = b"\x01g"
_HEADER: Final = struct.Struct(">QBI")  # seq, flags, length of the new value
_PAIR: Final = struct.Struct(">HI")  # key length, value length
_HAS_NEW: Final = 1
_HAS_BEFORE: Final = 2


@dataclass(frozen=True, slots=True)
class Record:
    """One changelog record of a key: ``new`` None means the batch deleted the key."""

    seq: int
    new: bytes | None
    before: bytes | None


@dataclass(frozen=True, slots=True)
class Marker:
    """The commit point of batch ``seq``: input offsets to resume from, partition stream time."""

    seq: int
    offsets: dict[str, int]
    stream_time_ms: int

    def encode(self) -> bytes:
        return orjson.dumps(
            {"seq": self.seq, "offsets": self.offsets, "stream_time_ms": self.stream_time_ms}
        )

    @classmethod
    def decode(cls, value: bytes) -> Marker:
        data = orjson.loads(value)
        return cls(int(data["seq"]), dict(data["offsets"]), int(data["stream_time_ms"]))


def encode_record(record: Record) -> bytes:
    flags = (_HAS_NEW if record.new is not None else 0) | (
        _HAS_BEFORE if record.before is not None else 0
    )
    new = record.new or b""
    # one join: a profile's record and its before-image are kilobytes, copied once
    return b"".join((_HEADER.pack(record.seq, flags, len(new)), new, record.before or b""))


def decode_record(value: bytes) -> Record:
    seq, flags, length = _HEADER.unpack_from(value)
    start = _HEADER.size
    new = value[start : start + length] if flags & _HAS_NEW else None
    before = value[start + length :] if flags & _HAS_BEFORE else None
    return Record(seq, new, before)


@dataclass
class Restored:
    """The outcome of reading one changelog partition."""

    values: dict[bytes, bytes | None] = field(default_factory=dict)
    compensations: dict[bytes, bytes | None] = field(default_factory=dict)
    marker: Marker | None = None
    max_seq: int = 0


def fold_changelog(
    messages: Iterable[tuple[bytes, bytes | None]], committed_seq: int | None = None
) -> Restored:
    """Fold ``(key, value)`` changelog messages, in log order, into the state to restore.

    ``committed_seq`` is the last committed batch when it is known from elsewhere (the primary
    store's marker); otherwise this partition's own latest marker decides. Keys are store keys
    (without the changelog prefix); a ``None`` value is a real tombstone (a committed delete).
    """
    latest: dict[bytes, Record | None] = {}
    out = Restored()
    for key, value in messages:
        if key == MARKER_KEY:
            if value is not None:
                out.marker = Marker.decode(value)
                out.max_seq = max(out.max_seq, out.marker.seq)
            continue
        if not key.startswith(DATA_PREFIX):
            continue
        record = decode_record(value) if value is not None else None
        latest[key[len(DATA_PREFIX) :]] = record
        if record is not None:
            out.max_seq = max(out.max_seq, record.seq)
    limit = committed_seq if committed_seq is not None else (out.marker.seq if out.marker else 0)
    for key, found in latest.items():
        if found is None or found.seq <= limit:
            out.values[key] = found.new if found is not None else None
        else:
            out.values[key] = found.before
            out.compensations[key] = found.before
    return out


def pack_pairs(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A group record's value: its members, each as key length, value length, key, value."""
    return b"".join(_PAIR.pack(len(k), len(v)) + k + v for k, v in pairs)


def unpack_pairs(value: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    at, size = 0, _PAIR.size
    while at < len(value):
        key_len, value_len = _PAIR.unpack_from(value, at)
        at += size
        out.append((value[at : at + key_len], value[at + key_len : at + key_len + value_len]))
        at += key_len + value_len
    return out


def group_members(
    values: Mapping[bytes, bytes | None], current: Callable[[bytes], bytes | None]
) -> dict[bytes, bytes | None]:
    """The member writes that restoring ``values`` implies, given the local store's current
    values (``current``, read before ``values`` are applied): a dropped or rewritten group drops
    the members it no longer lists that still hold its values, then every restored group (in
    key order: later ones win) puts its members."""
    out: dict[bytes, bytes | None] = {}
    groups = sorted(k for k in values if k.startswith(GROUP_PREFIX))
    for key in groups:
        old, new = current(key), values[key]
        if old is None or old == new:
            continue
        listed = {member for member, _value in unpack_pairs(new)} if new is not None else set()
        for member, value in unpack_pairs(old):
            if member not in listed and current(member) == value:
                out[member] = None
    for key in groups:
        packed = values[key]
        if packed is not None:
            out.update(unpack_pairs(packed))
    return out
