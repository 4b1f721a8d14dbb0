"""What each topic becomes in ClickHouse: one table per topic, a row per record (a row per
transition for ``segments``, whose records carry a profile's transitions of a batch).

``TABLES[suffix]`` names the table, its columns (as in ``migrations/0001_topics.sql``) and the
function that turns one record into its rows (none: the record is not one this table keeps,
such as the profile worker's merge hand-offs on ``events.resolved``). Every row ends with the
source partition and offset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

Row = list[Any]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


RowOf = Callable[[bytes | None, dict[str, Any] | None, dict[str, bytes]], Row | None]
RowsOf = Callable[[bytes | None, dict[str, Any] | None, dict[str, bytes]], list[Row]]


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    rows: RowsOf  # (key, decoded value or None, headers) → the record's rows


def _one(row: RowOf) -> RowsOf:
    def rows(key: bytes | None, doc: dict[str, Any] | None, h: dict[str, bytes]) -> list[Row]:
        found = row(key, doc, h)
        return [] if found is None else [found]

    return rows


def when(text: Any) -> datetime:
    if not isinstance(text, str) or not text:
        return EPOCH
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _maybe(text: Any) -> datetime | None:
    return when(text) if isinstance(text, str) and text else None


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _event(_key: bytes | None, doc: dict[str, Any] | None, headers: dict[str, bytes]) -> Row | None:
    if doc is None or headers.get("wayline.kind", b"event") != b"event":
        return None
    props = doc.get("properties") or {}
    ordered = doc.get("event") == "Order Completed"
    revenue = props.get("revenue", props.get("total", 0)) if ordered else 0
    return [str(doc.get("profile_id", "")), str(doc.get("messageId", "")), str(doc.get("type")),
            str(doc.get("event") or ""), str((doc.get("context") or {}).get("channel", "")),
            when(doc.get("timestamp")), when(doc.get("receivedAt")),
            str(props.get("order_id") or ""), _number(revenue), _json(props)]  # fmt: skip


def _trigger(_key: bytes | None, doc: dict[str, Any] | None, _h: dict[str, bytes]) -> Row | None:
    if doc is None:
        return None
    data = doc.get("data") or {}
    return [str(doc.get("subject", "")), str(doc.get("id", "")), str(data.get("trigger", "")),
            str(data.get("occasion", "")), int(data.get("rule_version") or 0),
            when(doc.get("time")), _json(data)]  # fmt: skip


def _delivery(_key: bytes | None, doc: dict[str, Any] | None, _h: dict[str, bytes]) -> Row | None:
    if doc is None:
        return None
    return [str(doc.get(c, "")) for c in ("profile_id", "delivery_id", "trigger_id", "trigger",
                                          "subscription", "channel", "channel_type", "kind",
                                          "status")] + [
        int(bool(doc.get("final"))), str(doc.get("reason") or ""), int(doc.get("attempt") or 0),
        when(doc.get("at"))]  # fmt: skip


def _transitions(_key: bytes | None, doc: dict[str, Any] | None, _h: dict[str, bytes]) -> list[Row]:
    if doc is None:
        return []
    return [[str(t.get("profile_id", "")), str(t.get("id", "")), str(t.get("segment", "")),
             str(t.get("transition", "")), int(t.get("rule_version") or 0),
             when(t.get("at")), str(t.get("cause") or "")]
            for t in doc.get("transitions") or ()]  # fmt: skip


def _profile(key: bytes | None, doc: dict[str, Any] | None, _h: dict[str, bytes]) -> Row | None:
    pid = (key or b"").decode()
    if doc is None:  # a tombstone: merged away (or deleted)
        return [pid, 1, 0, 0.0, None, None, [], ""]
    computed = doc.get("computed") or {}
    return [pid, 0, int(computed.get("order_count") or 0), _number(computed.get("revenue")),
            _maybe(doc.get("first_seen")), _maybe(doc.get("last_seen")),
            list(doc.get("segments") or []), _json(doc)]  # fmt: skip


def _merge(_key: bytes | None, doc: dict[str, Any] | None, _h: dict[str, bytes]) -> Row | None:
    if doc is None:
        return None
    return [str(doc.get("profile_id", "")), str(doc.get("merged_id") or ""),
            str(doc.get("kind", "")), str(doc.get("reason") or ""),
            str(doc.get("message_id") or ""), when(doc.get("at")), _json(doc)]  # fmt: skip


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


SOURCE = ("src_partition", "src_offset")
TABLES: dict[str, Table] = {
    "events.resolved": Table("events", ("profile_id", "message_id", "type", "event", "channel",
                             "timestamp", "received_at", "order_id", "revenue", "properties",
                             *SOURCE), _one(_event)),
    "triggers": Table("triggers", ("profile_id", "id", "trigger", "occasion", "rule_version",
                      "time", "data", *SOURCE), _one(_trigger)),
    "deliveries": Table("deliveries", ("profile_id", "delivery_id", "trigger_id", "trigger",
                        "subscription", "channel", "channel_type", "kind", "status", "final",
                        "reason", "attempt", "at", *SOURCE), _one(_delivery)),
    "segments": Table("segment_transitions", ("profile_id", "id", "segment", "transition",
                      "rule_version", "at", "cause", *SOURCE), _transitions),
    "profiles": Table("profiles", ("profile_id", "deleted", "order_count", "revenue",
                      "first_seen", "last_seen", "segments", "document", *SOURCE), _one(_profile)),
    "identity": Table("identity_merges", ("profile_id", "merged_id", "kind", "reason",
                      "message_id", "at", "record", *SOURCE), _one(_merge)),
}  # fmt: skip
