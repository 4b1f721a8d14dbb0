"""The retry schedule: the Svix shape within its jitter, Retry-After honoured, exhausted after
the last retry, and the same waits on a replay."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wayline.connectors.retries import SVIX_DELAYS_S, RetrySchedule

SCHEDULE = RetrySchedule()


@given(delivery=st.text(min_size=1, max_size=40), attempts=st.integers(1, len(SVIX_DELAYS_S)))
def test_each_wait_is_the_schedules_within_its_jitter_and_the_same_on_a_replay(
    delivery: str, attempts: int
) -> None:
    wait = SCHEDULE.next_delay(delivery, attempts)
    assert wait is not None
    base = SVIX_DELAYS_S[attempts - 1]
    assert 0.8 * base <= wait <= 1.2 * base
    assert SCHEDULE.next_delay(delivery, attempts) == wait


def test_after_the_last_retry_the_delivery_is_exhausted() -> None:
    assert SCHEDULE.next_delay("d", len(SVIX_DELAYS_S)) is not None
    assert SCHEDULE.next_delay("d", len(SVIX_DELAYS_S) + 1) is None
    with pytest.raises(ValueError, match="at least 1"):
        SCHEDULE.next_delay("d", 0)


def test_retry_after_is_honoured_when_longer_and_capped_at_a_day() -> None:
    assert SCHEDULE.next_delay("d", 1, retry_after_s=120) == 120
    short = SCHEDULE.next_delay("d", 3, retry_after_s=1)
    assert short is not None
    assert short >= 0.8 * 1800  # a shorter Retry-After does not hurry the schedule
    assert SCHEDULE.next_delay("d", 1, retry_after_s=10**9) == 86_400


def test_the_jitter_spreads_waiting_deliveries() -> None:
    waits = [SCHEDULE.next_delay(f"d{i}", 2) for i in range(1000)]
    assert len(set(waits)) > 990
    mean = sum(w for w in waits if w is not None) / len(waits)
    assert abs(mean - 300) < 10


def test_a_compressed_schedule_keeps_its_shape() -> None:
    fast = SCHEDULE.scaled(0.001)
    wait = fast.next_delay("d", 2)
    assert wait is not None
    assert 0.24 <= wait <= 0.36
