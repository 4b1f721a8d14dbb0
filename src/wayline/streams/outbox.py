"""A worker's producer: a batch's records sent and every acknowledgement awaited, or nothing.

``send`` is steps 3 and 4 of a batch (``streams.worker``): it returns only when the broker has
acknowledged every record, and raises ``RetryableError`` otherwise, so the worker commits
nothing it did not write. ``until_sent`` runs a whole batch again after such a fault, with
backoff and a fresh producer each time (an idempotent producer that lost its state may refuse
every later record), until the broker takes it or the worker stops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

import tenacity
from confluent_kafka import KafkaError, Message, Producer

from wayline.schemas.errors import RetryableError
from wayline.streams.clients import KafkaConfig, produce_output
from wayline.streams.envelope import Output

log: Final = logging.getLogger(__name__)

ACK_TIMEOUT_S: Final = 30.0


class Outbox:
    def __init__(self, kafka: KafkaConfig, worker: str, stop: threading.Event) -> None:
        self.kafka = kafka
        self.worker = worker
        self._stop = stop
        self._producer: Producer = kafka.producer()
        self.retries = 0  # batches retried after a broker fault
        self.retrying = ""  # the fault being waited out now

    def until_sent(self, run: Callable[..., None], *args: object) -> None:
        """``run(*args)`` until it does not raise ``RetryableError`` (a broker away, a timeout,
        a producer that lost its state), with exponential backoff up to 10 s; stop ends the
        waiting (the error is raised)."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(RetryableError),
            wait=tenacity.wait_exponential(multiplier=0.5, max=10),
            stop=lambda _state: self._stop.is_set(),
            sleep=self._pause,
            before_sleep=self._before_retry,
            reraise=True,
        )
        retrying(run, *args)
        if self.retrying:
            log.info("worker %s: %s is over; going on", self.worker, self.retrying[:80])
            self.retrying = ""

    def send(self, outputs: list[Output], what: str) -> dict[tuple[str, int], int]:
        """Produce and wait for every acknowledgement; the next offset per partition written."""
        producer = self._producer
        failures: list[KafkaError] = []
        ends: dict[tuple[str, int], int] = {}

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failures.append(err)
                return
            where = (msg.topic() or "", msg.partition() or 0)
            ends[where] = max(ends.get(where, 0), (msg.offset() or 0) + 1)

        for out in outputs:
            produce_output(producer, out, delivered)
        deadline = time.monotonic() + ACK_TIMEOUT_S
        remaining = producer.flush(1)
        while remaining and time.monotonic() < deadline and not self._stop.is_set():
            remaining = producer.flush(1)  # a second at a time: stop() is heard within one
        if remaining or failures:
            raise RetryableError(
                f"worker {self.worker}: {remaining} {what} unacknowledged, {len(failures)} "
                f"failed ({failures[:1]}); nothing committed"
            )
        return ends

    def _pause(self, seconds: float) -> None:
        self._stop.wait(seconds)  # stop() cuts a backoff short

    def _before_retry(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "worker %s: %s; retry %d in %.1f s",
            self.worker,
            error,
            state.attempt_number,
            state.upcoming_sleep,
        )
        self.retries += 1
        self.retrying = str(error)[:300]
        self.renew()

    def renew(self) -> None:
        """Drop what the old producer still holds (the retry sends it again) for a new one."""
        self._producer.purge()
        self._producer.flush(0)
        self._producer = self.kafka.producer()

    def close(self) -> None:
        self._producer.flush(5)
        self._producer.close()  # leave the broker now, not whenever the object is collected
