"""Evaluate segments for one profile: enter/exit transitions and the next due time.

Memberships live in the profile state (``state["segments"]``: name → [rule version, entered at])
with each timed segment's due time (``state["segment_due"]``), so evaluation is a pure function
of the state and ``now``:

    evaluate(compiled, state, now_ms, names) -> Evaluation(transitions, next_due)

``names`` are the segments to look at (those an event can flip, those due); segments that read a
segment that flips (``in_segment``) are added as they flip, and everything runs in dependency
order. None evaluates all of them (a merge, a changed definition).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, NamedTuple

from wayline.segments.compiler import Compiled, CompiledSegment
from wayline.segments.subject import Subject


class Transition(NamedTuple):  # a tuple: thousands are made per second
    segment: str
    version: int
    kind: str  # "enter" | "exit"
    at_ms: int
    notify: bool


@dataclass(frozen=True)
class Evaluation:
    transitions: tuple[Transition, ...]
    next_due: int | None  # the earliest moment a timed segment may change, or None


def evaluate(
    compiled: Compiled,
    state: dict[str, Any],
    now_ms: int,
    names: set[str] | None = None,
) -> Evaluation:
    current: dict[str, list[int]] = state.setdefault("segments", {})
    dues: dict[str, int] = state.setdefault("segment_due", {})
    if names is None:
        forget_deleted(compiled, state)
        names = set(compiled.by_name)
    else:
        names = {n for n in names if n in compiled.by_name}
    subject = Subject(state, set(current), now_ms)
    transitions: list[Transition] = []
    if not compiled.dependents:  # no in_segment: definition order (outputs are reproducible)
        for name in sorted(names, key=compiled.position.__getitem__):
            _look_at(compiled.by_name[name], subject, current, dues, transitions)
    else:
        _in_dependency_order(compiled, names, subject, current, dues, transitions)
    return Evaluation(tuple(transitions), min(dues.values()) if dues else None)


def _in_dependency_order(
    compiled: Compiled,
    names: set[str],
    subject: Subject,
    current: dict[str, list[int]],
    dues: dict[str, int],
    transitions: list[Transition],
) -> None:
    """Segments that read a segment that flipped are looked at too, after it."""
    todo = [(compiled.by_name[n].order, n) for n in names]
    heapq.heapify(todo)
    seen = set(names)
    while todo:
        seg = compiled.by_name[heapq.heappop(todo)[1]]
        if _look_at(seg, subject, current, dues, transitions):
            for dependent in compiled.dependents.get(seg.name, ()):
                if dependent not in seen:
                    seen.add(dependent)
                    heapq.heappush(todo, (compiled.by_name[dependent].order, dependent))


def due_now(state: dict[str, Any], now_ms: int) -> set[str]:
    """The segments whose due time has come (time alone may have changed them)."""
    dues: dict[str, int] = state.get("segment_due") or {}
    if not dues or min(dues.values()) > now_ms:
        return set()
    return {name for name, due in dues.items() if due <= now_ms}


def _look_at(
    seg: CompiledSegment,
    subject: Subject,
    current: dict[str, list[int]],
    dues: dict[str, int],
    transitions: list[Transition],
) -> bool:
    """Evaluate one segment; True when its membership changed."""
    now_ms = subject.now_ms
    inside, due = seg.check(subject)
    was = current.get(seg.name)
    flipped = False
    if inside and (was is None or was[0] != seg.version):
        if was is not None:  # a new rule version: exit the old one first
            transitions.append(Transition(seg.name, was[0], "exit", now_ms, seg.notify))
        current[seg.name] = [seg.version, now_ms]
        subject.members.add(seg.name)
        transitions.append(Transition(seg.name, seg.version, "enter", now_ms, seg.notify))
        flipped = True
    elif not inside and was is not None:
        del current[seg.name]
        subject.members.discard(seg.name)
        transitions.append(Transition(seg.name, was[0], "exit", now_ms, seg.notify))
        flipped = True
    if due is None:
        dues.pop(seg.name, None)
    else:
        dues[seg.name] = due
    return flipped


def forget_deleted(compiled: Compiled, state: dict[str, Any]) -> None:
    """Drop the memberships and due times of segments no longer defined."""
    for key in ("segments", "segment_due"):
        held = state.setdefault(key, {})
        for gone in [n for n in held if n not in compiled.by_name]:
            del held[gone]
