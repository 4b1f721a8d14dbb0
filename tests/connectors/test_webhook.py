"""Webhook deliveries against a real HTTP receiver: signatures verify with the Standard Webhooks
reference library (also across a secret rotation), the outcome says what to do next, and no
request leaves for a loopback, private, link-local or metadata address unless allow-listed."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import orjson
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from receivers import LOCAL, HttpReceiver
from wayline.connectors.webhook import WebhookEndpoint, WebhookSender, refused
from wayline.streams.broker import free_port

pytestmark = pytest.mark.timeout(60)

OLD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
BODY = orjson.dumps({"type": "dev.wayline.trigger.cart_abandoned", "profile_id": "p1"})


def endpoint(url: str, secrets: tuple[str, ...] = (NEW,), **kw: object) -> WebhookEndpoint:
    return WebhookEndpoint(url, secrets, **{"allow_networks": LOCAL, **kw})  # type: ignore[arg-type]


async def test_a_delivery_is_signed_so_the_reference_library_verifies_it(
    receiver: HttpReceiver, sender: WebhookSender
) -> None:
    now = datetime.now(UTC)
    attempt = await sender.send(endpoint(f"{receiver.url}/ok"), "dlv_1", BODY, now)
    assert (attempt.outcome, attempt.status) == ("delivered", 200)
    [got] = receiver.received
    assert got.headers["webhook-id"] == "dlv_1"
    assert Webhook(NEW).verify(got.body, got.headers) == orjson.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(OLD).verify(got.body, got.headers)
    tampered = got.body.replace(b"p1", b"p2")
    with pytest.raises(WebhookVerificationError):
        Webhook(NEW).verify(tampered, got.headers)


async def test_during_a_rotation_both_secrets_sign(
    receiver: HttpReceiver, sender: WebhookSender
) -> None:
    url = f"{receiver.url}/ok"
    await sender.send(endpoint(url, (OLD, NEW)), "dlv_2", BODY, datetime.now(UTC))
    [got] = receiver.received
    assert got.headers["webhook-signature"].count("v1,") == 2
    for secret in (OLD, NEW):  # receivers on either secret accept it
        assert Webhook(secret).verify(got.body, got.headers) == orjson.loads(BODY)


async def test_a_retry_carries_the_same_webhook_id(
    receiver: HttpReceiver, sender: WebhookSender
) -> None:
    for _ in range(2):
        await sender.send(endpoint(f"{receiver.url}/status/503"), "dlv_3", BODY, datetime.now(UTC))
    assert [r.headers["webhook-id"] for r in receiver.received] == ["dlv_3", "dlv_3"]


@pytest.mark.parametrize(
    ("path", "outcome", "retry_after"),
    [
        ("/ok", "delivered", None),
        ("/status/204", "delivered", None),
        ("/status/503?retry_after=7", "retry", 7.0),
        ("/status/429?retry_after=120", "retry", 120.0),
        ("/status/500", "retry", None),
        ("/status/408", "retry", None),
        ("/status/410", "disabled", None),
        ("/status/400", "failed", None),
        ("/status/404", "failed", None),
        ("/redirect", "failed", None),
    ],
)
async def test_the_outcome_says_what_to_do_next(
    receiver: HttpReceiver,
    sender: WebhookSender,
    path: str,
    outcome: str,
    retry_after: float | None,
) -> None:
    attempt = await sender.send(endpoint(receiver.url + path), "dlv_4", BODY, datetime.now(UTC))
    assert (attempt.outcome, attempt.retry_after_s) == (outcome, retry_after)
    assert len(receiver.received) == 1  # one request; a redirect is not followed


async def test_no_answer_in_time_is_retried(receiver: HttpReceiver, sender: WebhookSender) -> None:
    url = f"{receiver.url}/slow"
    attempt = await sender.send(endpoint(url, timeout_s=0.5), "dlv_5", BODY, datetime.now(UTC))
    assert attempt.outcome == "retry"
    assert "no answer" in attempt.reason


async def test_nobody_listening_is_retried(sender: WebhookSender) -> None:
    url = f"http://127.0.0.1:{free_port()}/ok"
    attempt = await sender.send(endpoint(url), "dlv_6", BODY, datetime.now(UTC))
    assert attempt.outcome == "retry"


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "[::1]", "169.254.169.254", "10.1.2.3", "192.168.0.10", "[::ffff:127.0.0.1]",
     "localhost", "0.0.0.0", "100.64.0.1", "224.0.0.1"],
)  # fmt: skip
async def test_forged_destinations_are_refused_before_connecting(
    receiver: HttpReceiver, sender: WebhookSender, host: str
) -> None:
    url = f"http://{host}:{receiver.port}/ok"
    forged = WebhookEndpoint(url, (NEW,))  # nothing allow-listed
    attempt = await sender.send(forged, "dlv_7", BODY, datetime.now(UTC))
    assert attempt.outcome == "failed"
    assert attempt.reason.startswith("address_refused"), attempt.reason
    assert receiver.received == []


async def test_an_allow_listed_name_reaches_the_address_it_was_checked_at(
    receiver: HttpReceiver, sender: WebhookSender
) -> None:
    url = f"http://localhost:{receiver.port}/ok"
    attempt = await sender.send(endpoint(url), "dlv_8", BODY, datetime.now(UTC))
    assert attempt.outcome == "delivered"
    assert receiver.received[0].headers["host"] == f"localhost:{receiver.port}"


def test_public_addresses_pass_and_mapped_private_ones_do_not() -> None:
    assert refused(ipaddress.ip_address("93.184.216.34"), ()) is None
    assert refused(ipaddress.ip_address("2606:4700::1111"), ()) is None
    assert refused(ipaddress.ip_address("::ffff:10.0.0.1"), ()) is not None
    assert refused(ipaddress.ip_address("10.0.0.1"), (ipaddress.ip_network("10.0.0.0/8"),)) is None


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "http:///x"])
async def test_only_http_urls(sender: WebhookSender, url: str) -> None:
    attempt = await sender.send(WebhookEndpoint(url, (NEW,)), "dlv_9", BODY, datetime.now(UTC))
    assert attempt.outcome == "failed"
