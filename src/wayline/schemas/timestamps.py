"""Timestamp parsing and the clock-skew correction of the Segment spec. Pure: no clock reads."""

from __future__ import annotations

from datetime import UTC, datetime

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2999, 12, 31, tzinfo=UTC)


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
