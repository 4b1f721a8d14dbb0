"""Subscriptions as the delivery worker runs them, and the profile's contact points now."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from wayline.connectors.dispatch import Target
from wayline.connectors.retries import RetrySchedule
from wayline.connectors.templates import MessageTemplate
from wayline.segments.policy import ChannelKind, Contact, ContactPolicy, Kind


@dataclass(frozen=True)
class Route:
    """A subscription, ready to deliver: what it listens to, where it sends, how."""

    name: str
    channel: str
    channel_type: ChannelKind
    target: Target
    triggers: frozenset[str] = frozenset()
    entered: frozenset[str] = frozenset()
    exited: frozenset[str] = frozenset()
    kind: Kind = "marketing"
    holdout_pct: float = 0.0
    template: MessageTemplate | None = None

    def matches(self, trigger: str, segment: str | None) -> bool:
        if trigger == "segment_entered":
            return segment in self.entered
        if trigger == "segment_exited":
            return segment in self.exited
        return trigger in self.triggers


class Profiles(Protocol):
    """What the worker reads of ``wayline.profiles`` (a ``ProfileView``)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def wait_ready(self, timeout_s: float) -> bool: ...

    def by_id(self, profile_id: str) -> dict[str, Any] | None: ...

    def by_identifier(self, kind: str, value: str) -> dict[str, Any] | None: ...

    def gone(self, profile_id: str) -> bool: ...


def delivery_id(trigger_id: str, subscription: str) -> str:
    text = f"{trigger_id}\x1f{subscription}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


Unsubscribe = Callable[[str, str, str], str]  # (profile id, channel, address) → one-click URL
# the subscriptions and policy in force now, with a number that changes when they do
Live = Callable[[], tuple[int, tuple["Route", ...], ContactPolicy]]


@dataclass(frozen=True)
class DeliverySetup:
    """What the ``deliver`` worker is built from (the shell makes it from the config)."""

    routes: tuple[Route, ...] = ()
    policy: ContactPolicy = field(default_factory=ContactPolicy)
    retries: RetrySchedule = field(default_factory=RetrySchedule)
    unsubscribe: Unsubscribe | None = None
    in_flight: int = 64  # connector calls at once
    live: Live | None = None  # followed between batches (published subscriptions, policy)


def contact_now(
    trigger: dict[str, Any], profiles: Profiles
) -> tuple[Contact, dict[str, Any]] | None:
    """The profile's contact points now: the newest of the trigger's and the view's (the
    survivor's, when the profile was merged away); None when the profile was deleted."""
    data = trigger.get("data") or {}
    pid = str(data.get("profile_id") or trigger.get("subject"))
    fired: dict[str, Any] = data.get("contact") or {}
    doc = profiles.by_id(pid)
    if doc is None and profiles.gone(pid):
        doc = _survivor(profiles, data.get("identifiers") or {})
        if doc is None:
            return None
        fired = {}  # another profile now: its own contact points count
    current = fired
    known: dict[str, Any] = (doc or {}).get("contact") or {}
    if known and (known.get("last_seen") or "") >= (fired.get("last_seen") or ""):
        current = known
    profile = doc or {"profile_id": pid, "identifiers": data.get("identifiers") or {},
                      "traits": {}, "computed": {}, "contact": current}  # fmt: skip
    contact = Contact(
        profile_id=str(profile["profile_id"]),
        email=current.get("email") or _first(data, "email"),
        phone=current.get("phone") or _first(data, "phone"),
        timezone=current.get("timezone"),
        consent=dict(current.get("consent") or {}),
        suppressed=dict(current.get("suppressed") or {}),
    )
    return contact, profile


def _survivor(profiles: Profiles, identifiers: dict[str, Any]) -> dict[str, Any] | None:
    for kind, values in sorted(identifiers.items()):
        for value in values or ():
            doc = profiles.by_identifier(kind, str(value))
            if doc is not None:
                return doc
    return None


def _first(data: dict[str, Any], kind: str) -> str | None:
    values = (data.get("identifiers") or {}).get(kind) or []
    return str(values[0]) if values else None
