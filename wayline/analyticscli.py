"""``wayline analytics ...``: the ClickHouse side of Wayline — migrations and backfill.

The embedded engine (chdb) admits one process per data path: these commands take the data
directory's ``clickhouse`` lock, so they refuse (naming the holder) while another Wayline
process owns the engine. With ``WAYLINE_CLICKHOUSE_URL`` they talk to that server instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from wayline.schemas.errors import ConfigError

DATABASE = "wayline"  # as wayline.warehouse.DATABASE (not imported: it loads the client)

if TYPE_CHECKING:
    from wayline.connectors.clickhouse import SharedClient
    from wayline.settings import Settings


def add_analytics(app: typer.Typer, settings: Callable[[], Settings]) -> None:
    analytics = typer.Typer(help="Analytics in ClickHouse: migrations, backfill.",
                            no_args_is_help=True)  # fmt: skip
    app.add_typer(analytics, name="analytics")

    @analytics.command("migrations")
    def list_migrations(
        apply: bool = typer.Option(False, "--apply", help="Apply the ones not applied yet."),
    ) -> None:
        """The numbered migrations, which are applied (and when), which are pending."""
        from wayline.connectors.clickhouse import applied, connect, migrate, migrations
        from wayline.datadir import DataDirLocks

        s = settings()
        locks = DataDirLocks(s.data_dir)
        if s.clickhouse_url is None:
            locks.acquire(["clickhouse"])
        try:
            client = connect(s.clickhouse_url, s.data_dir)
            done_now = migrate(client) if apply else []
            done = {version: at for version, _name, at in applied(client)}
        finally:
            locks.release()
        where = s.clickhouse_url or f"embedded engine in {s.data_dir / 'clickhouse'}"
        table = Table(title=f"migrations on {where}")
        for column in ("version", "name", "statements", "applied_at"):
            table.add_column(column)
        for m in migrations():
            at = done.get(m.version)
            table.add_row(f"{m.version:04d}", m.name, str(len(m.statements)),
                          at.isoformat() if at else "pending")  # fmt: skip
        console = Console(width=140)
        console.print(table)
        if apply:
            console.print(f"{len(done_now)} applied now")

    @analytics.command("backfill")
    def backfill(
        replace: bool = typer.Option(
            False, "--replace", help="Drop the analytics tables first and fill them again."
        ),
    ) -> None:
        """Read every topic the analytics sink reads from its beginning into an empty store."""
        s = settings()
        with _engine(s) as client:
            _empty(client, replace)
            _backfill(s, client)


@contextmanager
def _engine(s: Settings) -> Iterator[SharedClient]:
    """ClickHouse for this command, the embedded engine locked while it runs."""
    from wayline.connectors.clickhouse import SharedClient, connect
    from wayline.datadir import DataDirLocks

    locks = DataDirLocks(s.data_dir)
    if s.clickhouse_url is None:
        locks.acquire(["clickhouse"])
    try:
        yield SharedClient(connect(s.clickhouse_url, s.data_dir, DATABASE))
    finally:
        locks.release()


def _empty(client: SharedClient, replace: bool) -> None:
    from wayline.connectors.clickhouse import migrate
    from wayline.connectors.warehouse import TABLES

    if replace:
        client.command(f"DROP DATABASE IF EXISTS {DATABASE}")
        client.command(f"CREATE DATABASE {DATABASE}")
    migrate(client, DATABASE)
    rows = sum(int(client.query(f"SELECT count() FROM {DATABASE}.{t.name}").result_rows[0][0])
               for t in TABLES.values())  # fmt: skip
    if rows:
        raise ConfigError(f"the analytics tables hold {rows:,} rows already; backfill fills an "
                          "empty store: add --replace to drop them first")  # fmt: skip


def _backfill(s: Settings, client: SharedClient) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from wayline.connectors.warehouse import TABLES
    from wayline.schemas.topics import Topics
    from wayline.streams.backfill import backfill
    from wayline.streams.clients import KafkaConfig
    from wayline.streams.registry import ANALYTICS_INPUTS

    kafka = KafkaConfig(s.bootstrap, dict(s.kafka_options))
    topics = Topics(s.topic_prefix, s.partitions)
    names = [topics.name(suffix) for suffix in ANALYTICS_INPUTS]
    console = Console(stderr=True)
    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("records", total=None)

        def show(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        read = backfill(kafka, topics, names, client, DATABASE, show)
    table = Table(title=f"backfilled {read:,} records from {len(names)} topics")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for t in TABLES.values():
        n = client.query(f"SELECT count() FROM {DATABASE}.{t.name} FINAL").result_rows[0][0]
        table.add_row(t.name, f"{int(n):,}")
    Console(width=140).print(table)
