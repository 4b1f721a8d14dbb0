"""Real purchase data (the CDNOW order log as store orders) and merge-heavy journeys through the
whole pipeline, with and without SIGKILLs of the profile worker.

Per customer, the profile's order count and revenue must equal a pandas computation over the
same file — with the profile worker running undisturbed, and with it SIGKILLed three times
during the replay.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pandas as pd
import pytest

from journeys import journeys, raw_key, reference, visible
from kafkatest import produce, read_topic
from wayline.connectors.cdnow import cdnow_path, write_orders
from wayline.streams.profileview import ProfileView
from waylineproc import API_KEY, WAYLINE, Running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def oracle() -> dict[str, tuple[int, float]]:
    """Customer → (orders, revenue), computed by pandas from the original file."""
    frame = pd.read_csv(
        cdnow_path(), sep=r"\s+", dtype={"customer_id": str, "date": str}, engine="python"
    )
    grouped = frame.groupby("customer_id")["dollar_value"].agg(["count", "sum"])
    return {
        f"C{cid}": (int(row["count"]), round(float(row["sum"]), 2))
        for cid, row in grouped.iterrows()
    }


@pytest.fixture(scope="module")
def orders_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cdnow") / "cdnow.jsonl"
    write_orders(path)
    return path


def start_import(running: Running, path: Path) -> subprocess.Popen[bytes]:
    log = open(running.cwd / "import.log", "ab")  # noqa: SIM115 - handed to the child
    importer = subprocess.Popen(
        [WAYLINE, "import", "orders", str(path), "--source", "pos"],
        cwd=running.cwd,
        env=running.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return importer


def finish_import(running: Running, importer: subprocess.Popen[bytes]) -> None:
    assert importer.wait(300) == 0, (running.cwd / "import.log").read_text()[-3000:]


def mismatches(view: ProfileView, oracle: dict[str, tuple[int, float]]) -> list[str]:
    wrong = []
    for customer, (count, revenue) in oracle.items():
        doc = view.by_identifier("loyalty_id", customer)
        got = None if doc is None else (doc["computed"]["order_count"], doc["computed"]["revenue"])
        if got is None or got[0] != count or abs(got[1] - revenue) > 0.005:
            wrong.append(f"{customer}: expected {(count, revenue)}, got {got}")
    return wrong


def converge(
    view: ProfileView, oracle: dict[str, tuple[int, float]], timeout_s: float
) -> list[str]:
    deadline = time.monotonic() + timeout_s
    wrong = mismatches(view, oracle)
    while wrong and time.monotonic() < deadline:
        time.sleep(2)
        wrong = mismatches(view, oracle)
    return wrong


@pytest.fixture
def profile_view(wayline_up: Running) -> Iterator[ProfileView]:
    view = ProfileView(wayline_up.kafka, wayline_up.topics.profiles)
    view.start()
    yield view
    view.stop()


def test_cdnow_replay_matches_pandas(
    wayline_up: Running,
    profile_view: ProfileView,
    orders_file: Path,
    oracle: dict[str, tuple[int, float]],
) -> None:
    assert len(oracle) >= 20_000
    importer = start_import(wayline_up, orders_file)
    try:
        finish_import(wayline_up, importer)
    finally:
        importer.kill()
        importer.wait()
    wrong = converge(profile_view, oracle, timeout_s=240)
    assert wrong == [], f"{len(wrong)} mismatches, e.g. {wrong[:5]}"

    # the profile API answers from its own view of the same topic, fast
    customers = random.Random(3).sample(sorted(oracle), 1000)
    took = []
    with httpx.Client(
        base_url=wayline_up.url, headers={"Authorization": f"Bearer {API_KEY}"}
    ) as api:
        assert api.get(f"/v1/profiles/loyalty_id/{customers[0]}").status_code == 200
        for customer in customers:
            started = time.perf_counter()
            reply = api.get(f"/v1/profiles/loyalty_id/{customer}")
            took.append(time.perf_counter() - started)
            assert reply.status_code == 200
            assert reply.json()["computed"]["order_count"] == oracle[customer][0]
    p99_ms = statistics.quantiles(took, n=100)[98] * 1000
    print(f"profile API over {len(took)} lookups: p99 {p99_ms:.1f} ms")
    assert p99_ms < 50  # a lookup a person would call instant, on a shared, busy machine


class ProfileWorker:
    """``wayline worker profile`` as its own process, to be killed."""

    def __init__(self, running: Running, name: str = "profile-worker") -> None:
        self.running = running
        self.name = name
        self.env = dict(running.env)
        if name != "profile-worker":  # a second instance: local state of its own
            self.env["WAYLINE_DATA_DIR"] = str(running.cwd / f"data-{name}")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.running.cwd / f"{self.name}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [WAYLINE, "worker", "profile"],
            cwd=self.running.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


@pytest.mark.soak
def test_cdnow_replay_survives_three_sigkills_of_the_profile_worker(
    kafka_up_without_profile: Running,
    orders_file: Path,
    oracle: dict[str, tuple[int, float]],
) -> None:
    running = kafka_up_without_profile
    worker = ProfileWorker(running)
    view = ProfileView(running.kafka, running.topics.profiles)
    view.start()
    worker.start()
    importer = start_import(running, orders_file)
    try:
        applied: Callable[[], int] = lambda: view.records  # noqa: E731
        for threshold in (4_000, 10_000, 16_000):  # of ~24k snapshots (one per batch+profile)
            deadline = time.monotonic() + 240
            while applied() < threshold and time.monotonic() < deadline:
                time.sleep(0.2)
            assert applied() >= threshold, (running.cwd / "profile-worker.log").read_text()[-3000:]
            worker.kill()
            worker.start()
        finish_import(running, importer)
        wrong = converge(view, oracle, timeout_s=300)
        assert wrong == [], f"{len(wrong)} mismatches, e.g. {wrong[:5]}"
    finally:
        importer.kill()
        importer.wait()
        worker.stop()
        view.stop()


@pytest.mark.soak
def test_merges_move_state_exactly_once_across_sigkills(kafka_up_without_profile: Running) -> None:
    """Journeys full of merges and renames, the profile worker killed three times mid-way."""
    running = kafka_up_without_profile
    events = journeys(600)
    expected = reference(events)
    worker = ProfileWorker(running)
    view = ProfileView(running.kafka, running.topics.profiles)
    view.start()
    worker.start()
    try:
        produce(running.kafka, running.topics.raw, [(raw_key(e), orjson.dumps(e)) for e in events])
        for threshold in (150, 350, 550):  # snapshots: on any broker before the end
            deadline = time.monotonic() + 120
            while view.records < threshold and time.monotonic() < deadline:
                time.sleep(0.05)
            assert view.records >= threshold, (running.cwd / "profile-worker.log").read_text()[
                -3000:
            ]
            worker.kill()
            worker.start()
        deadline = time.monotonic() + 180
        got: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            got = {pid: visible(doc) for pid in expected if (doc := view.by_id(pid))}
            if got == expected and len(view) == len(expected):
                break
            time.sleep(1)
        assert len(view) == len(expected)
        wrong = [pid for pid, doc in expected.items() if got.get(pid) != doc]
        assert wrong == [], f"{len(wrong)} profiles differ, e.g. {wrong[:3]}"
    finally:
        worker.stop()
        view.stop()


@pytest.mark.soak
def test_sigkills_of_the_profile_worker_lose_and_double_no_trigger(
    kafka_up_without_profile: Running,
) -> None:
    """2,000 customers with two orders each: milestones orders:1 and orders:2 fire exactly once
    per customer (by id) although the profile worker is killed three times."""
    running = kafka_up_without_profile
    customers = 2000
    start = datetime(2026, 2, 1, tzinfo=UTC)
    orders = [
        (f"c{c}".encode(), orjson.dumps({
            "type": "track", "userId": f"c{c}", "event": "Order Completed",
            "messageId": f"o-{c}-{n}", "timestamp": (start + timedelta(minutes=n)).isoformat(),
            "properties": {"order_id": f"o-{c}-{n}", "revenue": 10.0}}))
        for n in range(2) for c in range(customers)
    ]  # fmt: skip
    worker = ProfileWorker(running)
    worker.start()
    try:
        produce(running.kafka, running.topics.raw, orders)
        for threshold in (500, 1500, 2500):
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if len(read_topic(running.kafka, running.topics.triggers, expect=0)) >= threshold:
                    break
                time.sleep(0.5)
            worker.kill()
            worker.start()
        deadline = time.monotonic() + 180
        while True:
            found = read_topic(running.kafka, running.topics.triggers, expect=0)
            if len({m.value for m in found}) >= 2 * customers or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        worker.stop()
    docs = [orjson.loads(m.value or b"") for m in found]
    ids_per_occasion: dict[tuple[str, str], set[str]] = {}
    copies: dict[str, set[bytes]] = {}
    for message, doc in zip(found, docs, strict=True):
        key = (doc["data"]["identifiers"]["user_id"][0], doc["data"]["occasion"])
        ids_per_occasion.setdefault(key, set()).add(doc["id"])
        copies.setdefault(doc["id"], set()).add(message.value or b"")
    assert len(ids_per_occasion) == 2 * customers  # none lost
    assert all(len(ids) == 1 for ids in ids_per_occasion.values())  # none fired twice
    # the documented contract: a crash may repeat a trigger, always byte for byte with its id
    assert all(len(values) == 1 for values in copies.values())
    print(f"{len(docs)} trigger records for {2 * customers} triggers across three SIGKILLs")
