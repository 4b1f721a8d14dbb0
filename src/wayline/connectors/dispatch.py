"""Connector calls off the worker's thread: an asyncio loop that sends and reports back.

The delivery worker decides and records; only after its ledger entry "sending" is acknowledged
does it hand the message to ``Dispatcher.submit``. The loop sends it with the channel's connector
(webhook, SMTP, SMS, Slack) and queues the ``Result``; the worker collects the results of its
partitions with ``results(partition)`` at the start of a batch and records them. Nothing here
knows Kafka, the policy or the ledger.

Back-pressure: at most ``limit`` messages are in flight; ``submit`` blocks while the loop is
full, so a slow receiver slows the worker's input instead of growing a queue in memory.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from wayline.connectors.email import SmtpServer, send_email
from wayline.connectors.slack import send_slack
from wayline.connectors.sms import SmsAccount, send_sms
from wayline.connectors.templates import Rendered
from wayline.connectors.webhook import Attempt, Network, WebhookEndpoint, WebhookSender

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlackTarget:
    url: str
    allow_networks: tuple[Network, ...] = ()
    timeout_s: float = 15.0


Target = WebhookEndpoint | SmtpServer | SmsAccount | SlackTarget


@dataclass(frozen=True)
class Job:
    """One connector call: who, what, and where its result goes back to."""

    partition: int
    delivery_id: str
    target: Target
    to: str | None  # the e-mail address or phone number; None for webhooks and Slack
    rendered: Rendered | None  # None: a webhook gets ``body``
    body: bytes = b""
    unsubscribe_url: str | None = None


@dataclass(frozen=True)
class Result:
    job: Job
    attempt: Attempt
    at_ms: int


class Dispatcher:
    """``start``, ``submit`` jobs, collect ``results``; ``close`` waits for what is in flight."""

    def __init__(self, limit: int = 64, wall_clock: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self.wall_clock = wall_clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._room = threading.Semaphore(limit)
        self._lock = threading.Lock()
        self._results: dict[int, list[Result]] = defaultdict(list)
        self._in_flight: set[str] = set()
        self._sender: WebhookSender | None = None

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="dispatch", daemon=True)
        self._thread.start()
        self._sender = asyncio.run_coroutine_threadsafe(_sender(), self._loop).result(10)

    def in_flight(self, delivery_id: str) -> bool:
        with self._lock:
            return delivery_id in self._in_flight

    def known(self, delivery_id: str) -> bool:
        """In flight, or its result is waiting to be collected."""
        with self._lock:
            if delivery_id in self._in_flight:
                return True
            return any(
                r.job.delivery_id == delivery_id for rs in self._results.values() for r in rs
            )

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def submit(self, job: Job, stop: threading.Event | None = None) -> bool:
        """Queue ``job``, waiting for room; False when ``stop`` was set while waiting."""
        while not self._room.acquire(timeout=0.1):
            if stop is not None and stop.is_set():
                return False
        with self._lock:
            self._in_flight.add(job.delivery_id)
        assert self._loop is not None, "start() the dispatcher first"
        asyncio.run_coroutine_threadsafe(self._run(job), self._loop)
        return True

    def results(self, partition: int) -> list[Result]:
        with self._lock:
            return self._results.pop(partition, [])

    def drop(self, partition: int) -> None:
        """Forget the results of a partition this worker no longer owns."""
        with self._lock:
            self._results.pop(partition, None)

    def drain(self, timeout_s: float = 20.0) -> bool:
        """Wait for the calls under way (True when none is left)."""
        deadline = time.monotonic() + timeout_s
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.busy

    def close(self) -> None:
        """Stop the loop; calls still under way are abandoned (recorded as interrupted)."""
        sender, self._sender = self._sender, None
        loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        if sender is not None:
            asyncio.run_coroutine_threadsafe(sender.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        if not thread.is_alive():
            loop.close()

    async def _run(self, job: Job) -> None:
        at = datetime.fromtimestamp(self.wall_clock(), UTC)
        try:
            attempt = await self._send(job, at)
        except Exception as exc:  # a connector bug must not lose the delivery's outcome
            log.exception("delivery %s: the connector failed", job.delivery_id)
            attempt = Attempt("failed", f"connector error: {type(exc).__name__}: {exc}")
        result = Result(job, attempt, int(self.wall_clock() * 1000))
        with self._lock:
            self._results[job.partition].append(result)
            self._in_flight.discard(job.delivery_id)
        self._room.release()

    async def _send(self, job: Job, at: datetime) -> Attempt:
        target, sender = job.target, self._sender
        assert sender is not None
        text = job.rendered.text if job.rendered else None
        if isinstance(target, WebhookEndpoint):
            return await sender.send(target, job.delivery_id, job.body, at)
        if isinstance(target, SmtpServer):
            assert job.to is not None
            assert job.rendered is not None
            return await send_email(target, job.to, job.rendered, job.delivery_id,
                                    job.unsubscribe_url)  # fmt: skip
        if isinstance(target, SmsAccount):
            assert job.to is not None
            return await send_sms(sender, target, job.to, text or "", at)
        return await send_slack(sender, target.url, text or "", at, (), target.allow_networks,
                                target.timeout_s)  # fmt: skip


async def _sender() -> WebhookSender:
    return WebhookSender()  # its connection pool belongs to the dispatch loop
