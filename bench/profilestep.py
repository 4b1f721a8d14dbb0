"""Profile-step benchmark: one pipeline run's resolved log replayed through the profile step alone.

The whole-pipeline benchmark moves by ±15 % or more from round to round on a shared machine, too
much to see a change of a few per cent in one worker. This one takes the log the profile worker
really reads — ``wayline.events.resolved`` of one ``bench.pipeline`` run at 100 segments:
events, merges, hand-offs in their partitions' order — and replays it in-process through
``ProfileStep`` on RocksDB stores exactly as the worker drives it (stream time advanced per
record, due timers fired before each record, ``end_batch`` and the commit's changelog records
per partition and batch), without the broker. Each contender is a child process that replays
the log several times and keeps its best; contenders alternate for ``--rounds``:

- ``current``: this tree on the compiled core;
- ``reference``: this tree on the pure-Python core (``WAYLINE_NATIVE=0``).

To A/B a change, run it on both commits (``--log`` keeps and reuses one captured log, so both
replay the same records); the figure is µs of CPU per resolved record.

``--instructions`` counts instead of timing: each contender's child runs under valgrind
(callgrind) twice — replaying the whole log once, and replaying none of it — and the difference
divided by the records is instructions per resolved record. Deterministic (the same tree gives
the same count to within a few hundredths of a per cent), so a change of one per cent shows; it
takes minutes per contender (valgrind runs code about 50 times slower).

    python -m bench.profilestep --json [--rounds 3] [--replays 3] [--log FILE] [--instructions]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from bench.pipeline import PARTITIONS, ROOT, run_child
from bench.pipelinerun import rules_file, traffic_file
from bench.runtime import cluster, save_results

BATCH = 500  # records of one partition per batch (the worker's batches hold up to 2,000 of four)
SEGMENTS = 100


def capture(log: Path, events: int) -> None:
    """One pipeline run of this tree; its resolved topic, in partition and offset order, to
    ``log`` (with the rules it ran under)."""
    from confluent_kafka import TopicPartition

    with tempfile.TemporaryDirectory() as tmp, cluster() as kafka:
        folder = Path(tmp)
        traffic, rules = traffic_file(folder, events), rules_file(folder, SEGMENTS)
        prefix = f"step{uuid.uuid4().hex[:8]}"
        args = ["child", kafka.bootstrap, str(traffic), str(rules), prefix]
        run_child(Path(sys.executable), ROOT / "src", args)
        consumer = kafka.consumer(f"capture-{uuid.uuid4().hex}", **{"fetch.wait.max.ms": 50})
        topic = f"{prefix}.events.resolved"
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        records: list[list[Any]] = []
        idle = time.monotonic()
        while time.monotonic() - idle < 5:  # the embedded broker answers past the end with silence
            for m in consumer.consume(10_000, 0.5):
                if m.error() is None:
                    idle = time.monotonic()
                    pairs: list[tuple[str, bytes | None]] = list(m.headers() or [])  # type: ignore[arg-type]
                    headers = [[k, (v or b"").decode()] for k, v in pairs]
                    key = (m.key() or b"").decode()
                    value = (m.value() or b"").decode()
                    records.append(
                        [m.partition(), m.offset(), key, headers, value, m.timestamp()[1]]
                    )
        consumer.close()
        spec = orjson.loads(rules.read_bytes())
    records.sort(key=lambda r: (r[0], r[1]))
    log.write_bytes(orjson.dumps({"rules": spec, "records": records}))


def replay(log: Path, replays: int, limit: int | None = None) -> dict[str, Any]:
    """The child's work (``bench.profilestepchild`` chose the core): the best of ``replays``
    (of the first ``limit`` records: 0 measures everything but the replay itself)."""
    from bench.history import profile_task
    from wayline.schemas.topics import Topics
    from wayline.segments.compiler import SegmentDef, compile_segments
    from wayline.segments.triggers import TriggerConfig
    from wayline.streams.envelope import Envelope
    from wayline.streams.memory import tune_garbage_collector
    from wayline.streams.profile import ProfileStep
    from wayline.streams.task import TaskContext

    found = orjson.loads(log.read_bytes())
    spec = found["rules"]
    defs = [SegmentDef(s["name"], s["rule"], 1, s["notify"]) for s in spec["segments"]]
    by_partition: dict[int, list[Envelope]] = {p: [] for p in range(PARTITIONS)}
    for p, offset, key, headers, value, ts in found["records"][:limit]:
        head = tuple((k, v.encode()) for k, v in headers)
        message = Envelope("events.resolved", p, offset, key.encode(), value.encode(), ts, head)
        by_partition[p].append(message)
    longest = max(len(m) for m in by_partition.values())

    def once() -> tuple[float, dict[str, int]]:
        with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
            triggers = TriggerConfig.from_mapping(spec["triggers"])
            step = ProfileStep(Topics(), compile_segments(defs), triggers)
            tasks = {
                p: stack.enter_context(profile_task(Path(tmp) / str(p), p))
                for p in range(PARTITIONS)
            }
            cpu = time.process_time()
            for start in range(0, longest, BATCH):
                for p, task in tasks.items():
                    batch = by_partition[p][start : start + BATCH]
                    if not batch:
                        continue
                    for message in batch:
                        task.advance(message.timestamp_ms)
                        assert task.timers is not None
                        while (timer := task.timers.pop_due(task.stream_time_ms)) is not None:
                            step.on_timer(timer, TaskContext(task, 0))
                        step.process(message, TaskContext(task, 0))
                    step.end_batch(TaskContext(task, 0))
                    commit = task.prepare_commit()
                    task.finish_commit(commit, {})
            spent = time.process_time() - cpu
        return spent, step.counters()

    tune_garbage_collector()
    runs = [once() for _ in range(replays)]
    best = min(spent for spent, _ in runs)
    records = len(found["records"][:limit])
    return {
        "records": records,
        "us_per_record": round(best / max(records, 1) * 1e6, 1),
        "replays_us_per_record": [round(s / max(records, 1) * 1e6, 1) for s, _ in runs],
        "counters": runs[0][1],
    }


def instructions(log: Path, native: str) -> dict[str, Any]:
    """Instructions per resolved record of one contender: its child under callgrind replaying
    the whole log once, less the same child replaying none of it."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("--instructions needs valgrind (apt install valgrind)")
    counts = []
    for limit in (None, 0):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "callgrind.out"
            args = [str(log), "1"] + ([] if limit is None else [str(limit)])
            env = os.environ | {
                "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
                "PYTHONHASHSEED": "0",
                "WAYLINE_NATIVE": native,
            }
            command = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}"]
            command += [sys.executable, "-m", "bench.profilestepchild", *args]
            done = subprocess.run(
                command, env=env, cwd=tmp, capture_output=True, text=True, timeout=3600
            )
            if done.returncode != 0:
                raise RuntimeError(f"callgrind child failed:\n{done.stderr[-3000:]}")
            found = json.loads(done.stdout.strip().splitlines()[-1])
            summary = next(
                line for line in out.read_text().splitlines() if line.startswith("summary:")
            )
            counts.append((int(summary.split()[1]), found))
    (whole, found), (setup, _) = counts
    measured: dict[str, Any] = found | {
        "instructions": whole - setup,
        "instructions_per_record": round((whole - setup) / found["records"]),
    }
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=15_000, help="simulated traffic")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the contenders")
    parser.add_argument("--replays", type=int, default=3, help="replays per child; best kept")
    parser.add_argument("--log", type=Path, help="a captured log to reuse (kept if new)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions (valgrind) per record"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = args.log or Path(tmp) / "resolved.json"
        if not log.exists():
            print("capturing a pipeline run's resolved log", file=sys.stderr)
            capture(log, args.events)
        contenders = {"current": "1", "reference": "0"}
        if args.instructions:
            counted = {name: instructions(log, native) for name, native in contenders.items()}
            report_instructions(counted, args.json)
            return
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
        for r in range(args.rounds):
            for name, native in contenders.items():
                own = [str(log), str(args.replays)]
                found = run_child(
                    Path(sys.executable),
                    ROOT / "src",
                    own,
                    {"WAYLINE_NATIVE": native},
                    module="bench.profilestepchild",
                )
                rounds[name].append(found)
                print(
                    f"round {r + 1} {name} ({found['core']}): {found['us_per_record']} µs/record",
                    file=sys.stderr,
                )
    results: dict[str, Any] = {"benchmark": "profilestep", "segments": SEGMENTS, "contenders": {}}
    for name, found_rounds in rounds.items():
        best = min(found_rounds, key=lambda f: f["us_per_record"])
        results["contenders"][name] = best | {
            "rounds_us_per_record": [f["us_per_record"] for f in found_rounds]
        }
    current = results["contenders"]["current"]["us_per_record"]
    reference = results["contenders"]["reference"]["us_per_record"]
    results["reference_over_current"] = round(reference / current, 2)
    save_results("profilestep", results)
    print(
        json.dumps(results, indent=2)
        if args.json
        else f"current {current} µs/record, reference {reference} ({reference / current:.2f}x)"
    )


def report_instructions(counted: dict[str, dict[str, Any]], as_json: bool) -> None:
    results: dict[str, Any] = {
        "benchmark": "profilestep-instructions",
        "segments": SEGMENTS,
        "contenders": counted,
    }
    current = counted["current"]["instructions_per_record"]
    reference = counted["reference"]["instructions_per_record"]
    results["reference_over_current"] = round(reference / current, 2)
    save_results("profilestep-instructions", results)
    print(
        json.dumps(results, indent=2)
        if as_json
        else f"current {current:,} instructions/record, reference {reference:,} "
        f"({reference / current:.2f}x)"
    )


if __name__ == "__main__":
    main()
