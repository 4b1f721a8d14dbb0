"""Stall detection: a worker with lag that makes no progress for a while is reported."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class Watchdog:
    """``progress(n)`` after each batch; ``check(lag)`` says whether the worker is stalled: lag
    above zero and nothing processed for ``stall_after_s``. Each stall is reported once."""

    def __init__(self, worker: str, stall_after_s: float) -> None:
        self.worker = worker
        self.stall_after_s = stall_after_s
        self.last_progress = time.monotonic()
        self.stalled = False

    def progress(self, processed: int) -> None:
        if processed:
            self.last_progress = time.monotonic()
            self.stalled = False

    def check(self, lag: int, now: float | None = None) -> bool:
        idle = (now if now is not None else time.monotonic()) - self.last_progress
        if lag > 0 and idle >= self.stall_after_s and not self.stalled:
            self.stalled = True
            log.warning(
                "worker %s stalled: %d messages behind, no progress for %.0fs",
                self.worker,
                lag,
                idle,
            )
            return True
        return False
