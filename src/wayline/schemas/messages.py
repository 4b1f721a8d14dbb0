"""Message contracts of the topics after ``wayline.events``; their JSON Schemas are generated.

The capabilities that write these topics fill the fields in; the shapes here are the contract
consumers can rely on from now on.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from wayline.schemas.errors import ReasonCode
from wayline.schemas.event import CanonicalEvent, Channel, RawEvent

IdentifierType = str
"""``user_id``, ``anonymous_id``, ``email``, ``phone``, ``device_id`` or an external id type."""


class Identifier(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    type: IdentifierType
    value: str


class DeadLetterHeaders(BaseModel):
    """Headers of a ``wayline.events.dlq`` message; the value is the original bytes.

    Events the collector refused carry ``worker: collector`` and ``wayline.source`` instead of
    a topic position: they never reached ``wayline.events.raw``."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    reason: ReasonCode = Field(alias="wayline.dlq.reason")
    detail: str = Field(alias="wayline.dlq.detail", description="every failing field")
    worker: str = Field(alias="wayline.dlq.worker", description="validate, collector, ...")
    topic: str | None = Field(default=None, alias="wayline.dlq.topic")
    partition: str | None = Field(default=None, alias="wayline.dlq.partition", pattern=r"^\d+$")
    offset: str | None = Field(default=None, alias="wayline.dlq.offset", pattern=r"^\d+$")


class IdentityRecord(BaseModel):
    """``wayline.identity``: one entry of the append-only merge log (key = surviving id)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["merge", "refused", "link"]
    profile_id: str = Field(description="the surviving profile")
    merged_id: str | None = Field(default=None, description="the profile merged away")
    identifiers: list[Identifier]
    reason: str
    message_id: str = Field(description="the event that caused it")
    at: str = Field(description="event time, UTC ISO 8601")


class ChannelSeen(BaseModel):
    first_seen: str
    last_seen: str


class Cart(BaseModel):
    model_config = ConfigDict(extra="allow")

    cart_id: str | None
    items: list[dict[str, Any]]
    value: float
    last_activity_at: str


class Computed(BaseModel):
    """Computed traits, as of ``as_of`` (``event_counts`` windows and RFM recency too)."""

    model_config = ConfigDict(extra="allow")

    as_of: str = Field(
        description="the moment the windows and time-based traits are computed for: the "
        "profile's latest change (an event, a merge, a due time that changed a segment)"
    )
    order_count: int = Field(ge=0)
    revenue: float
    aov: float
    first_order_at: str | None
    last_order_at: str | None
    mean_days_between_orders: float | None
    favorite_category: str | None
    recently_viewed: list[str] = Field(description="product ids, newest first, at most 20")
    cart: Cart | None
    lifecycle_stage: Literal["awareness", "consideration", "conversion", "retention", "advocacy"]
    rfm: dict[str, int] = Field(description="recency, frequency, monetary: 1-5 (0: no orders)")
    event_counts: dict[str, dict[str, int]] = Field(
        description="event name → {all_time, 7d, 30d, 90d}"
    )
    location: dict[str, str] = Field(description="country, region, city")
    timezone: str | None


class Contact(BaseModel):
    """Where and whether a profile may be reached (``wayline.profiles.view.contact_points``)."""

    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(description="the address messages go to")
    phone: str | None = Field(description="the number messages go to (E.164)")
    timezone: str | None = Field(description="IANA zone, for quiet hours")
    consent: dict[str, bool] = Field(description="channel → granted (absent: not asked)")
    suppressed: dict[str, str] = Field(
        description="channel → why nothing may be sent there: bounced, complained, sms_stop"
    )
    last_seen: str | None = Field(description="the newest event this was computed from")


class ProfileSnapshot(BaseModel):
    """``wayline.profiles`` (key = profile id; tombstone = merged away) and the profile API.

    The top-level keys are a public contract."""

    model_config = ConfigDict(extra="allow")

    profile_id: str
    version: int = Field(ge=0, description="grows with every change of this profile")
    identifiers: dict[IdentifierType, list[str]] = Field(description="type → values")
    traits: dict[str, Any] = Field(default_factory=dict)
    computed: Computed
    channels: dict[Channel, ChannelSeen]
    consent: dict[str, bool] = Field(default_factory=dict, description="channel → granted")
    contact: Contact | None = Field(default=None, description="what deliveries use")
    segments: list[str] = Field(default_factory=list)
    merged_from: list[str] = Field(default_factory=list, description="profile ids merged in")
    activity: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="event name → UTC day (YYYY-MM-DD) → count, over the 90 days before "
        "computed.as_of: what the windowed counts are made of",
    )
    first_seen: str | None
    last_seen: str | None


class ResolvedEvent(CanonicalEvent):
    """``wayline.events.resolved`` (header ``wayline.kind: event``; key = profile id): a
    canonical event with the profile it counts for. The same topic carries the profile worker's
    internal ``merge``, ``handoff`` and ``tick`` records, marked by the header."""

    profile_id: str
    merged: list[str] = Field(
        default_factory=list,
        description="profiles this event merged into this one: it is applied after their states",
    )
    linked: list[tuple[str, str]] = Field(
        description="the event's identifiers that belong to the profile: [type, value]"
    )


class SegmentTransition(BaseModel):
    """A profile entered or left a segment."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        description="the same for every copy: a crash can repeat a transition, byte for byte; "
        "readers drop a second copy by this id"
    )
    segment: str
    rule_version: int = Field(ge=1)
    profile_id: str
    transition: Literal["enter", "exit"]
    at: str
    cause: str = Field(
        description="what made it: the event's message id, 'timer' (time alone), 'definitions' "
        "(a changed or deleted segment), 'merged' (this profile was merged into another) or "
        "'merged ID' (profile ID was merged into this one)"
    )


