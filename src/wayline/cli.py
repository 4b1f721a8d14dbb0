"""The ``wayline`` command. Settings are built here, once, and passed down."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from wayline.analyticscli import add_analytics, add_report
from wayline.config.workspace import DEMO_CONFIG, WaylineConfig, load_config
from wayline.schemas.errors import ConfigError, RetryableError
from wayline.segmentscli import add_segments
from wayline.settings import Settings, load_settings
from wayline.subscriptionscli import add_subscriptions
from wayline.tailcli import add_tail

if TYPE_CHECKING:
    from wayline.platform import Platform

log = logging.getLogger("wayline")
err_console = Console(stderr=True)


class State:
    settings: Settings
    config: WaylineConfig


def build_cli() -> typer.Typer:
    """The command tree; built on call, nothing is read at import."""
    app = typer.Typer(
        name="wayline",
        help="Wayline: a Kafka-native customer data platform.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    state = State()

    @app.callback()
    def options(
        config: Annotated[
            Path | None,
            typer.Option("--config", "-c", help="YAML config file [env: WAYLINE_CONFIG]"),
        ] = None,
        log_level: Annotated[
            str | None, typer.Option(help="DEBUG, INFO, WARNING or ERROR [env: WAYLINE_LOG_LEVEL]")
        ] = None,
    ) -> None:
        overrides: dict[str, object] = {}
        if config is not None:
            overrides["config"] = config
        if log_level is not None:
            overrides["log_level"] = log_level.upper()
        state.settings = load_settings(**overrides)
        state.config = load_config(state.settings.config)
        _setup_logging(state.settings.log_level)

    @app.command()
    def broker(
        port: Annotated[int | None, typer.Option(help="[env: WAYLINE_BROKER_PORT]")] = None,
        host: Annotated[str | None, typer.Option(help="[env: WAYLINE_BROKER_HOST]")] = None,
    ) -> None:
        """Run the embedded Kafka-protocol broker and create Wayline's topics (Ctrl-C stops)."""
        from wayline.platform import Platform

        settings = _with(state.settings, broker_port=port, broker_host=host)
        platform = Platform(settings, state.config, broker_only=True)
        if not settings.embedded_broker:
            platform.start()
            typer.echo(
                f"WAYLINE_KAFKA_BOOTSTRAP is set: using {settings.bootstrap}, nothing started"
            )
            return
        _serve(platform, f"broker ready on {settings.bootstrap}")

    @app.command()
    def topics(
        create: Annotated[bool, typer.Option(help="Create the topics that are missing.")] = False,
    ) -> None:
        """List Wayline's topics on the cluster: partitions and cleanup policy."""
        _topics(state.settings, create)

    @app.command()
    def worker(name: Annotated[str, typer.Argument(help="Worker name, see `wayline up`.")]) -> None:
        """Run one worker against the cluster (start the broker first, or set KAFKA_BOOTSTRAP)."""
        from wayline.platform import Platform
        from wayline.streams.registry import default_registry

        registry = default_registry()
        if name not in registry:
            raise typer.BadParameter(f"unknown worker {name!r}; workers: {', '.join(registry)}")
        settings = _with(state.settings, kafka_bootstrap=state.settings.bootstrap)
        _serve(Platform(settings, state.config, workers=[name], api=False), f"worker {name} up")

    @app.command()
    def api() -> None:
        """Run the HTTP API alone (against a running broker)."""
        from wayline.platform import Platform

        settings = _with(state.settings, kafka_bootstrap=state.settings.bootstrap)
        _serve(Platform(settings, state.config, workers=[]), "API up")

    _add_up(app, state)
    _add_demo(app, state)
    _add_import(app, state)
    add_segments(app, lambda: state.settings)
    add_subscriptions(app, lambda: state.settings)
    add_tail(app, lambda: state.settings)
    add_analytics(app, lambda: state.settings)
    add_report(app, lambda: state.settings, lambda: state.config)
    return app


