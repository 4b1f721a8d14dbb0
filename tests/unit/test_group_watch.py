"""How long a consumer has been without its group coordinator, from librdkafka's statistics."""

from __future__ import annotations

import time

import orjson
import pytest

from wayline.streams.membership import GroupWatch


def stats(state: str, age_ms: int, join_state: str = "init") -> str:
    group = {"state": state, "stateage": age_ms, "join_state": join_state}
    return orjson.dumps({"name": "rdkafka#consumer-1", "cgrp": group}).decode()


def test_a_member_whose_group_is_up_has_lost_nothing_even_while_it_joins() -> None:
    watch = GroupWatch()
    watch.observe(stats("up", 500_000, "wait-join"))  # waiting for other members is normal
    assert watch.lost_for() == 0.0


def test_the_time_without_a_coordinator_counts_from_when_the_state_began() -> None:
    watch = GroupWatch()
    watch.observe(stats("query-coord", 70_000))
    assert watch.lost_for() == pytest.approx(70, abs=1)
    watch.observe(stats("query-coord", 75_000))  # the same outage, seen again
    assert watch.lost_for(time.monotonic() + 5) == pytest.approx(75, abs=1)


def test_finding_the_coordinator_again_ends_the_count_and_a_new_outage_starts_from_zero() -> None:
    watch = GroupWatch()
    watch.observe(stats("wait-coord", 90_000))
    watch.observe(stats("up", 10, "steady"))
    assert watch.lost_for() == 0.0
    watch.observe(stats("query-coord", 1_000))
    assert watch.lost_for() == pytest.approx(1, abs=0.5)
    assert "query-coord" in watch.describe()


@pytest.mark.parametrize(
    "document", ["", "{", "[1, 2]", '{"cgrp": 5}', '{"cgrp": {"stateage": "x"}}']
)
def test_statistics_it_cannot_read_change_nothing(document: str) -> None:
    watch = GroupWatch()
    watch.observe(stats("up", 10, "steady"))
    watch.observe(document)
    assert watch.lost_for() == 0.0
