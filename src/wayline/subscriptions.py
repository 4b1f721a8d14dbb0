"""The subscriptions and contact policy in force: the config file's, overridden by what is
published on ``wayline.definitions`` (``wayline subscriptions apply``)."""

from __future__ import annotations

import logging
from bisect import insort
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from wayline.config.channels import (
    EmailChannel,
    SlackChannel,
    SmsChannel,
    Subscription,
    WebhookChannel,
    check_subscriptions,
    routes,
    subscription_examples,
)
from wayline.config.contactpolicy import ContactPolicySpec
from wayline.connectors.templates import TemplateError, context
from wayline.profiles.view import iso
from wayline.segments.policy import Contact, ContactPolicy, Request, decide
from wayline.streams.routes import Route, delivery_id

log = logging.getLogger(__name__)
PREVIEW_LINK = "https://wayline.example/v1/unsubscribe/preview"


def published_subscriptions(
    channels: Sequence[WebhookChannel | EmailChannel | SmsChannel | SlackChannel],
    own: Sequence[Subscription],
    own_policy: ContactPolicySpec,
    latest: Mapping[str, Any],
    trigger_types: set[str],
    notify_segments: set[str],
) -> tuple[list[Subscription], ContactPolicySpec]:
    """The config file's subscriptions and policy overridden by name by those published on
    ``wayline.definitions``; checked against this process's channels (``ValueError``)."""
    subs = {s.name: s for s in own}
    policy = own_policy
    for definition in latest.values():
        name, spec = definition["name"], definition["spec"]
        if definition["kind"] == "subscription":
            if definition.get("deleted"):
                subs.pop(name, None)
            else:
                subs[name] = Subscription.model_validate(spec)
        elif definition["kind"] == "policy" and not definition.get("deleted"):
            policy = ContactPolicySpec.model_validate(spec)
    ordered = sorted(subs.values(), key=lambda s: s.name)
    check_subscriptions(channels, ordered, trigger_types, notify_segments, subscription_examples())
    return ordered, policy


class LiveSubscriptions:
    """The subscriptions and policy the delivery worker runs: the config file's at first, then
    each generation published on ``wayline.definitions`` that works with this process's
    channels (one that does not is logged and the previous one stays in force)."""

    def __init__(self, config: Any) -> None:
        self.config = config  # a WaylineConfig (not imported: it imports this module)
        policy = config.contact_policy.policy()
        self.current: tuple[int, tuple[Route, ...], ContactPolicy] = (
            0, routes(config.channels, config.subscriptions), policy)  # fmt: skip

    def __call__(self) -> tuple[int, tuple[Route, ...], ContactPolicy]:
        return self.current

    def update(self, segments: Any, triggers: set[str], latest: Mapping[str, Any]) -> None:
        """``segments``: the compiled segments in force; ``triggers``: the trigger types on."""
        notify = {name for name, s in segments.by_name.items() if s.notify}
        c = self.config
        try:
            subs, policy = published_subscriptions(
                c.channels, c.subscriptions, c.contact_policy, latest, triggers, notify
            )
        except (ValueError, ValidationError) as exc:
            log.error("published subscriptions do not work here, keeping the previous: %s", exc)
            return
        generation = self.current[0] + 1
        self.current = (generation, routes(c.channels, subs), policy.policy())


@dataclass(frozen=True)
class Preview:
    """What one subscription would do with one trigger, in a dry run."""

    at_ms: int
    profile_id: str
    subscription: str
    channel: str
    outcome: str  # send, deferred, suppressed, held_out, frequency_capped, failed
    reason: str
    message: str  # the rendered subject or text, shortened


def preview(config: Any, cloud_events: Sequence[Mapping[str, Any]],
            documents: Mapping[str, Any]) -> list[Preview]:  # fmt: skip
    """Each trigger × matching subscription decided as if it were delivered when it fired: the
    contact points it fired with, the caps counting the sends before it, the profile document
    for the template. ``wayline subscriptions test`` shows this table."""
    policy = config.contact_policy.policy()
    sent: Sent = {}
    out = []
    for trigger in sorted(cloud_events, key=lambda t: (str(t["time"]), str(t["id"]))):
        data = trigger["data"]
        at = int(datetime.fromisoformat(str(trigger["time"])).timestamp() * 1000)
        segment = (data.get("payload") or {}).get("segment")
        for route in routes(config.channels, config.subscriptions):
            if not route.matches(str(data["trigger"]), segment):
                continue
            out.append(_decided(route, trigger, at, policy, sent, documents))
    return out


Sent = dict[tuple[str, str], list[int]]  # (profile, channel type) → marketing send times


def _decided(
    route: Route,
    trigger: Mapping[str, Any],
    at: int,
    policy: ContactPolicy,
    sent: Sent,
    documents: Mapping[str, Any],
) -> Preview:
    data = trigger["data"]
    pid = str(data["profile_id"])
    fired = data.get("contact") or {}
    contact = Contact(pid, fired.get("email"), fired.get("phone"), fired.get("timezone"),
                      fired.get("consent") or {}, fired.get("suppressed") or {})  # fmt: skip
    history = sent.setdefault((pid, route.channel_type), [])
    request = Request(delivery_id(str(trigger["id"]), route.name), route.name,
                      route.channel_type, route.kind, at, route.holdout_pct)  # fmt: skip
    decision = decide(policy, request, contact, {route.channel_type: history}, at)
    outcome: str = decision.outcome
    reason, message = decision.reason, ""
    if outcome in ("send", "deferred"):
        if decision.release_at_ms is not None:
            reason = f"quiet hours until {iso(decision.release_at_ms)}"
        if route.kind == "marketing":
            insort(history, decision.release_at_ms or at)
        if route.template is not None:
            profile = documents.get(pid) or {"profile_id": pid, "traits": {}, "contact": fired}
            try:
                rendered = route.template.render(context(profile, trigger, PREVIEW_LINK))
                message = (rendered.subject or rendered.text or "")[:80]
            except TemplateError as exc:
                outcome, reason = "failed", f"template: {exc}"
    return Preview(at, pid, route.name, route.channel, outcome, reason, message)
