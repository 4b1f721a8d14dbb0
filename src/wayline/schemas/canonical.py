"""Events normalized where they arrived: the mark a raw record carries when its value is already
the canonical form, and the check such a record gets instead of a second normalization.

The collector validates every event to answer its client (400 with the failing fields), which
normalizes it; it writes that canonical form to ``wayline.events.raw`` with the header
``wayline.form: canonical``, so the validate worker only checks the frame the workers after it
rely on (``check_canonical``) and forwards the bytes as they are. Records without the header —
other sources, older collectors — are normalized by the validate worker as before.
"""

from __future__ import annotations

from typing import Any, Final

from wayline.schemas.errors import FieldError, InvalidEvent, ReasonCode
from wayline.schemas.event import CHANNELS, EVENT_TYPES, IDENTIFIER_NAMES
from wayline.schemas.timestamps import timestamp_ms

FORM_HEADER: Final = "wayline.form"
CANONICAL: Final = b"canonical"

_OBJECTS: Final = ("traits", "properties", "integrations")


def check_canonical(value: Any) -> int:
    """The event time (epoch ms) of ``value``, a decoded record marked canonical; raises
    ``InvalidEvent`` (every failing field) when it is not in the canonical form, so a record
    mislabelled by a producer is dead-lettered here rather than failing a worker downstream."""
    if not isinstance(value, dict):
        raise InvalidEvent(ReasonCode.NOT_AN_OBJECT, [FieldError("", "an event is a JSON object")])
    errors = _frame_errors(value)
    errors += _identifier_errors(value.get("identifiers"))
    when = timestamp_ms(value.get("timestamp"))
    if when is None:
        errors.append(FieldError("timestamp", "not an ISO 8601 timestamp"))
    if errors or when is None:
        raise InvalidEvent(ReasonCode.INVALID_FIELD, errors)
    return when


def _frame_errors(value: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    message_id = value.get("messageId")
    if not isinstance(message_id, str) or not 0 < len(message_id) <= 256:
        errors.append(FieldError("messageId", "must be a string of 1-256 characters"))
    if value.get("type") not in EVENT_TYPES:
        errors.append(FieldError("type", f"must be one of {', '.join(EVENT_TYPES)}"))
    for name in ("event", "name"):
        if value.get(name) is not None and not isinstance(value[name], str):
            errors.append(FieldError(name, "must be a string"))
    if value.get("type") == "track" and not value.get("event"):
        errors.append(FieldError("event", "required for track"))
    for name in _OBJECTS:
        if not isinstance(value.get(name), dict):
            errors.append(FieldError(name, "must be an object"))
    context = value.get("context")
    if not isinstance(context, dict) or context.get("channel") not in CHANNELS:
        errors.append(FieldError("context.channel", f"must be one of {CHANNELS}"))
    if not isinstance(value.get("receivedAt"), str):
        errors.append(FieldError("receivedAt", "must be a string"))
    if not isinstance(value.get("warnings"), list):
        errors.append(FieldError("warnings", "must be a list"))
    return errors


def _identifier_errors(ids: Any) -> list[FieldError]:
    if not isinstance(ids, dict):
        return [FieldError("identifiers", "must be an object")]
    errors = [
        FieldError(f"identifiers.{name}", "must be a non-empty string or null")
        for name in IDENTIFIER_NAMES
        if name not in ids or not _absent_or_text(ids[name])
    ]
    external = ids.get("external")
    if not isinstance(external, list) or not all(
        isinstance(e, dict) and isinstance(e.get("type"), str) and isinstance(e.get("id"), str)
        for e in external
    ):
        errors.append(FieldError("identifiers.external", "must be a list of {type, id}"))
    elif not errors and not external and not any(ids.get(name) for name in IDENTIFIER_NAMES):
        errors.append(FieldError("identifiers", "at least one identifier is required"))
    return errors


def _absent_or_text(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value != "")
