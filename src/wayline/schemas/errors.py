"""Every error Wayline raises on purpose, grouped by how it is handled.

- ``InvalidEvent``: bad input. The message goes to the dead-letter topic with a ``ReasonCode``;
  the worker carries on and the offset still advances.
- Any other exception of a step (a bug, or input no check foresaw): the runtime's failure
  policy (``streams.failure``) dead-letters the record with ``processing_error`` and the
  partition moves on; ``SystemicFailure`` when too many records fail: the worker stops with
  one line.
- ``RetryableError``: a sink or broker that may recover. Retried with backoff.
- ``BackPressure``: a downstream that is full. The caller pauses, nothing is dropped.
- ``ConfigError``: a broken setting or config file. Start-up stops with a message that names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ReasonCode(StrEnum):
    """Why a message was dead-lettered; a public contract (header ``wayline.dlq.reason``)."""

    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    EVENT_TOO_LARGE = "event_too_large"
    UNSUPPORTED_TYPE = "unsupported_type"
    MISSING_IDENTIFIER = "missing_identifier"
    INVALID_FIELD = "invalid_field"
    INVALID_TIMESTAMP = "invalid_timestamp"
    BLOCKED_IDENTIFIER = "blocked_identifier"  # every identifier is a junk value
    NESTED_TOO_DEEP = "nested_too_deep"  # objects/arrays nested beyond the limit
    PROCESSING_ERROR = "processing_error"  # a step raised: worker, step and exception in detail


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field, addressed by a dotted path such as ``context.channel``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class WaylineError(Exception):
    """Base class of every error Wayline raises on purpose."""


class InvalidEvent(WaylineError):
    """The input cannot become a canonical event; dead-letter it with ``reason``."""

    def __init__(self, reason: ReasonCode, errors: list[FieldError]) -> None:
        self.reason = reason
        self.errors = errors
        super().__init__(f"{reason}: " + "; ".join(str(e) for e in errors))


class RetryableError(WaylineError):
    """A failure that may go away: retry with backoff."""


class BackPressure(WaylineError):
    """A downstream is full: pause and try again later; drop nothing."""


class SystemicFailure(WaylineError):
    """So many records failed in a row (or in a recent window) that the cause is not the
    records: the worker stops with this one-line message instead of dead-lettering the stream."""


class ConfigError(WaylineError):
    """A setting or config key is wrong; the message names it. Start-up stops."""
