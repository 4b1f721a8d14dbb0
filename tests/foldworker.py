"""A small stateful worker for the runtime's crash, rebalance and timer tests.

Input values are JSON: ``{"id", "amount"}`` adds ``amount`` to the key's running sum and emits
``{"id", "key", "total"}``; ``{"id", "schedule": due_ms, "tag"}`` sets a timer that, when it
fires, emits ``{"id": "timer:KEY:DUE:TAG", "key", "due_ms", "tag", "fired_at_ms"}``.
Run as a process: ``python foldworker.py BOOTSTRAP PREFIX STATE_DIR [live|replay]``.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import orjson

from wayline.schemas.topics import Topics
from wayline.streams.clients import KafkaConfig
from wayline.streams.envelope import Envelope, Output
from wayline.streams.task import ClockMode, TaskContext
from wayline.streams.timers import Timer
from wayline.streams.worker import Worker, WorkerOptions

NAME = "fold"
STORES = ["sums", "timers"]
CONSUMER = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


def fold_topics(prefix: str) -> Topics:
    return Topics(prefix=prefix, partitions=4)


class SumFold:
    def __init__(self, output: str) -> None:
        self.output = output

    def process(self, message: Envelope, ctx: TaskContext) -> list[Output]:
        event = orjson.loads(message.value or b"{}")
        key = message.key or b""
        if "schedule" in event:
            ctx.timers.schedule(key, int(event["schedule"]), str(event.get("tag", "")))
            return []
        if "amount" not in event:
            return []
        sums = ctx.store("sums")
        total = int(sums.get(key) or b"0") + int(event["amount"])
        sums.put(key, str(total).encode())
        value = {"id": event["id"], "key": key.decode(), "total": total}
        return [Output(self.output, key, orjson.dumps(value))]

    def on_timer(self, timer: Timer, ctx: TaskContext) -> list[Output]:
        key = timer.key.decode()
        value = {
            "id": f"timer:{key}:{timer.due_ms}:{timer.tag}",
            "key": key,
            "due_ms": timer.due_ms,
            "tag": timer.tag,
            "fired_at_ms": int(time.time() * 1000),
            "partition": ctx.partition,
            "clock": ctx.task.clock,
        }
        return [Output(self.output, timer.key, orjson.dumps(value))]


def fold_worker(
    kafka: KafkaConfig,
    prefix: str,
    state_dir: Path,
    clock: ClockMode = "live",
    group_suffix: str = "",
    batch_size: int = 500,
) -> Worker:
    topics = fold_topics(prefix)
    options = WorkerOptions(
        batch_size=batch_size,
        consumer_overrides=dict(CONSUMER),
        state_dir=state_dir,
        clock=clock,
        stats_interval_s=2.0,
    )
    return Worker(
        name=NAME,
        group=f"{prefix}.{NAME}{group_suffix}",
        inputs=[topics.raw],
        processor=SumFold(topics.triggers),
        kafka=kafka,
        options=options,
        changelogs={store: topics.changelog(NAME + group_suffix, store) for store in STORES},
    )


def main() -> None:
    bootstrap, prefix, state_dir = sys.argv[1:4]
    clock: ClockMode = "replay" if sys.argv[4:5] == ["replay"] else "live"
    worker = fold_worker(KafkaConfig(bootstrap), prefix, Path(state_dir), clock, batch_size=200)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    print("fold worker running", flush=True)
    worker.run()


if __name__ == "__main__":
    main()
