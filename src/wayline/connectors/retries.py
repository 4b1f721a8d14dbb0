"""When to try a delivery again (pure).

A schedule like Svix's: after the first attempt, retries 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and
10 h later, each delay jittered by ±20 % so that receivers that came back are not hit by every
waiting delivery at once; a receiver's ``Retry-After`` is honoured when it asks for longer (up
to a day). After the last retry the delivery is exhausted. The random draw is derived from the
delivery id and the attempt number, so a replay after a crash waits exactly as long.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

SVIX_DELAYS_S = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


@dataclass(frozen=True)
class RetrySchedule:
    delays_s: tuple[float, ...] = SVIX_DELAYS_S
    jitter: float = 0.2
    max_retry_after_s: float = 86_400.0

    def next_delay(
        self, delivery_id: str, attempts: int, retry_after_s: float | None = None
    ) -> float | None:
        """Seconds before the next attempt once ``attempts`` (≥ 1) have failed; None when the
        delivery is exhausted."""
        if attempts < 1:
            raise ValueError("attempts counts the failed attempts: at least 1")
        if attempts > len(self.delays_s):
            return None
        spread = self.jitter * (2 * draw(delivery_id, attempts) - 1)
        delay = self.delays_s[attempts - 1] * (1 + spread)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_retry_after_s))
        return delay

    def scaled(self, factor: float) -> RetrySchedule:
        """The same shape, ``factor`` times as long (tests and demos compress it)."""
        return RetrySchedule(
            tuple(d * factor for d in self.delays_s), self.jitter, self.max_retry_after_s * factor
        )


def draw(delivery_id: str, attempt: int) -> float:
    """A number in [0, 1) fixed by the delivery and the attempt."""
    digest = hashlib.sha256(f"{delivery_id}\x00{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
