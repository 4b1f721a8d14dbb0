"""``wayline tail`` shows each topic's records as a person reads them: the example message of
every topic becomes one line naming what a reader looks for (a line per transition of a
segments record)."""

from __future__ import annotations

import orjson
import pytest

from wayline.schemas.examples import examples
from wayline.schemas.topics import SUFFIXES
from wayline.streams.envelope import Envelope
from wayline.tailcli import line


def envelope(value: object, headers: tuple[tuple[str, bytes], ...] = ()) -> Envelope:
    raw = orjson.dumps(value) if value is not None else None
    return Envelope("t.x", 0, 7, b"p_1", raw, 1_795_000_000_000, headers)


@pytest.mark.parametrize(
    ("suffix", "name", "wanted"),
    [
        ("triggers", "cart_abandoned", ["cart_abandoned", "p_dbe3c5f90", "after_minutes=60"]),
        ("deliveries", "email_suppressed", ["suppressed", "cart_reminder", "mail", "no_consent"]),
        ("deliveries", "sms_deferred", ["deferred", "quiet_hours", "until 2026-11-23T16:00:00"]),
        ("segments", "enter_merged", ["enter", "vip", "p-7f3a", "merged p-91c2"]),
        ("profiles", "snapshot", ["p_dbe3c5f903846e65d76b", "orders=0", "segments=-"]),
    ],
)  # fmt: skip
def test_a_record_reads_as_one_line(suffix: str, name: str, wanted: list[str]) -> None:
    shown = line(suffix, envelope(examples(suffix)[name]))
    assert "\n" not in shown
    for part in wanted:
        assert part in shown


def test_dead_letters_show_their_reason_and_every_topic_has_a_line() -> None:
    headers = (("wayline.dlq.reason", b"invalid_timestamp"), ("wayline.dlq.detail", b"timestamp"))
    assert "invalid_timestamp" in line("events.dlq", envelope({"x": 1}, headers))
    assert "(deleted)" in line("profiles", envelope(None))
    for suffix in SUFFIXES:
        assert line(suffix, envelope({"any": "thing"}))


def test_a_segments_record_reads_as_a_line_per_transition() -> None:
    shown = line("segments", envelope(examples("segments")["enter"])).splitlines()
    assert len(shown) == 2
    assert all("enter" in row and "store-order-o-555001" in row for row in shown)
    assert ["vip" in shown[0], "repeat_buyers" in shown[1]] == [True, True]
