"""The whole identity + profile semantics in one process: the reference the workers must match.

``ProfileBook.ingest(event)`` resolves the event's identifiers, folds merged-away profiles into
the survivor and applies the event. The identity and profile workers split exactly this across
partitions; tests compare them with it, and ``segments test`` dry runs use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wayline.profiles.identity import (
    IdentityRules,
    LogEntry,
    MemoryGraph,
    Resolution,
    event_identifiers,
    resolve,
)
from wayline.profiles.state import State, apply_event, empty_state, merge


def absorb(survivor: State | None, loser: State, loser_id: str) -> State:
    """The survivor's state after taking in a merged-away profile's state."""
    merged = merge(survivor or empty_state(), loser)
    merged["merged_from"] = sorted({*merged["merged_from"], loser_id})
    return merged


def resolve_event(graph: MemoryGraph, rules: IdentityRules, event: Mapping[str, Any]) -> Resolution:
    previous = event.get("previousId") if event.get("type") == "alias" else None
    return resolve(graph, rules, event_identifiers(event), previous)


@dataclass
class ProfileBook:
    rules: IdentityRules = field(default_factory=IdentityRules)
    graph: MemoryGraph = field(default_factory=MemoryGraph)
    states: dict[str, State] = field(default_factory=dict)
    log: list[LogEntry] = field(default_factory=list)

    def resolve(self, event: Mapping[str, Any]) -> Resolution:
        """Link the event's identifiers in the graph (merge-log entries are kept)."""
        resolution = resolve_event(self.graph, self.rules, event)
        self.log.extend(resolution.log)
        return resolution

    def ingest(self, event: Mapping[str, Any]) -> str | None:
        """Fold ``event`` in; the profile id it counted for (None: only junk identifiers)."""
        resolution = self.resolve(event)
        for loser, survivor in resolution.merges:
            loser_state = self.states.pop(loser, None) or empty_state()
            self.states[survivor] = absorb(self.states.get(survivor), loser_state, loser)
        if resolution.profile_id is None:
            return None
        state = self.states.get(resolution.profile_id)
        if state is None:
            state = self.states[resolution.profile_id] = empty_state()
        apply_event(state, event, list(resolution.linked))
        return resolution.profile_id

    def profile_of(self, kind: str, value: str) -> str | None:
        return self.graph.owner((kind, value))
