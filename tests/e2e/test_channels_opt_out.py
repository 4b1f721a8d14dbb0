"""Channels end to end, from a real client's events to a real mailbox and an SMS API: an
abandoned cart e-mails and texts each shopper; then each says no in one of the four ways a
customer can — a consent trait, an ``Unsubscribed`` event, the mail's one-click unsubscribe,
an SMS STOP — and the next abandoned cart sends nothing on that channel, while the others go on."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from segment.analytics import Client as SegmentClient
from twilio.request_validator import RequestValidator

from conftest import _wayline
from deliverytest import Deliveries, final_of
from kafkatest import read_topic
from receivers import HttpReceiver, Mailbox, smtp_receiver
from wayline.streams.clients import KafkaConfig
from waylineproc import API_KEY, SOURCES, Running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
AUTH_TOKEN = "twilio-auth-token-e2e"
PHONES = {f"u{i}": f"+1415555010{i}" for i in range(1, 5)}


@contextmanager
def wayline_with_channels(
    kafka: KafkaConfig, tmp_path: Path, receiver: HttpReceiver
) -> Iterator[tuple[Running, Mailbox]]:
    with smtp_receiver() as (box, smtp):
        extra: dict[str, Any] = {
            "sources": [*SOURCES, {"name": "sms", "channel": "app", "write_keys": ["wk_sms_e2e_1"],
                                   "twilio_auth_token": AUTH_TOKEN}],
            "triggers": {"cart_abandoned": {"after": "3s"}},
            "channels": [
                {"name": "mail", "type": "email", "host": smtp.host, "port": smtp.port,
                 "tls": "none", "from": "shop@example.com"},
                {"name": "texts", "type": "sms", "base_url": receiver.url, "account_sid": "AC1",
                 "auth_token": "secret", "from": "+15550100", "allow_networks": ["127.0.0.0/8"]},
            ],
            "subscriptions": [
                {"name": "cart_mail", "channel": "mail", "triggers": ["cart_abandoned"],
                 "template": {"subject": "Your cart is waiting",
                              "text": "Hi {{ profile.traits.first_name | default('there') }}, "
                                      "unsubscribe: {{ unsubscribe_url }}"}},
                {"name": "cart_text", "channel": "texts", "triggers": ["cart_abandoned"],
                 "template": {"text": "Your cart is waiting"}},
            ],
            "contact_policy": {"channels": {"email": {"caps": []},
                                            "sms": {"caps": [], "quiet_hours": None}}},
        }  # fmt: skip
        runs = contextmanager(_wayline)(kafka, tmp_path, extra=extra)
        with runs as running:
            yield running, box


def test_every_way_of_saying_no_stops_that_channel(
    kafka: KafkaConfig, tmp_path: Path, receiver: HttpReceiver
) -> None:
    logging.getLogger("segment").setLevel(logging.CRITICAL)
    with wayline_with_channels(kafka, tmp_path, receiver) as (running, box):
        web = SegmentClient("wk_web_e2e_1", host=running.url, sync_mode=True)
        for user, phone in PHONES.items():
            traits = {"email": f"{user}@example.com", "phone": phone, "first_name": user.upper(),
                      "consent": {"sms": True}}  # fmt: skip
            web.identify(user_id=user, traits=traits)
        _abandon_carts(web, "first")
        deliveries = Deliveries(running.kafka, running.topics)
        deliveries.read(8, timeout_s=60)
        assert sorted(str(m["To"]) for m in box.messages) == [f"{u}@example.com" for u in PHONES]

        web.identify(user_id="u1", traits={"consent": {"email": False}})  # a preference centre
        web.track(user_id="u2", event="Unsubscribed", properties={"channel": "email"})
        mail = next(m for m in box.messages if str(m["To"]) == "u3@example.com")
        link = str(mail["List-Unsubscribe"]).strip("<>")
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        form = {"content-type": "application/x-www-form-urlencoded"}
        clicked = httpx.post(link, content="List-Unsubscribe=One-Click", headers=form)
        assert clicked.status_code == 200, clicked.text
        assert httpx.post(link.replace("/unsubscribe/", "/unsubscribe/x")).status_code == 404
        stop = _text_in(running, PHONES["u4"], "STOP")
        assert stop.status_code == 200
        assert stop.headers["content-type"].startswith("application/xml")
        forged = _text_in(running, PHONES["u1"], "STOP", token="not-the-token")
        assert forged.status_code == 403  # and u1's texts go on (below)
        help_reply = _text_in(running, PHONES["u2"], "HELP")
        assert "Reply STOP to unsubscribe." in help_reply.text
        time.sleep(2)  # the consent events reach the profiles before the next carts

        _abandon_carts(web, "second")
        found = deliveries.read(16, timeout_s=60)
        carts = _carts(running)
        shown = running.cli("tail", "deliveries").splitlines()
        assert len(shown) == sum(map(len, found.values()))  # one line per record
        assert sum("suppressed" in s and "no_consent" in s for s in shown) == 3
        metrics = httpx.get(f"{running.url}/metrics",
                            headers={"authorization": f"Bearer {API_KEY}"}).text  # fmt: skip
        assert (
            'wayline_deliveries_total{channel="sms",reason="sms_stop",status="suppressed",'
            'subscription="cart_text"} 1.0' in metrics
        )
        as_json = running.cli("tail", "triggers", "--json", "--limit", "3").splitlines()
        assert [orjson.loads(j)["value"]["type"] for j in as_json] == [
            "wayline.trigger.cart_abandoned"] * 3  # fmt: skip

        assert _text_in(running, PHONES["u4"], "START").status_code == 200  # back in
        assert _status(running, PHONES["u1"], "21610").status_code == 200  # the provider's STOP
        time.sleep(2)
        _abandon_carts(web, "third")
        third = deliveries.read(24, timeout_s=60)
        carts_now = _carts(running, 12)
    texts_third = {}
    for records in third.values():
        final = final_of(records)
        user, cart = carts_now[final["trigger_id"]]
        if cart.startswith("third") and final["subscription"] == "cart_text":
            texts_third[user] = (final["status"], final["reason"])
    assert texts_third == {
        "u1": ("suppressed", "sms_stop"),
        "u2": ("sent", "http_201"),
        "u3": ("sent", "http_201"),
        "u4": ("sent", "http_201"),
    }
    outcome = {}
    for records in found.values():
        final = final_of(records)
        user, cart = carts[final["trigger_id"]]
        if cart.startswith("second"):
            outcome[(user, final["subscription"])] = (final["status"], final["reason"])
    assert outcome == {
        ("u1", "cart_mail"): ("suppressed", "no_consent"),
        ("u2", "cart_mail"): ("suppressed", "no_consent"),
        ("u3", "cart_mail"): ("suppressed", "no_consent"),
        ("u4", "cart_mail"): ("sent", "smtp_250"),
        ("u1", "cart_text"): ("sent", "http_201"),
        ("u2", "cart_text"): ("sent", "http_201"),
        ("u3", "cart_text"): ("sent", "http_201"),
        ("u4", "cart_text"): ("suppressed", "sms_stop"),
    }
    mails = sorted(str(m["To"]) for m in box.messages)
    assert mails == [*(f"{u}@example.com" for u in PHONES), *["u4@example.com"] * 2]
    texts = [r for r in receiver.received if r.path.endswith("/Messages.json")]
    assert len(texts) == 4 + 3 + 3


def _carts(running: Running, expect: int = 8) -> dict[str, tuple[str, str]]:
    """trigger id → (user id, cart id) of every abandoned cart."""
    found = read_topic(running.kafka, running.topics.triggers, expect)
    docs = [orjson.loads(m.value or b"") for m in found]
    return {d["id"]: (d["data"]["identifiers"]["user_id"][0], d["data"]["payload"]["cart_id"])
            for d in docs}  # fmt: skip


def _abandon_carts(web: SegmentClient, round_name: str) -> None:
    for user in PHONES:
        props = {"product_id": "SH-1", "price": 60.0, "cart_id": f"{round_name}-{user}"}
        web.track(user_id=user, event="Product Added", properties=props)


def _status(running: Running, number: str, error: str) -> httpx.Response:
    """Twilio's status callback for a message to ``number`` that failed with ``error``."""
    url = f"{running.url}/v1/sources/sms/twilio/status"
    form = {"MessageSid": f"SM{number}", "MessageStatus": "undelivered", "To": number,
            "From": "+15550100", "ErrorCode": error}  # fmt: skip
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    return httpx.post(url, data=form, headers={"X-Twilio-Signature": signature})


def _text_in(running: Running, number: str, body: str, token: str = AUTH_TOKEN) -> httpx.Response:
    url = f"{running.url}/v1/sources/sms/twilio/inbound"
    form = {"From": number, "To": "+15550100", "Body": body, "MessageSid": f"SM{number}{body}"}
    signature = RequestValidator(token).compute_signature(url, form)
    return httpx.post(url, data=form, headers={"X-Twilio-Signature": signature})
