"""Consent changes that arrive outside the collector, as the raw events the pipeline folds:
a one-click unsubscribe, an SMS STOP or START, a provider's report that a number opted out.

Each becomes an ordinary event on ``wayline.events.raw`` (``source`` ``wayline``), identified by
the address it concerns, so identity resolution finds the profile and the profile, the segments
and the delivery worker's contact policy see it within seconds. The message id is derived from
what happened, so a click repeated or a callback re-sent counts once.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

from wayline.schemas.timestamps import format_timestamp

Change = Literal["Unsubscribed", "SMS Opted Out", "SMS Opted In"]
SOURCE = "wayline"  # the source name consent events carry


def seen_on(change: Change) -> str:
    """The event's ``context.channel``: e-mail for an unsubscribe; the channel list has no SMS,
    and a text message is closest to an app's messaging."""
    return "email" if change == "Unsubscribed" else "app"


def consent_headers(change: Change) -> tuple[tuple[str, bytes], ...]:
    return (("wayline.source", SOURCE.encode()), ("wayline.channel", seen_on(change).encode()))


def consent_event(
    change: Change, address: str, at: datetime, via: str, once_per: str
) -> dict[str, Any]:
    """The raw event of one consent change. ``address`` is the e-mail address (Unsubscribed)
    or the E.164 phone number; ``once_per`` names the occurrence (a token, a message sid)."""
    channel = "email" if change == "Unsubscribed" else "sms"
    trait = "email" if channel == "email" else "phone"
    digest = hashlib.blake2b(f"{change}\x1f{address}\x1f{once_per}".encode(), digest_size=16)
    stamp = format_timestamp(at)
    return {
        "type": "track",
        "event": change,
        "messageId": f"consent-{digest.hexdigest()}",
        "timestamp": stamp,
        "receivedAt": stamp,
        "properties": {
            "channel": channel,
            "via": via,
            "consent": {channel: change == "SMS Opted In"},
        },
        "context": {"traits": {trait: address}, "channel": seen_on(change)},
    }