def _add_up(app: typer.Typer, state: State) -> None:
    @app.command()
    def up(
        skip: Annotated[
            list[str] | None,
            typer.Option(help="A worker not to run here (run it with `wayline worker NAME`)."),
        ] = None,
    ) -> None:
        """Run everything: broker (unless external), all workers and the HTTP API."""
        from wayline.platform import Platform
        from wayline.streams.registry import default_registry

        registry = default_registry()
        for name in skip or []:
            if name not in registry:
                raise typer.BadParameter(
                    f"unknown worker {name!r}; workers: {', '.join(registry)}", param_hint="--skip"
                )
        off = [*(skip or []), *([] if state.settings.analytics else ["analytics"])]
        workers = [name for name in registry if name not in off]
        platform = Platform(state.settings, state.config, workers=workers)
        s = state.settings
        _serve(platform, f"Wayline up: Kafka {s.bootstrap}, API http://{s.api_host}:{s.api_port}")


def _add_import(app: typer.Typer, state: State) -> None:
    imports = typer.Typer(help="Import files of past events.", no_args_is_help=True)
    app.add_typer(imports, name="import")

    @imports.command("orders")
    def orders(
        file: Annotated[
            Path, typer.Argument(exists=True, dir_okay=False, help="CSV or JSONL order file.")
        ],
        source: Annotated[str, typer.Option(help="The configured source the orders come from.")],
    ) -> None:
        """Import store / POS orders as Order Completed events (re-importing adds nothing)."""
        from wayline.connectors.orderimport import import_orders, summary
        from wayline.connectors.orders import file_format
        from wayline.schemas.topics import Topics
        from wayline.streams.clients import KafkaConfig

        found = {s.name: s for s in state.config.sources}.get(source)
        if found is None:
            names = ", ".join(found_names(state.config)) or "none configured"
            raise typer.BadParameter(f"unknown source {source!r}; sources: {names}")
        try:
            file_format(file)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        settings = state.settings
        kafka = KafkaConfig(settings.bootstrap, dict(settings.kafka_options))
        console = Console()
        result = import_orders(
            file, found, kafka, Topics(settings.topic_prefix, settings.partitions), console
        )
        console.print(summary(result, file))
        if result.rejected_file is not None:
            console.print(f"rejected rows with their reasons: {result.rejected_file}")


def _add_demo(app: typer.Typer, state: State) -> None:
    @app.command()
    def demo(
        duration: Annotated[float, typer.Option(help="Seconds to run.", min=1)] = 60.0,
        rate: Annotated[
            float, typer.Option(help="Shopper sessions started per second.", min=0.1)
        ] = 20.0,
        seed: Annotated[int, typer.Option(help="Simulator seed: same seed, same traffic.")] = 7,
    ) -> None:
        """Everything `up` runs, plus simulated shoppers and a live view."""
        from wayline.demo import Demo
        from wayline.receivers import DemoReceivers, demo_subscriptions

        config = state.config if state.config.sources else DEMO_CONFIG
        receivers = None
        if not config.channels:  # nowhere to send to: local receivers, and what to send them
            receivers = DemoReceivers()
            receivers.start()
            data = config.model_dump(mode="json", exclude_unset=True)
            data |= {"channels": receivers.channels(), "subscriptions": demo_subscriptions()}
            data.setdefault("contact_policy", {"control_group_pct": 10})  # uplift to measure
            config = WaylineConfig.model_validate(data)
        console = Console()
        run = Demo(state.settings, config, duration, rate, seed, console, receivers)
        _on_signals(run.stop)
        try:
            result = run.run()
        finally:
            if receivers is not None:
                receivers.stop()
        final = result.final
        console.print(
            f"demo finished after {result.seconds:.1f} s: {result.sent:,} events sent "
            f"({result.broken} deliberately broken), {final.validated:,} validated, "
            f"{final.dead_lettered:,} dead-lettered"
        )
        outcomes = final.deliveries
        reached = sum(n for status, n in outcomes.items() if status in ("sent", "delivered"))
        got = sum(receivers.snapshot()[0].values()) if receivers is not None else 0
        console.print(
            f"{sum(outcomes.values()):,} deliveries decided: {reached:,} sent or delivered, "
            f"{sum(outcomes.values()) - reached:,} held back by the contact policy or waiting; "
            f"the local receivers got {got:,} messages"
        )
        if not result.balanced:
            err_console.print("[red]not every event came out of the pipeline exactly once[/red]")
            raise typer.Exit(1)
        console.print("every event accounted for exactly once")
        if result.report is not None:
            console.print(f"the run's report: {result.report} (open it in a browser)")