class SegmentTransitions(BaseModel):
    """``wayline.segments``: what one profile's segments did in one batch of the profile worker,
    in order (key = profile id): one record for the transitions an event, a merge or a timer
    caused together, not a record per transition."""

    model_config = ConfigDict(extra="forbid")

    profile_id: str
    transitions: list[SegmentTransition] = Field(min_length=1)


class TriggerData(BaseModel):
    model_config = ConfigDict(extra="allow")

    profile_id: str
    identifiers: dict[str, list[str]]
    trigger: str
    rule_version: int = Field(ge=1)
    occasion: str = Field(description="what it fired for: the cart activity, the milestone, ...")
    reason: dict[str, Any] = Field(description="the condition values that made it fire")
    payload: dict[str, Any]
    contact: Contact | None = Field(
        default=None, description="the profile's contact points and consent as it fired"
    )


class Trigger(BaseModel):
    """``wayline.triggers``: a CloudEvents 1.0 structured event (key = profile id)."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"]
    id: str = Field(description="deterministic: trigger + rule version + profile + occasion")
    source: str = Field(description="e.g. /wayline/triggers/cart_abandoned")
    type: Literal[
        "wayline.trigger.cart_abandoned",
        "wayline.trigger.browse_abandoned",
        "wayline.trigger.churn_risk",
        "wayline.trigger.milestone",
        "wayline.trigger.segment_entered",
        "wayline.trigger.segment_exited",
    ]
    subject: str = Field(description="the profile id")
    time: str = Field(description="when it became due (event time of its occasion)")
    datacontenttype: Literal["application/json"] = "application/json"
    data: TriggerData


DeliveryStatus = Literal[
    "sent",
    "delivered",
    "suppressed",
    "frequency_capped",
    "deferred",
    "held_out",
    "retrying",
    "failed",
    "exhausted",
]
FINAL_STATUSES = frozenset(
    {"sent", "delivered", "suppressed", "frequency_capped", "held_out", "failed", "exhausted"}
)


class Delivery(BaseModel):
    """``wayline.deliveries``: one decision or attempt for one trigger × subscription (key =
    delivery id). ``deferred`` and ``retrying`` are followed by more records of the same
    delivery; every other status is its final outcome, written once."""

    model_config = ConfigDict(extra="forbid")

    delivery_id: str = Field(description="deterministic: trigger id + subscription")
    trigger_id: str
    trigger: str = Field(description="the trigger type, e.g. cart_abandoned")
    subscription: str
    channel: str = Field(description="the channel's name in the config")
    channel_type: Literal["webhook", "email", "sms", "slack"]
    kind: Literal["marketing", "transactional"]
    profile_id: str
    status: DeliveryStatus
    final: bool = Field(description="the delivery's last record")
    reason: str = Field(description="why: allowed, no_consent, quiet_hours, http_503, ...")
    attempt: int = Field(ge=0, description="connector calls so far")
    at: str = Field(description="when this was decided or attempted")
    release_at: str | None = Field(
        default=None, description="deferred, retrying: when it is decided or attempted again"
    )
    attempted_at: str | None = Field(
        default=None, description="when the latest connector call was decided on"
    )
    detail: str | None = Field(default=None, description="the receiver's answer, shortened")


class DeliveryDeadLetterHeaders(BaseModel):
    """Headers of a ``wayline.deliveries.dlq`` message; the value is the trigger (CloudEvent)
    whose delivery exhausted its retries, so it can be looked at and sent again by hand."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    reason: Literal["delivery_exhausted"] = Field(alias="wayline.dlq.reason")
    detail: str = Field(alias="wayline.dlq.detail", description="the last attempt's answer")
    delivery_id: str = Field(alias="wayline.delivery.id")
    subscription: str = Field(alias="wayline.delivery.subscription")


class Definition(BaseModel):
    """``wayline.definitions``: a versioned segment, trigger, subscription or contact-policy
    definition (key = kind:name)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["segment", "trigger", "subscription", "policy"]
    name: str
    version: int = Field(ge=1)
    spec: dict[str, Any]
    updated_at: str
    deleted: bool = Field(
        default=False, description="the segment was deleted (`wayline segments delete`)"
    )


TOPIC_MODELS: dict[str, type[BaseModel]] = {
    "events.raw": RawEvent,
    "events.dlq": DeadLetterHeaders,
    "events": CanonicalEvent,
    "events.resolved": ResolvedEvent,
    "identity": IdentityRecord,
    "profiles": ProfileSnapshot,
    "segments": SegmentTransitions,
    "triggers": Trigger,
    "deliveries": Delivery,
    "deliveries.dlq": DeliveryDeadLetterHeaders,
    "definitions": Definition,
}
"""The model behind each topic's JSON Schema file ``schemas/json/<suffix>.json``."""
