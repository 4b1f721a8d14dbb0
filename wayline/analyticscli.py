"""``wayline analytics ...``: the ClickHouse side of Wayline — its migrations, for now.

The embedded engine (chdb) admits one process per data path: the command takes the data
directory's ``clickhouse`` lock, so it refuses (naming the holder) while another Wayline process
owns the engine. With ``WAYLINE_CLICKHOUSE_URL`` it talks to that server instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from wayline.settings import Settings


def add_analytics(app: typer.Typer, settings: Callable[[], Settings]) -> None:
    analytics = typer.Typer(help="Analytics in ClickHouse: migrations.", no_args_is_help=True)
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
