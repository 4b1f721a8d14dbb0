"""Segments applied to one profile: after an event, at a due time, after a merge.

The profile worker calls these with the profile state it just folded; the dry run of
``wayline segments test`` calls them over a timeline. Both get the same transitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wayline.profiles.state import event_name
from wayline.profiles.view import snapshot
from wayline.segments.compiler import Compiled
from wayline.segments.membership import Evaluation, evaluate
from wayline.segments.subject import track


def after_event(
    compiled: Compiled,
    profile_id: str,
    state: dict[str, Any],
    event: Mapping[str, Any],
    now_ms: int,
    counted: bool = True,
) -> Evaluation:
    """Count the event in the rule counters (when it was new) and re-evaluate what it affects."""
    name = event_name(event)
    if counted:
        track(state, event, name, compiled.by_event.get(name, []))
    doc = snapshot(profile_id, state, now_ms)
    return evaluate(compiled, state, doc, now_ms, compiled.affected(name, _trait_keys(event)))


def at_time(compiled: Compiled, profile_id: str, state: dict[str, Any], now_ms: int) -> Evaluation:
    """Re-evaluate every segment (a due time passed, profiles merged, definitions changed)."""
    return evaluate(compiled, state, snapshot(profile_id, state, now_ms), now_ms)


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
