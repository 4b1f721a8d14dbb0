"""Segments and triggers applied to one profile: per event, at a due time, after a merge.

The profile worker calls these with the profile state; the dry run of ``wayline segments test``
calls them over a timeline. Both get the same results: transitions (``wayline.segments``), fired
triggers (``wayline.triggers``) and the next moment the profile needs looking at again (the
worker keeps one timer per profile for it).

``on_event`` folds the event itself (``profiles.state.apply_event``) because it needs the values
rules read from *before* the event: comparing them with the values after it says which
conditions the event flipped, and only the segments holding those are evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from wayline.profiles.state import State, apply_event, event_name
from wayline.profiles.view import contact_points
from wayline.schemas.timestamps import epoch_ms
from wayline.segments.compiler import Compiled
from wayline.segments.membership import (
    Evaluation,
    Transition,
    due_now,
    evaluate,
    forget_deleted,
)
from wayline.segments.subject import read_field, track
from wayline.segments.triggers import (
    Fired,
    TriggerConfig,
    check,
    cloud_event,
    segment_triggers,
    track_browse,
)


class Outcome(NamedTuple):
    transitions: tuple[Transition, ...]
    fired: tuple[Fired, ...]
    next_due: int | None


def on_event(
    compiled: Compiled,
    triggers: TriggerConfig,
    state: dict[str, Any],
    event: Mapping[str, Any],
    linked: list[tuple[str, str]],
    now_ms: int,
) -> tuple[bool, Outcome]:
    """Fold ``event`` into ``state``, count it in the rule counters, re-evaluate the segments it
    can flip (and those whose due time has come), look for triggers. Returns whether the event
    was new to the profile (False: a duplicate, nothing counted) and the outcome."""
    name = event_name(event)
    props = event.get("properties") or {}
    trait_keys = _trait_keys(event, props)
    fields = compiled.fields_changed_by(name, trait_keys)
    before = [read_field(state, path, now_ms) for path in fields]
    first = not state["seen"]
    counted = apply_event(state, event, linked)
    names = due_now(state, now_ms) | compiled.drifting
    if first:
        names |= compiled.at_rest
    if counted:
        ts = epoch_ms(str(event["timestamp"]))
        counters = compiled.by_event.get(name)
        found = counters.matching(event) if counters is not None else []
        for window, reached in track(state, event, ts, found, now_ms):
            names |= compiled.crossed(window, reached)
        for path, old in zip(fields, before, strict=True):
            new = read_field(state, path, now_ms)
            if new != old:
                names |= compiled.flipped(path, old, new)
        track_browse(state, name, props, ts)
    evaluation = evaluate(compiled, state, now_ms, names)
    return counted, _outcome(evaluation, triggers, state, now_ms, (name, trait_keys))


def at_due(
    compiled: Compiled,
    triggers: TriggerConfig,
    state: dict[str, Any],
    now_ms: int,
) -> Outcome:
    """The profile's due time passed: re-evaluate the segments and trigger rules that were due
    (time alone changes nothing else)."""
    if "trigger_due" not in state:  # a state from before trigger due times were kept
        return at_time(compiled, triggers, state, now_ms)
    names = due_now(state, now_ms) | compiled.drifting
    evaluation = evaluate(compiled, state, now_ms, names)
    return _outcome(evaluation, triggers, state, now_ms, ("", set()))


def after_change(
    compiled: Compiled,
    triggers: TriggerConfig,
    state: dict[str, Any],
    now_ms: int,
    changed: set[str],
) -> Outcome:
    """New definitions, of which the segments ``changed`` are new or changed: evaluate those
    (and what reads them), exit deleted ones, look at every trigger rule."""
    gone = forget_deleted(compiled, state, now_ms)
    names = changed | due_now(state, now_ms) | compiled.drifting
    evaluation = evaluate(compiled, state, now_ms, names)
    transitions = (*gone, *evaluation.transitions)
    return _outcome(Evaluation(transitions, evaluation.next_due), triggers, state, now_ms)


def after_merge(
    compiled: Compiled,
    triggers: TriggerConfig,
    state: dict[str, Any],
    own: dict[str, list[int]],
    now_ms: int,
) -> Outcome:
    """The survivor of a merge: ``state`` holds both profiles (``profiles.book.absorb``), ``own``
    the survivor's memberships from before. Every segment is evaluated against ``own``, so the
    survivor's transitions say what it now holds and no longer holds (the merged-away profile
    exits all of its segments on its own). A segment the merged-away profile was in is entered
    without a segment_entered trigger: the customer was in it already, under the other id."""
    inherited = state.get("segments") or {}
    state["segments"] = {name: list(held) for name, held in own.items()}
    evaluation = evaluate(compiled, state, now_ms)
    transitions = tuple(
        t._replace(notify=False) if t.kind == "enter" and t.segment in inherited else t
        for t in evaluation.transitions
    )
    return _outcome(Evaluation(transitions, evaluation.next_due), triggers, state, now_ms)


def at_time(
    compiled: Compiled,
    triggers: TriggerConfig,
    state: dict[str, Any],
    now_ms: int,
) -> Outcome:
    """Re-evaluate every segment and trigger (definitions changed, a state from an older
    version)."""
    return _outcome(evaluate(compiled, state, now_ms), triggers, state, now_ms)


def _outcome(
    evaluation: Evaluation,
    triggers: TriggerConfig,
    state: dict[str, Any],
    now_ms: int,
    event: tuple[str, set[str]] | None = None,
) -> Outcome:
    fired = segment_triggers(state, evaluation.transitions)
    found = check(triggers, state, now_ms, event)
    dues = [d for d in (evaluation.next_due, found.next_due) if d is not None]
    # a due time is always ahead: were one left behind, the profile's timer would fire again
    # and again at the same moment
    next_due = max(min(dues), now_ms + 1) if dues else None
    return Outcome(evaluation.transitions, (*fired, *found.fired), next_due)


def trigger_document(
    compiled: Compiled,
    triggers: TriggerConfig,
    fired: Fired,
    profile_id: str,
    state: State,
) -> dict[str, Any]:
    """The CloudEvent of a fired trigger, with the version of the rule that fired it (the
    segment's for segment_entered/exited, the trigger definitions' for the others) and the
    profile's contact points as it fired (newer ones reach the delivery worker on
    ``wayline.profiles``)."""
    segment = fired.payload.get("segment")
    version = triggers.version
    if fired.trigger.startswith("segment_") and segment in compiled.by_name:
        version = compiled.by_name[segment].version
    return cloud_event(fired, version, profile_id, state["ids"], contact_points(state))


def _trait_keys(event: Mapping[str, Any], props: Mapping[str, Any]) -> set[str]:
    """The trait keys ``event`` carries (``timezone`` for a context time zone, ``consent`` for
    consent in its properties)."""
    keys: set[str] = {"consent"} if isinstance(props, dict) and "consent" in props else set()
    context = event.get("context") or {}
    if isinstance(context.get("traits"), dict):
        keys |= set(context["traits"])
    if event.get("type") == "identify" and isinstance(event.get("traits"), dict):
        keys |= set(event["traits"])
    if "timezone" in context:
        keys.add("timezone")
    return keys
