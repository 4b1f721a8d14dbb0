"""Dedupe by messageId: once per 24 hours, forgotten by hour, whatever the order of expiry."""

from __future__ import annotations

from wayline.streams.dedupe import HOUR_MS, Dedupe
from wayline.streams.store import MemoryStore
from wayline.streams.task import StoreView, Task, TaskContext

DAY = 24 * HOUR_MS


def context() -> TaskContext:
    views = {"dedupe": StoreView("dedupe", MemoryStore()), "timers": StoreView("t", MemoryStore())}
    return TaskContext(Task(0, views, {"dedupe": "d", "timers": "t"}, clock="replay"), 0)


def expire(dedupe: Dedupe, ctx: TaskContext, now_ms: int) -> None:
    assert ctx.task.timers is not None
    while (timer := ctx.task.timers.pop_due(now_ms)) is not None:
        assert dedupe.on_timer(timer, ctx)


def test_second_sighting_within_the_window_is_a_duplicate() -> None:
    dedupe, ctx = Dedupe(), context()
    assert dedupe.first_time("m1", ctx, 1_000)
    assert not dedupe.first_time("m1", ctx, 1_000 + DAY - 1)
    assert dedupe.first_time("m2", ctx, 5_000)
    assert dedupe.duplicates == 1


def test_ids_are_forgotten_after_the_window() -> None:
    dedupe, ctx = Dedupe(), context()
    for i in range(100):
        assert dedupe.first_time(f"m{i}", ctx, i * 60_000)  # over 100 minutes: two hours
    assert ctx.task.timers is not None
    assert ctx.task.timers.pending == 2, "one expiry timer per hour, not per id"
    expire(dedupe, ctx, HOUR_MS + DAY)  # the first hour has expired
    assert dedupe.expired == 60
    assert dedupe.first_time("m0", ctx, HOUR_MS + DAY)
    assert not dedupe.first_time("m99", ctx, HOUR_MS + DAY), "the second hour is remembered"


def test_an_id_seen_again_later_is_kept_by_its_later_hour() -> None:
    dedupe, ctx = Dedupe(), context()
    assert dedupe.first_time("m", ctx, 0)
    assert dedupe.first_time("m", ctx, DAY + 10)  # window passed before expiry ran
    expire(dedupe, ctx, HOUR_MS + DAY)
    assert not dedupe.first_time("m", ctx, DAY + 20), "the later sighting still counts"
