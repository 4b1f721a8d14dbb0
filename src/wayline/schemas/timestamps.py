"""Timestamp parsing and the clock-skew correction of the Segment spec. Pure: no clock reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2999, 12, 31, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_AFTER_9999_MS: Final = 253_402_300_800_000
_DAYS: Final[dict[int, str]] = {}  # day number since 1970 → "2026-11-23"
_MINUTES: Final[dict[int, str]] = {}  # minute number since 1970 → "2026-11-23T10:00:"
_MINUTE_OF: Final[dict[str, int]] = {}  # and back, for the minutes of canonical texts read
_TWO: Final = tuple(f"{n:02d}" for n in range(60))
_MILLIS: Final = tuple(f".{n:03d}Z" for n in range(1000))


def parse_timestamp(value: object) -> datetime | None:
    """Parse an ISO 8601 string to an aware UTC datetime; None when it is not one.

    A timestamp without a zone is taken as UTC (what the Segment libraries send is UTC).
    Times before 1970 or after 2999 are refused: no event has them, and arithmetic on them
    (the clock-skew correction) would overflow.
    """
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:  # e.g. year 1 with a positive offset
        return None
    return parsed if EARLIEST <= parsed <= LATEST else None


def format_timestamp(value: datetime) -> str:
    """UTC, millisecond precision, ``Z`` suffix: ``2026-11-23T10:00:00.000Z``."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_time(
    received_at: datetime, sent_at: datetime | None, original: datetime | None
) -> datetime:
    """The event time Wayline uses: Segment's rule, with two guards.

    - ``sentAt`` and an original time given: ``receivedAt - (sentAt - original)``, which removes
      the client's clock offset (a phone set an hour fast still gets the right time).
    - only the original time: it is used as is (server-side libraries with a good clock).
    - neither: ``receivedAt``.
    An event time after ``receivedAt`` is impossible and is clamped to ``receivedAt``; one
    before 1970 (a wildly wrong client clock) is clamped to 1970.
    """
    if original is None:
        return received_at
    when = received_at - (sent_at - original) if sent_at is not None else original
    return max(EARLIEST, min(when, received_at))


def epoch_ms(text: str) -> int:
    """Epoch milliseconds of an ISO 8601 timestamp (one without a zone is UTC), exact — not
    through a float, which far from 1970 falls a millisecond short. ValueError when it is not
    one.

    Every event carries its time in the canonical form (``format_ms``), read again by each
    worker: such a text whose minute was read lately is its minute's number plus the seconds
    and milliseconds it ends with (a fifth of the cost of parsing a datetime)."""
    if len(text) == 24 and text[19] == "." and text[23] == "Z":
        minute = _MINUTE_OF.get(text[:17])
        if minute is not None:
            second, milli = text[17:19], text[20:23]
            if second.isascii() and second.isdigit() and milli.isascii() and milli.isdigit():
                seconds = int(second)
                if seconds < 60:
                    return minute * 60_000 + seconds * 1000 + int(milli)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    ms = (parsed - EARLIEST) // _MS
    if len(text) == 24 and 0 <= ms < _AFTER_9999_MS and format_ms(ms) == text:  # canonical
        if len(_MINUTE_OF) >= 4096:
            _MINUTE_OF.clear()
        _MINUTE_OF[text[:17]] = ms // 60_000
    return ms


def timestamp_ms(value: object) -> int | None:
    """``parse_timestamp`` as exact epoch milliseconds."""
    parsed = parse_timestamp(value)
    return None if parsed is None else (parsed - EARLIEST) // _MS


def format_ms(ms: int) -> str:
    """Epoch milliseconds as the canonical ``2026-11-23T10:00:00.000Z`` (``epoch_ms`` reads
    it back to the same number). Every document and transition carries a few, so the minute's
    text is kept for the minutes seen lately and the rest taken from tables."""
    if not 0 <= ms < _AFTER_9999_MS:  # before 1970 or after 9999: the general way
        return format_timestamp(EARLIEST + timedelta(milliseconds=ms))
    minute = ms // 60_000  # compiled: // and - on ints are native, divmod is a generic call
    head = _MINUTES.get(minute)
    if head is None:
        if len(_MINUTES) >= 4096:
            _MINUTES.clear()
        day, of_day = minute // 1440, minute % 1440
        head = _MINUTES[minute] = f"{format_day(day)}T{_TWO[of_day // 60]}:{_TWO[of_day % 60]}:"
    rest = ms - minute * 60_000
    second = rest // 1000
    return f"{head}{_TWO[second]}{_MILLIS[rest - second * 1000]}"


def format_days(days: list[Any]) -> list[str]:
    """``format_day`` of each day number (a profile's day buckets); the days seen lately are
    read from their cache as the numbers are (compiled: none unboxed and boxed again)."""
    cache: dict[Any, str] = _DAYS
    return [cache.get(day) or format_day(day) for day in days]


def format_day(day: int) -> str:
    """A day number since 1970-01-01 as ``2026-11-23`` (the days seen lately kept)."""
    text = _DAYS.get(day)
    if text is None:
        if len(_DAYS) >= 4096:
            _DAYS.clear()
        text = _DAYS[day] = (EARLIEST + timedelta(days=day)).date().isoformat()
    return text
