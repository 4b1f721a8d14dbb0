"""Example messages under ``schemas/examples/<topic suffix>/``, loaded for tests and docs.

``events.raw/*.json`` are valid raw events; ``events/*.json`` are their canonical forms (same
file names, produced with ``EXAMPLE_PHONE_REGION``); ``events.raw/invalid/*.json`` hold an
invalid message (``value``, or undecodable ``bytes``) and the ``reason`` it is dead-lettered with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wayline.schemas.codec import encode
from wayline.schemas.errors import ReasonCode
from wayline.schemas.normalize import Origin, normalize_event
from wayline.schemas.timestamps import parse_timestamp

ROOT = Path(__file__).resolve().parent / "examples"
EXAMPLE_PHONE_REGION = "DE"


@dataclass(frozen=True)
class InvalidExample:
    name: str
    reason: ReasonCode
    payload: bytes


def examples(suffix: str) -> dict[str, dict[str, Any]]:
    """The valid examples of one topic, by file stem."""
    folder = ROOT / suffix
    return {p.stem: json.loads(p.read_text("utf-8")) for p in sorted(folder.glob("*.json"))}


def invalid_raw_examples() -> list[InvalidExample]:
    out = []
    for path in sorted((ROOT / "events.raw" / "invalid").glob("*.json")):
        spec = json.loads(path.read_text("utf-8"))
        if "bytes" in spec:
            payload = spec["bytes"].encode()
        else:
            payload = encode(spec["value"])
            if b"PAD:" in payload:  # an oversized event, padded at load time
                payload = payload.replace(b"PAD:40000", b"x" * 40000)
        out.append(InvalidExample(path.stem, ReasonCode(spec["reason"]), payload))
    return out


def canonical_of(raw: dict[str, Any]) -> dict[str, Any]:
    """The canonical form of a raw example (its ``receivedAt`` is the receive time)."""
    received = parse_timestamp(raw["receivedAt"])
    assert received is not None
    origin = Origin(received, "unused", phone_region=EXAMPLE_PHONE_REGION)
    return normalize_event(json.loads(json.dumps(raw)), origin)


def write_canonical_examples() -> int:
    folder = ROOT / "events"
    folder.mkdir(exist_ok=True)
    raws = examples("events.raw")
    for name, raw in raws.items():
        text = json.dumps(canonical_of(raw), indent=2, sort_keys=True) + "\n"
        (folder / f"{name}.json").write_text(text, encoding="utf-8")
    return len(raws)
