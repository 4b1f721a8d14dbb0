"""Topic names and their properties: a public contract. The prefix is ``WAYLINE_TOPIC_PREFIX``."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Cleanup(StrEnum):
    DELETE = "delete"
    COMPACT = "compact"


ARRIVAL_TIME_TOPICS = ("events.raw", "events.dlq")  # timestamped on arrival, not event time


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic: its full name, what it carries, how many partitions and its cleanup policy."""

    name: str
    suffix: str
    partitions: int
    cleanup: Cleanup
    description: str

    @property
    def configs(self) -> dict[str, str]:
        """Topic configs Wayline sets at creation. Records past the raw topic carry their
        event time as the Kafka timestamp, so time-based retention would delete a replayed
        history (months old) the moment it is written: those topics keep records until a
        size limit (``retention.bytes``) an operator sets says otherwise."""
        configs = {"cleanup.policy": self.cleanup.value}
        if self.cleanup is Cleanup.DELETE and self.suffix not in ARRIVAL_TIME_TOPICS:
            configs["retention.ms"] = "-1"
        return configs


# suffix, compacted, single partition, description
_CONTRACT: tuple[tuple[str, bool, bool, str], ...] = (
    ("events.raw", False, False, "events as sources sent them (Segment spec)"),
    ("events.dlq", False, False, "invalid events: original bytes, reason in headers"),
    ("events", False, True, "validated, normalized events, in one total order"),
    ("events.resolved", False, False, "events with their profile id, and merge hand-offs"),
    ("identity", False, False, "the merge log: merges and refused merges"),
    ("profiles", True, False, "profile snapshot after each change; key = profile id"),
    ("segments", False, False, "segment enter/exit transitions, a record per profile and batch"),
    ("triggers", False, False, "triggers as CloudEvents 1.0"),
    ("deliveries", False, False, "every decision and attempt of every delivery, with why"),
    ("deliveries.dlq", False, False, "triggers whose delivery exhausted its retries"),
    ("definitions", True, True, "segment and trigger definitions, versioned"),
)
SUFFIXES: tuple[str, ...] = tuple(s for s, *_ in _CONTRACT)
_NAMED = {  # attribute of Topics -> suffix
    "raw": "events.raw",
    "dlq": "events.dlq",
    "events": "events",
    "resolved": "events.resolved",
    "identity": "identity",
    "profiles": "profiles",
    "segments": "segments",
    "triggers": "triggers",
    "deliveries": "deliveries",
    "deliveries_dlq": "deliveries.dlq",
    "definitions": "definitions",
}


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic set for one prefix. Tests use a fresh prefix each, so topics never collide."""

    prefix: str = "wayline"
    partitions: int = 6
    # the full names, made once: a step names a topic for every record it writes
    raw: str = field(init=False, repr=False, compare=False)  # events.raw
    dlq: str = field(init=False, repr=False, compare=False)  # events.dlq
    events: str = field(init=False, repr=False, compare=False)  # events
    resolved: str = field(init=False, repr=False, compare=False)  # events.resolved
    identity: str = field(init=False, repr=False, compare=False)  # identity
    profiles: str = field(init=False, repr=False, compare=False)  # profiles
    segments: str = field(init=False, repr=False, compare=False)  # segments
    triggers: str = field(init=False, repr=False, compare=False)  # triggers
    deliveries: str = field(init=False, repr=False, compare=False)  # deliveries
    deliveries_dlq: str = field(init=False, repr=False, compare=False)  # deliveries.dlq
    definitions: str = field(init=False, repr=False, compare=False)  # definitions

    def __post_init__(self) -> None:
        for attr, suffix in _NAMED.items():
            object.__setattr__(self, attr, self.name(suffix))

    def name(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}"

    def changelog(self, worker: str, store: str) -> str:
        """The compacted changelog topic of one worker's state store."""
        return f"{self.prefix}.changelog.{worker}.{store}"

    def specs(self, stores: dict[str, list[str]] | None = None) -> list[TopicSpec]:
        """Every topic Wayline needs, plus one changelog per ``{worker: [store, ...]}``."""
        specs = [
            TopicSpec(
                name=self.name(suffix),
                suffix=suffix,
                partitions=1 if single else self.partitions,
                cleanup=Cleanup.COMPACT if compact else Cleanup.DELETE,
                description=description,
            )
            for suffix, compact, single, description in _CONTRACT
        ]
        for worker, names in (stores or {}).items():
            specs.extend(
                TopicSpec(
                    name=self.changelog(worker, store),
                    suffix=f"changelog.{worker}.{store}",
                    partitions=self.partitions,
                    cleanup=Cleanup.COMPACT,
                    description=f"changelog of store {store!r} of worker {worker!r}",
                )
                for store in names
            )
        return specs
