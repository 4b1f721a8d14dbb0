"""SendGrid Event Webhook: batches of e-mail events → Segment-style track events.

| SendGrid event | track event | notes |
|---|---|---|
| processed | Email Sent | |
| delivered | Email Delivered | |
| open | Email Opened | |
| click | Email Link Clicked | ``properties.url`` |
| bounce, dropped | Email Bounced | ``properties.bounce_type`` = bounce type, or ``dropped`` |
| spamreport | Email Marked as Spam | ``properties.consent.email`` = false |
| unsubscribe, group_unsubscribe | Unsubscribed | ``properties.consent.email`` = false; group id |

Every event is identified by its e-mail address (``context.traits.email``) on channel ``email``,
and its ``messageId`` is derived from ``sg_event_id``, so a redelivered webhook is dropped by
dedupe. Other SendGrid events (deferred, …) are acknowledged and counted, not forwarded.

Signed webhooks: SendGrid signs ``timestamp + body`` with ECDSA P-256 / SHA-256; the signature
(base64 DER) and timestamp arrive in the ``X-Twilio-Email-Event-Webhook-Signature`` and
``-Timestamp`` headers, and the source's ``sendgrid_verification_key`` is the base64 public key.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from wayline.schemas.timestamps import format_timestamp

SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"
_NAMESPACE = uuid.UUID("1f6b4a52-3a0e-4c0f-9a57-5e0f3d1c2b7a")

EVENT_NAMES = {
    "processed": "Email Sent",
    "delivered": "Email Delivered",
    "open": "Email Opened",
    "click": "Email Link Clicked",
    "bounce": "Email Bounced",
    "dropped": "Email Bounced",
    "spamreport": "Email Marked as Spam",
    "unsubscribe": "Unsubscribed",
    "group_unsubscribe": "Unsubscribed",
}
_OPT_OUTS = {"spamreport", "unsubscribe", "group_unsubscribe"}
_COPIED = ("sg_message_id", "sg_event_id", "category", "url", "reason", "status", "useragent", "ip")


class ReplayGuard:
    """Signed requests are fresh (timestamp within ``max_age_s`` of now) and seen once: a
    signature already accepted within that window is a replay. Per process; the events'
    messageIds (from ``sg_event_id``) make a replay to another process count nothing anyway."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}  # signature → timestamp

    def problem(self, signature: str, timestamp: str, now_s: float, max_age_s: int) -> str | None:
        try:
            stamp = float(timestamp)
        except ValueError:
            return "the timestamp is not a number of seconds"
        if abs(now_s - stamp) > max_age_s:
            return f"the timestamp is {abs(now_s - stamp):.0f} s from now (limit {max_age_s} s)"
        for old in [s for s, t in self._seen.items() if now_s - t > max_age_s]:
            del self._seen[old]
        if signature in self._seen:
            return "this signed request was accepted already (a replay)"
        self._seen[signature] = stamp
        return None


def verify(
    public_key_b64: str, signature_b64: str | None, timestamp: str | None, body: bytes
) -> bool:
    """True when ``signature`` is SendGrid's signature of ``timestamp + body``."""
    if not signature_b64 or not timestamp:
        return False
    try:
        key = load_der_public_key(base64.b64decode(public_key_b64))
        signature = base64.b64decode(signature_b64, validate=True)
    except (ValueError, binascii.Error):
        return False
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    try:
        key.verify(signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def to_track_events(batch: list[Any]) -> tuple[list[dict[str, Any]], int]:
    """The track events of a webhook batch, and how many SendGrid events were not mapped."""
    events, ignored = [], 0
    for item in batch:
        kind = item.get("event") if isinstance(item, dict) else None
        if kind not in EVENT_NAMES:
            ignored += 1
            continue
        events.append(_track(item))
    return events, ignored


def _track(item: dict[str, Any]) -> dict[str, Any]:
    kind = str(item["event"])
    properties: dict[str, Any] = {k: item[k] for k in _COPIED if k in item}
    properties["sendgrid_event"] = kind
    if kind in ("bounce", "dropped"):
        properties["bounce_type"] = item.get("type", "bounce") if kind == "bounce" else "dropped"
    if kind == "group_unsubscribe" and "asm_group_id" in item:
        properties["group_id"] = item["asm_group_id"]
    if kind in _OPT_OUTS:
        properties["consent"] = {"email": False}
    event_id = str(item.get("sg_event_id") or f"{item.get('sg_message_id')}:{kind}")
    event: dict[str, Any] = {
        "type": "track",
        "event": EVENT_NAMES[kind],
        "messageId": str(uuid.uuid5(_NAMESPACE, event_id)),
        "properties": properties,
        "context": {"traits": {"email": item.get("email")}, "channel": "email"},
    }
    stamp = item.get("timestamp")
    if isinstance(stamp, int | float) and 0 < stamp < 10**11:
        event["timestamp"] = format_timestamp(datetime.fromtimestamp(stamp, UTC))
    return event
