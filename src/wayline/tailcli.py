"""``wayline tail TOPIC``: any Wayline topic, readably, without writing a Kafka consumer.

One line per record, shaped by what the topic carries: a trigger's type, profile and why; a
delivery's outcome and reason; a segment transition; a dead letter's reason. ``--json`` prints
the records as JSON lines instead (for ``jq``). Reads from the beginning and stops at the end,
or keeps following with ``--follow``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

if TYPE_CHECKING:
    from wayline.settings import Settings
    from wayline.streams.envelope import Envelope


def add_tail(app: typer.Typer, settings: Callable[[], Settings]) -> None:
    @app.command()
    def tail(
        topic: Annotated[
            str, typer.Argument(help="triggers, deliveries, segments, events.dlq, profiles, …")
        ],
        follow: Annotated[
            bool, typer.Option("--follow", "-f", help="Keep printing what arrives.")
        ] = False,
        limit: Annotated[int | None, typer.Option(help="Stop after this many records.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="JSON lines, for jq.")] = False,
    ) -> None:
        """Print a Wayline topic, one readable line per record."""
        from wayline.schemas.topics import SUFFIXES, Topics

        s = settings()
        suffix = topic.removeprefix(f"{s.topic_prefix}.")
        if suffix not in SUFFIXES:
            raise typer.BadParameter(f"no topic {topic!r}; topics: {', '.join(SUFFIXES)}")
        name = Topics(s.topic_prefix, s.partitions).name(suffix)
        for shown, message in enumerate(_records(s, name, follow), start=1):
            typer.echo(_json(message) if as_json else line(suffix, message))
            if limit is not None and shown >= limit:
                break


def _records(settings: Settings, topic: str, follow: bool) -> Iterator[Envelope]:
    from wayline.streams.clients import KafkaConfig
    from wayline.streams.tail import read_topic

    kafka = KafkaConfig(settings.bootstrap, dict(settings.kafka_options))
    try:
        yield from read_topic(kafka, topic, follow)
    except LookupError as exc:
        raise typer.BadParameter(str(exc)) from None


def line(suffix: str, message: Envelope) -> str:
    """One readable line for a record of the topic ``suffix``."""
    if suffix.endswith("dlq"):
        reason = (message.header("wayline.dlq.reason") or b"?").decode()
        detail = (message.header("wayline.dlq.detail") or b"").decode()[:120]
        return f"{_when(message)}  {reason:<22} {_key(message):<28} {detail}"
    value = _value(message)
    if value is None:
        return f"{_when(message)}  (deleted)              {_key(message)}"
    shape = SHAPES.get(suffix)
    if shape is None:
        return f"{_when(message)}  {_key(message):<28} {orjson.dumps(value).decode()[:200]}"
    return shape(value)


def _trigger(doc: dict[str, Any]) -> str:
    data = doc.get("data") or {}
    reason = ", ".join(f"{k}={v}" for k, v in (data.get("reason") or {}).items())
    return (
        f"{doc.get('time')}  {data.get('trigger', '?'):<18} {doc.get('subject', '?'):<24} {reason}"
    )


def _delivery(doc: dict[str, Any]) -> str:
    status = doc.get("status", "?")
    extra = f" until {doc['release_at']}" if doc.get("release_at") else ""
    detail = (
        f" ({doc['detail']})" if doc.get("detail") and status not in ("sent", "delivered") else ""
    )
    return (f"{doc.get('at')}  {status:<16} {doc.get('subscription', '?'):<16} "
            f"{doc.get('channel', '?'):<10} {doc.get('profile_id', '?'):<24} "
            f"{doc.get('reason', '')}{extra}{detail}")  # fmt: skip


def _transition(doc: dict[str, Any]) -> str:
    return (f"{doc.get('at')}  {doc.get('transition', doc.get('kind', '?')):<6} "
            f"{doc.get('segment', '?'):<20} {doc.get('profile_id', '?'):<24} "
            f"{doc.get('cause', '')}")  # fmt: skip


def _transitions(doc: dict[str, Any]) -> str:
    """A segments record: one line per transition it carries."""
    transitions = doc.get("transitions")
    if not isinstance(transitions, list) or not transitions:
        return f"{doc.get('profile_id', '?'):<28} {orjson.dumps(doc).decode()[:200]}"
    return "\n".join(_transition(t) for t in transitions)


def _profile(doc: dict[str, Any]) -> str:
    computed = doc.get("computed") or {}
    return (f"{doc.get('last_seen')}  {doc.get('profile_id', '?'):<24} v{doc.get('version')} "
            f"orders={computed.get('order_count')} revenue={computed.get('revenue')} "
            f"segments={','.join(doc.get('segments') or []) or '-'}")  # fmt: skip


SHAPES: dict[str, Callable[[dict[str, Any]], str]] = {
    "triggers": _trigger,
    "deliveries": _delivery,
    "segments": _transitions,
    "profiles": _profile,
}


def _value(message: Envelope) -> Any:
    if message.value is None:
        return None
    try:
        return orjson.loads(message.value)
    except orjson.JSONDecodeError:
        return {"bytes": message.value[:200].decode("utf-8", "replace")}


def _json(message: Envelope) -> str:
    headers = {k: v.decode("utf-8", "replace") for k, v in message.headers}
    record = {"partition": message.partition, "offset": message.offset, "key": _key(message),
              "headers": headers, "value": _value(message)}  # fmt: skip
    return orjson.dumps(record).decode()


def _key(message: Envelope) -> str:
    return (message.key or b"").decode("utf-8", "replace")


def _when(message: Envelope) -> str:
    from wayline.profiles.view import iso

    return str(iso(message.timestamp_ms))
