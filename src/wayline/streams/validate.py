"""The validate step: ``wayline.events.raw`` → ``wayline.events``, or the dead-letter topic."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from wayline.schemas.canonical import CANONICAL, FORM_HEADER, check_canonical
from wayline.schemas.codec import decode_raw, encode
from wayline.schemas.errors import FieldError, InvalidEvent, ReasonCode
from wayline.schemas.event import CHANNELS, Channel
from wayline.schemas.normalize import Origin, normalize_event
from wayline.schemas.timestamps import epoch_ms
from wayline.schemas.topics import Topics
from wayline.streams.envelope import Envelope, Output, dead_letter
from wayline.streams.identity import KIND_HEADER
from wayline.streams.order import TICK, RawMarks
from wayline.streams.task import TaskContext

log: Final = logging.getLogger(__name__)
_NAMESPACE: Final = uuid.UUID("6f0f5c2e-58a4-4e8a-9c55-3b1f3d7c1f00")

SOURCE_HEADER: Final = "wayline.source"
CHANNEL_HEADER: Final = "wayline.channel"
MARK_KEY: Final = b"~mark"


class ValidateStep:
    """decode → validate + normalize → emit; invalid events are dead-lettered.

    A record its source already normalized (header ``wayline.form: canonical``: the collector)
    is checked for the canonical frame and forwarded byte for byte (``schemas.canonical``).
    Events without a ``messageId`` get one derived from their topic, partition and offset,
    so reprocessing the same raw message gives the same id. Duplicates are dropped by the
    identity worker, which sees every event of every raw partition. After each batch, each raw
    partition's *mark* (the newest event time it has given) goes to ``wayline.events``, so the
    identity worker can put a replayed log in event-time order (``streams.order``); with
    ``quiet_after_ms`` (replay mode), a partition the input left quiet that long is marked
    quiet, so the identity worker releases what it held for it.
    """

    def __init__(
        self,
        topics: Topics,
        worker: str,
        phone_region: str | None = None,
        quiet_after_ms: int | None = None,
    ) -> None:
        self.topics = topics
        self.worker = worker
        self.phone_region = phone_region
        self.marks = RawMarks(quiet_after_ms)

    def process(self, message: Envelope, ctx: TaskContext) -> list[Output]:
        try:
            raw = decode_raw(message.value)
            if message.header(FORM_HEADER) == CANONICAL:
                at, value = check_canonical(raw), message.value or b""
                event: dict[str, Any] = raw
            else:
                event = normalize_event(raw, self._origin(message, raw))
                # the event time as the Kafka timestamp: stream time (every timer) follows it
                at, value = epoch_ms(event["timestamp"]), encode(event)
        except InvalidEvent as exc:
            return [self._dead_letter(message, exc)]
        except Exception as exc:  # a validator bug must not stop the partition: dead-letter it
            log.exception("validate: unexpected error at %s[%d]@%d", *_where(message))
            problem = InvalidEvent(ReasonCode.INVALID_FIELD, [FieldError("", f"internal: {exc!r}")])
            return [self._dead_letter(message, problem)]
        self.marks.event(ctx, at)
        return [Output(self.topics.events, _partition_key(event), value, timestamp_ms=at)]

    def refresh(self, ctx: TaskContext) -> list[Output]:
        """Before each batch: a quiet mark for this raw partition once the input left it quiet."""
        return self._mark(ctx, quiet=True) if self.marks.quiet(ctx) else []

    def end_batch(self, ctx: TaskContext) -> list[Output]:
        """The mark of this raw partition, after its events of the batch."""
        return self._mark(ctx, quiet=False) if self.marks.moved(ctx) else []

    def _mark(self, ctx: TaskContext, quiet: bool) -> list[Output]:
        at = self.marks.reached.get(ctx.partition, 0 if quiet else None)
        if at is None:
            return []
        body = orjson.dumps({"partition": ctx.partition, "at_ms": at, "quiet": quiet})
        return [Output(self.topics.events, MARK_KEY, body, ((KIND_HEADER, TICK),), timestamp_ms=at)]

    def _origin(self, message: Envelope, raw: Any) -> Origin:
        source = message.header(SOURCE_HEADER)
        channel = (message.header(CHANNEL_HEADER) or b"").decode("utf-8", "replace")
        given = raw.get("messageId") if isinstance(raw, dict) else None
        message_id = given if isinstance(given, str) and given else _derived_id(message)
        return Origin(
            received_at=datetime.fromtimestamp(max(message.timestamp_ms, 0) / 1000, UTC),
            message_id=message_id,
            source=source.decode("utf-8", "replace") if source else None,
            channel=_channel(channel),
            phone_region=self.phone_region,
        )

    def _dead_letter(self, message: Envelope, exc: InvalidEvent) -> Output:
        detail = "; ".join(str(e) for e in exc.errors)
        return dead_letter(message, self.topics.dlq, self.worker, exc.reason.value, detail)


def _derived_id(message: Envelope) -> str:
    """The id of an event sent without one: the same for every read of the same raw message."""
    return str(uuid.uuid5(_NAMESPACE, f"{message.topic}/{message.partition}/{message.offset}"))


def _channel(value: str) -> Channel | None:
    for channel in CHANNELS:
        if channel == value:
            return channel
    return None


def _where(message: Envelope) -> tuple[str, int, int]:
    return message.topic, message.partition, message.offset


def _partition_key(event: dict[str, Any]) -> bytes:
    """Key canonical events by their strongest identifier until identity resolution re-keys."""
    ids = event["identifiers"]
    for name in ("user_id", "anonymous_id", "email", "phone", "device_id"):
        if ids[name]:
            return f"{name}:{ids[name]}".encode()
    first = ids["external"][0]
    return f"{first['type']}:{first['id']}".encode()
