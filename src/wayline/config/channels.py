"""Channels and subscriptions in the config file: where messages go, and which triggers send
what. Checked as a whole, so that a subscription naming something that does not exist is
refused with its path, the way a rule error is.

```yaml
channels:
  - {name: crm, type: webhook, url: "https://crm.example/hooks", secrets: [whsec_...]}
  - {name: mail, type: email, host: smtp.example, port: 587, tls: starttls, from: shop@example}
  - {name: texts, type: sms, account_sid: AC..., auth_token: ..., from: "+15550100"}
  - {name: team, type: slack, url: "https://hooks.slack.com/services/..."}
subscriptions:
  - name: cart_reminder
    triggers: [cart_abandoned]
    channel: mail
    kind: marketing          # or transactional: no consent, caps, quiet hours or holdouts
    holdout_pct: 10
    template:
      subject: "{{ payload['items'] | length }} items are waiting"
      text: "Hi {{ profile.traits.first_name | default('there') }} ..."
  - {name: vip_alert, segments: {entered: [vip]}, channel: team, template: {text: "..."}}
```
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, field_validator

from wayline.connectors.dispatch import SlackTarget
from wayline.connectors.email import SmtpServer
from wayline.connectors.sms import SmsAccount
from wayline.connectors.templates import MessageTemplate, TemplateError, context
from wayline.connectors.webhook import WebhookEndpoint
from wayline.schemas.examples import examples
from wayline.streams.routes import Route

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Url = Annotated[str, Field(pattern=r"^https?://[^\s/]+")]


class _Channel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    name: Name


_ALLOW: Any = Field(default_factory=list, description="private networks this endpoint may reach")


class WebhookChannel(_Channel):
    type: Literal["webhook"]
    url: Url
    secrets: list[str] = Field(min_length=1, description="whsec_<base64>; several: rotation")
    allow_networks: list[IPvAnyNetwork] = _ALLOW
    timeout_s: float = Field(default=15.0, gt=0, le=60)

    def target(self) -> WebhookEndpoint:
        return WebhookEndpoint(self.url, tuple(self.secrets), tuple(self.allow_networks),
                               self.timeout_s)  # fmt: skip

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, secrets: list[str]) -> list[str]:
        for secret in secrets:
            try:
                raw = base64.b64decode(secret.removeprefix("whsec_") + "==", validate=False)
            except (binascii.Error, ValueError):
                raw = b""
            if not secret.startswith("whsec_") or len(raw) < 16:
                raise ValueError("a secret is whsec_ and at least 16 bytes of base64")
        return secrets


class EmailChannel(_Channel):
    type: Literal["email"]
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    tls: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password: str | None = None
    sender: str = Field(alias="from")

    def target(self) -> SmtpServer:
        return SmtpServer(self.host, self.port, self.sender, self.tls, self.username,
                          self.password)  # fmt: skip


class SmsChannel(_Channel):
    type: Literal["sms"]
    base_url: Url = "https://api.twilio.com"
    account_sid: str
    auth_token: str
    sender: str = Field(alias="from")
    allow_networks: list[IPvAnyNetwork] = _ALLOW

    def target(self) -> SmsAccount:
        return SmsAccount(self.account_sid, self.auth_token, self.sender, self.base_url,
                          tuple(self.allow_networks))  # fmt: skip


class SlackChannel(_Channel):
    type: Literal["slack"]
    url: Url
    allow_networks: list[IPvAnyNetwork] = _ALLOW

    def target(self) -> SlackTarget:
        return SlackTarget(self.url, tuple(self.allow_networks))


ChannelSpec = Annotated[
    WebhookChannel | EmailChannel | SmsChannel | SlackChannel, Field(discriminator="type")
]


class SegmentChanges(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    entered: list[Name] = Field(default_factory=list)
    exited: list[Name] = Field(default_factory=list)


class Subscription(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name
    channel: Name
    triggers: list[str] = Field(default_factory=list)
    segments: SegmentChanges = Field(default_factory=SegmentChanges)
    kind: Literal["marketing", "transactional"] = "marketing"
    holdout_pct: float = Field(default=0.0, ge=0, le=100)
    template: dict[str, str] = Field(default_factory=dict)


@functools.cache
def subscription_examples() -> dict[str, Any]:
    """What subscription templates are rendered against before they are accepted."""
    return {"profile": examples("profiles")["snapshot"], "triggers": examples("triggers")}


NEEDS_TEMPLATE = {"email": ("subject",), "sms": ("text",), "slack": ("text",)}


def check_subscriptions(
    channels: Sequence[WebhookChannel | EmailChannel | SmsChannel | SlackChannel],
    subscriptions: Sequence[Subscription],
    trigger_types: set[str],
    notify_segments: set[str],
    examples: Mapping[str, Any],
) -> None:
    """Raise ``ValueError("subscriptions[i].key: problem")`` for the first subscription that
    cannot work; ``examples`` has a ``profile`` and ``triggers`` by type to render against."""
    by_name = {c.name: c for c in channels}
    seen: set[str] = set()
    for i, sub in enumerate(subscriptions):
        at = f"subscriptions[{i}]"
        if sub.name in seen:
            raise ValueError(f"{at}.name: duplicate subscription name {sub.name!r}")
        seen.add(sub.name)
        channel = by_name.get(sub.channel)
        if channel is None:
            raise ValueError(f"{at}.channel: unknown channel {sub.channel!r}")
        for j, trigger in enumerate(sub.triggers):
            if trigger not in trigger_types:
                known = ", ".join(sorted(trigger_types)) or "none is on"
                raise ValueError(f"{at}.triggers[{j}]: unknown trigger {trigger!r} ({known})")
        for change in ("entered", "exited"):
            for j, segment in enumerate(getattr(sub.segments, change)):
                if segment not in notify_segments:
                    raise ValueError(
                        f"{at}.segments.{change}[{j}]: {segment!r} is not a segment with "
                        "notify: true"
                    )
        if not sub.triggers and not (sub.segments.entered or sub.segments.exited):
            raise ValueError(f"{at}: subscribes to nothing (give triggers or segments)")
        _check_template(at, sub, channel.type, examples)


def routes(
    channels: Sequence[WebhookChannel | EmailChannel | SmsChannel | SlackChannel],
    subscriptions: Sequence[Subscription],
) -> tuple[Route, ...]:
    """The subscriptions as the delivery worker runs them (checked already)."""
    by_name = {c.name: c for c in channels}
    out = []
    for sub in subscriptions:
        channel = by_name[sub.channel]
        out.append(
            Route(
                name=sub.name,
                channel=channel.name,
                channel_type=channel.type,
                target=channel.target(),
                triggers=frozenset(sub.triggers),
                entered=frozenset(sub.segments.entered),
                exited=frozenset(sub.segments.exited),
                kind=sub.kind,
                holdout_pct=sub.holdout_pct,
                template=MessageTemplate(sub.template) if sub.template else None,
            )
        )
    return tuple(out)


def _check_template(at: str, sub: Subscription, channel: str, examples: Mapping[str, Any]) -> None:
    missing = [p for p in NEEDS_TEMPLATE.get(channel, ()) if p not in sub.template]
    if missing:
        article = "an" if channel == "email" else "a"
        raise ValueError(f"{at}.template.{missing[0]}: {article} {channel} message needs one")
    if not sub.template:
        return  # a webhook gets the trigger itself
    try:
        template = MessageTemplate(sub.template)
        for trigger in _examples_for(sub, examples):
            template.render(context(examples["profile"], trigger, "https://example/u/token"))
    except TemplateError as exc:
        raise ValueError(f"{at}.template.{exc.part}: {exc.problem}") from None


def _examples_for(sub: Subscription, examples: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The example triggers this subscription's templates must render against."""
    by_type: Mapping[str, Any] = examples.get("triggers", {})
    kinds = list(sub.triggers)
    kinds += ["segment_entered"] if sub.segments.entered else []
    kinds += ["segment_exited"] if sub.segments.exited else []
    return [by_type[k] for k in kinds if k in by_type]
