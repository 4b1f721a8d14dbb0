"""``wayline segments ...``: try segment and trigger definitions before they go live."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from wayline.schemas.topics import Topics
    from wayline.segments.timeline import Timeline
    from wayline.settings import Settings
    from wayline.streams.clients import KafkaConfig


def add_segments(app: typer.Typer, settings: Callable[[], Settings]) -> None:
    segments = typer.Typer(
        help="Segments and triggers: try, publish and list definitions.", no_args_is_help=True
    )
    app.add_typer(segments, name="segments")

    @segments.command("apply")
    def apply(
        file: Annotated[
            Path,
            typer.Argument(exists=True, dir_okay=False, help="YAML with segments: and triggers:"),
        ],
    ) -> None:
        """Publish new and changed definitions; running workers switch to them without restart."""
        from wayline.config.workspace import parse_config
        from wayline.streams.definitions import plan, publish, read_definitions

        config = parse_config(file.read_text(encoding="utf-8"), origin=str(file))
        kafka, topics = _cluster(settings())
        current = read_definitions(kafka, topics.definitions)
        changes = plan(config, current, int(datetime.now(UTC).timestamp() * 1000))
        publish(kafka, topics.definitions, changes)
        names = [f"segment:{s.name}" for s in config.segments]
        names += ["trigger:triggers"] if "triggers" in config.model_fields_set else []
        Console(width=120).print(applied_table(names, current, changes, topics.definitions))

    @segments.command("delete")
    def delete(
        names: Annotated[list[str], typer.Argument(help="Published segments to delete")],
    ) -> None:
        """Delete published segments; running workers drop them without restart, and each
        member gets an exit on wayline.segments (no segment_exited trigger)."""
        _delete(settings(), names)

    @segments.command("list")
    def list_() -> None:
        """The published definitions (running workers add the config file's own segments)."""
        from wayline.streams.definitions import read_definitions

        kafka, topics = _cluster(settings())
        current = read_definitions(kafka, topics.definitions)
        table = Table(title=topics.definitions)
        for column in ("kind", "name", "version", "notify", "updated_at", "status"):
            table.add_column(column)
        for key in sorted(current):
            d = current[key]
            notify = str(d["spec"].get("notify", "")) if d["kind"] == "segment" else ""
            status = "deleted" if d.get("deleted") else "live"
            table.add_row(d["kind"], d["name"], str(d["version"]), notify, d["updated_at"], status)
        Console(width=120).print(table if current else "no definitions published yet")

    @segments.command("test")
    def test(
        file: Annotated[
            Path,
            typer.Argument(exists=True, dir_okay=False, help="YAML with segments: and triggers:"),
        ],
        events: Annotated[
            Path,
            typer.Option(exists=True, dir_okay=False, help="Events, one JSON object per line."),
        ],
        until: Annotated[
            str | None,
            typer.Option(help="Run the clock on to this ISO time after the last event."),
        ] = None,
    ) -> None:
        """Dry run: who enters and exits which segment when, which triggers fire, and why."""
        from wayline.config.workspace import parse_config
        from wayline.segments.timeline import Timeline

        config = parse_config(file.read_text(encoding="utf-8"), origin=str(file))
        timeline = Timeline(config.compiled_segments(), config.triggers.config())
        canonical, rejected = _read_events(events)
        until_ms = _until(until)
        timeline.run(canonical, until_ms)
        _show(timeline, len(canonical), rejected)


def applied_table(
    keys: list[str], current: dict[str, Any], changes: list[dict[str, Any]], topic: str
) -> Table:
    """What ``apply`` did to each definition the file has (``kind:name`` keys): created,
    updated or unchanged, with its version."""
    changed = {f"{c['kind']}:{c['name']}": c for c in changes}
    table = Table(title=f"{len(changes)} definitions published to {topic}")
    for column in ("kind", "name", "version", "status"):
        table.add_column(column)
    for key in keys:
        kind, name = key.split(":", 1)
        if key in changed:
            version = changed[key]["version"]
            status = "created" if version == 1 else "updated"
        else:
            version, status = current[key]["version"], "unchanged"
        table.add_row(kind, name, str(version), status)
    return table


def _cluster(settings: Settings) -> tuple[KafkaConfig, Topics]:
    from wayline.schemas.topics import Topics
    from wayline.streams.clients import KafkaConfig

    kafka = KafkaConfig(settings.bootstrap, dict(settings.kafka_options))
    return kafka, Topics(settings.topic_prefix, settings.partitions)


def _read_events(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    from wayline.schemas.errors import InvalidEvent
    from wayline.schemas.normalize import Origin, normalize_event
    from wayline.schemas.timestamps import parse_timestamp

    canonical, rejected = [], []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = orjson.loads(line)
            when = parse_timestamp(raw.get("timestamp")) if isinstance(raw, dict) else None
            origin = Origin(when or datetime.now(UTC), f"{path.name}:{number}")
            canonical.append(normalize_event(raw, origin))
        except orjson.JSONDecodeError as exc:
            rejected.append(f"line {number}: not JSON: {exc}")
        except InvalidEvent as exc:
            rejected.append(f"line {number}: {exc}")
    return canonical, rejected


def _until(text: str | None) -> int | None:
    if text is None:
        return None
    from wayline.schemas.timestamps import parse_timestamp

    moment = parse_timestamp(text)
    if moment is None:
        raise typer.BadParameter(f"not an ISO 8601 time: {text!r}", param_hint="--until")
    return int(moment.timestamp() * 1000)


def _show(timeline: Timeline, events: int, rejected: list[str]) -> None:
    from wayline.profiles.view import iso

    console = Console(width=160)
    table = Table(title=f"{events} events, {len(timeline.book.states)} profiles")
    for column in ("time", "who", "what", "why"):
        table.add_column(column)
    for h in sorted(timeline.happenings, key=lambda h: (h.at_ms, h.who, h.what)):
        table.add_row(iso(h.at_ms), h.who, h.what, h.why)
    console.print(table)
    if not timeline.happenings:
        console.print("nothing enters, exits or fires on this timeline")
    for problem in rejected:
        console.print(f"[yellow]skipped[/yellow] {problem}")


def _delete(settings: Settings, names: list[str]) -> None:
    from wayline.streams.definitions import CannotDelete, publish, read_definitions, retire

    kafka, topics = _cluster(settings)
    current = read_definitions(kafka, topics.definitions)
    try:
        deleted = retire(current, names, int(datetime.now(UTC).timestamp() * 1000))
    except CannotDelete as exc:
        Console(stderr=True, soft_wrap=True).print(
            f"wayline: nothing deleted: {exc}", highlight=False
        )
        raise typer.Exit(1) from None
    publish(kafka, topics.definitions, deleted)
    table = Table(title=f"{len(deleted)} definitions published to {topics.definitions}")
    for column in ("kind", "name", "version", "status"):
        table.add_column(column)
    for d in deleted:
        table.add_row(d["kind"], d["name"], str(d["version"]), "deleted")
    Console(width=120).print(table)
