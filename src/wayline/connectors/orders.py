"""Store / POS order files → ``Order Completed`` events (channel ``store``).

Columns (CSV header or JSONL keys): ``order_id``, ``time`` (ISO 8601 or Unix seconds),
``store_id``, ``total``, ``currency``, ``items`` (a JSON list of ``{sku, quantity, price,
category}``; in CSV a JSON string, or ``sku:quantity:price`` joined with ``;``), and at least
one of ``loyalty_id``, ``email``, ``phone``. Each order's ``messageId`` is derived from the
source and the order id, so importing a file twice adds nothing (dedupe drops the repeats).
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from wayline.schemas.errors import InvalidEvent
from wayline.schemas.normalize import Origin, normalize_event
from wayline.schemas.timestamps import format_timestamp, parse_timestamp

_NAMESPACE = uuid.UUID("9d3f2b1e-7c4a-4f5e-8b6d-2a1c0e9f8d7b")
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass(frozen=True)
class Row:
    number: int  # 1-based data row (CSV: after the header)
    values: dict[str, Any]


class RowError(Exception):
    """A row that cannot become an order event: ``reason`` is a short code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def file_format(path: Path) -> str:
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise ValueError(f"{path.name}: unknown format; use .csv or .jsonl")
    return found


def read_rows(path: Path) -> Iterator[Row]:
    """Rows of a CSV or JSONL file; a JSONL line that is not an object yields ``__error__``."""
    if file_format(path) == "csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            for number, values in enumerate(csv.DictReader(handle), start=1):
                yield Row(number, {k.strip(): v for k, v in values.items() if k})
        return
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield Row(number, {"__error__": f"not JSON: {exc}"})
                continue
            yield Row(number, value if isinstance(value, dict) else {"__error__": "not an object"})


def order_event(row: Row, source: str, received: datetime) -> dict[str, Any]:
    """The ``Order Completed`` event of one row; ``RowError`` names what is wrong."""
    values = row.values
    if "__error__" in values:
        raise RowError("invalid_row", str(values["__error__"]))
    order_id = _text(values.get("order_id"))
    if not order_id:
        raise RowError("missing_order_id", "order_id is empty")
    when = _time(values.get("time"))
    total = _number(values.get("total"), "total")
    items = _items(values.get("items"))
    context: dict[str, Any] = {"channel": "store"}
    loyalty = _text(values.get("loyalty_id"))
    if loyalty:
        context["externalIds"] = [{"type": "loyalty_id", "id": loyalty}]
    traits = {k: _text(values.get(k)) for k in ("email", "phone") if _text(values.get(k))}
    if traits:
        context["traits"] = traits
    properties: dict[str, Any] = {
        "order_id": order_id,
        "total": total,
        "revenue": total,
        "currency": (_text(values.get("currency")) or "USD").upper(),
        "products": items,
    }
    if _text(values.get("store_id")):
        properties["store_id"] = _text(values.get("store_id"))
    event = {
        "type": "track",
        "event": "Order Completed",
        "messageId": str(uuid.uuid5(_NAMESPACE, f"{source}:{order_id}")),
        "timestamp": format_timestamp(when),
        "properties": properties,
        "context": context,
    }
    try:
        normalize_event(orjson.loads(orjson.dumps(event)), Origin(received, "", source, "store"))
    except InvalidEvent as exc:
        raise RowError(exc.reason.value, "; ".join(str(e) for e in exc.errors)) from None
    return event


def _text(value: object) -> str:
    return str(value).strip() if value is not None else ""


def _time(value: object) -> datetime:
    text = _text(value)
    if not text:
        raise RowError("missing_time", "time is empty")
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except (ValueError, OverflowError, OSError):
        parsed = parse_timestamp(text)
    if parsed is None:
        raise RowError("invalid_time", f"time: not ISO 8601 or Unix seconds: {text!r:.40}")
    return parsed


def _number(value: object, name: str) -> float:
    try:
        number = float(_text(value))
    except ValueError:
        raise RowError(f"invalid_{name}", f"{name}: not a number: {value!r:.40}") from None
    if number != number or number < 0:  # NaN or negative
        raise RowError(f"invalid_{name}", f"{name}: must be a number ≥ 0")
    return round(number, 2)


def _items(value: object) -> list[dict[str, Any]]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise RowError("invalid_items", "items: not a JSON list") from None
        else:
            value = [_compact_item(part) for part in text.split(";") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(i, dict) for i in value):
        raise RowError("invalid_items", "items: must be a list of objects")
    return [_item(i) for i in value]


def _compact_item(part: str) -> dict[str, Any]:
    fields = part.strip().split(":")
    if len(fields) != 3:
        raise RowError("invalid_items", f"items: {part.strip()!r} is not sku:quantity:price")
    return {"sku": fields[0], "quantity": fields[1], "price": fields[2]}


def _item(item: dict[str, Any]) -> dict[str, Any]:
    sku = _text(item.get("sku") or item.get("product_id"))
    if not sku:
        raise RowError("invalid_items", "items: every item needs a sku")
    out = {
        "product_id": sku,
        "sku": sku,
        "quantity": int(_number(item.get("quantity", 1), "quantity")),
        "price": _number(item.get("price", 0), "price"),
    }
    if item.get("category"):
        out["category"] = _text(item["category"])
    return out
