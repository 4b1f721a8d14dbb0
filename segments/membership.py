"""Evaluate segments for one profile: enter/exit transitions and the next due time.

Memberships live in the profile state (``state["segments"]``: name → [rule version, entered at])
with each timed segment's due time (``state["segment_due"]``), so evaluation is a pure function
of the state, the profile document and ``now``:

    evaluate(compiled, state, doc, now_ms, names) -> Evaluation(transitions, next_due)

``names`` limits evaluation to the segments an event can affect (``Compiled.affected``); None
evaluates all of them (a timer, a merge, a changed definition).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wayline.segments.compiler import Compiled
from wayline.segments.subject import Subject


@dataclass(frozen=True)
class Transition:
    segment: str
    version: int
    kind: str  # "enter" | "exit"
    at_ms: int
    notify: bool


@dataclass(frozen=True)
class Evaluation:
    transitions: tuple[Transition, ...]
    next_due: int | None  # the earliest moment a timed segment may change, or None


def members(state: Mapping[str, Any]) -> set[str]:
    return set(state.get("segments") or {})


def evaluate(
    compiled: Compiled,
    state: dict[str, Any],
    doc: Mapping[str, Any],
    now_ms: int,
    names: set[str] | None = None,
) -> Evaluation:
    current: dict[str, list[int]] = state.setdefault("segments", {})
    dues: dict[str, int] = state.setdefault("segment_due", {})
    for gone in [n for n in current if n not in compiled.by_name]:  # a deleted definition
        del current[gone]
    subject = Subject(doc, state.get("conds") or {}, set(current), now_ms)
    transitions: list[Transition] = []
    for seg in compiled.segments:
        if names is not None and seg.name not in names:
            continue
        inside = seg.test(subject)
        was = current.get(seg.name)
        if inside and (was is None or was[0] != seg.version):
            if was is not None:  # a new rule version: exit the old one first
                transitions.append(Transition(seg.name, was[0], "exit", now_ms, seg.notify))
            current[seg.name] = [seg.version, now_ms]
            subject.members.add(seg.name)
            transitions.append(Transition(seg.name, seg.version, "enter", now_ms, seg.notify))
        elif not inside and was is not None:
            del current[seg.name]
            subject.members.discard(seg.name)
            transitions.append(Transition(seg.name, was[0], "exit", now_ms, seg.notify))
        due = seg.due(subject) if seg.timed else None
        if due is None:
            dues.pop(seg.name, None)
        else:
            dues[seg.name] = due
    for stale in [n for n in dues if n not in compiled.by_name]:
        del dues[stale]
    return Evaluation(tuple(transitions), min(dues.values()) if dues else None)
