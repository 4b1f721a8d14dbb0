"""The check a record the collector already normalized gets instead of a second normalization:
it accepts every canonical event and gives its time, and rejects each broken part of the frame
the workers after it rely on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wayline.schemas.canonical import check_canonical
from wayline.schemas.codec import decode_raw, encode
from wayline.schemas.errors import InvalidEvent, ReasonCode
from wayline.schemas.event import CHANNELS
from wayline.schemas.normalize import Origin, normalize_event
from wayline.schemas.timestamps import parse_timestamp

RECEIVED = datetime(2026, 11, 23, 9, 0, 0, tzinfo=UTC)
TEXT = st.text(st.characters(categories=["L", "N", "P"]), min_size=1, max_size=12)
NAIVE = (datetime.fromisoformat("2020-01-01"), datetime.fromisoformat("2030-01-01"))
TIMES = st.datetimes(*NAIVE, timezones=st.just(UTC)).map(lambda t: t.isoformat())


@st.composite
def raw_events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["track", "identify", "page", "screen", "group", "alias"]))
    event: dict[str, Any] = {"type": kind}
    ids = draw(st.fixed_dictionaries({}, optional={"userId": TEXT, "anonymousId": TEXT}))
    event |= ids or {"userId": "u1"}
    if kind == "track":
        event["event"] = draw(TEXT)
    if kind == "group":
        event["groupId"] = draw(TEXT)
    if kind == "alias":
        event |= {"previousId": draw(TEXT), "userId": draw(TEXT)}
    optional = {
        "messageId": TEXT,
        "timestamp": TIMES,
        "sentAt": TIMES,
        "traits": st.dictionaries(TEXT, st.integers(-(2**63), 2**63 - 1) | TEXT, max_size=3),
        "properties": st.dictionaries(TEXT, st.integers(-(2**63), 2**63 - 1) | TEXT, max_size=3),
        "context": st.fixed_dictionaries(
            {},
            optional={"traits": st.fixed_dictionaries({}, optional={"email": st.just("a@b.io")})},
        ),
    }
    return event | draw(st.fixed_dictionaries({}, optional=optional))


def canonical(raw: dict[str, Any], channel: str = "web") -> dict[str, Any]:
    origin = Origin(RECEIVED, "gen-1", "site", channel, "US")  # type: ignore[arg-type]
    event = normalize_event(raw, origin)
    back: dict[str, Any] = decode_raw(encode(event))  # as the validate worker reads it
    return back


@settings(max_examples=200, deadline=None)
@given(raw_events(), st.sampled_from(CHANNELS))
def test_every_normalized_event_passes_with_its_time(raw: dict[str, Any], channel: str) -> None:
    event = canonical(raw, channel)
    when = parse_timestamp(event["timestamp"])
    assert when is not None
    assert check_canonical(event) == int(when.timestamp() * 1000)


def good() -> dict[str, Any]:
    return canonical({"type": "track", "event": "Order Completed", "userId": "u1"})


def drop(path: str) -> Any:
    def change(event: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for name in parents:
            event = event[name]
        event.pop(last)

    return change


def set_to(path: str, value: Any) -> Any:
    def change(event: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for name in parents:
            event = event[name]
        event[last] = value

    return change


BROKEN = [
    ("messageId", drop("messageId")),
    ("messageId", set_to("messageId", "")),
    ("messageId", set_to("messageId", "x" * 257)),
    ("type", set_to("type", "purchase")),
    ("event", set_to("event", None)),
    ("event", set_to("event", 7)),
    ("name", set_to("name", ["home"])),
    ("traits", set_to("traits", [])),
    ("properties", drop("properties")),
    ("integrations", set_to("integrations", "all")),
    ("context.channel", set_to("context.channel", "fax")),
    ("context.channel", set_to("context", None)),
    ("receivedAt", set_to("receivedAt", 1_700_000_000)),
    ("warnings", set_to("warnings", "none")),
    ("identifiers", set_to("identifiers", "u1")),
    ("identifiers.user_id", set_to("identifiers.user_id", "")),
    ("identifiers.email", drop("identifiers.email")),
    ("identifiers.phone", set_to("identifiers.phone", 5551234)),
    ("identifiers.external", set_to("identifiers.external", [{"type": "crm"}])),
    ("identifiers.external", drop("identifiers.external")),
    ("timestamp", set_to("timestamp", "yesterday")),
    ("timestamp", drop("timestamp")),
]


@pytest.mark.parametrize(("field", "change"), BROKEN, ids=[f for f, _ in BROKEN])
def test_each_broken_part_of_the_frame_is_named(field: str, change: Any) -> None:
    event = good()
    check_canonical(event)
    change(event)
    with pytest.raises(InvalidEvent) as info:
        check_canonical(event)
    assert info.value.reason is ReasonCode.INVALID_FIELD
    assert field in [e.path for e in info.value.errors]


def test_an_event_without_any_identifier_is_refused() -> None:
    event = good()
    event["identifiers"]["user_id"] = None
    with pytest.raises(InvalidEvent) as info:
        check_canonical(event)
    assert [e.path for e in info.value.errors] == ["identifiers"]


def test_a_raw_event_marked_canonical_is_refused() -> None:
    with pytest.raises(InvalidEvent) as info:
        check_canonical({"type": "track", "event": "Order Completed", "userId": "u1"})
    assert {"messageId", "identifiers", "context.channel"} <= {e.path for e in info.value.errors}
    with pytest.raises(InvalidEvent) as info:
        check_canonical(["not", "an", "object"])
    assert info.value.reason is ReasonCode.NOT_AN_OBJECT
