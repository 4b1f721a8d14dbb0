"""The asyncio producer of the HTTP services: send a request's records, await every ack.

It wraps confluent-kafka's idempotent, acks=all producer (the same settings and murmur2
partitioner as every other Wayline producer) and resolves asyncio futures from its delivery
reports, which a background thread polls. aiokafka is not used here: its idempotent producer
fails against the embedded broker (InitProducerId is answered with an unknown error, see
``tests/pipeline/test_broker_quirks.py``), and librdkafka is several times cheaper per message.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from wayline.streams.clients import KafkaConfig

log = logging.getLogger(__name__)


class Record(Protocol):
    @property
    def topic(self) -> str: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes: ...

    @property
    def headers(self) -> list[tuple[str, bytes]]: ...


# Delivery errors after which this producer's idempotence state is useless: a broker that lost
# it (restarted empty), or one that fences producers after a pause (the embedded broker does).
# A new producer (new producer id) is the way out; retrying with this one never succeeds.
STALE_PRODUCER = {
    KafkaError.PRODUCER_FENCED,
    KafkaError.UNKNOWN_PRODUCER_ID,
    KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.INVALID_PRODUCER_ID_MAPPING,
}


class Unavailable(Exception):
    """The broker did not acknowledge within the timeout (or could not be reached)."""


class AsyncProducer:
    """``send`` returns once every record is acknowledged, or raises ``Unavailable`` after
    ``timeout_s`` — a caller never waits longer, and never hears "done" for a lost record.

    The producer is replaced after a fatal error, and after ``replace_after`` sends in a row
    went unacknowledged: after an outage librdkafka can lose its way to a broker that came back
    (it drops the broker's handle and waits for it for good), and a new client finds it.
    """

    def __init__(self, kafka: KafkaConfig, timeout_s: float = 10.0, replace_after: int = 2) -> None:
        self.kafka = kafka
        self.timeout_s = timeout_s
        self.replace_after = replace_after
        self.replaced = 0  # producers replaced after a fatal error or unacknowledged sends
        self._unacknowledged = 0  # sends in a row
        self._fatal = threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._producer = self._new_producer()
        self._poller = threading.Thread(target=self._poll, name="producer-acks", daemon=True)
        self._poller.start()

    def _new_producer(self) -> Producer:
        self._fatal.clear()
        return self.kafka.producer(
            **{
                "linger.ms": 2,
                "message.timeout.ms": int(self.timeout_s * 1000),
                "error_cb": self._on_error,
            }
        )

    def _on_error(self, err: KafkaError) -> None:
        # A fatal error (the idempotent producer's state was lost, e.g. a broker that came back
        # empty answers UNKNOWN_PRODUCER_ID) makes this producer unusable for good.
        if (err.fatal() or err.code() in STALE_PRODUCER) and not self._fatal.is_set():
            log.error("producer hit a fatal error, it will be replaced: %s", err)
            self._fatal.set()

    def _poll(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                producer = self._producer
            try:
                producer.poll(0.05)
            except KafkaException as exc:  # librdkafka raises a fatal error from poll as well
                error = exc.args[0] if exc.args else None
                if isinstance(error, KafkaError) and error.fatal():
                    self._on_error(error)
                else:
                    log.warning("producer poll: %s", exc)
                self._stop.wait(0.05)

    def _healthy_producer(self) -> Producer:
        """The current producer, replaced first when it hit a fatal error. Records still queued
        in the dead one fail with an error, so their callers already got a 503."""
        with self._lock:
            if self._fatal.is_set():
                dead, self._producer = self._producer, self._new_producer()
                self.replaced += 1
                dead.purge()
                dead.poll(0)
            return self._producer

    async def send(self, records: Sequence[Record]) -> None:
        if not records:
            return
        loop = asyncio.get_running_loop()
        producer = self._healthy_producer()
        futures: list[asyncio.Future[None]] = []
        for record in records:
            future: asyncio.Future[None] = loop.create_future()
            futures.append(future)
            self._produce(producer, record, _resolver(loop, future, self._on_error))
        try:
            await asyncio.wait_for(asyncio.gather(*futures), self.timeout_s)
        except (KafkaException, TimeoutError) as exc:
            log.warning("broker did not acknowledge %d records: %r", len(records), exc)
            self._unacknowledged += 1
            if self._unacknowledged >= self.replace_after and not self._fatal.is_set():
                log.warning(
                    "producer: %d sends in a row unacknowledged; a new producer",
                    self._unacknowledged,
                )
                self._unacknowledged = 0
                self._fatal.set()
            raise Unavailable(f"the broker did not acknowledge: {exc!r}") from None
        self._unacknowledged = 0

    def _produce(self, producer: Producer, record: Record, on_delivery: Any) -> None:
        headers: list[tuple[str, str | bytes | None]] = list(record.headers)
        try:
            producer.produce(
                record.topic,
                record.value,
                record.key,
                on_delivery=on_delivery,
                headers=headers,
            )
        except BufferError:  # the local queue is full: the broker is not keeping up
            raise Unavailable("producer queue full; the broker is not keeping up") from None
        except KafkaException as exc:
            raise Unavailable(f"cannot produce: {exc}") from None

    async def stop(self) -> None:
        remaining = await asyncio.to_thread(self._producer.flush, self.timeout_s)
        if remaining:
            log.warning("%d records unacknowledged at shutdown", remaining)
        self._stop.set()
        self._poller.join(5)
        with self._lock:
            self._producer.close()


def _resolver(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[None],
    on_error: Callable[[KafkaError], None],
) -> Any:
    def delivered(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            on_error(err)
        loop.call_soon_threadsafe(_settle, future, err)

    return delivered


def _settle(future: asyncio.Future[None], err: KafkaError | None) -> None:
    if future.done():
        return
    if err is None:
        future.set_result(None)
    else:
        future.set_exception(KafkaException(err))
