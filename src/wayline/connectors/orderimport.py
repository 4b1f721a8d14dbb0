"""``wayline import orders FILE --source NAME``: an order file onto ``wayline.events.raw``.

Rows are validated here, so a bad row is reported with its line number instead of surfacing
later on the dead-letter topic; rejected rows go to ``<file>.rejected.<ext>`` beside the input,
each with its reason. The import returns once the broker acknowledged every accepted order.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from wayline.config.workspace import Source
from wayline.connectors.orders import Row, RowError, file_format, order_event, read_rows
from wayline.schemas.errors import RetryableError
from wayline.schemas.topics import Topics
from wayline.streams.admin import wait_until_ready
from wayline.streams.clients import KafkaConfig


@dataclass
class ImportResult:
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rejected_file: Path | None = None

    @property
    def total(self) -> int:
        return self.accepted + sum(self.rejected.values())


def import_orders(
    path: Path, source: Source, kafka: KafkaConfig, topics: Topics, console: Console
) -> ImportResult:
    wait_until_ready(kafka, timeout_s=15)  # a clear error now rather than a stuck flush later
    result = ImportResult()
    rejected_rows: list[tuple[Row, RowError]] = []
    failures: list[KafkaError] = []
    producer = kafka.producer(**{"linger.ms": 20})
    headers = [("wayline.source", source.name.encode()), ("wayline.channel", b"store")]
    received = datetime.now(UTC)

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(err)

    rows = sum(1 for _ in read_rows(path))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task(f"importing {path.name}", total=rows)
        for row in read_rows(path):
            try:
                event = order_event(row, source.name, received)
            except RowError as exc:
                rejected_rows.append((row, exc))
                result.rejected[exc.reason] += 1
            else:
                key = event["messageId"].encode()
                _produce(producer, topics.raw, key, orjson.dumps(event), headers, delivered)
                result.accepted += 1
            progress.advance(task)
        progress.update(task, description="waiting for the broker's acknowledgements")
        remaining = producer.flush(60)
    if remaining or failures:
        raise RetryableError(
            f"the broker did not acknowledge {remaining + len(failures)} orders "
            f"({failures[:1]}); importing the file again is safe (orders are deduplicated)"
        )
    if rejected_rows:
        result.rejected_file = write_rejected(path, rejected_rows)
    return result


def _produce(
    producer: Any, topic: str, key: bytes, value: bytes, headers: list[Any], delivered: Any
) -> None:
    while True:
        try:
            producer.produce(topic, value, key, headers=headers, on_delivery=delivered)
            return
        except BufferError:
            producer.poll(0.1)


def write_rejected(path: Path, rows: list[tuple[Row, RowError]]) -> Path:
    """``orders.csv`` → ``orders.rejected.csv`` with ``line``, ``reason`` and ``error`` first."""
    target = path.with_name(f"{path.stem}.rejected{path.suffix}")
    if file_format(path) == "csv":
        names = ["line", "reason", "error"]
        for row, _ in rows:
            names += [k for k in row.values if k not in names]
        with target.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=names)
            writer.writeheader()
            for row, error in rows:
                writer.writerow(
                    {"line": row.number + 1, "reason": error.reason, "error": str(error)}
                    | row.values
                )
        return target
    with target.open("wb") as handle:
        for row, error in rows:
            record = {"line": row.number, "reason": error.reason, "error": str(error)}
            handle.write(orjson.dumps(record | {"row": row.values}) + b"\n")
    return target


def summary(result: ImportResult, path: Path) -> Table:
    table = Table(title=f"{path.name}: {result.total:,} rows", show_header=True)
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    table.add_row("[green]accepted[/green]", f"{result.accepted:,}")
    for reason, count in result.rejected.most_common():
        table.add_row(f"[red]rejected: {reason}[/red]", f"{count:,}")
    return table
