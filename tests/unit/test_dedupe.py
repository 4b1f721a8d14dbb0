"""Dedupe by messageId: once per 24 hours of arrival, forgotten by hour as arrivals pass the
window, whatever the wall clock or the order of expiry."""

from __future__ import annotations

from wayline.streams.changelog import (
    DATA_PREFIX,
    GROUP_PREFIX,
    MARKER_KEY,
    fold_changelog,
    group_members,
)
from wayline.streams.dedupe import EXPIRY_TAG, HOUR_MS, Dedupe
from wayline.streams.store import MemoryStore
from wayline.streams.task import StoreView, Task, TaskContext
from wayline.streams.timers import Timer

DAY = 24 * HOUR_MS


def context() -> TaskContext:
    views = {"dedupe": StoreView("dedupe", MemoryStore()), "timers": StoreView("t", MemoryStore())}
    return TaskContext(Task(0, views, {"dedupe": "d", "timers": "t"}, clock="replay"), 0)


def expire(dedupe: Dedupe, ctx: TaskContext, now_ms: int) -> None:
    """An event arrives at ``now_ms``: the hours a window before it expire."""
    assert dedupe.first_time(f"arrival@{now_ms}", ctx, now_ms)


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
    assert ctx.task.timers.pending == 0, "expiry follows arrivals: no timers"
    expire(dedupe, ctx, HOUR_MS + DAY - 1)
    assert dedupe.expired == 0, "an hour is kept until a window after its end"
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


# --- on the changelog: one group record per batch and hour, restored into the ids -------------


def commit(ctx: TaskContext) -> list[tuple[bytes, bytes | None]]:
    """Commit the batch as the worker does (every record acknowledged): the dedupe store's
    changelog records as (store key, value), then the marker."""
    task = ctx.task
    done = task.prepare_commit()
    log = [(r.key or b"", r.value) for r in done.records if r.topic == "d"]
    task.finish_commit(done, {})
    return [*log, (MARKER_KEY, done.marker.value)]


def restored(
    log: list[tuple[bytes, bytes | None]], store: MemoryStore | None = None
) -> TaskContext:
    """A task whose dedupe store is rebuilt from ``log`` (on top of ``store``'s local state)."""
    store = store if store is not None else MemoryStore()
    folded = fold_changelog(log)
    store.write_batch(group_members(folded.values, store.get) | folded.values)
    views = {"dedupe": StoreView("dedupe", store), "timers": StoreView("t", MemoryStore())}
    return TaskContext(Task(0, views, {"dedupe": "d", "timers": "t"}, clock="replay"), 0)


def test_a_batch_of_ids_is_one_changelog_record_per_hour() -> None:
    dedupe, ctx = Dedupe(), context()
    for i in range(500):
        assert dedupe.first_time(f"m{i}", ctx, HOUR_MS - 250_000 + i * 1_000)  # two hours
    log = commit(ctx)
    groups = [k for k, _ in log if k.startswith(DATA_PREFIX + GROUP_PREFIX)]
    assert len(groups) == 2
    assert len(log) == 3, "two group records and the marker: no record per id"
    again = restored(log)
    assert sum(not Dedupe().first_time(f"m{i}", again, 2 * HOUR_MS) for i in range(500)) == 500
    assert Dedupe().first_time("m500", again, 2 * HOUR_MS)


def test_an_expired_hour_is_gone_after_a_restore_from_scratch_or_from_the_tail() -> None:
    dedupe, ctx = Dedupe(), context()
    for i in range(10):
        assert dedupe.first_time(f"old{i}", ctx, i)
    log = commit(ctx)
    local = MemoryStore()
    restored(log, local)  # the local copy as of this commit
    assert dedupe.first_time("old0", ctx, DAY + 5)  # seen again after the window: kept later
    assert dedupe.first_time("new", ctx, DAY + 6)
    log2 = commit(ctx)
    expire(dedupe, ctx, HOUR_MS + DAY)
    log3 = commit(ctx)
    for again in (restored(log + log2 + log3), restored(log2 + log3, local)):
        assert not Dedupe().first_time("old0", again, DAY + 7), "its later sighting holds"
        assert not Dedupe().first_time("new", again, DAY + 7)
        assert all(Dedupe().first_time(f"old{i}", again, DAY + 7) for i in range(1, 10))


