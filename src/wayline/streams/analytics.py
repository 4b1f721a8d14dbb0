"""The ``analytics`` worker: every output topic → ClickHouse (``connectors.warehouse``).

Per batch and task (partition), the rows of each table are inserted once, with an insert
deduplication token naming exactly the records they came from (topic, partition, first and
last offset, and a digest of their keys and values, so that a topic created again with the same
offsets is not taken for a repeat): a batch run again after a fault inserts nothing twice. A
replay after a crash may cut batches differently; its rows then repeat with the same source
partition and offset, which the ReplacingMergeTree folds away (queries read ``FINAL``).
Offsets are committed only after the inserts returned. ClickHouse unreachable: the batch is
retried with backoff (``RetryableError``) and the lag grows; nothing is skipped.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson

from wayline.connectors.clickhouse import ClickHouseError, Queries
from wayline.connectors.warehouse import TABLES, Row
from wayline.schemas.errors import RetryableError
from wayline.schemas.topics import Topics
from wayline.streams.envelope import Envelope, Output
from wayline.streams.task import TaskContext

log = logging.getLogger(__name__)


class AnalyticsStep:
    def __init__(self, topics: Topics, client: Callable[[], Queries], database: str) -> None:
        self.by_topic = {topics.name(suffix): table for suffix, table in TABLES.items()}
        self.columns = {t.name: list(t.columns) for t in TABLES.values()}
        self.client_of = client
        self.database = database
        self._client: Queries | None = None
        # partition → table → rows; and partition → topic → (first offset, last offset)
        self._rows: dict[int, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
        self._spans: dict[int, dict[str, tuple[int, int]]] = defaultdict(dict)
        self._digests: dict[int, Any] = {}
        self.inserted = 0

    def counters(self) -> dict[str, int]:
        return {"rows_inserted": self.inserted}

    def process(self, message: Envelope, ctx: TaskContext) -> list[Output]:
        self.add(message, ctx.partition)
        return []

    def end_batch(self, ctx: TaskContext) -> list[Output]:
        self.flush(ctx.partition)
        return []

    def add(self, message: Envelope, task: int) -> None:
        """Keep the row of ``message`` (of the task for partition ``task``) for ``flush``."""
        table = self.by_topic.get(message.topic)
        if table is None:
            return
        doc: Any = orjson.loads(message.value) if message.value else None  # b"": a tick
        headers = {k: v for k, v in message.headers}
        for row in table.rows(message.key, doc, headers):
            self._rows[task][table.name].append([*row, message.partition, message.offset])
        first, _last = self._spans[task].get(message.topic, (message.offset, 0))
        self._spans[task][message.topic] = (first, message.offset)
        digest = self._digests.get(task)
        if digest is None:
            digest = self._digests[task] = hashlib.blake2b(digest_size=12)
        digest.update(message.key or b"")
        digest.update(message.value or b"")

    def pending(self) -> list[int]:
        """The tasks with records not flushed yet."""
        return list(self._spans)

    def flush(self, task: int) -> None:
        """Insert the rows kept for ``task``, one INSERT per table (``RetryableError`` when
        ClickHouse does not take them; inserting them again adds nothing)."""
        rows = self._rows.get(task, {})
        spans = self._spans.get(task, {})
        digest = self._digests.get(task)
        token = ";".join(f"{t}:{task}:{a}-{b}" for t, (a, b) in sorted(spans.items()))
        token += f"#{digest.hexdigest() if digest is not None else ''}"
        try:
            for name, batch in sorted(rows.items()):
                self._connected().insert(f"{self.database}.{name}", batch,
                                         column_names=self.columns[name],
                                         settings={"insert_deduplication_token":
                                                   f"{name}|{token}"})  # fmt: skip
                self.inserted += len(batch)
        except (ClickHouseError, OSError) as exc:
            self._client = None  # a new connection for the retry
            raise RetryableError(f"ClickHouse did not take the batch: {exc}") from exc
        self._rows.pop(task, None)
        self._spans.pop(task, None)
        self._digests.pop(task, None)

    def abort_batch(self) -> None:
        self._rows.clear()
        self._spans.clear()
        self._digests.clear()

    def _connected(self) -> Queries:
        if self._client is None:
            self._client = self.client_of()
        return self._client
