"""Epoch milliseconds and the canonical timestamp text, against ``datetime`` as the oracle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wayline.schemas.timestamps import (
    epoch_ms,
    format_day,
    format_days,
    format_ms,
    parse_timestamp,
    timestamp_ms,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MOMENTS = st.integers(min_value=0, max_value=253_402_300_799_999)  # 1970 … 9999


def oracle_text(ms: int) -> str:
    return (EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")[:-6] + "Z"


@given(MOMENTS)
def test_canonical_text_and_milliseconds_round_trip_exactly(ms: int) -> None:
    text = format_ms(ms)
    assert text == oracle_text(ms)
    assert epoch_ms(text) == ms
    assert timestamp_ms(text) == (ms if ms <= epoch_ms("2999-12-31T00:00:00.000Z") else None)
    assert format_day(ms // 86_400_000) == text[:10]


def test_exact_where_a_float_timestamp_loses_a_millisecond() -> None:
    """Far enough from 1970 a float's seconds times 1000 falls just short of the millisecond."""
    text = "2525-05-09T20:02:07.391Z"
    assert int(datetime.fromisoformat(text).timestamp() * 1000) == 17_525_275_327_390
    assert epoch_ms(text) == 17_525_275_327_391


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),  # noqa: DTZ001 - naive bounds, zones drawn
        max_value=datetime(2998, 1, 1),  # noqa: DTZ001
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), None]),
    )
)
def test_other_iso_forms_read_as_datetime_reads_them(when: datetime) -> None:
    text = when.isoformat()
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    assert epoch_ms(text) == (aware - EPOCH) // timedelta(milliseconds=1)
    parsed = parse_timestamp(text)
    assert parsed is not None
    assert timestamp_ms(text) == (parsed - EPOCH) // timedelta(milliseconds=1)


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-29T10:00:00.000Z",  # no such day
        "2026-13-01T10:00:00.000Z",
        "2026-11-23T24:00:00.000Z",
        "2026-11-23T10:60:00.000Z",
        "2026-11-23T10:00:61.000Z",
        "2026-1١-23T10:00:00.000Z",  # a non-ASCII digit
        "2026-11-23T10:00:00.00xZ",
        "not a timestamp at all!!",
    ],
)
def test_text_that_is_no_moment_is_refused_as_datetime_refuses_it(text: str) -> None:
    with pytest.raises(ValueError, match=r"format|range|must be"):
        epoch_ms(text)
    assert timestamp_ms(text) is None


def test_years_outside_the_supported_range() -> None:
    assert timestamp_ms("3000-01-01T00:00:00.000Z") is None  # parse_timestamp's bound
    assert timestamp_ms("1969-12-31T23:59:59.999Z") is None
    assert epoch_ms("1969-12-31T23:59:59.999Z") == -1
    assert format_ms(-1) == "1969-12-31T23:59:59.999Z"


TAIL = st.text(alphabet="0123456789+-٣ .Z", min_size=6, max_size=6)


@given(MOMENTS, st.lists(TAIL, min_size=1, max_size=30))
def test_texts_of_a_minute_read_lately_are_read_as_datetime_reads_them(
    ms: int, tails: list[str]
) -> None:
    """A canonical text whose minute was read before is read from its minute's number and its
    last characters: every such text — and every near miss (a 60th second, a sign, a digit
    from another script) — gives what ``datetime`` gives, or the same refusal."""
    minute = format_ms(ms)[:17]
    assert epoch_ms(format_ms(ms)) == ms  # the minute is now known
    for tail in tails:
        text = f"{minute}{tail[:2]}.{tail[3:6]}"[:23] + "Z"
        try:
            expected: int | None = (datetime.fromisoformat(text) - EPOCH) // timedelta(
                milliseconds=1
            )
        except ValueError:
            expected = None
        if expected is None:
            with pytest.raises(ValueError, match=r"."):
                epoch_ms(text)
        else:
            assert epoch_ms(text) == expected


@given(st.lists(st.integers(-719_162, 2_932_896), max_size=40))  # 0001-01-01 … 9999-12-31
def test_days_formatted_together_read_as_one_by_one(days: list[int]) -> None:
    """``format_days`` (a profile's day buckets at once, from the cache of days seen lately)
    gives what ``format_day`` gives for each, before and after the days are cached."""
    expected = [format_day(day) for day in days]
    assert format_days(days) == expected
    assert format_days(days) == expected
