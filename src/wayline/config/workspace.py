"""The YAML config file (``--config PATH`` or ``WAYLINE_CONFIG``); its keys are a public contract.

```yaml
sources:
  - name: web
    channel: web            # web | app | email | store
    write_keys: [wk_web_1]
    rate_limit_per_s: 2000   # optional
api_keys: [ak_admin_1]      # for the read/admin API
identity:                   # optional
  limits: {email: 5}        # per profile; defaults in wayline.profiles.identity
  external_types: [loyalty_id]
  blocked_patterns: ["^test-"]
segments:                   # optional; the rule language is in wayline.segments.rules
  - name: vip
    notify: true
    rule:
      all:
        - computed.revenue: {gte: 500}
        - performed: {event: Order Completed, at_least: 2, within: 90d}
triggers:                   # optional; a trigger not listed is off
  cart_abandoned: {after: 60m}
  milestones: {orders: [1, 3, 10], revenue: [100, 1000]}
```

Unknown keys are refused so that a typo never silently turns a feature off.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from wayline.config.channels import (
    ChannelSpec,
    Subscription,
    check_subscriptions,
    subscription_examples,
)
from wayline.config.contactpolicy import ContactPolicySpec
from wayline.profiles.identity import DEFAULT_LIMITS, IdentityRules
from wayline.schemas.errors import ConfigError
from wayline.schemas.event import Channel
from wayline.segments.compiler import Compiled, SegmentDef, compile_segments
from wayline.segments.rules import RuleError, duration_ms
from wayline.segments.triggers import TriggerConfig, trigger_types

Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=256)]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


class Source(BaseModel):
    """An event source: its events get ``context.channel`` and the source name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name
    channel: Channel
    write_keys: list[Key] = Field(min_length=1)
    revoked_write_keys: list[Key] = Field(
        default_factory=list, description="keys that once belonged here: refused with 401"
    )
    rate_limit_per_s: float | None = Field(default=None, gt=0)
    sendgrid_verification_key: str | None = Field(
        default=None,
        description="SendGrid signed event webhook: the base64 public key; unsigned posts get 401",
    )
    twilio_auth_token: str | None = Field(
        default=None,
        description="Twilio SMS webhooks (inbound STOP/START/HELP, status callbacks) at "
        "/v1/sources/NAME/twilio/...: the account's auth token that signs them",
    )
    sms_help: str = Field(
        default="Reply STOP to unsubscribe.", description="the answer to an inbound HELP"
    )
    sendgrid_max_age_s: int = Field(
        default=300,
        ge=10,
        le=86_400,
        description="signed webhooks: a timestamp further than this from now (either way) gets "
        "401, and a request seen already within it is a replay (401)",
    )


class Identity(BaseModel):
    """Identity resolution: per-type limits, external id types by priority, junk patterns."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    limits: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict,
        description="max identifiers of a type per profile; defaults: user_id 1, email 5, "
        "phone 3, device_id 10, anonymous_id 20, each external type 3",
    )
    external_types: list[Name] = Field(
        default_factory=list,
        description="external id types (context.externalIds[].type), strongest first; they "
        "rank below user_id and above email",
    )
    blocked_patterns: list[str] = Field(
        default_factory=list, description="regular expressions of identifier values to ignore"
    )

    @model_validator(mode="after")
    def _patterns_compile(self) -> Self:
        for i, pattern in enumerate(self.blocked_patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"blocked_patterns[{i}]: not a regular expression: {exc}"
                ) from None
        return self

    def rules(self) -> IdentityRules:
        return IdentityRules(
            limits={**DEFAULT_LIMITS, **self.limits},
            external_types=tuple(self.external_types),
            blocked_patterns=tuple(self.blocked_patterns),
        )


Duration = Annotated[str, StringConstraints(pattern=r"^\s*[1-9]\d*\s*[smhdw]\s*$")]


class SegmentSpec(BaseModel):
    """A segment: its rule is the language of ``wayline.segments.rules``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name
    rule: dict[str, Any]
    notify: bool = Field(default=False, description="emit segment_entered/exited triggers")
    version: int = Field(default=1, ge=1)
    description: str | None = None


