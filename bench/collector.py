"""Collector benchmark: ``POST /v1/batch`` with 100 events per request, acks=all.

The collector runs as ``wayline api`` (its own process, on the embedded broker); the load
generator is a separate process with concurrent keep-alive connections. The collector is
charged its process's CPU time. Baseline in the same run: the same events produced straight to
the broker by one confluent-kafka producer (acks=all) — the cost of Kafka alone, without HTTP,
authentication, validation or stamping.

    python -m bench.collector --json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.runtime import save_results
from wayline.streams.broker import EmbeddedBroker, free_port
from wayline.streams.clients import KafkaConfig

HERE = Path(__file__).resolve().parent
WRITE_KEY = "wk_bench_00001"
CONFIG = f"sources:\n  - name: web\n    channel: web\n    write_keys: [{WRITE_KEY}]\n"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_bodies(count: int, per_request: int) -> list[bytes]:
    bodies = []
    for r in range(count):
        batch = [
            {
                "type": "track",
                "messageId": str(uuid.uuid4()),
                "userId": f"user-{(r * per_request + i) % 5000}",
                "event": "Product Viewed",
                "properties": {"sku": f"SH-{i % 40}", "price": 59.9, "category": "shoes"},
                "context": {"page": {"path": "/p/shoes"}, "userAgent": "Mozilla/5.0"},
                "timestamp": "2026-11-24T10:00:00.000Z",
            }
            for i in range(per_request)
        ]
        bodies.append(orjson.dumps({"batch": batch, "sentAt": "2026-11-24T10:00:00.100Z"}))
    return bodies


def start_collector(bootstrap: str, folder: Path, port: int) -> subprocess.Popen[bytes]:
    (folder / "wayline.yaml").write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAYLINE_")}
    env |= {
        "WAYLINE_KAFKA_BOOTSTRAP": bootstrap,
        "WAYLINE_API_PORT": str(port),
        "WAYLINE_CONFIG": "wayline.yaml",
        "WAYLINE_LOG_LEVEL": "WARNING",
        "WAYLINE_DATA_DIR": str(folder / "data"),
    }
    wayline = str(Path(sys.executable).parent / "wayline")
    process = subprocess.Popen([wayline, "api"], cwd=folder, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the collector did not start")


def direct_produce(kafka: KafkaConfig, bodies: list[bytes], requests: int) -> dict[str, Any]:
    """Baseline: the same events produced by one confluent-kafka producer, no HTTP."""
    events = [
        (e["userId"].encode(), orjson.dumps(e))
        for body in bodies
        for e in orjson.loads(body)["batch"]
    ]
    per_request = len(events) // len(bodies)
    producer = kafka.producer()
    cpu, wall = time.process_time(), time.monotonic()
    for r in range(requests):
        for i in range(per_request):
            key, value = events[(r * per_request + i) % len(events)]
            while True:
                try:
                    producer.produce("bench.direct", value, key)
                    break
                except BufferError:
                    producer.poll(0.01)
    producer.flush(60)
    producer.close()
    total = requests * per_request
    return {
        "events": total,
        "events_per_s": round(total / (time.monotonic() - wall)),
        "cpu_s": time.process_time() - cpu,
    }


def run(requests: int, concurrency: int, per_request: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(port=free_port()) as broker:
        folder = Path(tmp)
        bodies = make_bodies(min(requests, 500), per_request)
        (folder / "bodies").write_bytes(b"\n".join(bodies))
        port = free_port()
        collector = start_collector(broker.bootstrap, folder, port)
        try:
            url = f"http://127.0.0.1:{port}/v1/batch"
            load = [sys.executable, str(HERE / "loadgen.py"), url]
            rest = [str(concurrency), str(folder / "bodies"), WRITE_KEY]
            subprocess.run([*load, "200", *rest], check=True, capture_output=True)  # warm-up
            before = cpu_seconds(collector.pid)
            command = [*load, str(requests), *rest]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            cpu = cpu_seconds(collector.pid) - before
        finally:
            collector.terminate()
            collector.wait(30)
        measured = json.loads(out)
        direct = direct_produce(KafkaConfig(broker.bootstrap), bodies, requests)
    events = requests * per_request
    collector_rate = events / cpu if cpu else 0.0
    direct_rate = direct["events"] / direct["cpu_s"] if direct["cpu_s"] else 0.0
    return {
        "benchmark": "collector",
        "requests": requests,
        "events_per_request": per_request,
        "concurrency": concurrency,
        "statuses": measured["statuses"],
        "events_per_s": round(events / measured["seconds"]),
        "cpu_s_per_1k_events": round(cpu / events * 1000, 4),
        "events_per_collector_cpu_s": round(collector_rate),
        "baseline_direct_produce_events_per_cpu_s": round(direct_rate),
        "collector_vs_direct_produce": round(collector_rate / direct_rate, 2)
        if direct_rate
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Wayline collector benchmark")
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--events-per-request", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = run(args.requests, args.concurrency, args.events_per_request)
    save_results("collector", results)
    if args.json:
        print(json.dumps(results))
        return
    for key, value in results.items():
        print(f"{key:45s} {value}")


if __name__ == "__main__":
    main()
