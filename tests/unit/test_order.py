"""Event-time order before identity: whatever the interleaving in which raw partitions reach
the identity worker, and however the log arrives in waves into an idle pipeline, events come
out in ``(event time, messageId)`` order, none late, and all of them once the input is quiet."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from wayline.streams.order import OrderBuffer, RawMarks
from wayline.streams.store import MemoryStore
from wayline.streams.task import StoreView, Task, TaskContext

WINDOW = 600_000
PARTITIONS = 3


def context(partition: int = 0, wall_ms: int = 0, task: Task | None = None) -> TaskContext:
    if task is None:
        views = {"order": StoreView("order", MemoryStore())}
        task = Task(partition, views, {"order": "o"}, clock="replay")
    return TaskContext(task, wall_ms)


@st.composite
def waves(draw: st.DrawFn) -> list[list[list[tuple[int, str]]]]:
    """Waves of a log (each later than the one before), per raw partition, each partition's
    events in order but for a shuffle within the window."""
    out, start = [], 0
    for w in range(draw(st.integers(1, 3))):
        wave = []
        for p in range(PARTITIONS):
            times = sorted(draw(st.lists(st.integers(0, 50 * WINDOW), max_size=25)))
            jitter = draw(
                st.lists(st.integers(0, WINDOW), min_size=len(times), max_size=len(times))
            )
            wave.append(
                [
                    (start + t + j, f"w{w}p{p}e{i}")
                    for i, (t, j) in enumerate(zip(times, jitter, strict=True))
                ]
            )
        out.append(wave)
        start += 60 * WINDOW
    return out  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(waves(), st.randoms(use_true_random=False), st.booleans())
def test_any_interleaving_of_raw_partitions_comes_out_in_event_time_order(
    log: list[list[list[tuple[int, str]]]], rng: object, quiet_first: bool
) -> None:
    import random

    assert isinstance(rng, random.Random)
    order, ctx = OrderBuffer(WINDOW, PARTITIONS), context()
    released: list[tuple[int, str]] = []
    reached = dict.fromkeys(range(PARTITIONS), 0)

    def quiet_round() -> None:  # the validate worker drained everything: one mark each
        for p in range(PARTITIONS):
            order.mark(ctx, p, reached[p], quiet=True)
        released.extend((h.at_ms, h.message_id) for h in order.release(ctx))

    if quiet_first:
        quiet_round()  # a pipeline started before the log came
    for wave in log:
        pending = {p: list(events) for p, events in enumerate(wave) if events}
        while pending:  # validate's batches: a chunk of one partition, then its mark
            p = rng.choice(sorted(pending))
            size = rng.randint(1, 10)
            chunk, pending[p] = pending[p][:size], pending[p][size:]
            for at, msgid in chunk:
                order.hold(ctx, at, msgid, 0, b"")
                reached[p] = max(reached[p], at)
            if not pending[p]:
                del pending[p]
            if rng.random() < 0.5:  # the identity worker's batch ended before the mark
                released.extend((h.at_ms, h.message_id) for h in order.release(ctx))
            order.mark(ctx, p, reached[p])
            released.extend((h.at_ms, h.message_id) for h in order.release(ctx))
        quiet_round()
    everything = sorted(e for wave in log for events in wave for e in events)
    assert released == everything
    assert order.late == 0


def test_a_partition_is_quiet_after_an_empty_poll_and_the_idle_time_only() -> None:
    marks = RawMarks(idle_ms=1_000)
    task = context(0).task
    assert not marks.quiet(context(wall_ms=0, task=task))  # newly assigned
    assert not marks.quiet(context(wall_ms=500, task=task))  # not assigned long enough
    assert marks.quiet(context(wall_ms=1_000, task=task))  # empty polls for 1 s
    assert not marks.quiet(context(wall_ms=1_500, task=task))  # told already
    assert marks.quiet(context(wall_ms=2_000, task=task))  # told again after idle
    marks.event(context(wall_ms=2_100, task=task), at_ms=7)
    assert not marks.quiet(context(wall_ms=5_000, task=task)), "the poll before gave an event"
    assert marks.quiet(context(wall_ms=5_100, task=task))
    assert marks.reached == {0: 7}


def test_a_busy_worker_is_never_quiet() -> None:
    marks, task = RawMarks(idle_ms=1_000), context(0).task
    marks.quiet(context(wall_ms=0, task=task))
    for second in range(1, 10):  # a slow batch every second, each with events
        marks.event(context(wall_ms=second * 1_000, task=task), at_ms=second)
        assert not marks.quiet(context(wall_ms=second * 1_000 + 999, task=task))


def test_live_mode_is_never_quiet() -> None:
    marks, task = RawMarks(idle_ms=None), context(0).task
    for wall in range(0, 10_000, 1_000):
        assert not marks.quiet(context(wall_ms=wall, task=task))
