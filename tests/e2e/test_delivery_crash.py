"""At most once per delivery, through crashes: ``wayline worker deliver`` as a process of its
own is SIGKILLed three times while 1,000 triggers arrive for a webhook and an e-mail
subscription. Every trigger × subscription ends in exactly one final outcome on
``wayline.deliveries``, and no receiver — the webhook endpoint, the SMTP server — got a
delivery id twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import yaml

from conftest import FAST_GROUPS
from deliverytest import SECRET, Deliveries, final_of, profile_doc, publish, trigger_doc
from receivers import HttpReceiver, smtp_receiver
from wayline.schemas.topics import Topics
from wayline.streams.clients import KafkaConfig
from wayline.streams.routes import delivery_id
from waylineproc import WAYLINE

pytestmark = [pytest.mark.e2e, pytest.mark.soak, pytest.mark.timeout(420)]
TRIGGERS = 1000


class DeliverWorker:
    """``wayline worker deliver`` as its own process, to be killed."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.cwd / "deliver.log", "ab")  # noqa: SIM115 - handed to the child
        command = [WAYLINE, "worker", "deliver"]
        self.process = subprocess.Popen(
            command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT
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


def test_three_sigkills_during_1000_triggers_send_nothing_twice(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path, receiver: HttpReceiver
) -> None:
    docs = [profile_doc(f"k{i:03d}", _now(), email=f"k{i}@example.com") for i in range(200)]
    publish(kafka, topics.profiles, docs, "profile_id")
    rng = random.Random(11)
    triggers = [trigger_doc(rng.choice(docs), f"cart-{n}") for n in range(TRIGGERS)]
    with smtp_receiver() as (box, smtp):
        config = {
            "triggers": {"cart_abandoned": {"after": "30m"}},
            "channels": [
                {"name": "crm", "type": "webhook", "url": f"{receiver.url}/ok?delay=0.5",
                 "secrets": [SECRET], "allow_networks": ["127.0.0.0/8"]},
                {"name": "mail", "type": "email", "host": smtp.host, "port": smtp.port,
                 "tls": "none", "from": "shop@example.com"},
            ],
            "subscriptions": [
                {"name": "cart_to_crm", "channel": "crm", "triggers": ["cart_abandoned"]},
                {"name": "cart_receipt", "channel": "mail", "triggers": ["cart_abandoned"],
                 "kind": "transactional", "template": {"subject": "Your cart", "text": "Hi"}},
            ],
        }  # fmt: skip
        (tmp_path / "wayline.yaml").write_text(yaml.safe_dump(config))
        clean = {k: v for k, v in os.environ.items() if not k.startswith("WAYLINE_")}
        env = {**clean, "WAYLINE_KAFKA_BOOTSTRAP": kafka.bootstrap,
               "WAYLINE_TOPIC_PREFIX": topics.prefix, "WAYLINE_PARTITIONS": "3",
               "WAYLINE_CONFIG": "wayline.yaml", "WAYLINE_DATA_DIR": str(tmp_path / "data"),
               "WAYLINE_KAFKA_OPTIONS": orjson.dumps(FAST_GROUPS).decode()}  # fmt: skip
        worker = DeliverWorker(tmp_path, env)
        deliveries = Deliveries(kafka, topics)
        worker.start()
        try:
            publish(kafka, topics.triggers, triggers[:600], "subject")
            for done in (300, 900, 1500):  # of 2,000 final outcomes: kill it while it sends
                while _finals(deliveries) < done:
                    time.sleep(0.2)
                time.sleep(rng.uniform(0.0, 0.5))
                worker.kill()
                if done == 300:
                    publish(kafka, topics.triggers, triggers[600:], "subject")
                worker.start()
            found = deliveries.read(2 * TRIGGERS, timeout_s=240)
        finally:
            worker.stop()
        expected = {delivery_id(t["id"], sub) for t in triggers
                    for sub in ("cart_to_crm", "cart_receipt")}  # fmt: skip
        assert set(found) == expected
        finals = {did: final_of(records) for did, records in found.items()}  # one each
        outcomes = Counter((f["subscription"], f["status"], f["reason"]) for f in finals.values())
        webhook_ids = Counter(r.headers["webhook-id"] for r in receiver.received)
        mail_ids = Counter(str(m["Message-ID"]).strip("<>").split("@")[0] for m in box.messages)
    assert [i for i, n in webhook_ids.items() if n > 1] == []  # no receiver got an id twice
    assert [i for i, n in mail_ids.items() if n > 1] == []
    delivered = {d for d, f in finals.items() if f["status"] in ("delivered", "sent")}
    interrupted = {d for d, f in finals.items() if f["reason"] == "interrupted"}
    assert delivered | interrupted == expected, outcomes  # nothing else went wrong
    received = set(webhook_ids) | set(mail_ids)
    assert delivered <= received  # what is reported delivered did arrive
    assert received <= delivered | interrupted  # and nothing arrived that was not asked for
    assert len(interrupted) <= 3 * 64 * 2, outcomes  # at most what was in flight at the kills
    print(f"outcomes: {dict(outcomes)}")


def _finals(deliveries: Deliveries) -> int:
    return sum(1 for rs in deliveries.by_id().values() if any(r["final"] for r in rs))


def _now() -> datetime:
    return datetime.now(UTC)
