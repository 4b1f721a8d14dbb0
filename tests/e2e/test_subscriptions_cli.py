"""A marketer's subscriptions workflow against a running Wayline: preview what a file would send
(``wayline subscriptions test``), publish it (``apply``: the running delivery worker switches
without a restart), see it (``list``), take it back (``delete``: nothing more is sent); a file
that names what does not exist is refused with the path, and nothing is published."""

from __future__ import annotations

import logging
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from segment.analytics import Client as SegmentClient

from conftest import _wayline
from deliverytest import SECRET, Deliveries
from receivers import HttpReceiver
from wayline.streams.clients import KafkaConfig
from waylineproc import WAYLINE

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def test_apply_list_delete_switch_the_running_worker(
    kafka: KafkaConfig, tmp_path: Path, receiver: HttpReceiver
) -> None:
    channels = [{"name": "crm", "type": "webhook", "url": f"{receiver.url}/ok",
                 "secrets": [SECRET], "allow_networks": ["127.0.0.0/8"]}]  # fmt: skip
    extra: dict[str, Any] = {"triggers": {"cart_abandoned": {"after": "2s"}}, "channels": channels}
    subscription = {"name": "cart_to_crm", "channel": "crm", "triggers": ["cart_abandoned"],
                    "kind": "transactional"}  # fmt: skip
    applied = tmp_path / "subscriptions.yaml"
    applied.write_text(yaml.safe_dump({"channels": channels, "subscriptions": [subscription]}))
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({"channels": channels, "subscriptions": [
        {**subscription, "name": "typo", "triggers": ["cart_abandonned"]}]}))  # fmt: skip
    logging.getLogger("segment").setLevel(logging.CRITICAL)
    with contextmanager(_wayline)(kafka, tmp_path, extra=extra) as running:
        web = SegmentClient("wk_web_e2e_1", host=running.url, sync_mode=True)
        refused = running.cli("subscriptions", "apply", str(broken), refused=True, code=2)
        assert "subscriptions[0].triggers[0]: unknown trigger 'cart_abandonned'" in refused
        assert "nothing published" in running.cli("subscriptions", "list")

        web.track(user_id="before", event="Product Added", properties={"product_id": "SH-1"})
        time.sleep(4)  # its cart is abandoned with no subscription: nothing is sent
        shown = running.cli("subscriptions", "apply", str(applied))
        assert "cart_to_crm" in shown
        assert "created" in shown
        time.sleep(2)  # the delivery worker follows wayline.definitions
        web.track(user_id="during", event="Product Added", properties={"product_id": "SH-1"})
        found = Deliveries(running.kafka, running.topics).read(1, timeout_s=30)
        listed = running.cli("subscriptions", "list")
        assert "cart_to_crm" in listed
        assert "live" in listed

        running.cli("subscriptions", "delete", "cart_to_crm")
        time.sleep(2)
        web.track(user_id="after", event="Product Added", properties={"product_id": "SH-1"})
        time.sleep(5)
        again = Deliveries(running.kafka, running.topics).by_id()
        assert "deleted" in running.cli("subscriptions", "list")
    users = [orjson.loads(r.body)["data"]["identifiers"]["user_id"][0] for r in receiver.received]
    assert users == ["during"]  # not before the apply, not after the delete
    assert set(again) == set(found)


def test_preview_shows_what_each_subscription_would_do(tmp_path: Path) -> None:
    config = {
        "triggers": {"cart_abandoned": {"after": "30m"}},
        "channels": [{"name": "mail", "type": "email", "host": "smtp.example", "from": "s@x.io"}],
        "subscriptions": [{"name": "cart_mail", "channel": "mail", "triggers": ["cart_abandoned"],
                           "template": {"subject": "{{ payload['items'] | length }} items wait",
                                        "text": "Hi"}}],
        "contact_policy": {"channels": {"email": {"caps": [{"count": 1, "within": "1d"}]}}},
    }  # fmt: skip
    (tmp_path / "subs.yaml").write_text(yaml.safe_dump(config))
    lines = []
    for i, (user, consent) in enumerate([("ada", True), ("bob", False), ("ada", True)]):
        at = f"2026-11-23T0{i + 1}:00:00Z"
        lines.append(
            {
                "type": "identify",
                "userId": user,
                "timestamp": at,
                "messageId": f"i{i}",
                "traits": {"email": f"{user}@example.com", "consent": {"email": consent}},
            }
        )
        props = {"product_id": f"P{i}", "price": 5}
        lines.append({"type": "track", "userId": user, "event": "Product Added", "timestamp": at,
                      "messageId": f"a{i}", "properties": props})  # fmt: skip
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(orjson.dumps(line) for line in lines))
    shown = subprocess.run(
        [WAYLINE, "subscriptions", "test", str(tmp_path / "subs.yaml"), "--events", str(events),
         "--until", "2026-11-23T06:00:00Z"],
        capture_output=True, text=True, check=True, env={"COLUMNS": "220"},
    ).stdout  # fmt: skip
    rows = [line for line in shown.splitlines() if "cart_mail" in line]
    assert len(rows) == 3, shown
    assert "send" in rows[0]
    assert "1 items wait" in rows[0]  # ada's first cart
    assert "suppressed" in rows[1]
    assert "no_consent" in rows[1]  # bob said no
    assert "frequency_capped" in rows[2]  # ada again within the day
