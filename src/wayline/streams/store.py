"""Key-value state stores: RocksDB on local disk, and an in-memory twin for unit tests.

A store holds one partition of one named store of one worker. Keys and values are bytes; any key
of the partition can be read and written. Writes are applied in atomic batches
(``write_batch``) that also carry the store's metadata, so the local state and "what has been
applied" can never disagree after a crash.
"""

from __future__ import annotations

import bisect
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final, Protocol

from rocksdict import Options, Rdict, WriteBatch, WriteOptions

from wayline.schemas.errors import ConfigError

# Metadata lives beside the data under a prefix no user key can have (user keys are stored
# with a b"k" prefix, metadata with b"m").
_DATA: Final = b"k"
_META: Final = b"m"


class StateStore(Protocol):
    """One partition of a store. ``None`` in a batch deletes the key."""

    def get(self, key: bytes) -> bytes | None: ...

    def items(self, prefix: bytes = b"", start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Keys starting with ``prefix`` in byte order from ``prefix + start``, with their
        values."""
        ...

    def write_batch(
        self, changes: Mapping[bytes, bytes | None], meta: Mapping[bytes, bytes] | None = None
    ) -> None:
        """Apply every change and the metadata atomically."""
        ...

    def meta(self, name: bytes) -> bytes | None: ...

    def count(self) -> int:
        """Number of keys (an estimate for RocksDB)."""
        ...

    def close(self) -> None: ...


class MemoryStore:
    """``StateStore`` in a dict with a sorted key index; for unit tests and small state."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []
        self._meta: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def items(self, prefix: bytes = b"", start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        first = bisect.bisect_left(self._keys, prefix + start)
        for key in list(self._keys[first:]):
            if not key.startswith(prefix):
                return
            yield key, self._data[key]

    def write_batch(
        self, changes: Mapping[bytes, bytes | None], meta: Mapping[bytes, bytes] | None = None
    ) -> None:
        for key, value in changes.items():
            if value is None:
                if self._data.pop(key, None) is not None:
                    self._keys.pop(bisect.bisect_left(self._keys, key))
            else:
                if key not in self._data:
                    bisect.insort(self._keys, key)
                self._data[key] = value
        self._meta.update(meta or {})

    def meta(self, name: bytes) -> bytes | None:
        return self._meta.get(name)

    def count(self) -> int:
        return len(self._data)

    def close(self) -> None:
        pass


CACHE_BYTES: Final = 32 * 1024 * 1024  # of values read or written lately, per store


class RocksStore:
    """``StateStore`` on RocksDB (rocksdict, raw bytes mode). One directory per partition.

    Values read or written lately — and keys found missing — are kept in memory up to
    ``CACHE_BYTES``, then forgotten at once: a store has one writer (its task), so the cache
    cannot disagree with the database, and most reads of a worker are of keys it touched a
    moment ago (a profile's forward entry and timer, an identifier's owner) or of keys that
    are not there."""

    def __init__(self, path: Path, cache_bytes: int = CACHE_BYTES) -> None:
        self.path = path
        self._limit = cache_bytes
        self._cache: dict[bytes, bytes | None] = {}
        self._cached = 0  # bytes of the values (and keys) in the cache
        path.parent.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        # one partition's store opens a handful of files: RocksDB's default of 16 threads to
        # open them costs a third of an empty store's open (8 against 11 ms of CPU), and a
        # worker opens one per store and partition on every assignment
        options.set_max_file_opening_threads(1)
        try:
            self._db = Rdict(str(path), options)
        except Exception as exc:  # rocksdict raises plain Exception for lock and I/O errors
            raise ConfigError(
                f"setting WAYLINE_DATA_DIR: cannot open state store {path}: {exc}"
            ) from None
        # No write-ahead log: the changelog is what makes a store durable. A batch's values and
        # its checkpoint (``streams.task``) are one write, so whatever a crash leaves on disk
        # (the memtables flushed before it) is a consistent earlier checkpoint, and restore reads
        # the changelog on from there; a store closed cleanly is flushed first.
        writes = WriteOptions()
        writes.disable_wal = True  # type: ignore[method-assign, assignment]  # a property
        self._db.set_write_options(writes)

    def get(self, key: bytes) -> bytes | None:
        if key in self._cache:
            return self._cache[key]
        value: bytes | None = self._db.get(_DATA + key)
        self._keep(key, value)
        return value

    def _keep(self, key: bytes, value: bytes | None) -> None:
        self._cached += len(key) + (0 if value is None else len(value))
        if self._cached > self._limit:
            self._cache.clear()
            self._cached = len(key) + (0 if value is None else len(value))
        self._cache[key] = value

    def items(self, prefix: bytes = b"", start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        # No ReadOptions upper bound here: through rocksdict (0.3.x) a bounded iterator read
        # past the bound or stopped short of it once compiled, so the prefix check is the bound.
        first = _DATA + prefix
        for key, value in self._db.items(from_key=first + start):
            assert isinstance(key, bytes)  # raw mode: keys and values are bytes
            assert isinstance(value, bytes)
            if not key.startswith(first):
                return
            yield key[1:], value

    def write_batch(
        self, changes: Mapping[bytes, bytes | None], meta: Mapping[bytes, bytes] | None = None
    ) -> None:
        batch = WriteBatch(raw_mode=True)
        for key, value in changes.items():
            if value is None:
                batch.delete(_DATA + key)
            else:
                batch.put(_DATA + key, value)
        for name, value in (meta or {}).items():
            batch.put(_META + name, value)
        self._db.write(batch)
        for key, value in changes.items():
            self._keep(key, value)

    def meta(self, name: bytes) -> bytes | None:
        value: bytes | None = self._db.get(_META + name)
        return value

    def count(self) -> int:
        total = self._db.property_int_value("rocksdb.estimate-num-keys") or 0
        return max(0, int(total) - sum(1 for _ in self._db.items(from_key=_META)))

    def close(self) -> None:
        self._cache.clear()
        self._db.flush(True)
        self._db.close()

    @staticmethod
    def destroy(path: Path) -> None:
        """Remove a partition's local state (it is restored from the changelog)."""
        shutil.rmtree(path, ignore_errors=True)