def found_names(config: WaylineConfig) -> list[str]:
    return [s.name for s in config.sources]


def _with(settings: Settings, **changes: object) -> Settings:
    values = {k: v for k, v in changes.items() if v is not None}
    return load_settings(**{**settings.model_dump(exclude_unset=True), **values})


def _serve(platform: Platform, banner: str) -> None:
    """Start, report, wait for Ctrl-C/SIGTERM or a failure, stop in order."""
    stop = threading.Event()
    _on_signals(stop.set)
    platform.start()
    typer.echo(banner)
    if platform.broker is not None:
        typer.echo(f"embedded broker pid {platform.broker.pid}, in-memory storage")
    try:
        ticks = 0
        while not stop.wait(0.2):
            ticks += 1
            if ticks % 25 == 0 and not platform.broker_only and platform.topics_lost():
                raise RetryableError(
                    f"the cluster at {platform.settings.bootstrap} answers without Wayline's "
                    "topics (it came back empty?): stopping; start Wayline again to create them"
                )
            if platform.failed.is_set():
                raise RetryableError("a worker failed; stopping")
            code = platform.broker.exit_code() if platform.broker is not None else None
            if code is not None:
                raise RetryableError(
                    f"the embedded broker ended (exit code {code}): its topics were in memory "
                    "and are gone; start Wayline again"
                )
    finally:
        platform.stop()
        typer.echo("stopped")


def _on_signals(handler: Callable[[], object]) -> None:
    def handle(_signum: int, _frame: object) -> None:
        handler()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def _topics(settings: Settings, create: bool) -> None:
    from wayline.schemas.topics import Topics
    from wayline.streams.admin import describe_topics, ensure_topics, wait_until_ready
    from wayline.streams.clients import KafkaConfig
    from wayline.streams.registry import default_registry, store_topics

    kafka = KafkaConfig(settings.bootstrap, dict(settings.kafka_options))
    wait_until_ready(kafka, timeout_s=10)
    specs = Topics(settings.topic_prefix, settings.partitions).specs(
        store_topics(default_registry())
    )
    if create:
        created = ensure_topics(kafka, specs, settings.replication_factor)
        typer.echo(f"created {len(created)} topics")
    found = {t.name: t for t in describe_topics(kafka, [s.name for s in specs])}
    table = Table("topic", "partitions", "cleanup.policy", "carries")
    for spec in specs:
        state = found.get(spec.name)
        partitions = str(state.partitions) if state else "[red]missing[/red]"
        policy = state.configs.get("cleanup.policy", "-") if state else "-"
        table.add_row(spec.name, partitions, policy, spec.description)
    Console().print(table)


def _setup_logging(level: str) -> None:
    handler = RichHandler(console=err_console, show_path=False, rich_tracebacks=False)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)


def _usage_error(exc: typer.TyperException) -> int:
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        typer.echo(ctx.get_help())
        return 0
    command = ctx.command_path if ctx is not None else "wayline"
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    err_console.print(
        f"wayline: error: {message} (see '{command} --help')", highlight=False, soft_wrap=True
    )
    return int(getattr(exc, "exit_code", 2))


def main(argv: list[str] | None = None) -> None:
    """Entry point: usage and config errors print one line and exit 2."""
    app = build_cli()
    try:
        code = app(args=argv, prog_name="wayline", standalone_mode=False)
        if isinstance(code, int) and code:  # typer.Exit(code) comes back as the return value
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: unknown option, bad value, ...
        sys.exit(_usage_error(exc))
    except ConfigError as exc:
        err_console.print(f"wayline: configuration error: {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except RetryableError as exc:
        err_console.print(f"wayline: {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
