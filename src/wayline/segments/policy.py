"""The contact policy: whether one delivery may go out now, and if not, why (pure).

``decide(policy, request, contact, sent, now_ms)`` looks at the profile as it is at send
time, never as it was when the trigger fired: an opt-out that arrives while a send waits out
quiet hours cancels it. In order:

1. a hard suppression (bounce, complaint, SMS STOP, deleted) — nothing overrides it;
2. no contact point on the channel (no e-mail address, no phone number);
3. transactional subscriptions stop here: they are sent (no consent, caps, quiet hours or
   holdouts apply to a receipt or a password reset);
4. consent on the channel: marketing needs it — e-mail and webhooks unless the profile opted
   out, SMS only with an explicit opt-in;
5. holdouts, by a stable hash bucket of the profile id: the global control group first, then
   the subscription's own percentage. They are decided after consent, so the held-out and the
   treated profiles are alike (both could have been contacted) and uplift can be measured;
6. frequency caps per channel over rolling windows (marketing sends only);
7. quiet hours in the profile's time zone: deferred to the window's end, unless that is later
   than ``max_defer_ms`` after the trigger (then the delivery is dropped as expired).

Times are milliseconds since the epoch, passed in; nothing here reads a clock.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ChannelKind = Literal["webhook", "email", "sms", "slack"]
Kind = Literal["marketing", "transactional"]
Outcome = Literal["send", "suppressed", "held_out", "frequency_capped", "deferred"]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
BUCKETS = 10_000  # holdout percentages to two decimals


@dataclass(frozen=True)
class Cap:
    """At most ``count`` marketing sends on a channel in any ``window_ms``."""

    count: int
    window_ms: int


@dataclass(frozen=True)
class QuietHours:
    """Local time from ``start`` to ``end`` (across midnight when ``end`` < ``start``)."""

    start: time
    end: time

    def contains(self, local: time) -> bool:
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def release(self, local: datetime) -> datetime:
        """The first moment at or after ``local`` outside the window (same zone)."""
        if not self.contains(local.time()):
            return local
        end = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        return end if end > local else end + timedelta(days=1)


@dataclass(frozen=True)
class ChannelPolicy:
    caps: tuple[Cap, ...] = ()
    quiet_hours: QuietHours | None = None
    opt_in_required: bool = False  # marketing needs an explicit grant (SMS), not just no opt-out


def default_channels() -> dict[ChannelKind, ChannelPolicy]:
    """E-mail 1 per 16 h and 5 per 7 days; SMS 1 per 24 h and 3 per 7 days, quiet 21:00–08:00,
    explicit opt-in; webhooks and Slack uncapped (they reach systems and staff, not people)."""
    return {
        "email": ChannelPolicy(caps=(Cap(1, 16 * HOUR_MS), Cap(5, 7 * DAY_MS))),
        "sms": ChannelPolicy(
            caps=(Cap(1, DAY_MS), Cap(3, 7 * DAY_MS)),
            quiet_hours=QuietHours(time(21, 0), time(8, 0)),
            opt_in_required=True,
        ),
        "webhook": ChannelPolicy(),
        "slack": ChannelPolicy(),
    }


@dataclass(frozen=True)
class ContactPolicy:
    channels: Mapping[ChannelKind, ChannelPolicy] = field(default_factory=default_channels)
    control_group_pct: float = 0.0  # the global control group: never sent marketing
    max_defer_ms: int = 12 * HOUR_MS
    default_timezone: str = "UTC"


@dataclass(frozen=True)
class Request:
    """One delivery: a trigger × a subscription."""

    delivery_id: str
    subscription: str
    channel: ChannelKind
    kind: Kind
    triggered_at_ms: int
    holdout_pct: float = 0.0


@dataclass(frozen=True)
class Contact:
    """What the delivery worker knows of the profile now."""

    profile_id: str
    email: str | None = None
    phone: str | None = None
    timezone: str | None = None
    consent: Mapping[str, bool] = field(default_factory=dict)  # channel → granted
    suppressed: Mapping[str, str] = field(default_factory=dict)  # channel or "*" → why


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    release_at_ms: int | None = None  # deferred: when to decide again


def decide(
    policy: ContactPolicy,
    request: Request,
    contact: Contact,
    sent: Mapping[str, Sequence[int]],
    now_ms: int,
) -> Decision:
    """The policy's verdict on ``request`` at ``now_ms``; ``sent`` is the profile's marketing
    sends per channel (sorted times), as the caps count them."""
    channel = request.channel
    why = contact.suppressed.get(channel) or contact.suppressed.get("*")
    if why:
        return Decision("suppressed", why)
    if channel == "email" and not contact.email:
        return Decision("suppressed", "no_email_address")
    if channel == "sms" and not contact.phone:
        return Decision("suppressed", "no_phone_number")
    if request.kind == "transactional":
        return Decision("send", "transactional")
    rules = policy.channels.get(channel, ChannelPolicy())
    granted = contact.consent.get(channel)
    if granted is False or (rules.opt_in_required and granted is not True):
        return Decision("suppressed", "no_consent" if granted is False else "no_opt_in")
    if in_holdout(contact.profile_id, "control", policy.control_group_pct):
        return Decision("held_out", "control_group")
    if in_holdout(contact.profile_id, request.subscription, request.holdout_pct):
        return Decision("held_out", "holdout")
    capped = first_cap_reached(rules.caps, sent.get(channel, ()), now_ms)
    if capped is not None:
        return Decision("frequency_capped", f"{capped.count} per {capped.window_ms // HOUR_MS} h")
    return _outside_quiet_hours(policy, rules, request, contact, now_ms)


def in_holdout(profile_id: str, salt: str, pct: float) -> bool:
    """Whether the profile's stable bucket for ``salt`` falls in the first ``pct`` percent."""
    if pct <= 0:
        return False
    digest = hashlib.sha256(f"{salt}\x00{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS < round(pct * BUCKETS / 100)


def first_cap_reached(caps: Sequence[Cap], sent: Sequence[int], now_ms: int) -> Cap | None:
    """The first cap one more send at ``now_ms`` would break (``sent`` sorted)."""
    for cap in caps:
        since = now_ms - cap.window_ms  # the window is (now - window, now]
        if len(sent) - bisect_right(sent, since) >= cap.count:
            return cap
    return None


def zone(name: str | None, fallback: str) -> ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _outside_quiet_hours(
    policy: ContactPolicy, rules: ChannelPolicy, request: Request, contact: Contact, now_ms: int
) -> Decision:
    quiet = rules.quiet_hours
    if quiet is None:
        return Decision("send", "allowed")
    local = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(
        zone(contact.timezone, policy.default_timezone)
    )
    release = quiet.release(local)
    if release == local:
        return Decision("send", "allowed")
    release_ms = int(release.timestamp() * 1000)
    if release_ms - request.triggered_at_ms > policy.max_defer_ms:
        return Decision("suppressed", "deferral_expired")
    return Decision("deferred", "quiet_hours", release_ms)
