"""A local materialized view of ``wayline.profiles`` for the API process.

A background thread reads every partition of the compacted topic from the beginning (no consumer
group: each API process keeps its own full copy) and keeps two maps: profile id → snapshot, and
identifier → profile id. Lookups are dictionary reads, never a call into the workers.

Segment members are kept sorted (``SortedSet``), so a page of a segment's members costs its
size and a logarithm, not a sort of the whole segment per page.

A merge arrives as the survivor's snapshot (listing the merged identifiers) and a tombstone of the
merged-away id, in either order across partitions: an identifier points at whichever profile
listed it last, and a tombstone only removes the entries that still point at the removed id.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
from sortedcontainers import SortedSet

from wayline.streams.clients import KafkaConfig
from wayline.streams.tail import Tail

log = logging.getLogger(__name__)


class ProfileView:
    def __init__(self, kafka: KafkaConfig, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic
        self._profiles: dict[str, dict[str, Any]] = {}
        self._raw: dict[str, bytes] = {}  # the documents as the topic has them (JSON)
        self._index: dict[tuple[str, str], str] = {}
        self._members: dict[str, SortedSet] = {}  # segment → profile ids, sorted
        self._gone: set[str] = set()  # ids whose latest record is a tombstone (merged away)
        self.ready = threading.Event()  # set once every partition was read to its end
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="profile-view", daemon=True)
        self.records = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def wait_ready(self, timeout_s: float) -> bool:
        return self.ready.wait(timeout_s)

    def gone(self, profile_id: str) -> bool:
        """True when the profile was in the topic and is no more (merged away or deleted)."""
        with self._lock:
            return profile_id in self._gone

    def __len__(self) -> int:
        return len(self._profiles)

    def by_id(self, profile_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._profiles.get(profile_id)

    def raw_by_id(self, profile_id: str) -> bytes | None:
        """The document as JSON, as the topic has it (what a lookup answers, unparsed)."""
        with self._lock:
            return self._raw.get(profile_id)

    def raw_by_identifier(self, kind: str, value: str) -> bytes | None:
        with self._lock:
            pid = self._index.get((kind, value))
            return None if pid is None else self._raw.get(pid)

    def documents(self) -> dict[str, dict[str, Any]]:
        """Every profile document in the view, by profile id (a copy of the index)."""
        with self._lock:
            return dict(self._profiles)

    def by_identifier(self, kind: str, value: str) -> dict[str, Any] | None:
        with self._lock:
            pid = self._index.get((kind, value))
            return None if pid is None else self._profiles.get(pid)

    def size(self, segment: str) -> int:
        with self._lock:
            return len(self._members.get(segment, ()))

    def members(self, segment: str, after: str | None, limit: int) -> list[str]:
        """Profile ids in ``segment``, sorted, after the ``after`` cursor."""
        with self._lock:
            ids = self._members.get(segment)
            if ids is None:
                return []
            start = ids.bisect_right(after) if after else 0
            return list(ids.islice(start, start + limit))

    def apply(self, key: bytes, value: bytes | None) -> None:
        """Fold one record of the topic into the view."""
        pid = key.decode()
        with self._lock:
            old = self._profiles.pop(pid, None)
            self._raw.pop(pid, None)
            for ident in _idents(old):
                if self._index.get(ident) == pid:
                    del self._index[ident]
            for segment in (old or {}).get("segments", ()):
                members = self._members.get(segment)
                if members is not None:
                    members.discard(pid)
            if value is None:
                self._gone.add(pid)
                return
            self._gone.discard(pid)
            doc = orjson.loads(value)
            self._profiles[pid] = doc
            self._raw[pid] = value
            for ident in _idents(doc):
                self._index[ident] = pid
            for segment in doc.get("segments", ()):
                self._members.setdefault(segment, SortedSet()).add(pid)
        self.records += 1

    def _run(self) -> None:
        settings = {"enable.partition.eof": True, "fetch.wait.max.ms": 20}
        partitions = self._partitions(self.kafka.admin(log_level=0))
        start = [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions]
        tail = Tail(self.kafka, "profile view", start, settings)
        ended: set[int] = set()
        try:
            while not self._stop.is_set():
                for message in tail.consume(500, 0.1):
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            log.warning("profile view: %s", error)
                        elif not self.ready.is_set():
                            ended.add(message.partition() or 0)
                            if len(ended) == len(partitions):
                                self.ready.set()
                        continue
                    key = message.key()
                    if key is not None:
                        self.apply(key, message.value())
        except Exception:
            log.exception("profile view stopped")
        finally:
            tail.close()

    def _partitions(self, admin: Any) -> list[int]:
        while not self._stop.is_set():
            try:
                meta = admin.list_topics(timeout=5)  # all: naming one may create it
                found = meta.topics.get(self.topic)
                if found is not None and found.error is None and found.partitions:
                    return sorted(found.partitions)
            except Exception as exc:
                log.info("profile view waiting for %s: %s", self.topic, exc)
            self._stop.wait(1)
        return []


def _idents(doc: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not doc:
        return []
    return [(kind, str(v)) for kind, values in doc.get("identifiers", {}).items() for v in values]
