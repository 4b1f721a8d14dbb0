"""Slack deliveries against a real HTTP receiver: the text and blocks arrive as Slack expects,
a rate limit is retried when Slack says, an archived or deleted channel disables the webhook."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from receivers import LOCAL, HttpReceiver
from wayline.connectors.slack import send_slack
from wayline.connectors.webhook import WebhookSender

pytestmark = pytest.mark.timeout(60)


async def test_text_and_blocks_arrive(receiver: HttpReceiver, sender: WebhookSender) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Ada* entered _vip_"}}]
    now = datetime.now(UTC)
    attempt = await send_slack(sender, f"{receiver.url}/ok", "Ada entered vip", now, blocks, LOCAL)
    assert attempt.outcome == "delivered"
    [got] = receiver.received
    assert orjson.loads(got.body) == {"text": "Ada entered vip", "blocks": blocks}
    assert got.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("path", "outcome", "retry_after"),
    [
        ("/status/429?retry_after=30", "retry", 30.0),
        ("/status/410", "disabled", None),
        ("/status/404", "disabled", None),
        ("/status/403", "disabled", None),
        ("/status/400", "failed", None),
        ("/status/500", "retry", None),
    ],
)
async def test_slacks_answers_say_what_to_do_next(
    receiver: HttpReceiver,
    sender: WebhookSender,
    path: str,
    outcome: str,
    retry_after: float | None,
) -> None:
    attempt = await send_slack(sender, receiver.url + path, "x", datetime.now(UTC), allow=LOCAL)
    assert (attempt.outcome, attempt.retry_after_s) == (outcome, retry_after)


async def test_a_slack_url_on_a_private_address_is_refused(
    receiver: HttpReceiver, sender: WebhookSender
) -> None:
    attempt = await send_slack(sender, f"{receiver.url}/ok", "x", datetime.now(UTC))
    assert attempt.outcome == "failed"
    assert attempt.reason.startswith("address_refused")
    assert receiver.received == []
