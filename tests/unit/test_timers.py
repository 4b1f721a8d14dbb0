"""Durable timers over a state store: due order, reschedule, cancel, rebuilt from the store."""

from __future__ import annotations

import random

from wayline.streams.store import MemoryStore
from wayline.streams.task import StoreView
from wayline.streams.timers import Timer, TimerService


def service() -> tuple[TimerService, StoreView]:
    view = StoreView("timers", MemoryStore())
    return TimerService(view), view


def drain(timers: TimerService, now: int) -> list[Timer]:
    fired = []
    while (timer := timers.pop_due(now)) is not None:
        fired.append(timer)
    return fired


def test_timers_fire_in_due_order_once() -> None:
    timers, _ = service()
    dues = list(range(0, 10_000, 10))
    random.Random(3).shuffle(dues)
    for i, due in enumerate(dues):
        timers.schedule(f"key-{i}".encode(), due, "cart")
    assert timers.pending == len(dues)
    assert drain(timers, 4_999) == sorted(drain_copy(dues, 4_999))
    assert timers.next_due() == 5_000
    rest = drain(timers, 10**9)
    assert [t.due_ms for t in rest] == list(range(5_000, 10_000, 10))
    assert timers.pending == 0
    assert drain(timers, 10**9) == []


def drain_copy(dues: list[int], now: int) -> list[Timer]:
    return [Timer(d, f"key-{i}".encode(), "cart") for i, d in enumerate(dues) if d <= now]


def test_reschedule_replaces_and_cancel_removes() -> None:
    timers, _ = service()
    timers.schedule(b"a", 100, "x")
    timers.schedule(b"a", 300, "x")  # replaces 100
    timers.schedule(b"a", 200, "y")  # another tag: a second timer
    timers.schedule(b"b", 50, "x")
    assert timers.cancel(b"b", "x")
    assert not timers.cancel(b"b", "x")
    assert timers.due_at(b"a", "x") == 300
    assert timers.pending == 2
    assert drain(timers, 1000) == [Timer(200, b"a", "y"), Timer(300, b"a", "x")]


def test_timers_are_rebuilt_from_the_store() -> None:
    timers, view = service()
    for i in range(50):
        timers.schedule(f"k{i}".encode(), 1000 - i, "t")
    timers.cancel(b"k7", "t")
    view.store.write_batch(view.dirty)
    view.clear()
    rebuilt = TimerService(view)
    assert rebuilt.pending == 49
    fired = drain(rebuilt, 10**6)
    assert [t.due_ms for t in fired] == sorted(1000 - i for i in range(50) if i != 7)


def test_keys_with_any_bytes_and_tags_round_trip() -> None:
    timers, _ = service()
    timers.schedule(b"\x00\xffodd:key", 5, "tag with spaces/ü")
    assert drain(timers, 5) == [Timer(5, b"\x00\xffodd:key", "tag with spaces/ü")]


def test_moving_a_timer_is_one_write() -> None:
    """A profile's due time moves with nearly every event: one store entry (one changelog
    record per batch), not a second, due-ordered one."""
    timers, view = service()
    timers.schedule(b"p", 100, "wake")
    view.store.write_batch(view.dirty)
    view.clear()
    timers.schedule(b"p", 200, "wake")
    timers.schedule(b"p", 150, "wake")
    assert len(view.dirty) == 1
    assert timers.pending == 1
    assert drain(timers, 10**6) == [Timer(150, b"p", "wake")]


def test_a_store_with_due_ordered_entries_loads_and_drops_them() -> None:
    """Stores written before this release hold each timer twice; loading keeps the timers and
    deletes the second entries."""
    store = MemoryStore()
    ident = len(b"k").to_bytes(2, "big") + b"k" + b"t"
    due = (500).to_bytes(8, "big")
    store.write_batch({b"i" + ident: due, b"d" + due + ident: b""})
    view = StoreView("timers", store)
    timers = TimerService(view)
    assert timers.pending == 1
    assert view.dirty == {b"d" + due + ident: None}
    assert drain(timers, 1000) == [Timer(500, b"k", "t")]
