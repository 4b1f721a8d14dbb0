"""Validate and normalize one raw event into the canonical form: the hot path, on plain dicts.

``normalize_event(raw, ...)`` returns the canonical dict (see ``CanonicalEvent``) or raises
``InvalidEvent`` listing every failing field. It accepts exactly what ``RawEvent`` describes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import phonenumbers

from wayline.schemas.errors import FieldError, InvalidEvent, ReasonCode
from wayline.schemas.event import CHANNELS, EVENT_TYPES, IDENTIFIER_NAMES, MAX_NESTING, Channel
from wayline.schemas.timestamps import event_time, format_timestamp, parse_timestamp

_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_OBJECT_FIELDS: Final = ("traits", "properties", "integrations")
_ID_FIELDS: Final = ("userId", "anonymousId", "previousId", "groupId")
_TIME_FIELDS: Final = ("timestamp", "originalTimestamp", "sentAt", "receivedAt")


@dataclass(frozen=True, slots=True)
class Origin:
    """What the receiving side knows about an event: when and from which source it came."""

    received_at: datetime
    message_id: str
    source: str | None = None
    channel: Channel | None = None
    phone_region: str | None = None


class _Problems:
    def __init__(self) -> None:
        self.items: list[tuple[ReasonCode, FieldError]] = []

    def add(self, reason: ReasonCode, path: str, message: str) -> None:
        self.items.append((reason, FieldError(path, message)))

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidEvent(self.items[0][0], [err for _, err in self.items])


def normalize_event(raw: Any, origin: Origin) -> dict[str, Any]:
    """Validate ``raw`` (a decoded JSON value) and return the canonical event dict."""
    if not isinstance(raw, dict):
        raise InvalidEvent(ReasonCode.NOT_AN_OBJECT, [FieldError("", "an event is a JSON object")])
    check_nesting(raw)
    problems = _Problems()
    out: dict[str, Any] = dict(raw)
    _check_type(raw, problems)
    _check_strings(raw, out, problems)
    _check_objects(raw, out, problems)
    context = _check_context(raw.get("context"), origin, problems)
    times = _check_times(raw, origin, problems)
    problems.raise_if_any()
    out["context"] = context
    out["messageId"] = out.get("messageId") or origin.message_id
    out.update(times)
    if origin.source is not None:
        out["source"] = origin.source
    warnings: list[str] = []
    out["identifiers"] = _identifiers(out, origin, warnings)
    _check_required(out, problems)
    problems.raise_if_any()
    out["warnings"] = warnings
    return out


def check_nesting(value: Any, limit: int = MAX_NESTING) -> None:
    """``InvalidEvent`` (``nested_too_deep``, naming the path) when objects or arrays in
    ``value`` nest deeper than ``limit``. The walk stops at ``limit``: any depth is safe."""
    path = _too_deep(value, limit)
    if path is not None:
        where = f"objects and arrays nest deeper than {limit} levels"
        raise InvalidEvent(ReasonCode.NESTED_TOO_DEEP, [FieldError(path.lstrip("."), where)])


def _too_deep(item: dict[str, Any] | list[Any], levels: int) -> str | None:
    """The path to a container ``levels`` below ``item``, or None."""
    if levels <= 0:
        return ""
    pairs = item.items() if isinstance(item, dict) else enumerate(item)
    for key, child in pairs:
        if isinstance(child, dict | list):
            below = _too_deep(child, levels - 1)
            if below is not None:
                return (f"[{key}]" if isinstance(key, int) else f".{key}") + below
    return None


def _check_type(raw: dict[str, Any], problems: _Problems) -> None:
    kind = raw.get("type")
    if kind is None:
        problems.add(ReasonCode.INVALID_FIELD, "type", "required")
    elif kind not in EVENT_TYPES:
        problems.add(
            ReasonCode.UNSUPPORTED_TYPE, "type", f"must be one of {', '.join(EVENT_TYPES)}"
        )


def _check_strings(raw: dict[str, Any], out: dict[str, Any], problems: _Problems) -> None:
    for name in _ID_FIELDS:
        value = raw.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            problems.add(ReasonCode.INVALID_FIELD, name, "must be a string")
            continue
        text = str(value).strip()
        if text:
            out[name] = text
        else:
            del out[name]
    for name in ("event", "name"):
        value = raw.get(name)
        if value is not None and not isinstance(value, str):
            problems.add(ReasonCode.INVALID_FIELD, name, "must be a string")
    message_id = message_id_of(raw.get("messageId"))
    if message_id is not None and not 0 < len(message_id) <= 256:
        problems.add(
            ReasonCode.INVALID_FIELD,
            "messageId",
            "must be a string of 1-256 characters or an integer",
        )
    elif message_id is not None:
        out["messageId"] = message_id


def message_id_of(value: Any) -> str | None:
    """A client's ``messageId`` as Wayline keeps it: a string as sent, an integer as its decimal
    text (``42`` → ``"42"``, so a retry of the same id is deduplicated); None when absent. Any
    other value (a list, an object, a boolean, a fraction) comes back as ``""``: refused."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def _check_objects(raw: dict[str, Any], out: dict[str, Any], problems: _Problems) -> None:
    for name in _OBJECT_FIELDS:
        value = raw.get(name)
        if value is None:
            out[name] = {}
        elif isinstance(value, dict):
            out[name] = dict(value)
        else:
            problems.add(ReasonCode.INVALID_FIELD, name, "must be an object")


