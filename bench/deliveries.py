"""Delivery benchmark: contact-policy decisions per CPU-second, and webhook deliveries per
second to a local receiver — through the connector alone and through the whole delivery worker.

- ``decisions_per_cpu_s``: ``segments.policy.decide`` over generated deliveries (consent, time
  zones in and out of quiet hours, send histories near their caps, holdouts). Baseline in the
  same run: the same loop reading the same inputs and deciding nothing.
- ``dispatcher_per_s``: signed, SSRF-checked webhook posts through ``connectors.dispatch``
  (64 in flight) to a receiver in its own process. Baseline in the same run: a bare
  ``httpx.AsyncClient`` posting the same bodies with the same concurrency to the same receiver.
- ``worker_per_s``: triggers on the embedded broker through the ``deliver`` worker (ledger,
  policy, connector, results and deliveries records committed) until every delivery has its
  final record, against the dispatcher alone.

    python -m bench.deliveries --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from datetime import time as clock
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.runtime import cluster, save_results
from wayline.connectors.dispatch import Dispatcher, Job
from wayline.connectors.webhook import WebhookEndpoint
from wayline.schemas.topics import Topics
from wayline.segments.policy import (
    HOUR_MS,
    Cap,
    ChannelKind,
    ChannelPolicy,
    Contact,
    ContactPolicy,
    Kind,
    QuietHours,
    Request,
    decide,
)
from wayline.streams.admin import ensure_topics
from wayline.streams.broker import free_port
from wayline.streams.clients import KafkaConfig
from wayline.streams.registry import WorkerContext, default_registry, store_topics
from wayline.streams.routes import DeliverySetup, Route
from wayline.streams.worker import WorkerOptions

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Tokyo", "Australia/Sydney"]
NOW_MS = 1_795_000_000_000


async def receiver_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The local receiver: reads the body, answers 200 (an ASGI app, for uvicorn)."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def generated(n: int, seed: int = 5) -> list[tuple[Request, Contact, dict[str, list[int]]]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        channel: ChannelKind = rng.choice(["email", "email", "sms", "webhook"])
        kind: Kind = "transactional" if rng.random() < 0.1 else "marketing"
        request = Request(f"d{i}", f"sub{i % 7}", channel, kind, NOW_MS, rng.choice([0, 0, 10]))
        consent: dict[str, bool] = {channel: rng.random() < 0.9} if rng.random() < 0.7 else {}
        contact = Contact(f"p{i % 5000}", f"c{i}@example.com", f"+4915{i:08d}",
                          rng.choice(ZONES), consent)  # fmt: skip
        sent: dict[str, list[int]] = {channel: sorted(NOW_MS - rng.randrange(0, 10 * 24 * HOUR_MS)
                                for _ in range(rng.randrange(0, 6)))}  # fmt: skip
        out.append((request, contact, sent))
    return out


def measure_policy(n: int) -> dict[str, Any]:
    policy = ContactPolicy(control_group_pct=5)
    policy = ContactPolicy(
        channels={**policy.channels,
                  "email": ChannelPolicy(caps=(Cap(1, 16 * HOUR_MS), Cap(5, 168 * HOUR_MS)),
                                         quiet_hours=QuietHours(clock(22), clock(7)))},
        control_group_pct=5,
    )  # fmt: skip
    inputs = generated(n)
    start = time.process_time()
    looked = 0
    for request, contact, sent in inputs:  # the baseline: read the inputs, decide nothing
        looked += len(request.channel) + len(contact.profile_id) + len(sent)
    baseline = time.process_time() - start
    start = time.process_time()
    outcomes: dict[str, int] = {}
    for request, contact, sent in inputs:
        decision = decide(policy, request, contact, sent, NOW_MS)
        outcomes[decision.outcome] = outcomes.get(decision.outcome, 0) + 1
    spent = time.process_time() - start
    return {"decisions": n, "decisions_per_cpu_s": round(n / spent),
            "baseline_reads_per_cpu_s": round(n / max(baseline, 1e-9)),
            "us_per_decision": round(spent / n * 1e6, 2), "outcomes": outcomes}  # fmt: skip


def start_receiver() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.deliveries:receiver_app", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.post(url, content=b"{}", timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the receiver did not start")


def measure_dispatcher(url: str, n: int) -> dict[str, Any]:
    endpoint = WebhookEndpoint(url + "/ok", (SECRET,), (_local(),), timeout_s=15)
    dispatcher = Dispatcher(limit=64)
    dispatcher.start()
    body = orjson.dumps({"type": "wayline.trigger.cart_abandoned", "data": {"value": 42}})
    stop = threading.Event()
    wall, cpu = time.monotonic(), time.process_time()
    for i in range(n):
        dispatcher.submit(Job(0, f"d{i}", endpoint, None, None, body), stop)
    dispatcher.drain(120)
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    results = dispatcher.results(0)
    dispatcher.close()
    delivered = sum(1 for r in results if r.attempt.outcome == "delivered")
    return {"sent": n, "delivered": delivered, "per_s": round(n / wall),
            "per_cpu_s": round(n / cpu)}  # fmt: skip


def measure_httpx(url: str, n: int) -> dict[str, Any]:
    body = orjson.dumps({"type": "wayline.trigger.cart_abandoned", "data": {"value": 42}})

    async def run() -> int:
        limit = asyncio.Semaphore(64)
        async with httpx.AsyncClient() as client:

            async def one(i: int) -> int:
                async with limit:
                    reply = await client.post(url + "/ok", content=body,
                                              headers={"webhook-id": f"d{i}"})  # fmt: skip
                    return reply.status_code

            codes = await asyncio.gather(*(one(i) for i in range(n)))
        return sum(1 for c in codes if c == 200)

    wall, cpu = time.monotonic(), time.process_time()
    ok = asyncio.run(run())
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    return {"sent": n, "delivered": ok, "per_s": round(n / wall), "per_cpu_s": round(n / cpu)}


def measure_worker(kafka: KafkaConfig, url: str, n: int, state_dir: Path) -> dict[str, Any]:
    from wayline.profiles.view import iso

    topics = Topics(f"bench{uuid.uuid4().hex[:8]}", partitions=3)
    ensure_topics(kafka, topics.specs(store_topics(default_registry())))
    producer = kafka.producer(**{"linger.ms": 20})
    now = datetime.now(UTC)
    for i in range(n):
        pid = f"p{i % 2000}"
        doc = {"specversion": "1.0", "id": f"t{i}", "source": "/wayline/triggers/cart_abandoned",
               "type": "wayline.trigger.cart_abandoned", "subject": pid, "time": iso(NOW_MS),
               "data": {"profile_id": pid, "identifiers": {}, "trigger": "cart_abandoned",
                        "rule_version": 1, "occasion": f"c{i}", "reason": {}, "payload": {},
                        "contact": {"email": f"{pid}@example.com", "phone": None,
                                    "timezone": None, "consent": {}, "suppressed": {},
                                    "last_seen": now.isoformat()}}}  # fmt: skip
        producer.produce(topics.triggers, orjson.dumps(doc), pid.encode())
        producer.poll(0)
    producer.flush(60)
    endpoint = WebhookEndpoint(url + "/ok", (SECRET,), (_local(),), timeout_s=15)
    route = Route("bench", "crm", "webhook", endpoint, frozenset({"cart_abandoned"}),
                  kind="transactional")  # fmt: skip
    context = WorkerContext(topics=topics, kafka=kafka, delivery=DeliverySetup((route,)),
                            options=WorkerOptions(state_dir=state_dir, batch_size=500))  # fmt: skip
    worker = default_registry()["deliver"].create(context)
    thread = threading.Thread(target=worker.run, daemon=True)
    wall, cpu = time.monotonic(), time.process_time()
    thread.start()
    finals = _count_finals(kafka, topics.deliveries, n, timeout_s=600)
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    worker.stop()
    thread.join(30)
    return {"triggers": n, "final": finals, "per_s": round(n / wall), "per_cpu_s": round(n / cpu),
            "note": "includes the group join and restore (a few seconds) at the start"}  # fmt: skip


def _count_finals(kafka: KafkaConfig, topic: str, n: int, timeout_s: float) -> int:
    from confluent_kafka import TopicPartition

    consumer = kafka.consumer(f"count-{uuid.uuid4().hex}", **{"fetch.wait.max.ms": 20})
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    finals, deadline = 0, time.monotonic() + timeout_s
    try:
        while finals < n and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.1):
                if message.error() is None and b'"final":true' in (message.value() or b""):
                    finals += 1
    finally:
        consumer.close()
    return finals


def _local() -> Any:
    import ipaddress

    return ipaddress.ip_network("127.0.0.0/8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=200_000)
    parser.add_argument("--posts", type=int, default=5_000)
    parser.add_argument("--triggers", type=int, default=5_000)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    policy = measure_policy(args.decisions)
    receiver, url = start_receiver()
    try:
        baseline = measure_httpx(url, args.posts)
        dispatcher = measure_dispatcher(url, args.posts)
        with cluster() as kafka, tempfile.TemporaryDirectory(prefix="wayline-bench-") as state:
            worker = measure_worker(kafka, url, args.triggers, Path(state))
    finally:
        receiver.kill()
    results = {
        "benchmark": "deliveries",
        **{k: policy[k] for k in ("decisions_per_cpu_s", "us_per_decision")},
        "decisions_vs_reading_inputs": round(
            policy["decisions_per_cpu_s"] / policy["baseline_reads_per_cpu_s"], 3
        ),
        "dispatcher_per_s": dispatcher["per_s"],
        "httpx_per_s": baseline["per_s"],
        "dispatcher_vs_httpx": round(dispatcher["per_s"] / baseline["per_s"], 2),
        "worker_per_s": worker["per_s"],
        "worker_vs_dispatcher": round(worker["per_s"] / dispatcher["per_s"], 2),
        "details": {"policy": policy, "dispatcher": dispatcher, "httpx": baseline,
                    "worker": worker},
    }  # fmt: skip
    save_results("deliveries", results)
    print(json.dumps(results, indent=2) if args.json else results)


if __name__ == "__main__":
    main()
