"""The delivery worker on a real broker, with real receivers: every trigger × subscription ends
in one final outcome on ``wayline.deliveries``; webhooks arrive signed, once; consent, hard
suppressions and transactional kinds decide who gets what; replays send nothing twice."""

from __future__ import annotations

import math
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import orjson
import pytest
from standardwebhooks import Webhook

from deliverytest import (
    SECRET,
    Deliveries,
    delivering,
    final_of,
    ms,
    profile_doc,
    publish,
    trigger_doc,
)
from kafkatest import read_topic, wait_for
from receivers import LOCAL, HttpReceiver, Mailbox, smtp_receiver
from wayline.connectors.retries import RetrySchedule
from wayline.connectors.sms import SmsAccount
from wayline.connectors.templates import MessageTemplate
from wayline.connectors.webhook import WebhookEndpoint
from wayline.schemas.topics import Topics
from wayline.segments.policy import Cap, ChannelPolicy, ContactPolicy, default_channels, in_holdout
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


def _next_local(zone: str, hour: int, minute: int, second: int) -> datetime:
    """The next moment after now when the clock in ``zone`` shows hour:minute:second."""
    local = datetime.now(ZoneInfo(zone))
    at = local.replace(hour=hour, minute=minute, second=second, microsecond=0)
    return at if at > local else at + timedelta(days=1)


def test_quiet_hours_defer_to_the_local_morning_and_an_opt_out_meanwhile_cancels(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path, receiver: HttpReceiver
) -> None:
    zone = "Asia/Tokyo"
    start = _next_local(zone, 7, 59, 52)  # 8 s before quiet hours (21:00–08:00) end there
    offset = start.timestamp() - time.time()  # the worker's clock is moved forward to it
    keep = profile_doc("keep", NOW, phone="+819012345678", timezone=zone, consent={"sms": True})
    leave = profile_doc("leave", NOW, phone="+819087654321", timezone=zone, consent={"sms": True})
    never = profile_doc("never", NOW, phone="+819011112222", timezone=zone)  # no opt-in
    publish(kafka, topics.profiles, [keep, leave, never], "profile_id")
    account = SmsAccount("AC123", "token456", "+15550100", receiver.url, LOCAL)
    template = MessageTemplate({"text": "Your cart is waiting"})
    route = Route("cart_text", "texts", "sms", account, frozenset({"cart_abandoned"}),
                  template=template)  # fmt: skip
    deliveries = Deliveries(kafka, topics)
    with delivering(kafka, topics, tmp_path / "s", (route,), clock_offset_s=offset):
        publish(kafka, topics.triggers, [trigger_doc(d, "c1") for d in (keep, leave, never)],
                "subject")  # fmt: skip
        wait_for(lambda: len(deliveries.by_id()) == 3, 30, "the deferrals")
        opted_out = profile_doc("leave", NOW + timedelta(seconds=1), phone="+819087654321",
                                timezone=zone, consent={"sms": False})  # fmt: skip
        publish(kafka, topics.profiles, [opted_out], "profile_id")
        found = deliveries.read(3, timeout_s=40)
    by_profile = {rs[0]["profile_id"]: rs for rs in found.values()}
    release = datetime(start.year, start.month, start.day, 8, 0, tzinfo=ZoneInfo(zone))
    for pid in ("keep", "leave"):
        first = by_profile[pid][0]
        assert (first["status"], first["reason"]) == ("deferred", "quiet_hours")
        assert ms(first["release_at"]) == int(release.timestamp() * 1000)
    sent = final_of(by_profile["keep"])
    assert (sent["status"], sent["reason"]) == ("sent", "http_201")
    assert ms(sent["attempted_at"]) >= int(release.timestamp() * 1000)  # not a second before
    cancelled = final_of(by_profile["leave"])
    assert (cancelled["status"], cancelled["reason"]) == ("suppressed", "no_consent")
    assert [r["status"] for r in by_profile["never"]] == ["suppressed"]  # no opt-in: no SMS
    texts = [parse_qs(r.body.decode())["To"][0] for r in receiver.received]
    assert texts == ["+819012345678"]


def test_frequency_caps_hold_in_every_rolling_window(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path
) -> None:
    rng = random.Random(7)
    docs = [profile_doc(f"p{i}", NOW, email=f"p{i}@example.com") for i in range(12)]
    publish(kafka, topics.profiles, docs, "profile_id")
    cap = Cap(2, 3000)  # at most 2 marketing mails in any 3 s
    policy = ContactPolicy(channels={**default_channels(), "email": ChannelPolicy(caps=(cap,))})
    total = 0
    with smtp_receiver() as (box, server):
        template = MessageTemplate({"subject": "Hello", "text": "x"})
        route = Route("news", "mail", "email", server, frozenset({"cart_abandoned"}),
                      template=template)  # fmt: skip
        with delivering(kafka, topics, tmp_path / "s", (route,), policy):
            for wave in range(8):
                chosen = [d for d in docs if rng.random() < 0.6]
                publish(kafka, topics.triggers, [trigger_doc(d, f"w{wave}") for d in chosen],
                        "subject")  # fmt: skip
                total += len(chosen)
                time.sleep(rng.uniform(0.3, 1.2))
            found = Deliveries(kafka, topics).read(total)
        finals = [final_of(rs) for rs in found.values()]
        assert len(finals) == total
        sends: dict[str, list[int]] = {}
        for record in finals:
            if record["status"] == "sent":
                sends.setdefault(record["profile_id"], []).append(ms(record["attempted_at"]))
        capped = [r for r in finals if r["status"] == "frequency_capped"]
        assert capped, "the stream never reached the cap: the test proves nothing"
        assert len(capped) + sum(map(len, sends.values())) == total
        for times in sends.values():
            times.sort()
            for t in times:  # no window (t - 3 s, t] holds more than 2
                assert sum(1 for u in times if t - cap.window_ms < u <= t) <= cap.count
        for record in capped:  # and nothing was capped that the window had room for
            t = ms(record["at"])
            window = [u for u in sends.get(record["profile_id"], []) if t - cap.window_ms < u <= t]
            assert len(window) >= cap.count, record
        assert len(box.messages) == sum(map(len, sends.values()))


