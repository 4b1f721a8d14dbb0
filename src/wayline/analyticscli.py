"""``wayline analytics ...``: the ClickHouse side of Wayline — migrations and backfill.

The embedded engine (chdb) admits one process per data path: these commands take the data
directory's ``clickhouse`` lock, so they refuse (naming the holder) while another Wayline
process owns the engine. With ``WAYLINE_CLICKHOUSE_URL`` they talk to that server instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from wayline.schemas.errors import ConfigError, RetryableError

DATABASE = "wayline"  # as wayline.warehouse.DATABASE (not imported: it loads the client)

if TYPE_CHECKING:
    from wayline.config.workspace import WaylineConfig
    from wayline.connectors.clickhouse import SharedClient
    from wayline.kpireport import Period
    from wayline.settings import Settings


def add_report(app: typer.Typer, settings: Callable[[], Settings],
               config: Callable[[], WaylineConfig]) -> None:  # fmt: skip
    @app.command()
    def report(
        since: Annotated[
            str | None, typer.Option(help="Start, ISO date or time (default: until − 90 days).")
        ] = None,
        until: Annotated[str | None, typer.Option(help="End, exclusive (default: now).")] = None,
        out: Annotated[Path, typer.Option(help="Where to write the page.")] = Path("report.html"),
        window_days: Annotated[
            int, typer.Option(min=1, max=90, help="Uplift: days after a message an order counts.")
        ] = 7,
    ) -> None:
        """Write one HTML page of the period's KPIs and plots (funnel, cohorts, segments, uplift).

        The figures come from ClickHouse: a server (WAYLINE_CLICKHOUSE_URL), the embedded engine
        when no Wayline process owns it, or else the API of the process that does."""
        from datetime import UTC, datetime

        from wayline.kpireport import Period
        from wayline.report import render

        try:
            period = Period.parse(since, until, datetime.now(UTC))
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        doc = fetch_report(settings(), config(), period, window_days)
        out.write_text(render(doc), encoding="utf-8")
        o = doc["orders"]
        Console().print(f"report for {period.since:%Y-%m-%d} – {period.until:%Y-%m-%d} written to "
                        f"{out}: {o['orders']:,} orders, {o['buyers']:,} buyers, "
                        f"{len(doc['uplift']['uplift'])} uplift rows")  # fmt: skip


def fetch_report(s: Settings, config: WaylineConfig, period: Period, window_days: int
                 ) -> dict[str, Any]:  # fmt: skip
    """The report document, from whoever may query ClickHouse."""
    from wayline import kpireport
    from wayline.datadir import DataDirLocks

    if s.clickhouse_url is not None or DataDirLocks(s.data_dir).free("clickhouse"):
        with _engine(s) as client:
            return kpireport.report(client, DATABASE, period, window_days)
    return _from_api(s, config, period, window_days)


def _from_api(s: Settings, config: WaylineConfig, period: Period, window_days: int
              ) -> dict[str, Any]:  # fmt: skip
    import httpx

    if not config.api_keys:
        raise ConfigError("the running Wayline owns the analytics engine and its API needs a "
                          "key: add api_keys to the config file (WAYLINE_CONFIG)")  # fmt: skip
    url = f"{s.base_url}/v1/analytics/report"
    params: dict[str, str | int] = {**period.json(), "window_days": window_days}
    try:
        reply = httpx.get(url, params=params, timeout=300,
                          headers={"Authorization": f"Bearer {config.api_keys[0]}"})  # fmt: skip
    except httpx.HTTPError as exc:
        raise RetryableError(f"the running Wayline's API at {s.base_url} did not answer: {exc}"
                             ) from None  # fmt: skip
    if reply.status_code != 200:
        raise RetryableError(f"{url} answered {reply.status_code}: {reply.text[:300]}")
    doc: dict[str, Any] = reply.json()
    return doc


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
    """ClickHouse for this command, migrated (``wayline.warehouse``, as the sink opens it), the
    embedded engine locked while it runs."""
    from wayline.datadir import DataDirLocks
    from wayline.warehouse import Warehouse

    locks = DataDirLocks(s.data_dir)
    if s.clickhouse_url is None:
        locks.acquire(["clickhouse"])
    try:
        yield Warehouse(s, DATABASE).client()
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
