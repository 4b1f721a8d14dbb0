"""The canonical event model: the Segment spec plus channel and extra identifiers.

These pydantic models are the edge contract: they generate the JSON Schema files under
``schemas/json`` and the HTTP API documentation. The hot path does not build them; it runs
``wayline.schemas.normalize`` over plain dicts, which accepts exactly what these describe.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Channel = Literal["web", "app", "email", "store"]
CHANNELS: tuple[Channel, ...] = ("web", "app", "email", "store")
EventType = Literal["track", "identify", "page", "screen", "group", "alias"]
EVENT_TYPES: tuple[EventType, ...] = ("track", "identify", "page", "screen", "group", "alias")
# the identifiers of a canonical event besides ``external`` (a list of {type, id})
IDENTIFIER_NAMES = ("user_id", "anonymous_id", "email", "phone", "device_id")

MAX_EVENT_BYTES = 32 * 1024
"""A single event larger than this is rejected (``event_too_large``)."""

MAX_NESTING = 32
"""Objects and arrays nested deeper than this inside an event are rejected (``nested_too_deep``):
real traits and properties are a few levels deep; hundreds are an attack on every encoder."""

MAX_BATCH_EVENTS = 2_500
"""Events per ``/v1/batch`` request, as Segment documents; more get 400 ``too_many_events``."""


class ExternalId(BaseModel):
    """An identifier from another system, e.g. ``{"type": "loyalty_id", "id": "L-1001"}``."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    type: str = Field(min_length=1)
    collection: str | None = None
    encoding: str | None = None


class Context(BaseModel):
    """Segment's ``context`` object; only the keys Wayline reads are typed, the rest pass."""

    model_config = ConfigDict(extra="allow")

    channel: Channel | None = None
    traits: dict[str, Any] | None = None
    device: dict[str, Any] | None = None
    externalIds: list[ExternalId] | None = None


def _requires_when(kind: str, *fields: str) -> dict[str, Any]:
    required = {name: {"not": {"type": "null"}} for name in fields}
    return {
        "if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
        "then": {"required": list(fields), "properties": required},
    }


def _has(field: str) -> dict[str, Any]:
    return {"required": [field], "properties": {field: {"not": {"type": "null"}}}}


_TRAIT_IDS: dict[str, Any] = {"anyOf": [_has("email"), _has("phone")]}
# The schema form of the rules ``normalize_event`` enforces (values are checked there too).
_RAW_EVENT_RULES: dict[str, Any] = {
    "allOf": [
        _requires_when("track", "event"),
        _requires_when("alias", "previousId", "userId"),
        _requires_when("group", "groupId"),
        {
            "anyOf": [
                _has("userId"),
                _has("anonymousId"),
                {"required": ["traits"], "properties": {"traits": _TRAIT_IDS}},
                {
                    "required": ["context"],
                    "properties": {
                        "context": {
                            "anyOf": [
                                {"required": ["traits"], "properties": {"traits": _TRAIT_IDS}},
                                {"required": ["device"], "properties": {"device": _has("id")}},
                                {
                                    "required": ["externalIds"],
                                    "properties": {"externalIds": {"minItems": 1}},
                                },
                            ]
                        }
                    },
                },
            ]
        },
    ]
}


class RawEvent(BaseModel):
    """An event as sources send it (``wayline.events.raw``), per the Segment spec.

    Either ``userId``, ``anonymousId`` or another identifier (traits e-mail or phone,
    ``context.device.id``, ``context.externalIds``) is required; ``track`` needs ``event``,
    ``alias`` needs ``previousId`` and ``userId``, ``group`` needs ``groupId``.
    """

    model_config = ConfigDict(extra="allow", json_schema_extra=_RAW_EVENT_RULES)

    type: EventType
    messageId: str | None = Field(default=None, min_length=1, max_length=256)
    anonymousId: str | int | None = None
    userId: str | int | None = None
    previousId: str | int | None = None
    groupId: str | int | None = None
    event: str | None = None
    name: str | None = None
    traits: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None
    context: Context | None = None
    integrations: dict[str, Any] | None = None
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    receivedAt: datetime | None = None


class Identifiers(BaseModel):
    """Normalized identifiers extracted from an event, the input of identity resolution."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = None
    anonymous_id: str | None = None
    email: str | None = Field(default=None, description="lower-cased and trimmed")
    phone: str | None = Field(default=None, description="E.164")
    device_id: str | None = None
    external: list[ExternalId] = Field(default_factory=list)


class CanonicalEvent(BaseModel):
    """A validated, normalized event (``wayline.events``). Timestamps are UTC ISO 8601 with Z.

    ``timestamp`` is the event time Wayline uses everywhere: ``receivedAt - (sentAt -
    originalTimestamp)`` when the client sent ``sentAt``, which cancels client clock skew.
    """

    model_config = ConfigDict(extra="allow")

    messageId: str
    type: EventType
    event: str | None = None
    name: str | None = None
    userId: str | None = None
    anonymousId: str | None = None
    previousId: str | None = None
    groupId: str | None = None
    traits: dict[str, Any] = Field(default_factory=dict)
    properties: dict[str, Any] = Field(default_factory=dict)
    context: Context
    integrations: dict[str, Any] = Field(default_factory=dict)
    timestamp: str
    originalTimestamp: str | None = None
    sentAt: str | None = None
    receivedAt: str
    source: str | None = None
    identifiers: Identifiers
    warnings: list[str] = Field(
        default_factory=list, description="Problems that did not reject the event."
    )
