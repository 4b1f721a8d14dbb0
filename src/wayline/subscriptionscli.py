"""``wayline subscriptions ...``: preview what subscriptions would send, publish them and the
contact policy so running delivery workers switch without a restart, list and delete them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from wayline.segmentscli import _cluster, _read_events, _until, applied_table

if TYPE_CHECKING:
    from wayline.config.workspace import WaylineConfig
    from wayline.settings import Settings

FILE_HELP = "YAML with channels: and subscriptions: (and contact_policy:)"


def add_subscriptions(app: typer.Typer, settings: Callable[[], Settings]) -> None:
    subs = typer.Typer(
        help="Subscriptions and the contact policy: preview, publish and list them.",
        no_args_is_help=True,
    )
    app.add_typer(subs, name="subscriptions")

    @subs.command("test")
    def test(
        file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=FILE_HELP)],
        events: Annotated[
            Path,
            typer.Option(exists=True, dir_okay=False, help="Events, one JSON object per line."),
        ],
        until: Annotated[
            str | None, typer.Option(help="Run the clock on to this ISO time after the last event.")
        ] = None,
    ) -> None:
        """Dry run: which triggers the file's subscriptions would send, hold, cap or defer —
        each decided as if delivered when it fired — and the message they would send."""
        from wayline.config.workspace import parse_config
        from wayline.profiles.view import iso
        from wayline.segments.timeline import Timeline
        from wayline.subscriptions import preview

        config = parse_config(file.read_text(encoding="utf-8"), origin=str(file))
        timeline = Timeline(config.compiled_segments(), config.triggers.config())
        canonical, rejected = _read_events(events)
        timeline.run(canonical, _until(until))
        rows = preview(config, timeline.cloud_events, timeline.documents())
        table = Table(title=f"{len(timeline.cloud_events)} triggers, {len(rows)} deliveries")
        for column in ("time", "profile", "subscription", "channel", "outcome", "reason",
                       "message"):  # fmt: skip
            table.add_column(column)
        for r in rows:
            table.add_row(iso(r.at_ms), r.profile_id, r.subscription, r.channel, r.outcome,
                          r.reason, r.message)  # fmt: skip
        console = Console(width=200)
        console.print(table if rows else "no trigger on this timeline matches a subscription")
        for problem in rejected:
            console.print(f"[yellow]skipped[/yellow] {problem}")

    @subs.command("apply")
    def apply(
        file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=FILE_HELP)],
    ) -> None:
        """Publish new and changed subscriptions and the contact policy; running delivery
        workers switch to them between batches (channels stay in each process's config)."""
        from wayline.streams.definitions import DELIVERY_KINDS, plan, publish, read_definitions

        kafka, topics = _cluster(settings())
        current = read_definitions(kafka, topics.definitions)
        config = _checked(file, current, settings().config)
        changes = plan(config, current, int(datetime.now(UTC).timestamp() * 1000), DELIVERY_KINDS)
        publish(kafka, topics.definitions, changes)
        Console(width=120).print(_applied(config, current, changes, topics.definitions))

    @subs.command("list")
    def list_() -> None:
        """The published subscriptions and policy (workers add their config file's own)."""
        from wayline.streams.definitions import DELIVERY_KINDS, read_definitions

        kafka, topics = _cluster(settings())
        current = read_definitions(kafka, topics.definitions)
        found = {k: d for k, d in current.items() if d["kind"] in DELIVERY_KINDS}
        shown = _published(found, topics.definitions) if found else "nothing published yet"
        Console(width=160).print(shown)

    @subs.command("delete")
    def delete(names: Annotated[list[str], typer.Argument(help="Published subscriptions")]) -> None:
        """Delete published subscriptions; open deliveries of them end as failed
        (subscription_removed), nothing more is sent for them."""
        from wayline.streams.definitions import CannotDelete, publish, read_definitions, retire

        kafka, topics = _cluster(settings())
        current = read_definitions(kafka, topics.definitions)
        try:
            deleted = retire(current, names, int(datetime.now(UTC).timestamp() * 1000),
                             "subscription")  # fmt: skip
        except CannotDelete as exc:
            Console(stderr=True, soft_wrap=True).print(f"wayline: nothing deleted: {exc}",
                                                       highlight=False)  # fmt: skip
            raise typer.Exit(1) from None
        publish(kafka, topics.definitions, deleted)
        typer.echo(f"{len(deleted)} subscriptions deleted: {', '.join(names)}")


def _checked(file: Path, current: dict[str, Any], own: Path | None) -> WaylineConfig:
    """The file, checked against itself, the workers' config file ``own`` (WAYLINE_CONFIG)
    and what is published (segments, triggers)."""
    from wayline.config.workspace import load_config, parse_config
    from wayline.segments.triggers import trigger_types
    from wayline.streams.definitions import compile_rules

    rules = compile_rules(load_config(own), current, 0)
    context = {
        "notify_segments": {n for n, s in rules.segments.by_name.items() if s.notify},
        "trigger_types": trigger_types(rules.triggers),
    }
    return parse_config(file.read_text(encoding="utf-8"), origin=str(file), context=context)


def _applied(
    config: WaylineConfig, current: dict[str, Any], changes: list[dict[str, Any]], topic: str
) -> Table:
    keys = [f"subscription:{s.name}" for s in config.subscriptions]
    keys += ["policy:contact_policy"] if "contact_policy" in config.model_fields_set else []
    return applied_table(keys, current, changes, topic)


def _published(found: dict[str, Any], topic: str) -> Table:
    table = Table(title=f"subscriptions on {topic}")
    for column in ("kind", "name", "version", "channel", "on", "kind of message", "holdout",
                   "updated_at", "status"):  # fmt: skip
        table.add_column(column)
    for key in sorted(found):
        d, spec = found[key], found[key]["spec"]
        holdout = f"{spec['holdout_pct']:g} %" if "holdout_pct" in spec else ""
        status = "deleted" if d.get("deleted") else "live"
        cells = [d["kind"], d["name"], str(d["version"]), spec.get("channel", ""), _listens(spec)]
        table.add_row(*cells, spec.get("kind", ""), holdout, d["updated_at"], status)
    return table


def _listens(spec: dict[str, Any]) -> str:
    parts = list(spec.get("triggers") or [])
    segments = spec.get("segments") or {}
    parts += [f"entered {s}" for s in segments.get("entered") or []]
    parts += [f"exited {s}" for s in segments.get("exited") or []]
    return ", ".join(parts)
