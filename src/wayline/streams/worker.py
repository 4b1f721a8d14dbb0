"""A consumer-group worker: poll a batch → apply the step chain per task → commit in fixed order.

One loop iteration, in order (the flush order every guarantee rests on):

1. consume up to ``batch_size`` messages; skip those a committed batch already applied;
2. per message: advance the task's stream time, fire the timers now due, run the step;
3. produce the outputs and the changelog records of every touched task; flush (acks=all);
4. produce each task's commit marker; flush;
5. apply the batch to the local stores, atomically with the commit metadata;
6. commit the consumer offsets (synchronously).

A crash anywhere replays from the last committed consumer offset; step 1 drops what step 4
already committed and restore (``streams.restore``) reverts what step 3 left half-written, so
state changes exactly once and outputs repeat only with the same deterministic ids.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from confluent_kafka import Consumer, KafkaException, TopicPartition

from wayline.schemas.errors import RetryableError, SystemicFailure
from wayline.streams.clients import KafkaConfig, consumer_lag, usable
from wayline.streams.envelope import Envelope, Output
from wayline.streams.failure import FailurePolicy
from wayline.streams.membership import Callbacks, Membership
from wayline.streams.metrics import BATCH_SECONDS, DEAD_LETTERS
from wayline.streams.offsets import committable_offsets
from wayline.streams.options import WorkerOptions, WorkerStats
from wayline.streams.outbox import Outbox
from wayline.streams.restore import TaskLayout, restore_task
from wayline.streams.steps import (
    AfterCommit,
    BatchAbort,
    BatchEnd,
    Lifecycle,
    Processor,
    Refresh,
    TimerHandler,
)
from wayline.streams.task import Commit, Task, TaskCheckpoint, TaskContext
from wayline.streams.watchdog import Watchdog

__all__ = ["Worker", "WorkerOptions", "WorkerStats"]
log: Final = logging.getLogger(__name__)


class Worker:
    """Runs one ``Processor`` over input topics in a consumer group until ``stop()``."""

    def __init__(
        self,
        name: str,
        group: str,
        inputs: list[str],
        processor: Processor,
        kafka: KafkaConfig,
        dead_letter_topic: str | None = None,
        options: WorkerOptions | None = None,
        changelogs: dict[str, str] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.group = group
        self.inputs = inputs
        self.processor = processor
        # runtime-checkable Protocol checks cost microseconds: decide once, not per message
        self._timer_handler = processor if isinstance(processor, TimerHandler) else None
        self._batch_end = processor if isinstance(processor, BatchEnd) else None
        self._refresh = processor if isinstance(processor, Refresh) else None
        self._on_abort = processor if isinstance(processor, BatchAbort) else None
        self._after_commit = processor if isinstance(processor, AfterCommit) else None
        self._lifecycle = processor if isinstance(processor, Lifecycle) else None
        self.kafka = kafka
        self.dead_letter_topic = dead_letter_topic
        self.options = options or WorkerOptions()
        self.layout = TaskLayout(
            name,
            dict(changelogs or {}),
            self.options.state_dir,
            self.options.clock,
            self.options.grace_ms,
        )
        self.wall_clock = wall_clock
        self.failures = FailurePolicy(
            name, type(processor).__name__, dead_letter_topic, self.options.failure_limits
        )
        self.tasks: dict[int, Task] = {}
        self._stop = threading.Event()
        self._stats = WorkerStats()
        self._lock = threading.Lock()
        self._outbox: Outbox | None = None

    def stop(self) -> None:
        self._stop.set()

    def stats(self) -> WorkerStats:
        pending = sum(t.timers.pending for t in list(self.tasks.values()) if t.timers)
        counters = getattr(self.processor, "counters", None)
        with self._lock:
            self._stats.timers_pending = pending
            if self._outbox is not None:
                self._stats.retries = self._outbox.retries
                self._stats.retrying = self._outbox.retrying
            if counters is not None:
                self._stats.steps = dict(counters())
            return WorkerStats(**vars(self._stats))

    def run(self) -> None:
        """Process until ``stop()``; see the module docstring for the order of a batch."""
        if self._lifecycle is not None:
            self._lifecycle.open(self._stop)
        try:
            self._loop()
        finally:
            if self._lifecycle is not None:
                self._lifecycle.close()

    def _loop(self) -> None:
        self._outbox = Outbox(self.kafka, self.name, self._stop)
        membership = Membership(
            self.kafka,
            self.name,
            self.group,
            self.inputs,
            Callbacks(self._on_assign, self._on_revoke),
            self.options.consumer_overrides,
            self.options.coordinator_lost_after_s,
        )
        consumer = membership.consumer
        watchdog = Watchdog(self.name, self.options.stall_after_s)
        next_report = time.monotonic() + self.options.stats_interval_s
        try:
            while not self._stop.is_set():
                messages = consumer.consume(self.options.batch_size, self.options.poll_timeout_s)
                batch = [Envelope.from_message(m) for m in messages if usable(m)]
                started = time.perf_counter()
                try:
                    self._outbox.until_sent(self._run_batch, batch, consumer)
                except RetryableError:
                    if not self._stop.is_set():
                        raise
                    log.info("worker %s stopping with a batch unacknowledged", self.name)
                    break  # nothing of it was committed: the next run replays it
                if batch:
                    BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)
                watchdog.progress(len(batch))
                if time.monotonic() >= next_report:
                    next_report = time.monotonic() + self.options.stats_interval_s
                    if self._report(consumer, watchdog):  # a consumer that stopped fetching
                        membership.renew("no progress while behind")
                    if membership.consumer is not consumer or membership.renewed_if_lost():
                        consumer = membership.consumer  # the old consumer's tasks are gone
                        self._close_tasks(list(self.tasks))
                        with self._lock:
                            self._stats.assigned = []
                            self._stats.consumers_renewed += 1
            self._last_batch(consumer)
        finally:
            self._close_tasks(list(self.tasks))
            membership.consumer.close()
            self._outbox.close()
            log.info("worker %s stopped", self.name)

    def _last_batch(self, consumer: Consumer) -> None:
        """Stopping: work the processor has under way finishes and is recorded."""
        if self._lifecycle is None or not self.tasks:
            return
        self._lifecycle.quiesce()
        try:
            self._run_batch([], consumer)
        except (RetryableError, KafkaException) as exc:
            log.warning("worker %s: the last batch was not recorded (%s)", self.name, exc)

    def _run_batch(self, batch: list[Envelope], consumer: Consumer) -> None:
        try:
            self._run([batch])
        except (RetryableError, SystemicFailure):
            raise
        except Exception:  # a step failed (rolled back): find the record, dead-letter it
            if not batch:
                raise  # no record to blame (a refresh, a timer's batch end): the worker crashed
            self._run([[m] for m in batch], isolate=True)
        if batch:
            offsets = committable_offsets(batch)
            try:
                consumer.commit(
                    offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                    asynchronous=False,
                )
            except KafkaException as exc:  # e.g. membership lost in a broker pause: harmless,
                log.warning(  # the commit markers hold the progress (restore skips applied)
                    "worker %s: consumer offsets not committed (%s); commit markers have them",
                    self.name,
                    exc,
                )
                return
            with self._lock:
                self._stats.commits += 1
                self._stats.last_commit_at = time.time()

    def _run(self, batches: list[list[Envelope]], isolate: bool = False) -> None:
        """Each batch computed then committed; with ``isolate``, a batch (of one record) whose
        step raises is rolled back and its record dead-lettered."""
        for batch in batches:
            saved = {p: t.checkpoint() for p, t in self.tasks.items()}
            try:
                outputs, touched, processed = self._compute(batch)
            except Exception as exc:
                self._abort(saved)
                if not isolate or isinstance(exc, RetryableError | SystemicFailure):
                    raise
                outputs, touched, processed = self._poisoned(batch[0], exc), set(), 1
                if batch[0].partition in self.tasks:
                    touched.add(batch[0].partition)
            else:
                self.failures.succeeded(processed)
            if outputs or touched:
                try:
                    self._commit([self.tasks[p] for p in sorted(touched)], outputs)
                except RetryableError:
                    self._abort(saved)  # not acknowledged: the retry computes it again
                    raise
                self._count(processed, outputs)
                if self._after_commit is not None:
                    self._after_commit.after_commit()

    def _compute(self, batch: list[Envelope]) -> tuple[list[Output], set[int], int]:
        """Refresh, timers, steps and batch ends: the outputs and the tasks they touched."""
        outputs: list[Output] = []
        touched: set[int] = set()
        wall_ms = int(self.wall_clock() * 1000)
        processed = 0
        if self._refresh is not None:
            for each in self.tasks.values():
                refreshed = self._refresh.refresh(TaskContext(each, wall_ms))
                if refreshed or each.dirty:
                    outputs += refreshed
                    touched.add(each.partition)
        for message in batch:
            task = self.tasks.get(message.partition)
            if task is None or task.applied(message.topic, message.offset):
                with self._lock:
                    self._stats.skipped_applied += 1
                continue
            task.advance(message.timestamp_ms)
            outputs += self._fire_timers(task, wall_ms)
            outputs += self.processor.process(message, TaskContext(task, wall_ms))
            task.offsets[message.topic] = message.offset + 1
            touched.add(task.partition)
            processed += 1
        for task in self.tasks.values():  # idle partitions still fire on the wall clock
            fired = self._fire_timers(task, wall_ms)
            if fired or task.dirty:
                outputs += fired
                touched.add(task.partition)
        if self._batch_end is not None:
            for number in sorted(touched):
                outputs += self._batch_end.end_batch(TaskContext(self.tasks[number], wall_ms))
        return outputs, touched, processed

    def _abort(self, saved: dict[int, TaskCheckpoint]) -> None:
        """Forget the uncommitted batch: stores, timers and progress back to ``saved``, and the
        step chain's memory of the batch."""
        for number, task in self.tasks.items():
            if number in saved:
                task.roll_back(saved[number])
        if self._on_abort is not None:
            self._on_abort.abort_batch()

    def _poisoned(self, message: Envelope, exc: Exception) -> list[Output]:
        task = self.tasks.get(message.partition)
        if task is not None:
            task.offsets[message.topic] = message.offset + 1
        return self.failures.record_failed(message, exc)

    def _fire_timers(self, task: Task, wall_ms: int) -> list[Output]:
        if task.timers is None or self._timer_handler is None:
            return []
        outputs: list[Output] = []
        now = task.partition_time_ms(wall_ms)
        while (timer := task.timers.pop_due(now)) is not None:
            try:
                outputs += self._timer_handler.on_timer(timer, TaskContext(task, wall_ms))
            except (RetryableError, SystemicFailure):
                raise
            except Exception as exc:  # a timer that cannot fire is dead-lettered and dropped
                outputs += self.failures.timer_failed(timer, task.partition, exc)
            with self._lock:
                self._stats.timers_fired += 1
        return outputs

    def _commit(self, tasks: list[Task], outputs: list[Output]) -> None:
        """Outputs + changelog acknowledged → markers acknowledged → local stores."""
        commits = [(task, task.prepare_commit()) for task in tasks if task.views]
        records = [r for _, c in commits for r in c.records]
        assert self._outbox is not None
        ends = self._outbox.send([*outputs, *records], "outputs and changelog records")
        markers = self._outbox.send([c.marker for _, c in commits], "commit markers")
        for task, commit in commits:
            task.finish_commit(commit, _ends_of(task, commit, {**ends, **markers}))

    def _count(self, processed: int, outputs: list[Output]) -> None:
        dead = 0
        for out in outputs:
            if out.topic == self.dead_letter_topic:
                dead += 1
                reason = dict(out.headers).get("wayline.dlq.reason", b"unknown")
                DEAD_LETTERS.labels(self.name, reason.decode()).inc()
        with self._lock:
            self._stats.events_in += processed
            self._stats.batches += 1
            self._stats.dead_lettered += dead
            self._stats.events_out += len(outputs) - dead

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for number in sorted({p.partition for p in partitions} - set(self.tasks)):
            self._open_task(number)
        with self._lock:
            self._stats.assigned += [f"{p.topic}[{p.partition}]" for p in partitions]
        log.info("worker %s assigned %s", self.name, [p.partition for p in partitions])

    def _open_task(self, partition: int) -> None:
        if not self.layout.changelogs:
            self.tasks[partition] = Task(partition, {}, {}, self.layout.clock, self.layout.grace_ms)
            return
        cpu = time.thread_time()
        task, report = restore_task(self.kafka, self.layout, partition)
        self.tasks[partition] = task
        if task.dirty:  # compensations for a batch that crashed before its marker
            self._commit([task], [])
        log.info(
            "worker %s restored partition %d: %d records in %.2fs%s%s",
            self.name,
            partition,
            report.records,
            report.seconds,
            f", from scratch: {report.from_scratch}" if report.from_scratch else "",
            f", {report.compensated} uncommitted writes reverted" if report.compensated else "",
        )
        with self._lock:
            self._stats.restored_records += report.records
            self._stats.restore_seconds += report.seconds
            self._stats.restore_cpu_seconds += time.thread_time() - cpu

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {f"{p.topic}[{p.partition}]" for p in partitions}
        with self._lock:
            self._stats.assigned = [a for a in self._stats.assigned if a not in gone]
            still = {int(a.rsplit("[", 1)[1][:-1]) for a in self._stats.assigned}
        self._close_tasks([p for p in {p.partition for p in partitions} if p not in still])

    def _close_tasks(self, partitions: list[int]) -> None:
        """Batches are committed before the next poll, so a revoked task has nothing pending."""
        for number in partitions:
            task = self.tasks.pop(number, None)
            if task is not None:
                task.close()

    def _report(self, consumer: Consumer, watchdog: Watchdog) -> bool:
        """Log the counters; True when the worker was found stalled just now."""
        lag = consumer_lag(consumer)
        with self._lock:
            self._stats.lag = lag
            self._stats.store_keys = sum(
                v.store.count() for t in self.tasks.values() for v in t.views.values()
            )
        stalled = watchdog.check(lag)
        with self._lock:
            self._stats.stalls += int(stalled)
            self._stats.stalled = watchdog.stalled
        log.info("worker %s %s", self.name, self.stats())
        return stalled


def _ends_of(task: Task, commit: Commit, ends: dict[tuple[str, int], int]) -> dict[str, int]:
    del commit
    return {
        topic: ends[(topic, task.partition)]
        for topic in task.changelogs.values()
        if (topic, task.partition) in ends
    }
