"""Records into the analytics tables as the sink writes them, for tests of the SQL over them."""

from __future__ import annotations

from typing import Any

from wayline.connectors.clickhouse import Queries
from wayline.connectors.warehouse import TABLES


def table_row(table: str, doc: dict[str, Any], offset: int, partition: int = 0) -> list[Any]:
    """The row the sink writes for ``doc`` of topic ``table`` (a suffix: ``deliveries``, ...),
    a record of one row."""
    (row,) = table_rows(table, doc, offset, partition)
    return list(row)


def table_rows(table: str, doc: dict[str, Any], offset: int, partition: int = 0) -> list[Any]:
    """The rows the sink writes for the record ``doc`` of topic ``table``."""
    return [[*row, partition, offset] for row in TABLES[table].rows(None, doc, {})]


def insert_docs(client: Queries, database: str, table: str, docs: list[dict[str, Any]],
                again_every: int = 0) -> None:  # fmt: skip
    """``docs`` as rows of ``table``, offsets 0, 1, …; with ``again_every`` every such row a
    second time, as a replay leaves it (``FINAL`` folds it)."""
    rows = [row for offset, doc in enumerate(docs) for row in table_rows(table, doc, offset)]
    if again_every:
        rows += rows[::again_every]
    client.insert(f"{database}.{TABLES[table].name}", rows,
                  column_names=list(TABLES[table].columns))  # fmt: skip
