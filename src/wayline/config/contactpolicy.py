"""The ``contact_policy:`` key of the config file (``wayline.segments.policy`` applies it).

```yaml
contact_policy:              # optional; these are the defaults
  control_group_pct: 0       # the global control group: never sent marketing, for uplift
  max_defer: 12h             # a send deferred by quiet hours longer than this is dropped
  default_timezone: UTC      # for profiles without a known zone
  channels:
    email: {caps: [{count: 1, within: 16h}, {count: 5, within: 7d}]}
    sms: {caps: [{count: 1, within: 24h}, {count: 3, within: 7d}], opt_in_required: true,
          quiet_hours: {start: "21:00", end: "08:00"}}
```
"""

from __future__ import annotations

from dataclasses import replace
from datetime import time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wayline.segments.policy import (
    Cap,
    ChannelKind,
    ChannelPolicy,
    ContactPolicy,
    QuietHours,
    default_channels,
)
from wayline.segments.rules import duration_ms

Window = Annotated[str, Field(pattern=r"^\s*[1-9]\d*\s*[smhdw]\s*$")]
Clock = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM, local")]


class CapSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    count: int = Field(ge=1)
    within: Window


class QuietHoursSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    start: Clock
    end: Clock

    @field_validator("end")
    @classmethod
    def _not_empty(cls, end: str, info: Any) -> str:
        if end == info.data.get("start"):
            raise ValueError("quiet hours that start when they end are empty; leave them out")
        return end


class ChannelRules(BaseModel):
    """One channel type's rules; what is left out keeps its default. ``quiet_hours: null``
    turns the default quiet hours off."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    caps: list[CapSpec] | None = None
    quiet_hours: QuietHoursSpec | None = None
    opt_in_required: bool | None = None

    def over(self, default: ChannelPolicy) -> ChannelPolicy:
        rules = default
        if self.caps is not None:
            caps = tuple(Cap(c.count, _window_ms(c.within)) for c in self.caps)
            rules = replace(rules, caps=caps)
        if "quiet_hours" in self.model_fields_set:
            quiet = self.quiet_hours
            rules = replace(
                rules,
                quiet_hours=QuietHours(_clock(quiet.start), _clock(quiet.end)) if quiet else None,
            )
        if self.opt_in_required is not None:
            rules = replace(rules, opt_in_required=self.opt_in_required)
        return rules


class ContactPolicySpec(BaseModel):
    """The ``contact_policy:`` key (``wayline.segments.policy`` applies it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    control_group_pct: float = Field(default=0.0, ge=0, lt=100)
    max_defer: Window = "12h"
    default_timezone: str = "UTC"
    channels: dict[Literal["email", "sms", "webhook", "slack"], ChannelRules] = Field(
        default_factory=dict
    )

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"not an IANA time zone: {name!r}") from None
        return name

    def policy(self) -> ContactPolicy:
        channels: dict[ChannelKind, ChannelPolicy] = default_channels()
        for kind, rules in self.channels.items():
            channels[kind] = rules.over(channels[kind])
        return ContactPolicy(
            channels=channels,
            control_group_pct=self.control_group_pct,
            max_defer_ms=_window_ms(self.max_defer),
            default_timezone=self.default_timezone,
        )


def _window_ms(text: str) -> int:
    value = duration_ms(text.strip())
    assert value is not None  # the Window pattern admits durations only
    return value


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))
