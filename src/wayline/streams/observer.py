"""Watches Wayline's output topics and keeps the numbers the live view shows.

It reads every partition of ``events``, ``events.dlq``, ``profiles``, ``segments`` and
``triggers`` from the beginning by assignment (no consumer group, so no join delay). Segment
sizes, profile counts and triggers appear as soon as the workers that write them run.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from wayline.schemas.timestamps import timestamp_ms
from wayline.schemas.topics import Topics
from wayline.streams.clients import KafkaConfig
from wayline.streams.tail import Tail


@dataclass
class Snapshot:
    """What the live view draws; a copy, safe to read from another thread."""

    validated: int = 0
    dead_lettered: int = 0
    rate_per_s: float = 0.0
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0
    customers_seen: int = 0
    profiles: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    by_event: dict[str, int] = field(default_factory=dict)
    dlq_reasons: dict[str, int] = field(default_factory=dict)
    segment_sizes: dict[str, int] = field(default_factory=dict)
    triggers_fired: int = 0
    latest_triggers: list[str] = field(default_factory=list)
    deliveries: dict[str, int] = field(default_factory=dict)  # "status" or "status: reason"


class Observer:
    """A background thread that folds the output topics into a ``Snapshot``."""

    def __init__(self, kafka: KafkaConfig, topics: Topics) -> None:
        self.kafka = kafka
        self.topics = topics
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="observer", daemon=True)
        self._state = Snapshot()
        self._keys: set[bytes] = set()
        self._profiles: set[bytes] = set()
        self._members: dict[str, set[str]] = {}
        self._channels: Counter[str] = Counter()
        self._events: Counter[str] = Counter()
        self._reasons: Counter[str] = Counter()
        self._recent: deque[tuple[float, float]] = deque(maxlen=20000)
        self._triggers: deque[str] = deque(maxlen=8)
        self._seen: set[str] = set()  # ids of transitions and triggers: a repeat counts once
        self._outcomes: dict[str, str] = {}  # delivery id → its latest status line

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def snapshot(self) -> Snapshot:
        now = time.time()
        with self._lock:
            window = [lat for at, lat in self._recent if now - at <= 5.0]
            latencies = sorted(window)
            state = Snapshot(**vars(self._state))
        state.rate_per_s = len(window) / 5.0
        if latencies:
            state.latency_p50_ms = latencies[len(latencies) // 2]
            state.latency_p99_ms = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        return state

    def _run(self) -> None:
        names = [self.topics.events, self.topics.dlq, self.topics.profiles]
        names += [self.topics.segments, self.topics.triggers, self.topics.deliveries]
        metadata = self.kafka.admin().list_topics(timeout=10)
        start = [
            TopicPartition(name, p, OFFSET_BEGINNING)
            for name in names
            if name in metadata.topics
            for p in metadata.topics[name].partitions
        ]
        tail = Tail(self.kafka, "live view", start, {})
        try:
            while not self._stop.is_set():
                for message in tail.consume(1000, 0.1):
                    if message.error() is None:  # partition EOF and transient errors: skip
                        self._fold(message)
        finally:
            tail.close()

    def _fold(self, message: Any) -> None:
        topic, key, value = message.topic(), message.key(), message.value()
        with self._lock:
            if topic == self.topics.events:
                if dict(message.headers() or ()).get("wayline.kind") != b"tick":  # not a mark
                    self._fold_event(key, value)
            elif topic == self.topics.dlq:
                self._state.dead_lettered += 1
                reason = dict(message.headers() or ()).get("wayline.dlq.reason", b"?")
                self._reasons[reason.decode()] += 1
                self._state.dlq_reasons = dict(self._reasons)
            elif topic == self.topics.profiles:
                (self._profiles.add if value else self._profiles.discard)(key)
                self._state.profiles = len(self._profiles)
            elif topic == self.topics.segments and value:
                for transition in orjson.loads(value).get("transitions") or ():
                    if self._first(transition):
                        self._fold_segment(transition)
            elif topic == self.topics.deliveries and value:
                self._fold_delivery(orjson.loads(value))
            elif topic == self.topics.triggers and value:
                trigger = orjson.loads(value)
                if not self._first(trigger):
                    return
                self._state.triggers_fired += 1
                line = f"{trigger.get('type', '?')}  {trigger.get('subject', '')}"
                self._triggers.appendleft(f"{trigger.get('time', '')[11:19]}  {line}")
                self._state.latest_triggers = list(self._triggers)

    def _first(self, record: dict[str, Any]) -> bool:
        """True for the first copy of a transition or trigger (a crash can repeat one, with the
        same id)."""
        ident = str(record.get("id", ""))
        if ident in self._seen:
            return False
        self._seen.add(ident)
        return True

    def _fold_event(self, key: bytes | None, value: bytes) -> None:
        event = orjson.loads(value)
        self._state.validated += 1
        if key:
            self._keys.add(key)
        self._state.customers_seen = len(self._keys)
        self._channels[event["context"]["channel"]] += 1
        self._events[event.get("event") or event["type"]] += 1
        self._state.by_channel = dict(self._channels)
        self._state.by_event = dict(self._events.most_common(8))
        received = timestamp_ms(event["receivedAt"]) or time.time() * 1000
        self._recent.append((time.time(), max(0.0, time.time() * 1000 - received)))

    def _fold_delivery(self, record: dict[str, Any]) -> None:
        """Each delivery counted once, under its latest status (deferred until it is sent)."""
        status = str(record.get("status"))
        shown = status if status in ("sent", "delivered") else f"{status}: {record.get('reason')}"
        self._outcomes[str(record.get("delivery_id"))] = shown
        self._state.deliveries = dict(Counter(self._outcomes.values()))

    def _fold_segment(self, transition: dict[str, Any]) -> None:
        members = self._members.setdefault(str(transition.get("segment")), set())
        profile = str(transition.get("profile_id"))
        if transition.get("transition") == "exit":
            members.discard(profile)
        else:
            members.add(profile)
        self._state.segment_sizes = {name: len(m) for name, m in sorted(self._members.items())}
