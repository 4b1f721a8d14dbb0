"""Whole-pipeline benchmark: validate → identity → profile + segments + triggers on the embedded
broker, for this tree and for a baseline commit, in the same run.

Every contender is a child process (``python -m bench.pipeline child``) charged its own CPU time
(the broker's excluded) from its workers' start until every event and merge hand-off is in a
profile; each worker's own CPU comes from its thread's clock. The children import only the parts
of ``wayline`` that both trees share (``bench.pipeline`` imports nothing of it at module level),
so the same driver runs the baseline's code and this tree's. Beside them, in the same run:

- ``raw``: a confluent-kafka consume + orjson decode of the raw topic (the physical limit);
- ``quix``: quixstreams doing the profile fold (decode, state read, ``apply_event``, state write
  with its RocksDB store and changelog) over the resolved events of this tree's run, in a venv of
  its own (quixstreams pins an older confluent-kafka; ``make bench`` creates it);
- records produced per event: every record of the run's topics but the input, counted by
  reading them back.

    python -m bench.pipeline --json [--baseline REF] [--segments 0,100,1000] [--events 30000]
        [--rounds 3]

Results go to ``bench/results/pipeline.json`` and a plot to ``bench/results/pipeline.svg``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "67335df"  # main before the typed core and the per-event cost work
QUIX_PYTHON = ROOT / ".venv" / "quix" / "bin" / "python"
PIPELINE = ("validate", "identity", "profile")
PARTITIONS = 4


# ---------------------------------------------------------------------------------------------
# The trees: this checkout, and a baseline commit exported beside it


@contextmanager
def baseline_tree(ref: str) -> Iterator[Path]:
    """``ref``'s files in a temporary folder, with a ``wayline`` package a child can import:
    ``src/`` for a src layout, otherwise the old top-level folders linked into one package."""
    with tempfile.TemporaryDirectory(prefix="wayline-baseline-") as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        if (tree / "src" / "wayline").is_dir():
            yield tree / "src"
            return
        package = Path(tmp) / "pkg" / "wayline"
        package.mkdir(parents=True)
        for item in (tree / "wayline").iterdir():
            (package / item.name).symlink_to(item)
        for folder in ("streams", "profiles", "segments", "connectors", "schemas"):
            (package / folder).symlink_to(tree / folder)
        yield package.parent


def run_child(
    python: Path,
    path: Path,
    args: list[str],
    extra: dict[str, str] | None = None,
    module: str = "bench.pipeline",
) -> dict[str, Any]:
    """``python -m module args`` on the package at ``path``; its last line, as JSON."""
    env = os.environ | {"PYTHONPATH": f"{path}{os.pathsep}{ROOT}", "PYTHONHASHSEED": "0"}
    env |= extra or {}
    done = subprocess.run(
        [str(python), "-m", module, *args],
        env=env,
        cwd=tempfile.gettempdir(),  # nothing of this checkout shadows the tree's package
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {args[:2]} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------------------------
# The child: one pipeline, one tree, one segment count


def child_pipeline(bootstrap: str, traffic: Path, rules: Path, prefix: str) -> dict[str, Any]:
    core = _activate()
    from wayline.schemas.topics import Topics
    from wayline.segments.compiler import SegmentDef, compile_segments
    from wayline.segments.triggers import TriggerConfig
    from wayline.streams.admin import ensure_topics
    from wayline.streams.clients import KafkaConfig
    from wayline.streams.memory import tune_garbage_collector
    from wayline.streams.registry import WorkerContext, default_registry, store_topics
    from wayline.streams.worker import WorkerOptions

    tune_garbage_collector()  # as every Wayline worker process does
    kafka = KafkaConfig(bootstrap)
    spec = orjson.loads(rules.read_bytes())
    defs = [SegmentDef(s["name"], s["rule"], 1, s["notify"]) for s in spec["segments"]]
    segments = compile_segments(defs) if spec["with_segments"] else None
    triggers = TriggerConfig.from_mapping(spec["triggers"]) if spec["with_segments"] else None
    topics = Topics(prefix=prefix, partitions=PARTITIONS)
    registry = default_registry()
    ensure_topics(kafka, topics.specs(store_topics(registry)))
    events = produce_traffic(kafka, topics, traffic)
    with tempfile.TemporaryDirectory() as state:
        options = WorkerOptions(
            batch_size=2_000,
            state_dir=Path(state),
            consumer_overrides={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
        )
        context = WorkerContext(
            topics=topics, kafka=kafka, options=options, segments=segments, triggers=triggers
        )
        workers = [registry[name].create(context) for name in PIPELINE]
        clocks: dict[str, float] = {}
        cpu, wall = time.process_time(), time.monotonic()
        threads = [start_worker(worker, clocks) for worker in workers]
        try:
            wait_until(lambda: pipeline_done(workers, events), 900)
            cpu_s, wall_s = time.process_time() - cpu, time.monotonic() - wall
        finally:
            for worker in workers:
                worker.stop()
            for thread in threads:
                thread.join(60)
        stats = {worker.name: worker.stats() for worker in workers}
    return {
        "core": core,
        "events": events,
        "cpu_s": cpu_s,
        "wall_s": wall_s,
        "worker_cpu_s": clocks,
        "validated": stats["validate"].events_out,
        "restore_cpu_s": {
            name: round(getattr(st, "restore_cpu_seconds", 0.0), 3) for name, st in stats.items()
        },
        "transitions": stats["profile"].steps.get("segment_transitions", 0),
        "triggers": stats["profile"].steps.get("triggers_fired", 0),
    }


def _activate() -> str:
    """The compiled per-event core unless ``WAYLINE_NATIVE=0`` (a tree without one: "none")."""
    try:
        from wayline import native  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return "none"
    found: str = native.activate(os.environ.get("WAYLINE_NATIVE", "1") != "0")
    return found


def produce_traffic(kafka: Any, topics: Any, traffic: Path) -> int:
    """The traffic as the tree's own collector writes it (one request per event, received 20 ms
    after it was sent: what the raw topic holds live); how many raw records. The collector's
    preparation is pure, so it is called without a server (``Collector._prepare`` of both trees).
    """
    from wayline.connectors.collector import Collector
    from wayline.schemas.timestamps import parse_timestamp

    collector = SimpleNamespace(topics=topics, phone_region=None)
    producer = kafka.producer(**{"linger.ms": 20})
    sent = 0
    for line in traffic.read_bytes().splitlines():
        source, channel, event = orjson.loads(line)
        at = parse_timestamp(event.get("sentAt")) or datetime.now(UTC)
        received = at + timedelta(milliseconds=20)
        origin = SimpleNamespace(name=source, channel=channel)
        _, _, records = Collector._prepare(collector, [event], {}, origin, received)  # type: ignore[arg-type]
        for record in records:
            _produce(producer, record.topic, record.value, record.key, record.headers)
            sent += record.topic == topics.raw
    producer.flush(60)
    return sent


def _produce(producer: Any, topic: str, value: bytes, key: Any, headers: Any) -> None:
    while True:
        try:
            producer.produce(topic, value, key, headers=headers)
            return
        except BufferError:
            producer.poll(0.05)


def produce_events(kafka: Any, topic: str, events: Iterable[tuple[str, str, Any]]) -> int:
    """Raw ``(source, channel, event)`` records as the collector writes them; how many."""
    producer = kafka.producer(**{"linger.ms": 20})
    sent = 0
    for source, channel, event in events:
        headers = [("wayline.source", source.encode()), ("wayline.channel", channel.encode())]
        key = str(event.get("userId") or event.get("anonymousId") or event["messageId"]).encode()
        _produce(producer, topic, orjson.dumps(event), key, headers)
        sent += 1
    producer.flush(60)
    return sent


def start_worker(worker: Any, clocks: dict[str, float]) -> threading.Thread:
    def run() -> None:
        start = time.thread_time()
        try:
            worker.run()
        finally:
            clocks[worker.name] = time.thread_time() - start

    thread = threading.Thread(target=run, name=worker.name, daemon=True)
    thread.start()
    return thread


def pipeline_done(workers: list[Any], sent: int) -> bool:
    """Every event of ``sent`` validated, resolved and in a profile, every hand-off taken in."""
    validate, identity, profile = (w.stats() for w in workers)
    if validate.events_in < sent:
        return False
    steps, ids = profile.steps, identity.steps
    applied = steps.get("events_applied", 0) + steps.get("duplicates_ignored", 0)
    return bool(
        identity.events_in >= validate.events_out
        and ids.get("held_for_order", 0) == ids.get("released_in_order", 0)
        and applied >= ids.get("events_resolved", 0) > 0
        and steps.get("handoffs_absorbed", 0) >= ids.get("merges", 0)
    )


def wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the pipeline did not finish")
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# The quixstreams child: the profile fold over a resolved-events topic


def child_quix(bootstrap: str, topic: str, events: int) -> dict[str, Any]:
    from quixstreams import Application  # type: ignore[import-not-found]

    from wayline.profiles.state import apply_event, empty_state

    seen = [0]
    started: list[float] = []
    app = Application(
        broker_address=bootstrap,
        consumer_group=f"quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        state_dir=tempfile.mkdtemp(prefix="quix-state-"),
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
    )

    def fold(value: bytes, state: Any) -> None:
        if not started:
            started.append(time.process_time())  # charged from its first event: favours it
        seen[0] += 1
        event = orjson.loads(value) if value else {}
        if "messageId" in event:  # not a merge hand-off
            profile = state.get("profile", None) or empty_state()
            linked = [(str(k), str(v)) for k, v in event.get("linked") or ()]
            apply_event(profile, event, linked)
            state.set("profile", profile)
        if seen[0] >= events:
            app.stop()

    sdf = app.dataframe(app.topic(topic, value_deserializer="bytes"))
    sdf.update(fold, stateful=True)
    app.run()
    return {"events": seen[0], "cpu_s": time.process_time() - started[0]}


# ---------------------------------------------------------------------------------------------
# The parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode")
    child = sub.add_parser("child")
    child.add_argument("bootstrap")
    child.add_argument("traffic", type=Path)
    child.add_argument("rules", type=Path)
    child.add_argument("prefix")
    quix = sub.add_parser("quix")
    quix.add_argument("bootstrap")
    quix.add_argument("topic")
    quix.add_argument("events", type=int)
    parser.add_argument("--baseline", default=BASELINE, help="a commit; '' for none")
    parser.add_argument("--segments", default="0,100,1000")
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved; medians reported")
    parser.add_argument("--no-quix", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args()
    if args.mode == "child":
        print(json.dumps(child_pipeline(args.bootstrap, args.traffic, args.rules, args.prefix)))
    elif args.mode == "quix":
        print(json.dumps(child_quix(args.bootstrap, args.topic, args.events)))
    else:
        from bench.pipelinerun import run_all

        counts = [int(n) for n in args.segments.split(",") if n.strip()]
        run_all(args.baseline, counts, args.events, not args.no_quix, args.json, args.rounds)


if __name__ == "__main__":
    main()
