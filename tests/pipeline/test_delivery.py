"""The delivery worker on a real broker, with real receivers: every trigger × subscription ends
in one final outcome on ``wayline.deliveries``; webhooks arrive signed, once; consent, hard
suppressions and transactional kinds decide who gets what; replays send nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from deliverytest import (
    SECRET,
    Deliveries,
    delivering,
    final_of,
    profile_doc,
    publish,
    trigger_doc,
)
from receivers import LOCAL, HttpReceiver, Mailbox, smtp_receiver
from standardwebhooks import Webhook

from wayline.connectors.templates import MessageTemplate
from wayline.connectors.webhook import WebhookEndpoint
from wayline.schemas.topics import Topics
from wayline.streams.clients import KafkaConfig
from wayline.streams.routes import Route, delivery_id

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]
NOW = datetime.now(UTC)


def webhook_route(receiver: HttpReceiver, path: str = "/ok", name: str = "to_crm") -> Route:
    target = WebhookEndpoint(receiver.url + path, (SECRET,), LOCAL, timeout_s=5)
    return Route(name, "crm", "webhook", target, frozenset({"cart_abandoned"}), kind="marketing")


def test_webhooks_arrive_signed_once_each_and_replays_send_nothing(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path, receiver: HttpReceiver
) -> None:
    docs = [profile_doc(f"p{i}", NOW, email=f"c{i}@example.com") for i in range(30)]
    publish(kafka, topics.profiles, docs, "profile_id")
    triggers = [trigger_doc(d, f"cart-{i}") for i, d in enumerate(docs)]
    route = webhook_route(receiver)
    with delivering(kafka, topics, tmp_path / "state", (route,)):
        publish(kafka, topics.triggers, triggers, "subject")
        found = Deliveries(kafka, topics).read(30)
        publish(kafka, topics.triggers, triggers[:10], "subject")  # the profile worker re-sends
    with delivering(kafka, topics, tmp_path / "state", (route,)):  # and after a restart
        publish(kafka, topics.triggers, triggers[10:20], "subject")
        again = Deliveries(kafka, topics).read(30)
    expected = {delivery_id(t["id"], "to_crm") for t in triggers}
    assert set(found) == expected
    assert {did: [r["status"] for r in rs] for did, rs in again.items()} == {
        did: ["delivered"] for did in expected
    }
    verifier = Webhook(SECRET)
    ids = []
    for request in receiver.received:
        verifier.verify(request.body, request.headers)  # raises unless the signature holds
        ids.append(request.headers["webhook-id"])
    assert sorted(ids) == sorted(expected)  # each once, under its delivery id


def test_consent_and_suppressions_decide_marketing_but_receipts_still_go(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path
) -> None:
    docs = {
        "ok": profile_doc("ok", NOW, email="ok@example.com"),
        "optout": profile_doc("optout", NOW, email="optout@example.com", consent={"email": False}),
        "nomail": profile_doc("nomail", NOW, phone="+4915112345678"),
    }
    bounced = profile_doc("bounced", NOW, email="bounced@example.com")
    bounced["contact"]["suppressed"] = {"email": "bounced"}  # as an Email Bounced event leaves it
    docs["bounced"] = bounced
    publish(kafka, topics.profiles, list(docs.values()), "profile_id")
    with smtp_receiver() as (box, server):
        template = MessageTemplate(
            {"subject": "Your cart", "text": "Hi {{ profile.contact.email }}"}
        )
        routes = (
            Route("cart_mail", "mail", "email", server, frozenset({"cart_abandoned"}),
                  template=template),
            Route("receipt", "mail", "email", server, frozenset({"cart_abandoned"}),
                  kind="transactional", template=template),
        )  # fmt: skip
        with delivering(kafka, topics, tmp_path / "state", routes):
            triggers = [trigger_doc(d, f"cart-{pid}") for pid, d in docs.items()]
            publish(kafka, topics.triggers, triggers, "subject")
            found = Deliveries(kafka, topics).read(8)
        outcomes = {
            (final_of(rs)["profile_id"], final_of(rs)["subscription"]): (
                final_of(rs)["status"], final_of(rs)["reason"])
            for rs in found.values()
        }  # fmt: skip
        assert outcomes == {
            ("ok", "cart_mail"): ("sent", "smtp_250"),
            ("ok", "receipt"): ("sent", "smtp_250"),
            ("optout", "cart_mail"): ("suppressed", "no_consent"),
            ("optout", "receipt"): ("sent", "smtp_250"),  # transactional: consent does not apply
            ("bounced", "cart_mail"): ("suppressed", "bounced"),
            ("bounced", "receipt"): ("suppressed", "bounced"),  # nothing overrides a bounce
            ("nomail", "cart_mail"): ("suppressed", "no_email_address"),
            ("nomail", "receipt"): ("suppressed", "no_email_address"),
        }
        assert sorted(_to(box)) == ["ok@example.com", "ok@example.com", "optout@example.com"]


def _to(box: Mailbox) -> list[str]:
    return [str(m["To"]) for m in box.messages]
