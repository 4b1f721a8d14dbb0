"""Slack deliveries through an incoming webhook: the message's text (and blocks, when given).

The URL is checked like any webhook's (no private or metadata addresses unless allow-listed,
no redirects). Slack answers errors as a status and a short text: 429 carries
``Retry-After``; 404 ``channel_not_found``, 410 ``channel_is_archived`` and 403
``action_prohibited`` mean the webhook will not work again, so the channel is ``disabled``;
other 4xx (``invalid_payload``) fail the delivery; 5xx, timeouts and connection errors retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from wayline.connectors.webhook import Attempt, Network, WebhookSender, classify

GONE = {403: "action_prohibited", 404: "channel_not_found", 410: "channel_is_archived"}


async def send_slack(
    sender: WebhookSender,
    url: str,
    text: str,
    at: datetime,
    blocks: Sequence[dict[str, Any]] = (),
    allow: Sequence[Network] = (),
    timeout_s: float = 15.0,
) -> Attempt:
    body: dict[str, Any] = {"text": text}
    if blocks:
        body["blocks"] = list(blocks)
    posted = await sender.post(url, orjson.dumps(body), {}, allow, timeout_s)
    if isinstance(posted, Attempt):
        return posted
    if posted.status_code in GONE:
        said = posted.text.strip() or GONE[posted.status_code]
        return Attempt("disabled", f"HTTP {posted.status_code}: {said}", posted.status_code)
    return classify(posted.status_code, posted.headers.get("retry-after"), at)
