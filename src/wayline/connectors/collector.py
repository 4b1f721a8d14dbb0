"""The Segment-compatible HTTP collector: what a request becomes, and the status it gets.

Clients act on the status code (analytics-python, rudder-sdk-python, analytics.js):

- 200 once the broker acknowledged every accepted event of the request (acks=all);
- 400 for a body that is not JSON, or with events that are invalid — each named by index,
  messageId and field; the valid events of the same batch are accepted and listed;
- 401 for a missing, unknown or revoked write key; nothing is produced;
- 400 ``too_many_events`` for a batch of more than 2,500 events (Segment's documented limit);
- 413 for a body over 500 KB after decompression (gzip bombs stop at the cap);
- 429 with Retry-After when the source is over its ``rate_limit_per_s``;
- 503 with Retry-After when the broker does not acknowledge — never a 2xx for an event that
  could still be lost.

Invalid events are also written to the dead-letter topic with their reason, so nothing a client
sent is lost. An event nested deeper than 32 levels is invalid (``nested_too_deep``); one the
collector fails on for a reason nobody foresaw is rejected alone (``processing_error``), never
its batch. So a request holds at most its 500 KB body, its parsed form and at most 2,500 encoded
events (each at most 32 KB, in all about the body's size). The handler is framework-free
(``Collector.handle``); ``wayline.api`` mounts it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from wayline.config.workspace import Source, WaylineConfig
from wayline.schemas.canonical import CANONICAL, FORM_HEADER
from wayline.schemas.errors import FieldError, InvalidEvent, ReasonCode
from wayline.schemas.event import MAX_BATCH_EVENTS, MAX_EVENT_BYTES, MAX_NESTING
from wayline.schemas.normalize import Origin, check_nesting, message_id_of, normalize_event
from wayline.schemas.timestamps import format_timestamp
from wayline.schemas.topics import Topics
from wayline.streams.aioproducer import Unavailable

MAX_REQUEST_BYTES = 500 * 1024
SHORT_PATHS = {
    "t": "track",
    "i": "identify",
    "p": "page",
    "s": "screen",
    "g": "group",
    "a": "alias",
}
EVENT_TYPES = ("track", "identify", "page", "screen", "group", "alias")

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Record:
    """One message for the broker."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers


Send = Callable[[Sequence[Record]], Awaitable[None]]


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class Rejected(Exception):
    """A request-level failure: nothing of the request is accepted."""

    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.reply = Reply(status, {"code": code, "message": message})
        if retry_after is not None:
            self.reply.headers["Retry-After"] = str(retry_after)


