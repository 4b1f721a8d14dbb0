"""The parts of a profile that grow with its history, kept beside its state instead of inside it.

The fold remembers every message id it counted (``seen``: duplicates are ignored, a merge takes
back what both profiles counted), the triggers every occasion they fired for (``fired``: each
fires once) and every order by its id (``orders``: the document reads ``order_stats``).
Inside the state blob those maps are most of a loyal customer's bytes, read, written and
changelogged again with each of their events. Past a few dozen entries
(``streams.profile.SPILL``) a part moves here: each entry is one local key of the profiles
store (``ENTRY_KEY + part + ":" + profile + 0 + key`` → the JSON value) and the changelog gets
one *group* record per part, profile and batch with that batch's entries
(``streams.changelog``): an event costs a point read and a member, whatever the history.

``KeyedLog`` is the mutable mapping the fold works on. Removing entries (a trim, a merge)
rewrites the group records that held them once per batch, so a group record always lists
exactly the entries still kept and a restore brings back no more than that.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, MutableMapping
from typing import Any

import orjson

from wayline.streams.changelog import pack_pairs, unpack_pairs
from wayline.streams.task import StoreView

ENTRY_KEY = b"\x02"
PARTS = ("seen", "fired", "orders")  # the state's parts kept beside it once they grow


class _Entries(ItemsView[str, Any]):
    """Every (key, value) from the group records, without a read per entry."""

    _mapping: KeyedLog

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        yield from self._mapping.scan()


class KeyedLog(MutableMapping[str, Any]):
    """One part of one profile on the store view of the current batch; ``count`` is how many
    entries it holds (kept in the state record)."""

    def __init__(self, view: StoreView, part: str, profile_id: str, count: int = 0) -> None:
        self.view = view
        self.count = count
        name = part.encode() + b":" + profile_id.encode() + b"\0"
        self._prefix = ENTRY_KEY + name
        self._group = name
        self._removed: set[bytes] = set()  # removed in this batch, group records not yet
        self._absent: set[bytes] = set()  # read and not found in this batch (one read per key)

    def __getitem__(self, key: str) -> Any:
        raw = self._raw(self._prefix + key.encode())
        if raw is None:
            raise KeyError(key)
        return orjson.loads(raw)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._raw(self._prefix + key.encode()) is not None

    def __setitem__(self, key: str, value: Any) -> None:
        member = self._prefix + key.encode()
        if self._raw(member) is not None or member in self._removed:
            self.flush()
            if self.view.get(member) is not None:
                self._removed.add(member)
                self.count -= 1
                self.flush()
        self.view.add_to_group(self._group, member, orjson.dumps(value))
        self._absent.discard(member)
        self.count += 1

    def __delitem__(self, key: str) -> None:
        member = self._prefix + key.encode()
        if self._raw(member) is None:
            raise KeyError(key)
        self._removed.add(member)
        self.count -= 1

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[str]:
        for key, _value in self.scan():
            yield key

    def items(self) -> ItemsView[str, Any]:
        return _Entries(self)

    def scan(self) -> Iterator[tuple[str, Any]]:
        """Every kept entry, from the group records (committed and this batch's)."""
        self.flush()
        start = len(self._prefix)
        for _record, packed in self.view.group_records(self._group):
            for member, value in unpack_pairs(packed):
                yield member[start:].decode(), orjson.loads(value)
        for member, value in self.view.groups.get(self._group, ()):
            yield member[start:].decode(), orjson.loads(value)

    def flush(self) -> None:
        """Take this batch's removed entries out of their group records (each rewritten once,
        or deleted when empty) and out of the store."""
        gone, self._removed = self._removed, set()
        if not gone:
            return
        for record, packed in list(self.view.group_records(self._group)):
            pairs = unpack_pairs(packed)
            kept = [(k, v) for k, v in pairs if k not in gone]
            if len(kept) == len(pairs):
                continue
            if kept:
                self.view.put(record, pack_pairs(kept))
            else:
                self.view.delete(record)
        pending = self.view.groups.get(self._group)
        if pending:
            self.view.groups[self._group] = [(k, v) for k, v in pending if k not in gone]
        for member in gone:
            self.view.local[member] = None

    def replace(self, entries: dict[str, Any]) -> None:
        """Hold exactly ``entries`` (a merged profile's), writing only the difference."""
        held = dict(self.scan())
        for key, value in held.items():
            if key not in entries or entries[key] != value:
                del self[key]
        for key, value in entries.items():
            if held.get(key, _ABSENT) != value:
                self[key] = value
        self.flush()

    def settle(self) -> None:
        """The batch is over: forget the keys it found missing (a log kept for the next batch
        reads them again rather than grow with every key ever asked for)."""
        self._absent.clear()

    def drop(self) -> None:
        """Forget every entry (the profile was merged away)."""
        self._removed.clear()
        self.view.drop_groups(self._group)
        self.count = 0

    def _raw(self, member: bytes) -> bytes | None:
        if member in self._removed or member in self._absent:
            return None
        raw = self.view.get(member)
        if raw is None:
            self._absent.add(member)
        return raw


_ABSENT = object()