def test_holdouts_follow_the_stable_hash_of_the_profile(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path, receiver: HttpReceiver
) -> None:
    docs = [profile_doc(f"h{i:03d}", NOW, email=f"h{i}@example.com") for i in range(300)]
    publish(kafka, topics.profiles, docs, "profile_id")
    route = Route("promo", "crm", "webhook",
                  WebhookEndpoint(receiver.url + "/ok", (SECRET,), LOCAL),
                  frozenset({"cart_abandoned"}), holdout_pct=20)  # fmt: skip
    policy = ContactPolicy(control_group_pct=5)
    triggers = [trigger_doc(d, "c") for d in docs]
    for half in (triggers[:150], triggers[150:]):  # a restart in between
        with delivering(kafka, topics, tmp_path / "s", (route,), policy):
            publish(kafka, topics.triggers, half, "subject")
            found = Deliveries(kafka, topics).read(len(half) if half[0] is triggers[0] else 300)
    outcome = {final_of(rs)["profile_id"]: (final_of(rs)["status"], final_of(rs)["reason"])
               for rs in found.values()}  # fmt: skip
    expected = {}
    for doc in docs:
        pid = doc["profile_id"]
        if in_holdout(pid, "control", 5):
            expected[pid] = ("held_out", "control_group")
        elif in_holdout(pid, "promo", 20):
            expected[pid] = ("held_out", "holdout")
        else:
            expected[pid] = ("delivered", "http_200")
    assert outcome == expected
    held = sum(1 for status, _ in outcome.values() if status == "held_out")
    share = 1 - 0.95 * 0.8  # 24 % held out in all
    assert abs(held - 300 * share) < 4 * math.sqrt(300 * share * (1 - share))
    assert len(receiver.received) == 300 - held


def test_retries_then_exhausted_to_the_dead_letters_and_410_disables(
    kafka: KafkaConfig, topics: Topics, tmp_path: Path, receiver: HttpReceiver
) -> None:
    doc = profile_doc("r1", NOW, email="r1@example.com")
    publish(kafka, topics.profiles, [doc], "profile_id")
    retries = RetrySchedule((0.2, 0.4, 0.6), jitter=0.0)
    routes = (
        webhook_route(receiver, "/status/503", "flaky"),
        webhook_route(receiver, "/status/429?retry_after=2", "busy"),
        Route("gone", "old_crm", "webhook",
              WebhookEndpoint(receiver.url + "/status/410", (SECRET,), LOCAL),
              frozenset({"cart_abandoned"})),
    )  # fmt: skip
    with delivering(kafka, topics, tmp_path / "s", routes, retries=retries):
        publish(kafka, topics.triggers, [trigger_doc(doc, "c1")], "subject")
        Deliveries(kafka, topics).read(3, timeout_s=60)
        publish(kafka, topics.triggers, [trigger_doc(doc, "c2")], "subject")
        found = Deliveries(kafka, topics).read(6, timeout_s=60)
    by_route = {(rs[0]["subscription"], rs[0]["trigger_id"]): rs for rs in found.values()}
    first = trigger_doc(doc, "c1")["id"]
    flaky = by_route[("flaky", first)]
    assert [(r["status"], r["attempt"]) for r in flaky] == [
        ("retrying", 1), ("retrying", 2), ("retrying", 3), ("exhausted", 4)]  # fmt: skip
    busy = by_route[("busy", first)][0]
    assert busy["status"] == "retrying"
    assert ms(busy["release_at"]) - ms(busy["at"]) >= 2000  # Retry-After beats the schedule
    gone = by_route[("gone", first)]
    assert [(r["status"], r["reason"]) for r in gone] == [("failed", "http_410")]
    later = by_route[("gone", trigger_doc(doc, "c2")["id"])]
    assert [(r["status"], r["reason"]) for r in later] == [("failed", "endpoint_disabled")]
    paths = [r.path for r in receiver.received]
    assert paths.count("/status/410") == 1  # the disabled endpoint was not called again
    assert paths.count("/status/503") == 8  # 4 attempts for each of the two triggers
    dead = read_topic(kafka, topics.deliveries_dlq, 2, timeout_s=10)
    exhausted = [m for m in dead if m.header("wayline.delivery.subscription") == b"flaky"]
    assert len(exhausted) == 2  # both triggers, with the trigger itself to send again by hand
    assert {orjson.loads(m.value or b"")["id"] for m in exhausted} == {
        trigger_doc(doc, c)["id"] for c in ("c1", "c2")
    }
    assert {m.header("wayline.dlq.reason") for m in dead} == {b"delivery_exhausted"}
