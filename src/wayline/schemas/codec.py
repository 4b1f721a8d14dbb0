"""The hot-path codec: bytes to plain dicts and back with orjson, no model objects."""

from __future__ import annotations

from typing import Any

import orjson

from wayline.schemas.errors import FieldError, InvalidEvent, ReasonCode
from wayline.schemas.event import MAX_EVENT_BYTES


def decode_raw(value: bytes | None) -> Any:
    """Decode one raw event's bytes; too large or not JSON raises ``InvalidEvent``."""
    if value is None:
        raise InvalidEvent(ReasonCode.INVALID_JSON, [FieldError("", "empty message (tombstone)")])
    if len(value) > MAX_EVENT_BYTES:
        raise InvalidEvent(
            ReasonCode.EVENT_TOO_LARGE,
            [FieldError("", f"{len(value)} bytes, the limit is {MAX_EVENT_BYTES}")],
        )
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(ReasonCode.INVALID_JSON, [FieldError("", str(exc))]) from None


def encode(value: dict[str, Any]) -> bytes:
    """Serialize a canonical message (event, profile, trigger) to compact JSON bytes."""
    return orjson.dumps(value)


def decode(value: bytes) -> dict[str, Any]:
    """Decode a message Wayline itself wrote; it is a JSON object by construction."""
    decoded = orjson.loads(value)
    if not isinstance(decoded, dict):
        raise ValueError("expected a JSON object")
    return decoded
