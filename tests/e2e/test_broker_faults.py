"""A broker that stops answering under load (SIGSTOP, then SIGCONT): while it is away the
collector answers 503 with Retry-After and the readiness endpoint says why; within seconds of
its return the collector answers 200 again, the workers carry on without a restart, and once
clients have retried every event is in the pipeline exactly once."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from conftest import Broker, _wayline
from kafkatest import read_events, wait_for
from wayline.streams.broker import EmbeddedBroker, free_port
from wayline.streams.clients import KafkaConfig
from waylineproc import API_KEY, Running

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.timeout(420)]

WEB = ("wk_web_e2e_1", "")
ADMIN = {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class Sender:
    """A client that sends batches of 20 events and retries each until it gets a 2xx or 4xx,
    as the Segment libraries do."""

    url: str
    sent: list[str] = field(default_factory=list)
    replies: list[tuple[float, int]] = field(default_factory=list)  # (monotonic time, status)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, auth=WEB, timeout=15) as client:
            batch_no = 0
            while not self.stop.is_set():
                ids = [f"b{batch_no}-{i}" for i in range(20)]
                batch = [
                    {"type": "track", "event": "Product Viewed", "userId": f"u{i % 7}",
                     "messageId": m}
                    for i, m in enumerate(ids)
                ]  # fmt: skip
                while True:
                    try:
                        status = client.post("/v1/batch", json={"batch": batch}).status_code
                    except httpx.HTTPError:
                        status = 0  # no answer in time: retry, as clients do
                    self.replies.append((time.monotonic(), status))
                    assert status < 500 or status in (0, 503), status
                    if 200 <= status < 300:
                        self.sent += ids
                        break
                    time.sleep(0.5)
                batch_no += 1
                time.sleep(0.1)


def counted(running: Running) -> int:
    """Product views counted by the profiles of the senders' seven users."""
    total = 0
    with httpx.Client(base_url=running.url, timeout=10) as api:
        for user in range(7):
            reply = api.get(f"/v1/profiles/user_id/u{user}", headers=ADMIN)
            if reply.status_code == 200:
                total += reply.json()["computed"]["event_counts"]["Product Viewed"]["all_time"]
    return total


def readiness(running: Running) -> tuple[int, dict[str, object]]:
    reply = httpx.get(f"{running.url}/ready", timeout=5)
    return reply.status_code, reply.json()


@pytest.mark.parametrize("pause_s", [15, 60])
def test_a_broker_pause_under_load_loses_nothing(
    wayline_up: Running, broker: Broker, pause_s: int
) -> None:
    running = wayline_up
    if not broker.pids:
        pytest.fail("the broker faults need a broker this test session started")
    sender = Sender(running.url)
    thread = threading.Thread(target=sender.run, daemon=True)
    thread.start()
    time.sleep(3)
    broker.pause()
    paused_at = time.monotonic()
    try:
        time.sleep(min(pause_s, 12))
        status, body = readiness(running)
        assert status == 503, body  # the outage is visible while it lasts
        time.sleep(max(0, pause_s - 12))
    finally:
        broker.resume()
    back_at = time.monotonic()
    assert back_at - paused_at >= pause_s
    wait_for(lambda: any(t > back_at and s == 200 for t, s in sender.replies), 30, "a 200")
    first_ok = min(t for t, s in sender.replies if t > back_at and s == 200)
    time.sleep(5)
    sender.stop.set()
    thread.join(60)
    assert running.process is not None
    assert running.process.poll() is None, "wayline up is still running"
    during = {s for t, s in sender.replies if paused_at + 11 < t < back_at}
    assert during <= {0, 503}
    events = read_events(running.kafka, running.topics, expect=len(sender.sent), timeout_s=90)
    # a batch retried after the fault may repeat records with their ids (the documented
    # contract); none is lost, and the profiles count each event once
    assert {e["messageId"] for e in events} == set(sender.sent), "none lost, none made up\n" + (
        running.story()
    )
    deadline = time.monotonic() + 60
    while (views := counted(running)) != len(sender.sent) and time.monotonic() < deadline:
        time.sleep(0.5)
    repeated = len(events) - len({e["messageId"] for e in events})
    assert views == len(sender.sent), (
        f"{views} views counted, {len(sender.sent)} sent ({repeated} repeated)\n" + running.story()
    )
    wait_for(lambda: readiness(running)[0] == 200, 60, "ready again")
    print(
        f"paused {pause_s} s: first 200 {first_ok - back_at:.1f} s after the return; "
        f"{len(sender.sent)} events, {sum(1 for _, s in sender.replies if s != 200)} retries"
    )
    assert first_ok - back_at < 10


def test_sigterm_stops_wayline_within_30_s_while_the_broker_is_away(
    wayline_up: Running, broker: Broker
) -> None:
    running = wayline_up
    assert running.process is not None
    with httpx.Client(base_url=running.url, auth=WEB, timeout=30) as client:
        batch = [
            {"type": "track", "event": "X", "userId": "t", "messageId": f"t{i}"} for i in range(50)
        ]
        assert client.post("/v1/batch", json={"batch": batch}).status_code == 200
    broker.pause()
    try:
        time.sleep(3)  # the workers are in the middle of talking to it
        running.process.terminate()
        started = time.monotonic()
        running.process.wait(40)
        took = time.monotonic() - started
    finally:
        broker.resume()
    assert took < 30, f"stopped after {took:.0f} s"
    print(f"SIGTERM with the broker away: stopped in {took:.1f} s")


def test_a_cluster_that_comes_back_empty_stops_wayline_with_one_line(tmp_path: Path) -> None:
    """A broker of its own (killed, started again empty on the same port): never wedged."""
    port = free_port()
    first = EmbeddedBroker(port=port)
    first.start()
    again: EmbeddedBroker | None = None
    try:
        for running in _wayline(KafkaConfig(first.bootstrap), tmp_path):
            first.stop()
            again = EmbeddedBroker(port=port)
            again.start()
            assert running.process is not None
            code = running.process.wait(60)
            said = (tmp_path / "wayline.log").read_text()
            assert code == 1, said[-2000:]
            lines = [line for line in said.splitlines() if "came back empty" in line]
            assert len(lines) == 1, said[-2000:]
    finally:
        first.stop()
        if again is not None:
            again.stop()
