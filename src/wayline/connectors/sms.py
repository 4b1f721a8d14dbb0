"""SMS deliveries through an API of Twilio's Messages shape (``base_url`` configurable).

``POST {base_url}/2010-04-01/Accounts/{sid}/Messages.json`` with ``To``, ``From`` and ``Body``
form fields and HTTP basic auth (account SID, auth token), through the same checked address as
a webhook. The provider's error code decides: 21610 (the recipient texted STOP) is an opt-out,
reported as ``failed`` with reason ``opted_out`` so the delivery worker records it; 429 and
5xx retry; other errors fail.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

import orjson

from wayline.connectors.webhook import Attempt, Network, WebhookSender, classify

OPTED_OUT = 21610  # "Attempt to send to unsubscribed recipient"


@dataclass(frozen=True)
class SmsAccount:
    account_sid: str
    auth_token: str
    sender: str
    base_url: str = "https://api.twilio.com"
    allow_networks: tuple[Network, ...] = ()
    timeout_s: float = 15.0


async def send_sms(
    client: WebhookSender, account: SmsAccount, to: str, text: str, at: datetime
) -> Attempt:
    url = f"{account.base_url.rstrip('/')}/2010-04-01/Accounts/{account.account_sid}/Messages.json"
    token = base64.b64encode(f"{account.account_sid}:{account.auth_token}".encode()).decode()
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "authorization": f"Basic {token}",
    }
    body = urlencode({"To": to, "From": account.sender, "Body": text}).encode()
    allow: Sequence[Network] = account.allow_networks
    posted = await client.post(url, body, headers, allow, account.timeout_s)
    if isinstance(posted, Attempt):
        return posted
    if posted.status_code < 300:
        sid = _field(posted.content, "sid")
        return Attempt("delivered", f"accepted as {sid}", posted.status_code)
    code = _field(posted.content, "code")
    if code == str(OPTED_OUT):
        return Attempt("failed", f"opted_out: error {OPTED_OUT}", posted.status_code)
    attempt = classify(posted.status_code, posted.headers.get("retry-after"), at)
    if code:
        return Attempt(attempt.outcome, f"{attempt.reason}: error {code}", attempt.status,
                       attempt.retry_after_s)  # fmt: skip
    return attempt


def _field(content: bytes, name: str) -> str:
    try:
        value = orjson.loads(content).get(name)
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    return "" if value is None else str(value)