class CartAbandoned(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    after: Duration = "60m"


class BrowseAbandoned(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    views: int = Field(default=2, ge=1)
    after: Duration = "4h"


class ChurnRisk(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    factor: float = Field(default=2.0, gt=0)
    min_orders: int = Field(default=3, ge=2)
    floor: Duration = "14d"


class Milestones(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    orders: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list)
    revenue: list[Annotated[float, Field(gt=0)]] = Field(default_factory=list)
    birthday: bool = False
    anniversary: bool = False


class Triggers(BaseModel):
    """Which triggers run; a trigger that is not listed is off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cart_abandoned: CartAbandoned | None = None
    browse_abandoned: BrowseAbandoned | None = None
    churn_risk: ChurnRisk | None = None
    milestones: Milestones | None = None
    version: int = Field(default=1, ge=1, description="part of every trigger id")

    def config(self) -> TriggerConfig:
        spec = self.model_dump(exclude_none=True, exclude={"version"})
        return TriggerConfig.from_mapping(spec, self.version)


class Reorder(BaseModel):
    """Replay mode: how events from several raw partitions are put in event-time order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: Duration = Field(
        default="10m", description="disorder within one raw partition that is put right"
    )
    idle: Duration = Field(
        default="5s", description="no input for this long: everything held is released"
    )

    def window_ms(self) -> int:
        return _ms(self.window)

    def idle_ms(self) -> int:
        return _ms(self.idle)


def _ms(duration: str) -> int:
    value = duration_ms(duration)
    assert value is not None  # the Duration pattern admits only durations
    return value


class WaylineConfig(BaseModel):
    """The whole config file. Later capabilities add keys here."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sources: list[Source] = Field(default_factory=list)
    api_keys: list[Key] = Field(default_factory=list)
    identity: Identity = Field(default_factory=Identity)
    segments: list[SegmentSpec] = Field(default_factory=list)
    triggers: Triggers = Field(default_factory=Triggers)
    clock: Literal["live", "replay"] = Field(
        default="live",
        description="live: timers also fire on the wall clock; replay: on event time only",
    )
    reorder: Reorder = Field(default_factory=Reorder)
    channels: list[ChannelSpec] = Field(
        default_factory=list, description="where messages go (wayline.config.channels)"
    )
    subscriptions: list[Subscription] = Field(
        default_factory=list, description="which triggers send what, on which channel"
    )
    contact_policy: ContactPolicySpec = Field(default_factory=ContactPolicySpec)

    @model_validator(mode="after")
    def _rules_compile(self) -> Self:
        try:
            self.compiled_segments()
        except RuleError as exc:
            index = next(i for i, seg in enumerate(self.segments) if seg.name == exc.segment)
            raise ValueError(
                f"segments[{index}] ({exc.segment}): {exc.path}: {exc.problem}"
            ) from None
        return self

    @model_validator(mode="after")
    def _subscriptions_work(self, info: ValidationInfo) -> Self:
        """Subscriptions name the file's own segments and triggers, and, when the file is
        applied to a cluster, what is published there (``context``: ``notify_segments``,
        ``trigger_types``)."""
        names = [c.name for c in self.channels]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"channels[{i}].name: duplicate channel name {name!r}")
        published = info.context or {}
        check_subscriptions(
            self.channels,
            self.subscriptions,
            trigger_types(self.triggers.config()) | set(published.get("trigger_types", ())),
            {s.name for s in self.segments if s.notify} | set(published.get("notify_segments", ())),
            subscription_examples(),
        )
        return self

    def compiled_segments(self) -> Compiled:
        return compile_segments(
            SegmentDef(s.name, s.rule, s.version, s.notify) for s in self.segments
        )

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [s.name for s in self.sources]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"sources[{i}].name: duplicate source name {name!r}")
        seen: dict[str, str] = {}
        for i, source in enumerate(self.sources):
            for key in source.write_keys:
                if key in seen and seen[key] != source.name:
                    raise ValueError(
                        f"sources[{i}].write_keys: key is already used by source {seen[key]!r}"
                    )
                seen[key] = source.name
        return self

    def source_for_key(self, write_key: str) -> Source | None:
        """The source a write key belongs to, or None."""
        for source in self.sources:
            if write_key in source.write_keys:
                return source
        return None


DEMO_CONFIG = WaylineConfig(
    sources=[
        Source(name="web", channel="web", write_keys=["wk_demo_web"]),
        Source(name="app", channel="app", write_keys=["wk_demo_app"]),
        Source(name="email", channel="email", write_keys=["wk_demo_email"]),
        Source(name="store", channel="store", write_keys=["wk_demo_store"]),
    ],
    api_keys=["ak_demo_admin"],
    segments=[
        SegmentSpec(
            name="engaged_browsers",
            rule={"performed": {"event": "Product Viewed", "at_least": 3, "within": "1d"}},
        ),
        SegmentSpec(name="buyers", notify=True, rule={"computed.order_count": {"gte": 1}}),
        SegmentSpec(name="big_spenders", rule={"computed.revenue": {"gte": 200}}),
    ],
    triggers=Triggers(
        cart_abandoned=CartAbandoned(after="30s"),  # short, so the demo shows it fire
        milestones=Milestones(orders=[1, 3], revenue=[100]),
    ),
)


def load_config(path: Path | None) -> WaylineConfig:
    """Read and validate a config file; every problem raises ``ConfigError`` naming the key."""
    if path is None:
        return WaylineConfig()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    return parse_config(text, origin=str(path))


def parse_config(
    text: str, origin: str = "<config>", context: dict[str, Any] | None = None
) -> WaylineConfig:
    """Validate config text; errors look like ``wayline.yaml: sources[0].channel: ...``."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"{origin}: not valid YAML{where}: {getattr(exc, 'problem', exc)}"
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping of keys, not a list or value")
    try:
        return WaylineConfig.model_validate(data, context=context)
    except ValidationError as exc:
        problems = [f"{origin}: {_describe(err)}" for err in exc.errors()]
        raise ConfigError("\n".join(problems)) from None


def _describe(err: Any) -> str:
    loc = _path(err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown key"
    value = err.get("input")
    shown = f" (got {value!r})" if isinstance(value, str | int | float) and loc else ""
    return f"{loc}: {msg}{shown}" if loc else msg


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
