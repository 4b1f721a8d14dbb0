"""ClickHouse for analytics: one adapter, two engines, one code path.

By default the embedded engine, chdb, in this process under ``WAYLINE_DATA_DIR/clickhouse``;
with ``WAYLINE_CLICKHOUSE_URL`` a ClickHouse server. Both are reached through clickhouse-connect
(its ``chdb://`` backend), so the same statements and inserts run on both. chdb allows one
process per data path: the process that runs the analytics sink owns it (``datadir`` locks).

Tables come from numbered migrations (``connectors/migrations/NNNN_name.sql``, statements
separated by ``;``, ``{db}`` for the database), applied in order at start-up, each once: the
applied versions are kept in ``{db}.schema_migrations``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from clickhouse_connect.driver.query import QueryResult

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
__all__ = [
    "ClickHouseError", "Client", "Migration", "Queries", "SharedClient", "connect", "migrate",
    "migrations",
]  # fmt: skip


class Queries(Protocol):
    """What Wayline asks of ClickHouse: a clickhouse-connect ``Client`` or a ``SharedClient``."""

    def query(self, query: str, parameters: dict[str, Any] | None = None) -> QueryResult: ...

    def command(self, cmd: str) -> Any: ...

    def insert(
        self,
        table: str,
        data: Sequence[Sequence[Any]],
        *,
        column_names: Sequence[str],
        settings: dict[str, Any] | None = None,
    ) -> Any: ...


class SharedClient:
    """One client used by several threads (the sink's worker, the API): they take turns, as
    the embedded engine's session is not safe for concurrent use."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._turn = threading.Lock()

    def query(self, query: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        with self._turn:
            return self.client.query(query, parameters=parameters)

    def command(self, cmd: str) -> Any:
        with self._turn:
            return self.client.command(cmd)

    def insert(
        self,
        table: str,
        data: Sequence[Sequence[Any]],
        *,
        column_names: Sequence[str],
        settings: dict[str, Any] | None = None,
    ) -> Any:
        with self._turn:
            return self.client.insert(table, data, column_names=column_names, settings=settings)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def connect(url: str | None, data_dir: Path, database: str = "wayline") -> Client:
    """A client of the server at ``url``, or of the embedded engine under ``data_dir``; the
    database exists afterwards."""
    dsn = url or f"chdb://{(data_dir / 'clickhouse').resolve()}"
    client = clickhouse_connect.get_client(dsn=dsn)
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    return client


def migrations(folder: Path = MIGRATIONS) -> list[Migration]:
    """Every migration, in version order."""
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path.name}: a migration is named NNNN_name.sql")
        text = "\n".join(
            line for line in path.read_text("utf-8").splitlines() if not line.startswith("--")
        )
        statements = tuple(s.strip() for s in text.split(";") if s.strip())
        found.append(Migration(int(match.group(1)), match.group(2), statements))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migrations share a version: {versions}")
    return found


def migrate(client: Queries, database: str = "wayline") -> list[Migration]:
    """Apply the migrations not applied yet, in order; the ones applied now."""
    done = {version for version, _name, _at in applied(client, database)}
    now = []
    for migration in migrations():
        if migration.version in done:
            continue
        for statement in migration.statements:
            client.command(statement.replace("{db}", database))
        client.insert(f"{database}.schema_migrations",
                      [[migration.version, migration.name, datetime.now(UTC)]],
                      column_names=["version", "name", "applied_at"])  # fmt: skip
        now.append(migration)
    return now


def applied(client: Queries, database: str = "wayline") -> list[tuple[int, str, datetime]]:
    """The migrations applied so far: version, name, when."""
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations (version UInt32, name String, "
        "applied_at DateTime64(3, 'UTC')) ENGINE = ReplacingMergeTree ORDER BY version"
    )
    rows: Any = client.query(
        f"SELECT version, name, applied_at FROM {database}.schema_migrations FINAL ORDER BY version"
    ).result_rows
    return [(int(v), str(n), at) for v, n, at in rows]
