"""One contract for every ``StateStore``: the RocksDB store and its in-memory twin."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wayline.schemas.errors import ConfigError
from wayline.streams.store import MemoryStore, RocksStore, StateStore

KEYS = [bytes([i]) * (1 + i % 3) for i in range(8)]


@pytest.fixture(params=["memory", "rocksdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    made: StateStore = MemoryStore() if request.param == "memory" else RocksStore(tmp_path / "s")
    yield made
    made.close()


def test_get_put_delete(store: StateStore) -> None:
    assert store.get(b"a") is None
    store.write_batch({b"a": b"1", b"b": b"2"})
    assert (store.get(b"a"), store.get(b"b")) == (b"1", b"2")
    store.write_batch({b"a": None, b"b": b"3", b"missing": None})
    assert (store.get(b"a"), store.get(b"b")) == (None, b"3")
    assert store.count() == 1


def test_items_by_prefix_in_byte_order(store: StateStore) -> None:
    store.write_batch({b"d\x00\x02": b"x", b"d\x00\x01": b"y", b"e": b"z", b"c": b"w"})
    assert list(store.items(b"d")) == [(b"d\x00\x01", b"y"), (b"d\x00\x02", b"x")]
    assert [k for k, _ in store.items()] == [b"c", b"d\x00\x01", b"d\x00\x02", b"e"]
    assert list(store.items(b"zz")) == []


def test_metadata_is_separate_from_data(store: StateStore) -> None:
    store.write_batch({b"k": b"v"}, {b"commit": b"7"})
    assert store.meta(b"commit") == b"7"
    assert store.get(b"commit") is None
    assert [k for k, _ in store.items()] == [b"k"]
    assert store.count() == 1


def test_empty_values_are_kept(store: StateStore) -> None:
    store.write_batch({b"k": b""})
    assert store.get(b"k") == b""
    assert list(store.items()) == [(b"k", b"")]


def test_a_range_read_starts_inside_the_prefix_and_ends_with_it(store: StateStore) -> None:
    keys = [b"g\x00\x01a", b"g\x00\x02b", b"g\x00\x03c", b"g\xff\xff", b"h", b"\xff\xff"]
    store.write_batch(dict.fromkeys(keys, b"v"))
    assert [k for k, _ in store.items(b"g", b"\x00\x02")] == keys[1:4]
    assert [k for k, _ in store.items(b"g\xff")] == [b"g\xff\xff"]
    assert [k for k, _ in store.items(b"\xff")] == [b"\xff\xff"]
    assert list(store.items(b"g", b"\xff\xff\x00")) == []


def test_a_prefix_before_many_deleted_keys_reads_as_empty(store: StateStore) -> None:
    """Expired ids sort after the prefixes read beside them; the read stops at its prefix."""
    ids = [b"i%06d" % n for n in range(20_000)]
    store.write_batch(dict.fromkeys(ids, b"12345678"))
    store.write_batch(dict.fromkeys(ids))
    store.write_batch({b"i999999": b"live"})
    assert list(store.items(b"h")) == []
    assert list(store.items(b"i")) == [(b"i999999", b"live")]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.binary(max_size=4), st.one_of(st.none(), st.binary(max_size=4))),
        max_size=8,
    ),
    st.binary(max_size=2),
    st.binary(max_size=2),
)
def test_both_stores_agree_with_a_dict(
    batches: list[dict[bytes, bytes | None]], prefix: bytes, start: bytes
) -> None:
    oracle: dict[bytes, bytes] = {}
    with tempfile.TemporaryDirectory() as folder:
        stores: list[StateStore] = [MemoryStore(), RocksStore(Path(folder) / "s")]
        for batch in batches:
            for store in stores:
                store.write_batch(batch)
            for key, value in batch.items():
                if value is None:
                    oracle.pop(key, None)
                else:
                    oracle[key] = value
        ranged = sorted(
            (k, v) for k, v in oracle.items() if k.startswith(prefix) and k >= prefix + start
        )
        for store in stores:
            assert list(store.items()) == sorted(oracle.items())
            assert list(store.items(prefix, start)) == ranged
            assert all(store.get(k) == v for k, v in oracle.items())
            store.close()
    assert MemoryStore().count() == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.dictionaries(st.sampled_from(KEYS), st.none() | st.binary(max_size=40)),
            st.lists(st.sampled_from(KEYS), max_size=6),
        ),
        max_size=12,
    ),
    st.sampled_from([0, 24, 1 << 20]),
)
def test_reads_between_writes_see_the_last_write_whatever_the_cache_holds(
    steps: list[tuple[dict[bytes, bytes | None], list[bytes]]], cache_bytes: int
) -> None:
    """The RocksDB store keeps values read and written lately (and keys found missing) in
    memory and forgets them all past its limit: reads of present, deleted and never-written
    keys between batches give what a dict gives, with no cache, a cache that overflows at once
    and one that holds everything; and so does the same store opened again."""
    oracle: dict[bytes, bytes] = {}
    with tempfile.TemporaryDirectory() as folder:
        store = RocksStore(Path(folder) / "s", cache_bytes=cache_bytes)
        for batch, reads in steps:
            assert [store.get(k) for k in reads] == [oracle.get(k) for k in reads]
            store.write_batch(batch)
            for key, value in batch.items():
                if value is None:
                    oracle.pop(key, None)
                else:
                    oracle[key] = value
            assert [store.get(k) for k in reads] == [oracle.get(k) for k in reads]
        store.close()
        again = RocksStore(Path(folder) / "s", cache_bytes=cache_bytes)
        assert {k: again.get(k) for k in KEYS} == {k: oracle.get(k) for k in KEYS}
        again.close()


def test_rocksdb_survives_reopening(tmp_path: Path) -> None:
    store = RocksStore(tmp_path / "s")
    store.write_batch({b"a": b"1"}, {b"commit": b"3"})
    store.close()
    again = RocksStore(tmp_path / "s")
    assert (again.get(b"a"), again.meta(b"commit")) == (b"1", b"3")
    again.close()


def test_rocksdb_in_use_is_a_clear_error(tmp_path: Path) -> None:
    first = RocksStore(tmp_path / "s")
    try:
        with pytest.raises(ConfigError, match="WAYLINE_DATA_DIR: cannot open state store"):
            RocksStore(tmp_path / "s")
    finally:
        first.close()
