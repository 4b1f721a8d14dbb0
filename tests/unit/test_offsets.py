from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wayline.streams.envelope import Envelope
from wayline.streams.offsets import committable_offsets


def msg(topic: str, partition: int, offset: int) -> Envelope:
    return Envelope(topic, partition, offset, None, b"{}", 0)


def test_commits_the_next_offset_to_read() -> None:
    assert committable_offsets([msg("a", 0, 0), msg("a", 0, 1), msg("a", 0, 2)]) == {("a", 0): 3}


def test_each_partition_and_topic_is_separate() -> None:
    batch = [msg("a", 0, 5), msg("a", 1, 9), msg("b", 0, 2), msg("a", 0, 6)]
    assert committable_offsets(batch) == {("a", 0): 7, ("a", 1): 10, ("b", 0): 3}


def test_dropped_or_dead_lettered_messages_still_advance() -> None:
    # the batch is every message processed, whatever its outcome: a batch whose only message
    # was dead-lettered must still move the partition on, or it is replayed forever
    assert committable_offsets([msg("raw", 2, 41)]) == {("raw", 2): 42}


def test_out_of_order_offsets_take_the_highest() -> None:
    assert committable_offsets([msg("a", 0, 9), msg("a", 0, 3)]) == {("a", 0): 10}


def test_empty_batch_commits_nothing() -> None:
    assert committable_offsets([]) == {}


def test_negative_offset_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid offset"):
        committable_offsets([msg("a", 0, -1001)])


@given(st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 3), st.integers(0, 10**9))))
def test_matches_the_oracle(items: list[tuple[str, int, int]]) -> None:
    expected: dict[tuple[str, int], int] = {}
    for topic, partition, offset in items:
        expected[(topic, partition)] = max(expected.get((topic, partition), 0), offset + 1)
    assert committable_offsets([msg(*i) for i in items]) == expected