class RateLimiter:
    """Token buckets per source: ``rate_limit_per_s`` events per second, one second of burst."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # source -> (tokens, at)

    def retry_after(self, source: Source, events: int) -> int | None:
        """None when ``events`` may pass now (and takes them); else seconds to wait."""
        rate = source.rate_limit_per_s
        if rate is None:
            return None
        now = self.clock()
        tokens, at = self._buckets.get(source.name, (rate, now))
        tokens = min(rate, tokens + (now - at) * rate)
        if tokens >= min(events, rate):  # a batch larger than the burst passes on a full bucket
            self._buckets[source.name] = (tokens - events, now)
            return None
        self._buckets[source.name] = (tokens, now)
        return max(1, math.ceil((min(events, rate) - tokens) / rate))


class KeyRing:
    """Write keys → sources. Every configured key is compared in constant time."""

    def __init__(self, config: WaylineConfig) -> None:
        self._keys = [(k.encode(), s) for s in config.sources for k in s.write_keys]
        self._revoked = [k.encode() for s in config.sources for k in s.revoked_write_keys]

    def source(self, write_key: str | None) -> Source:
        if not write_key:
            raise Rejected(
                401, "missing_write_key", "no write key: use HTTP Basic auth or writeKey"
            )
        given = write_key.encode()
        found = None
        for key, source in self._keys:
            if hmac.compare_digest(key, given):
                found = source
        if any(hmac.compare_digest(key, given) for key in self._revoked):
            raise Rejected(401, "revoked_write_key", "this write key has been revoked")
        if found is None:
            raise Rejected(401, "unknown_write_key", "unknown write key")
        return found


def basic_username(authorization: str | None) -> str | None:
    """The username of an HTTP Basic ``Authorization`` header (Segment: the write key)."""
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0] or None


def decompress(body: bytes, encoding: str | None) -> bytes:
    """The request body, gunzipped when it says so; at most ``MAX_REQUEST_BYTES`` either way."""
    if encoding and encoding.strip().lower() == "gzip":
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, MAX_REQUEST_BYTES + 1)
        except zlib.error as exc:
            raise Rejected(400, "invalid_gzip", f"body is not valid gzip: {exc}") from None
        if inflater.unconsumed_tail or not inflater.eof:
            if len(body) > MAX_REQUEST_BYTES:
                raise Rejected(413, "request_too_large", _too_large("after decompression"))
            raise Rejected(400, "invalid_gzip", "body is truncated gzip")
    if len(body) > MAX_REQUEST_BYTES:
        raise Rejected(413, "request_too_large", _too_large(""))
    return body


def _too_large(where: str) -> str:
    return f"request body over {MAX_REQUEST_BYTES // 1024} KB {where}".strip()


class Collector:
    """Turns one HTTP request into raw events on the broker, and the reply its client expects."""

    def __init__(
        self, config: WaylineConfig, topics: Topics, send: Send, phone_region: str | None = None
    ) -> None:
        self.config = config
        self.topics = topics
        self.phone_region = phone_region
        self.keys = KeyRing(config)
        self.limiter = RateLimiter()
        self.send = send

    async def handle(
        self,
        path_type: str,
        body: bytes,
        content_encoding: str | None = None,
        authorization: str | None = None,
        now: datetime | None = None,
    ) -> Reply:
        """``path_type``: ``batch`` or an event type (short analytics.js names accepted)."""
        try:
            payload = self._parse(decompress(body, content_encoding))
            source = self.keys.source(basic_username(authorization) or _write_key(payload))
            events = _events_of(SHORT_PATHS.get(path_type, path_type), payload)
            wait = self.limiter.retry_after(source, len(events))
            if wait is not None:
                raise Rejected(429, "rate_limited", f"source {source.name!r} over its rate", wait)
        except Rejected as exc:
            return exc.reply
        return await self.deliver(events, source, payload, now)

    async def deliver(
        self,
        events: list[Any],
        source: Source,
        payload: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Reply:
        """Stamp, validate and produce events of an authenticated source; the reply to give."""
        received = now or datetime.now(UTC)
        accepted, rejected, records = self._prepare(events, payload or {}, source, received)
        try:
            await self.send(records)
        except Unavailable as exc:
            body_503 = {"code": "broker_unavailable", "message": str(exc)}
            return Reply(503, body_503, {"Retry-After": "5"})
        if rejected:
            message = f"{len(rejected)} of {len(events)} events are invalid; the others accepted"
            body_400 = {
                "code": "invalid_events",
                "message": message,
                "accepted": accepted,
                "rejected": rejected,
            }
            return Reply(400, body_400)
        return Reply(200, {"success": True, "accepted": len(accepted)})

    @staticmethod
    def _parse(body: bytes) -> dict[str, Any]:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise Rejected(400, "invalid_json", f"body is not JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise Rejected(400, "not_an_object", "body must be a JSON object")
        return payload

    def _prepare(
        self, events: list[Any], payload: dict[str, Any], source: Source, received: datetime
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Record]]:
        accepted: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        records: list[Record] = []
        stamp = format_timestamp(received)
        origin = Origin(received, "", source.name, source.channel, self.phone_region)
        headers: Headers = [("wayline.source", source.name.encode())]
        headers.append(("wayline.channel", source.channel.encode()))
        canonical = [*headers, (FORM_HEADER, CANONICAL)]
        for index, event in enumerate(events):
            try:
                encoded, problem = _stamp(event, payload, source, stamp, origin)
            except Exception as exc:
                encoded, problem = _as_dead_letter(event), _unforeseen(exc)
            message_id = event.get("messageId") if isinstance(event, dict) else None
            if not isinstance(message_id, str | int):
                message_id = None  # echo ids back, never a structure a client sent
            key = _key(event)
            if problem is None:
                accepted.append({"index": index, "messageId": message_id})
                records.append(Record(self.topics.raw, key, encoded, canonical))
                continue
            errors = [{"field": e.path, "message": e.message} for e in problem.errors]
            rejected.append(
                {"index": index, "messageId": message_id, "reason": problem.reason.value}
                | {"errors": errors}
            )
            records.append(Record(self.topics.dlq, key, encoded, [*headers, *_dlq(problem)]))
        return accepted, rejected, records


def _write_key(payload: dict[str, Any]) -> str | None:
    key = payload.get("writeKey")
    return key if isinstance(key, str) else None


def _events_of(kind: str, payload: dict[str, Any]) -> list[Any]:
    if kind in ("batch", "b", "import"):
        batch = payload.get("batch")
        if not isinstance(batch, list):
            raise Rejected(400, "invalid_batch", "batch: must be a list of events")
        if len(batch) > MAX_BATCH_EVENTS:
            limit = f"batch: {len(batch)} events, the limit is {MAX_BATCH_EVENTS} per request"
            raise Rejected(400, "too_many_events", limit)
        return batch
    if kind not in EVENT_TYPES:
        raise Rejected(404, "unknown_endpoint", f"no endpoint for {kind!r}")
    event = {k: v for k, v in payload.items() if k != "writeKey"}
    event.setdefault("type", kind)
    return [event]


def _stamp(
    event: Any, payload: dict[str, Any], source: Source, stamp: str, origin: Origin
) -> tuple[bytes, InvalidEvent | None]:
    """The event in its canonical form (stamped with receivedAt, messageId and the source's
    channel, then normalized: the validate worker forwards it as it is), or the stamped event
    and its problem."""
    if not isinstance(event, dict):
        encoded = _as_dead_letter(event)
        return encoded, InvalidEvent(ReasonCode.NOT_AN_OBJECT, [FieldError("", "not an object")])
    try:
        check_nesting(event)
    except InvalidEvent as exc:
        return _as_dead_letter(event), exc
    stamp_event(event, payload, source.channel, stamp)
    encoded = orjson.dumps(event)
    if len(encoded) > MAX_EVENT_BYTES:
        limit = f"{len(encoded)} bytes, the limit is {MAX_EVENT_BYTES}"
        return encoded, InvalidEvent(ReasonCode.EVENT_TOO_LARGE, [FieldError("", limit)])
    try:
        canonical = orjson.dumps(normalize_event(event, origin))  # it copies what it changes
    except InvalidEvent as exc:
        return encoded, exc
    if len(canonical) > MAX_EVENT_BYTES:  # its identifiers pushed it over the limit
        limit = f"{len(canonical)} bytes normalized, the limit is {MAX_EVENT_BYTES}"
        return encoded, InvalidEvent(ReasonCode.EVENT_TOO_LARGE, [FieldError("", limit)])
    return canonical, None


def stamp_event(event: dict[str, Any], payload: dict[str, Any], channel: str, stamp: str) -> None:
    """What the collector adds to an event before it is normalized: ``receivedAt``, a
    ``messageId`` when the client sent none (an integer id as its text), the batch's ``sentAt``
    and ``context``, and the source's channel; ``writeKey`` goes."""
    event.pop("writeKey", None)
    event["receivedAt"] = stamp
    if event.get("messageId") is None:
        event["messageId"] = str(uuid.uuid4())
    elif isinstance(given := message_id_of(event["messageId"]), str) and given:
        event["messageId"] = given  # an integer id as its text; anything else is refused
    if "sentAt" not in event and isinstance(payload.get("sentAt"), str):
        event["sentAt"] = payload["sentAt"]
    shared = payload.get("context")
    batch_context: dict[str, Any] = shared if isinstance(shared, dict) else {}
    context = event.get("context")
    if isinstance(context, dict) or context is None:
        event["context"] = {**batch_context, **(context or {}), "channel": channel}


