"""Segments and triggers applied to one profile: after an event, at a due time, after a merge.

The profile worker calls these with the profile state it just folded; the dry run of
``wayline segments test`` calls them over a timeline. Both get the same results:
transitions (``wayline.segments``), fired triggers (``wayline.triggers``) and the next moment
the profile needs looking at again (the worker keeps one timer per profile for it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from wayline.profiles.state import epoch_ms, event_name
from wayline.profiles.view import snapshot
from wayline.segments.compiler import Compiled
from wayline.segments.membership import Evaluation, Transition, evaluate
from wayline.segments.subject import track
from wayline.segments.triggers import Fired, TriggerConfig, check, segment_triggers, track_browse


@dataclass(frozen=True)
class Outcome:
    transitions: tuple[Transition, ...]
    fired: tuple[Fired, ...]
    next_due: int | None


def after_event(
    compiled: Compiled,
    triggers: TriggerConfig,
    profile_id: str,
    state: dict[str, Any],
    event: Mapping[str, Any],
    now_ms: int,
    counted: bool = True,
) -> Outcome:
    """Count the event in the rule counters (when it was new), re-evaluate what it affects,
    and look for triggers."""
    name = event_name(event)
    if counted:
        track(state, event, name, compiled.by_event.get(name, []))
        track_browse(state, name, event.get("properties") or {}, epoch_ms(str(event["timestamp"])))
    doc = LazySnapshot(profile_id, state, now_ms)
    names = compiled.affected(name, _trait_keys(event))
    return _outcome(evaluate(compiled, state, doc, now_ms, names), triggers, state, doc, now_ms)


def at_time(
    compiled: Compiled,
    triggers: TriggerConfig,
    profile_id: str,
    state: dict[str, Any],
    now_ms: int,
) -> Outcome:
    """Re-evaluate every segment and trigger (a due time passed, profiles merged, definitions
    changed)."""
    doc = LazySnapshot(profile_id, state, now_ms)
    return _outcome(evaluate(compiled, state, doc, now_ms), triggers, state, doc, now_ms)


class LazySnapshot(Mapping[str, Any]):
    """The profile document, computed only if a rule reads a field (many rules only count
    events)."""

    def __init__(self, profile_id: str, state: dict[str, Any], now_ms: int) -> None:
        self._args = (profile_id, state, now_ms)
        self._doc: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._doc is None:
            self._doc = snapshot(*self._args)
        return self._doc

    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


def _outcome(
    evaluation: Evaluation,
    triggers: TriggerConfig,
    state: dict[str, Any],
    doc: Mapping[str, Any],
    now_ms: int,
) -> Outcome:
    fired = segment_triggers(state, evaluation.transitions)
    found = check(triggers, state, doc, now_ms)
    dues = [d for d in (evaluation.next_due, found.next_due) if d is not None]
    return Outcome(evaluation.transitions, (*fired, *found.fired), min(dues) if dues else None)


def _trait_keys(event: Mapping[str, Any]) -> set[str]:
    keys: set[str] = set()
    context = event.get("context") or {}
    if isinstance(context.get("traits"), dict):
        keys |= set(context["traits"])
    if event.get("type") == "identify" and isinstance(event.get("traits"), dict):
        keys |= set(event["traits"])
    if "timezone" in context:
        keys.add("timezone")
    return keys
