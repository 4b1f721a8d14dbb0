"""SMS deliveries against a local API of Twilio's shape: the form and the credentials a real
provider expects, a STOP'd recipient reported as an opt-out, a rate limit retried."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest

from receivers import LOCAL, HttpReceiver
from wayline.connectors.sms import SmsAccount, send_sms
from wayline.connectors.webhook import WebhookSender

pytestmark = pytest.mark.timeout(60)


def account(receiver: HttpReceiver) -> SmsAccount:
    return SmsAccount("AC123", "token456", "+15550100", receiver.url, LOCAL)


async def test_a_text_is_sent_as_the_provider_expects(
    receiver: HttpReceiver, sender: WebhookSender
) -> None:
    text = "Your cart is waiting: reply STOP to opt out"
    attempt = await send_sms(sender, account(receiver), "+15551234", text, datetime.now(UTC))
    assert attempt.outcome == "delivered"
    assert attempt.reason.startswith("accepted as SM")
    [got] = receiver.received
    assert got.path == "/2010-04-01/Accounts/AC123/Messages.json"
    assert dict(parse_qsl(got.body.decode())) == {"To": "+15551234", "From": "+15550100",
                                                  "Body": text}  # fmt: skip
    user, token = base64.b64decode(got.headers["authorization"][6:]).decode().split(":")
    assert (user, token) == ("AC123", "token456")


@pytest.mark.parametrize(
    ("to", "outcome", "reason", "retry_after"),
    [
        ("+15550000000", "failed", "opted_out", None),
        ("+15550000429", "retry", "HTTP 429", 5.0),
    ],
)
async def test_a_stop_is_an_opt_out_and_a_rate_limit_waits(
    receiver: HttpReceiver,
    sender: WebhookSender,
    to: str,
    outcome: str,
    reason: str,
    retry_after: float | None,
) -> None:
    attempt = await send_sms(sender, account(receiver), to, "x", datetime.now(UTC))
    assert attempt.outcome == outcome
    assert attempt.reason.startswith(reason)
    assert attempt.retry_after_s == retry_after


async def test_a_provider_on_a_private_address_needs_allow_listing(
    receiver: HttpReceiver, sender: WebhookSender
) -> None:
    closed = SmsAccount("AC123", "token456", "+15550100", receiver.url)
    attempt = await send_sms(sender, closed, "+15551234", "x", datetime.now(UTC))
    assert attempt.reason.startswith("address_refused")
    assert receiver.received == []