def _as_dead_letter(value: Any) -> bytes:
    """``value`` as JSON for the dead-letter topic; beyond what any encoder takes (about 250
    levels of nesting), the levels below ``MAX_NESTING`` become a marker string."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return orjson.dumps(_cut(value, MAX_NESTING))


def _cut(value: Any, levels: int) -> Any:
    if not isinstance(value, dict | list):
        return value
    if levels <= 0:
        return "(nested too deep: cut)"
    if isinstance(value, dict):
        return {k: _cut(v, levels - 1) for k, v in value.items()}
    return [_cut(v, levels - 1) for v in value]


def _unforeseen(exc: Exception) -> InvalidEvent:
    detail = f"internal: {type(exc).__name__}: {exc}"[:500]
    return InvalidEvent(ReasonCode.PROCESSING_ERROR, [FieldError("", detail)])


def _key(event: Any) -> bytes | None:
    if not isinstance(event, dict):
        return None
    for name in ("userId", "anonymousId", "messageId"):
        value = event.get(name)
        if isinstance(value, str | int) and str(value):
            return str(value).encode()
    return None


def _dlq(problem: InvalidEvent) -> Headers:
    detail = "; ".join(str(e) for e in problem.errors).encode()[:4096]
    return [
        ("wayline.dlq.reason", problem.reason.value.encode()),
        ("wayline.dlq.detail", detail),
        ("wayline.dlq.worker", b"collector"),
    ]