def test_ids_of_a_batch_cut_off_before_its_marker_are_not_restored() -> None:
    dedupe, ctx = Dedupe(), context()
    assert dedupe.first_time("kept", ctx, 0)
    log = commit(ctx)
    assert dedupe.first_time("lost", ctx, 1)
    crashed = [entry for entry in commit(ctx) if entry[0] != MARKER_KEY]
    again = restored(log + crashed)
    assert not Dedupe().first_time("kept", again, 2)
    assert Dedupe().first_time("lost", again, 2), "its batch never committed: not a repeat"


def test_a_store_written_before_groups_still_dedupes_and_expires() -> None:
    """Ids written one key each with an hour index (earlier releases) work as before."""
    store = MemoryStore()
    stamp = (1_000).to_bytes(8, "big")
    store.write_batch({b"imsg": stamp, b"h" + (0).to_bytes(8, "big") + b"imsg": b""})
    views = {"dedupe": StoreView("dedupe", store), "timers": StoreView("t", MemoryStore())}
    ctx = TaskContext(Task(0, views, {"dedupe": "d", "timers": "t"}, clock="replay"), 0)
    dedupe = Dedupe()
    assert not dedupe.first_time("msg", ctx, 2_000)
    assert dedupe.first_time("fresh", ctx, 3_000)
    assert dedupe.on_timer(Timer(0, b"dedupe-hour:" + bytes(8), EXPIRY_TAG), ctx)
    assert not dedupe.first_time("msg", ctx, 4_000), "an old expiry timer changes nothing"
    expire(dedupe, ctx, HOUR_MS + DAY)
    assert dedupe.expired == 2
    assert dedupe.first_time("msg", ctx, HOUR_MS + DAY)


def test_a_log_replayed_long_after_arrival_is_deduplicated_as_it_was_live() -> None:
    """A mirror or backfill read a year later: the wall clock is far past every window, but the
    copies arrived a minute apart, so the second is a repeat; the first day's ids go when the
    replay reaches the next day's arrivals."""
    views = {"dedupe": StoreView("dedupe", MemoryStore()), "timers": StoreView("t", MemoryStore())}
    year = 365 * DAY
    ctx = TaskContext(Task(0, views, {"dedupe": "d", "timers": "t"}), year)
    dedupe = Dedupe()
    assert dedupe.first_time("m", ctx, 1_000)
    assert not dedupe.first_time("m", ctx, 61_000)
    assert all(dedupe.first_time(f"n{i}", ctx, 2_000 + i) for i in range(50))
    assert dedupe.expired == 0
    expire(dedupe, ctx, DAY + HOUR_MS)
    assert dedupe.expired == 51
    assert dedupe.first_time("m", ctx, DAY + HOUR_MS + 1)


def test_expiry_reads_only_the_hours_it_drops() -> None:
    """Thousands of expired hours behind the floor are not read again: an hour's passing reads
    from the floor, and arrivals within the hour read nothing."""
    dedupe, ctx = Dedupe(), context()
    for hour in range(2_000):
        assert dedupe.first_time(f"m{hour}", ctx, hour * HOUR_MS)
        if hour % 100 == 0:
            commit(ctx)
    commit(ctx)
    assert dedupe.expired == 2_000 - 25, "hours before the window are dropped as arrivals pass"
    store = ctx.task.views["dedupe"].store
    reads: list[bytes] = []
    plain = store.items

    def counted(prefix: bytes = b"", start: bytes = b""):  # type: ignore[no-untyped-def]
        reads.append(prefix + start)
        return plain(prefix, start)

    store.items = counted  # type: ignore[method-assign]
    again = Dedupe()  # a restarted worker: its floor is read from the store
    assert again.first_time("late", ctx, 2_000 * HOUR_MS)
    floor = (2_000 - 25).to_bytes(8, "big")
    assert reads == [GROUP_PREFIX + b"dedupe:" + floor, b"h" + floor]
    assert again.expired == 1
    assert all(again.first_time(f"more{i}", ctx, 2_000 * HOUR_MS + i) for i in range(100))
    assert len(reads) == 2, "no read while the hour lasts"
