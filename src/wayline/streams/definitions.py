"""Definitions on ``wayline.definitions`` (compacted, one partition).

Key ``segment:NAME``, ``trigger:triggers``, ``subscription:NAME`` or ``policy:contact_policy``;
value a ``Definition`` (kind, name, version, spec, updated_at, deleted). Channels are not
published: they carry credentials, and stay in each process's config file.

``wayline segments apply`` (and ``wayline subscriptions apply``) publishes what changed with the
next version number, ``... delete`` a deleted version (kept, not a tombstone, so compaction can
never bring back a definition the config file also has). Running profile and delivery workers
follow the topic with a ``DefinitionsView`` and switch to the new definitions between batches
(see ``ProfileStep.refresh``, ``DeliveryStep.refresh``). Definitions in the topic take
precedence over the config file's, by name.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from wayline.config.workspace import WaylineConfig
from wayline.profiles.view import iso
from wayline.segments.compiler import Compiled, SegmentDef, compile_segments
from wayline.segments.rules import parse_rule, segments_read
from wayline.segments.triggers import TriggerConfig
from wayline.streams.clients import KafkaConfig
from wayline.streams.restore import read_partition
from wayline.streams.tail import Tail

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rules:
    """One generation of definitions, compiled; ``fingerprint`` identifies its content."""

    generation: int
    changed_at_ms: int
    segments: Compiled
    triggers: TriggerConfig
    fingerprint: str = ""


def read_definitions(kafka: KafkaConfig, topic: str, timeout_s: float = 30) -> dict[str, Any]:
    """The latest definition per key, read to the end of the topic."""
    records, _end = read_partition(kafka, topic, 0, 0, timeout_s)
    latest: dict[str, Any] = {}
    for key, value in records:
        _fold(latest, key, value)
    return latest


def _fold(latest: dict[str, Any], key: bytes | None, value: bytes | None) -> None:
    if not key:
        return
    if value is None:
        latest.pop(key.decode(), None)
    else:
        latest[key.decode()] = orjson.loads(value)


RULE_KINDS = ("segment", "trigger")  # ``wayline segments apply``
DELIVERY_KINDS = ("subscription", "policy")  # ``wayline subscriptions apply``


def wanted(config: WaylineConfig, kinds: tuple[str, ...]) -> dict[str, tuple[str, str, Any]]:
    """What ``config`` defines of ``kinds``: key → (kind, name, spec)."""
    out: dict[str, tuple[str, str, Any]] = {}
    if "segment" in kinds:
        for s in config.segments:
            spec = {"rule": s.rule, "notify": s.notify, "description": s.description}
            out[f"segment:{s.name}"] = ("segment", s.name, spec)
    if "trigger" in kinds and "triggers" in config.model_fields_set:
        spec = config.triggers.model_dump(exclude_none=True, exclude={"version"})
        out["trigger:triggers"] = ("trigger", "triggers", spec)
    if "subscription" in kinds:
        for sub in config.subscriptions:
            out[f"subscription:{sub.name}"] = (
                "subscription",
                sub.name,
                sub.model_dump(mode="json"),
            )
    if "policy" in kinds and "contact_policy" in config.model_fields_set:
        spec = config.contact_policy.model_dump(mode="json", exclude_unset=True)
        out["policy:contact_policy"] = ("policy", "contact_policy", spec)
    return out


def plan(
    config: WaylineConfig,
    current: dict[str, Any],
    now_ms: int,
    kinds: tuple[str, ...] = RULE_KINDS,
) -> list[dict[str, Any]]:
    """The definitions to publish for ``config``: each new or changed one with its next version."""
    out = []
    for key, (kind, name, spec) in wanted(config, kinds).items():
        known = current.get(key)
        if known is not None and known["spec"] == spec and not known.get("deleted"):
            continue
        version = int(known["version"]) + 1 if known else 1
        out.append({"kind": kind, "name": name, "version": version, "spec": spec,
                    "updated_at": iso(now_ms)})  # fmt: skip
    return out


class CannotDelete(ValueError):
    """A segment that cannot be deleted: not published, deleted already, or read by another."""


def retire(
    current: dict[str, Any], names: list[str], now_ms: int, kind: str = "segment"
) -> list[dict[str, Any]]:
    """The deleted versions to publish for the published ``kind`` definitions ``names``."""
    out = []
    for name in names:
        known = current.get(f"{kind}:{name}")
        if known is None or known.get("deleted"):
            state = "deleted already" if known else "not published"
            raise CannotDelete(
                f"{kind} {name!r}: {state}; a {kind} defined only in the config file is "
                "removed by taking it out of the file"
            )
        readers = (
            []
            if kind != "segment"
            else sorted(
                d["name"]
                for d in current.values()
                if d["kind"] == "segment" and not d.get("deleted") and d["name"] not in names
                if name in segments_read(parse_rule(d["name"], d["spec"]["rule"]))
            )
        )
        if readers:
            raise CannotDelete(f"segment {name!r}: read by {', '.join(readers)} (in_segment)")
        out.append({"kind": kind, "name": name, "version": int(known["version"]) + 1,
                    "spec": {}, "updated_at": iso(now_ms), "deleted": True})  # fmt: skip
    return out


def publish(kafka: KafkaConfig, topic: str, definitions: list[dict[str, Any]]) -> None:
    producer = kafka.producer()
    for definition in definitions:
        key = f"{definition['kind']}:{definition['name']}".encode()
        producer.produce(topic, orjson.dumps(definition), key)
    if producer.flush(30):
        raise TimeoutError("the broker did not acknowledge the definitions")


def compile_rules(config: WaylineConfig, latest: dict[str, Any], generation: int) -> Rules:
    """The config's segments and triggers, overridden by name by the topic's definitions."""
    segments = {s.name: SegmentDef(s.name, s.rule, s.version, s.notify) for s in config.segments}
    triggers = config.triggers.config()
    changed = 0
    for definition in latest.values():
        if definition["kind"] not in RULE_KINDS:
            continue  # subscriptions and the policy: the delivery worker's (config.channels)
        changed = max(changed, _ms(definition.get("updated_at")))
        spec = definition["spec"]
        if definition.get("deleted"):
            segments.pop(definition["name"], None)
        elif definition["kind"] == "segment":
            segments[definition["name"]] = SegmentDef(
                definition["name"], spec["rule"], int(definition["version"]), bool(spec["notify"])
            )
        else:
            triggers = TriggerConfig.from_mapping(spec, int(definition["version"]))
    content = orjson.dumps(
        [
            [d.name, d.version, d.notify, d.rule]
            for d in sorted(segments.values(), key=lambda d: d.name)
        ]
        + [repr(triggers)],
        option=orjson.OPT_SORT_KEYS,
    )
    fingerprint = hashlib.blake2b(content, digest_size=12).hexdigest()
    return Rules(generation, changed, compile_segments(segments.values()), triggers, fingerprint)


def _ms(text: Any) -> int:
    if not isinstance(text, str):
        return 0
    return int(datetime.fromisoformat(text).astimezone(UTC).timestamp() * 1000)


class DefinitionsView:
    """Follows ``wayline.definitions`` in a thread; ``rules`` is the latest compiled generation.

    A definition that does not compile (written by something other than ``segments apply``) is
    logged and ignored: the previous generation stays in force."""

    def __init__(
        self,
        kafka: KafkaConfig,
        topic: str,
        config: WaylineConfig,
        on_change: Callable[[Rules, dict[str, Any]], None] | None = None,
    ) -> None:
        self.kafka, self.topic, self.config = kafka, topic, config
        self.on_change = on_change  # called with each new generation and the definitions
        self.rules = compile_rules(config, {}, 0)
        self._latest: dict[str, Any] = {}
        self.ready = threading.Event()  # set once the topic has been read to its end
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="definitions", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wait_ready(self, timeout_s: float = 60) -> bool:
        return self.ready.wait(timeout_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        settings = {"fetch.wait.max.ms": 50, "enable.partition.eof": True}
        tail = Tail(
            self.kafka, "definitions", [TopicPartition(self.topic, 0, OFFSET_BEGINNING)], settings
        )
        try:
            while not self._stop.is_set():
                changed = False
                for message in tail.consume(100, 0.2):
                    error = message.error()
                    if error is None:
                        _fold(self._latest, message.key(), message.value())
                        changed = True
                    elif error.code() == KafkaError._PARTITION_EOF:
                        if changed or not self.ready.is_set():
                            self._recompile()
                            changed = False
                        self.ready.set()
                if changed:
                    self._recompile()
        except Exception:
            log.exception("definitions view stopped")
        finally:
            tail.close()

    def _recompile(self) -> None:
        try:
            rules = compile_rules(self.config, dict(self._latest), self.rules.generation + 1)
        except Exception as exc:
            log.error(
                "definitions on %s do not compile, keeping the previous ones: %s", self.topic, exc
            )
            return
        self.rules = rules
        log.info(
            "definitions generation %d: %d segments", rules.generation, len(rules.segments.segments)
        )
        if self.on_change is not None:
            try:
                self.on_change(rules, dict(self._latest))
            except Exception:
                log.exception("definitions generation %d: a follower failed", rules.generation)
