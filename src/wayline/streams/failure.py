"""The failure policy of every worker: a record a step cannot process is dead-lettered, the
partition moves on — until so many fail that the cause cannot be the records.

How a failure is found (``Worker``): a batch runs as usual; when a step raises, the batch is
rolled back (nothing of it was produced or stored) and run again one record at a time, each
its own small batch. The record whose batch raises again is dead-lettered with reason
``processing_error`` (worker, step, exception type and message in ``wayline.dlq.detail``, the
original bytes, topic, partition and offset in headers), its offset advances, and the others
are processed as if nothing happened. A timer whose handler raises is dead-lettered the same
way and dropped.

The limit (``FailureLimits``): ``consecutive`` failures in a row, or a share of at least
``ratio`` of the last ``window`` records once ``window // 10`` were seen, stops the worker
with one ``SystemicFailure`` line: a bug that fails every record must not quietly move the
whole stream to the dead-letter topic.
"""

from __future__ import annotations

import logging
import traceback
from collections import deque
from dataclasses import dataclass

from wayline.schemas.errors import ReasonCode, SystemicFailure
from wayline.streams.envelope import Envelope, Output, dead_letter
from wayline.streams.timers import Timer

log = logging.getLogger(__name__)

REASON = ReasonCode.PROCESSING_ERROR.value


@dataclass(frozen=True)
class FailureLimits:
    consecutive: int = 100
    ratio: float = 0.5
    window: int = 1_000


class FailurePolicy:
    """Counts outcomes, builds the dead letters, and stops a worker at the limit."""

    def __init__(self, worker: str, step: str, topic: str | None, limits: FailureLimits) -> None:
        self.worker = worker
        self.step = step
        self.topic = topic
        self.limits = limits
        self.failures = 0
        self._in_a_row = 0
        self._recent: deque[bool] = deque(maxlen=limits.window)  # True: failed

    def succeeded(self, records: int) -> None:
        if records:
            self._in_a_row = 0
            self._recent.extend([False] * min(records, self.limits.window))

    def record_failed(self, message: Envelope, exc: Exception) -> list[Output]:
        """The dead letter of ``message``; ``SystemicFailure`` past the limit."""
        detail = self._detail(exc)
        log.warning(
            "worker %s: %s[%d]@%d dead-lettered (%s): %s",
            self.worker,
            message.topic,
            message.partition,
            message.offset,
            REASON,
            detail,
            exc_info=exc,
        )
        self._failed(detail)
        if self.topic is None:
            log.error("worker %s has no dead-letter topic: the record is skipped", self.worker)
            return []
        return [dead_letter(message, self.topic, self.worker, REASON, detail)]

    def timer_failed(self, timer: Timer, partition: int, exc: Exception) -> list[Output]:
        detail = f"timer {timer.tag} due {timer.due_ms}: {self._detail(exc)}"
        log.warning("worker %s partition %d: %s", self.worker, partition, detail, exc_info=exc)
        self._failed(detail)
        if self.topic is None:
            return []
        headers = (
            ("wayline.dlq.reason", REASON.encode()),
            ("wayline.dlq.detail", detail.encode()[:4096]),
            ("wayline.dlq.worker", self.worker.encode()),
            ("wayline.dlq.partition", str(partition).encode()),
        )
        return [Output(self.topic, timer.key, timer.key, headers)]

    def _detail(self, exc: Exception) -> str:
        frames = traceback.extract_tb(exc.__traceback__)
        last = frames[-1] if frames else None
        where = f" at {last.filename.rsplit('/', 1)[-1]}:{last.lineno}" if last else ""
        return f"{self.worker}/{self.step}: {type(exc).__name__}: {exc}{where}"[:2000]

    def _failed(self, detail: str) -> None:
        self.failures += 1
        self._in_a_row += 1
        self._recent.append(True)
        limits = self.limits
        if self._in_a_row >= limits.consecutive:
            raise SystemicFailure(
                f"worker {self.worker}: {self._in_a_row} records in a row failed, the last with "
                f"{detail} — stopped; they are on the dead-letter topic with reason {REASON}"
            )
        seen = len(self._recent)
        failed = sum(self._recent)
        if seen >= max(1, limits.window // 10) and failed / seen >= limits.ratio:
            raise SystemicFailure(
                f"worker {self.worker}: {failed} of the last {seen} records failed, the last "
                f"with {detail} — stopped; they are on the dead-letter topic with reason {REASON}"
            )