def _check_context(value: Any, origin: Origin, problems: _Problems) -> dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        problems.add(ReasonCode.INVALID_FIELD, "context", "must be an object")
        return {}
    context = dict(value)
    channel = context.get("channel", origin.channel)
    if channel is None:
        channel = "app" if isinstance(context.get("app"), dict) else "web"
    if channel not in CHANNELS:
        problems.add(ReasonCode.INVALID_FIELD, "context.channel", f"must be one of {CHANNELS}")
    context["channel"] = channel
    for name in ("traits", "device"):
        if name in context and context[name] is not None and not isinstance(context[name], dict):
            problems.add(ReasonCode.INVALID_FIELD, f"context.{name}", "must be an object")
    if isinstance(context.get("traits"), dict):
        context["traits"] = dict(context["traits"])
    _check_external_ids(context.get("externalIds"), problems)
    return context


def _check_external_ids(value: Any, problems: _Problems) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        problems.add(ReasonCode.INVALID_FIELD, "context.externalIds", "must be a list")
        return
    for i, item in enumerate(value):
        ok = isinstance(item, dict) and all(
            isinstance(item.get(k), str) and item[k].strip() for k in ("id", "type")
        )
        if not ok:
            problems.add(
                ReasonCode.INVALID_FIELD,
                f"context.externalIds[{i}]",
                "must be an object with non-empty string id and type",
            )


def _check_times(raw: dict[str, Any], origin: Origin, problems: _Problems) -> dict[str, Any]:
    parsed: dict[str, datetime | None] = {}
    for name in _TIME_FIELDS:
        value = raw.get(name)
        parsed[name] = None if value is None else parse_timestamp(value)
        if value is not None and parsed[name] is None:
            problems.add(
                ReasonCode.INVALID_TIMESTAMP, name, f"not an ISO 8601 timestamp: {value!r:.40}"
            )
    received = parsed["receivedAt"] or origin.received_at
    original = parsed["originalTimestamp"] or parsed["timestamp"]
    when = event_time(received, parsed["sentAt"], original)
    times: dict[str, Any] = {"timestamp": format_timestamp(when)}
    times["receivedAt"] = format_timestamp(received)
    times["originalTimestamp"] = format_timestamp(original) if original else None
    times["sentAt"] = format_timestamp(parsed["sentAt"]) if parsed["sentAt"] else None
    return times


def _check_required(out: dict[str, Any], problems: _Problems) -> None:
    kind = out["type"]
    if kind == "track" and not (isinstance(out.get("event"), str) and out["event"].strip()):
        problems.add(ReasonCode.INVALID_FIELD, "event", "required for track")
    if kind == "alias":
        for name in ("previousId", "userId"):
            if not out.get(name):
                problems.add(ReasonCode.INVALID_FIELD, name, "required for alias")
    if kind == "group" and not out.get("groupId"):
        problems.add(ReasonCode.INVALID_FIELD, "groupId", "required for group")
    ids = out["identifiers"]
    if not ids["external"] and not any(ids[k] for k in IDENTIFIER_NAMES):
        problems.add(
            ReasonCode.MISSING_IDENTIFIER,
            "userId",
            "one of userId, anonymousId, traits email/phone, context.device.id or "
            "context.externalIds is required",
        )


def _identifiers(out: dict[str, Any], origin: Origin, warnings: list[str]) -> dict[str, Any]:
    context = out["context"]
    holders = [("traits", out["traits"])]
    if isinstance(context.get("traits"), dict):
        holders.append(("context.traits", context["traits"]))
    device = context.get("device")
    device_id = device.get("id") if isinstance(device, dict) else None
    return {
        "user_id": out.get("userId"),
        "anonymous_id": out.get("anonymousId"),
        "email": _trait_identifier(holders, "email", normalize_email, warnings),
        "phone": _trait_identifier(
            holders, "phone", lambda v: normalize_phone(v, origin.phone_region), warnings
        ),
        "device_id": str(device_id).strip() or None if isinstance(device_id, str | int) else None,
        "external": [
            {"type": e["type"].strip(), "id": e["id"].strip()}
            for e in context.get("externalIds") or []
        ],
    }


def _trait_identifier(
    holders: list[tuple[str, dict[str, Any]]],
    name: str,
    normalize: Any,
    warnings: list[str],
) -> str | None:
    found: str | None = None
    for where, traits in holders:
        if traits.get(name) is None:
            continue
        value = normalize(traits[name])
        if value is None:
            warnings.append(f"{where}.{name}: not a valid {name}, not used as an identifier")
            continue
        traits[name] = value
        found = found or value
    return found


def normalize_email(value: object) -> str | None:
    """Trimmed and lower-cased e-mail address, or None when it is not one."""
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    return email if len(email) <= 254 and _EMAIL.match(email) else None


def normalize_phone(value: object, region: str | None = None) -> str | None:
    """E.164 form (``+4915112345678``) of a valid phone number, or None.

    Numbers without ``+country`` need ``region`` (``WAYLINE_DEFAULT_PHONE_REGION``).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > 40:
        return None
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
