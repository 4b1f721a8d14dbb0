"""A task's clock and its commit: what goes to the changelog, in which order, and the overlay."""

from __future__ import annotations

from wayline.streams.changelog import DATA_PREFIX, MARKER_KEY, Marker, decode_record, fold_changelog
from wayline.streams.store import MemoryStore
from wayline.streams.task import ClockMode, StoreView, Task, local_checkpoint
from wayline.streams.watchdog import Watchdog


def task(clock: ClockMode = "live", grace_ms: int = 0) -> Task:
    views = {"sums": StoreView("sums", MemoryStore()), "timers": StoreView("timers", MemoryStore())}
    changelogs = {"sums": "log.sums", "timers": "log.timers"}
    return Task(3, views, changelogs, clock=clock, grace_ms=grace_ms)


def test_partition_time_live_and_replay() -> None:
    live, replay = task("live", grace_ms=2_000), task("replay", grace_ms=2_000)
    for t in (live, replay):
        t.advance(10_000)
        t.advance(4_000)  # a late event never moves time back
        t.advance(None)
    assert live.stream_time_ms == replay.stream_time_ms == 10_000
    assert live.partition_time_ms(wall_ms=50_000) == 48_000  # wall clock minus grace
    assert live.partition_time_ms(wall_ms=5_000) == 10_000  # never behind stream time
    assert replay.partition_time_ms(wall_ms=50_000) == 10_000  # event time only


def test_overlay_reads_its_own_writes() -> None:
    t = task()
    sums = t.views["sums"]
    sums.store.write_batch({b"a": b"1", b"b": b"2"})
    sums.put(b"a", b"5")
    sums.delete(b"b")
    sums.put(b"c", b"7")
    assert (sums.get(b"a"), sums.get(b"b"), sums.get(b"c")) == (b"5", None, b"7")
    assert list(sums.items()) == [(b"a", b"5"), (b"c", b"7")]
    assert sums.store.get(b"a") == b"1", "nothing reaches the store before the commit"


def test_commit_writes_before_images_marker_and_deferred_tombstones() -> None:
    t = task()
    sums = t.views["sums"]
    sums.store.write_batch({b"a": b"1", b"b": b"2"})
    sums.put(b"a", b"5")
    sums.put(b"a", b"6")  # the before-image stays the committed value
    sums.delete(b"b")
    t.offsets["in"] = 42
    t.advance(9_000)
    commit = t.prepare_commit()
    records = {o.key: decode_record(o.value or b"") for o in commit.records}
    assert records[DATA_PREFIX + b"a"].new == b"6"
    assert records[DATA_PREFIX + b"a"].before == b"1"
    assert records[DATA_PREFIX + b"b"].new is None
    assert {o.partition for o in commit.records} == {3}
    assert commit.marker.key == MARKER_KEY
    assert commit.marker.topic == "log.sums"
    assert Marker.decode(commit.marker.value or b"") == Marker(1, {"in": 42}, 9_000)

    t.finish_commit(commit, {"log.sums": 17})
    assert (sums.store.get(b"a"), sums.store.get(b"b")) == (b"6", None)
    marker, offset = local_checkpoint(sums.store)
    assert (marker, offset) == (Marker(1, {"in": 42}, 9_000), 17)
    assert t.applied("in", 41)
    assert not t.applied("in", 42)

    follow_up = t.prepare_commit()  # the delete becomes a real tombstone one batch later
    assert [(o.key, o.value) for o in follow_up.records] == [(DATA_PREFIX + b"b", None)]
    log = [(o.key or b"", o.value) for o in [*commit.records, commit.marker]]
    assert fold_changelog(log).values == {b"a": b"6", b"b": None}


def test_watchdog_reports_a_stall_once() -> None:
    dog = Watchdog("w", stall_after_s=5)
    start = dog.last_progress
    assert not dog.check(lag=10, now=start + 4)
    assert dog.check(lag=10, now=start + 6)
    assert not dog.check(lag=10, now=start + 20), "one report per stall"
    dog.progress(3)
    assert not dog.check(lag=0, now=dog.last_progress + 60), "no lag, no stall"
