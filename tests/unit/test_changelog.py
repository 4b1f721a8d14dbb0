"""Restore from a changelog: committed batches count, a batch cut off before its marker does not,
whatever compaction removed."""

from __future__ import annotations

from wayline.streams.changelog import (
    DATA_PREFIX,
    MARKER_KEY,
    Marker,
    Record,
    decode_record,
    encode_record,
    fold_changelog,
)


def data(key: bytes, seq: int, new: bytes | None, before: bytes | None) -> tuple[bytes, bytes]:
    return DATA_PREFIX + key, encode_record(Record(seq, new, before))


def marker(seq: int, offset: int = 0) -> tuple[bytes, bytes]:
    return MARKER_KEY, Marker(seq, {"in": offset}, 1000 * seq).encode()


def test_record_round_trip() -> None:
    for record in (
        Record(1, b"new", b"old"),
        Record(2, None, b"old"),
        Record(3, b"new", None),
        Record(4, b"", b""),
        Record(2**40, None, None),
    ):
        assert decode_record(encode_record(record)) == record


def test_committed_batches_are_restored() -> None:
    log = [data(b"a", 1, b"1", None), data(b"b", 1, b"5", None), marker(1, 10)]
    log += [data(b"a", 2, b"2", b"1"), marker(2, 20)]
    restored = fold_changelog(log)
    assert restored.values == {b"a": b"2", b"b": b"5"}
    assert restored.compensations == {}
    assert restored.marker == Marker(2, {"in": 20}, 2000)


def test_a_batch_without_its_marker_is_reverted() -> None:
    log = [data(b"a", 1, b"1", None), marker(1)]
    log += [data(b"a", 2, b"2", b"1"), data(b"new", 2, b"x", None)]  # crash before marker 2
    restored = fold_changelog(log)
    assert restored.values == {b"a": b"1", b"new": None}
    assert restored.compensations == {b"a": b"1", b"new": None}
    assert restored.max_seq == 2


def test_compaction_cannot_resurrect_an_uncommitted_value() -> None:
    """Compaction kept only the latest record of ``a`` — the uncommitted one. Its before-image
    still restores the committed value."""
    compacted = [marker(1), data(b"a", 2, b"2", b"1")]
    assert fold_changelog(compacted).values == {b"a": b"1"}


def test_a_compensated_log_reads_as_committed() -> None:
    log = [data(b"a", 1, b"1", None), marker(1)]
    log += [data(b"a", 2, b"2", b"1")]  # crashed batch
    log += [data(b"a", 3, b"1", b"1"), marker(3)]  # compensation written at restore
    log += [data(b"a", 4, b"7", b"1"), marker(4)]
    assert fold_changelog(log).values == {b"a": b"7"}
    assert fold_changelog(log[:5]).values == {b"a": b"1"}


def test_deletes_and_tombstones() -> None:
    log: list[tuple[bytes, bytes | None]] = [data(b"a", 1, b"1", None), marker(1)]
    log += [data(b"a", 2, None, b"1"), marker(2)]
    assert fold_changelog(log).values == {b"a": None}
    log.append((DATA_PREFIX + b"a", None))  # the real tombstone, written after marker 2
    assert fold_changelog(log).values == {b"a": None}
    uncommitted_delete = [data(b"a", 1, b"1", None), marker(1), data(b"a", 2, None, b"1")]
    assert fold_changelog(uncommitted_delete).values == {b"a": b"1"}


def test_the_primary_store_decides_for_the_others() -> None:
    other_store_log = [data(b"t", 1, b"1", None), data(b"t", 2, b"2", b"1")]
    assert fold_changelog(other_store_log, committed_seq=1).values == {b"t": b"1"}
    assert fold_changelog(other_store_log, committed_seq=2).values == {b"t": b"2"}
