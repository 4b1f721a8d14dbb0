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

import hashlib
import heapq
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final, NamedTuple

from wayline.segments.codegen import Check
from wayline.segments.compiler import Compiled, CompiledSegment
from wayline.segments.subject import Subject


class Transition(NamedTuple):  # a tuple: thousands are made per second
    segment: str
    version: int
    kind: str  # "enter" | "exit"
    at_ms: int
    notify: bool


def transition_id(profile_id: str, t: Transition) -> str:
    """The id of a transition on ``wayline.segments``: the same for every copy of it."""
    text = f"{t.segment}\x1f{t.version}\x1f{profile_id}\x1f{t.kind}\x1f{t.at_ms}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def transition_ids(profile_id: str, transitions: Sequence[Transition]) -> list[str]:
    """``transition_id`` of each of one profile's transitions. A segment with many members
    makes thousands a second, so the hash of each segment's part of the text is kept (the
    segments defined lately) and copied, and the profile's part is encoded once per kind and
    moment."""
    prefixes = _PREFIXES
    tails: dict[tuple[str, int], bytes] = {}
    ids: list[str] = []
    for t in transitions:
        head = (t.segment, t.version)
        hasher = prefixes.get(head)
        if hasher is None:
            if len(prefixes) >= 8192:
                prefixes.clear()
            text = f"{t.segment}\x1f{t.version}\x1f".encode()
            hasher = prefixes[head] = hashlib.blake2b(text, digest_size=16)
        at = (t.kind, t.at_ms)
        tail = tails.get(at)
        if tail is None:
            tail = tails[at] = f"{profile_id}\x1f{t.kind}\x1f{t.at_ms}".encode()
        copy = hasher.copy()
        copy.update(tail)
        ids.append(copy.hexdigest())
    return ids


_PREFIXES: Final[dict[tuple[str, int], Any]] = {}  # (segment, version) → hash of its text


class Evaluation(NamedTuple):
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
    transitions: list[Transition] = []
    order: Iterable[CompiledSegment]
    if names is None:  # all of them, in dependency order (none left to add for a flip)
        transitions += forget_deleted(compiled, state, now_ms)
        order = compiled.segments
    elif not names:
        return Evaluation((), min(dues.values()) if dues else None)
    else:
        order = _order(compiled, names, transitions)
    subject = Subject(state, current, now_ms)
    # segments with the same rule share its compiled check: each distinct rule runs once
    answers: dict[Check, tuple[bool, int | None]] = {}
    for seg in order:
        name, check, version, notify = seg.name, seg.check, seg.version, seg.notify
        answer = answers.get(check)
        if answer is None:
            answer = answers[check] = check(subject)
        inside, due = answer
        was = current.get(name)  # called on the dict itself: compiled, a native lookup
        if inside:
            if was is None or was[0] != version:
                if was is not None:  # a new rule version: exit the old one first
                    transitions.append(_new(Transition, (name, was[0], EXIT, now_ms, notify)))
                current[name] = [version, now_ms]
                transitions.append(_new(Transition, (name, version, ENTER, now_ms, notify)))
        elif was is not None:
            del current[name]
            transitions.append(_new(Transition, (name, was[0], EXIT, now_ms, notify)))
        if due is not None:
            dues[name] = due
        elif name in dues:
            del dues[name]
    return Evaluation(tuple(transitions), min(dues.values()) if dues else None)


# a Transition without the Python-level constructor: made by the thousand
_new: Final = tuple.__new__
ENTER: Final = "enter"
EXIT: Final = "exit"


def _order(
    compiled: Compiled, names: set[str], transitions: list[Transition]
) -> Iterable[CompiledSegment]:
    """The defined segments of ``names``, in dependency order: without ``in_segment`` that is
    definition order; with it, see ``_with_dependents``."""
    position, segments = compiled.position, compiled.segments
    if not compiled.dependents:
        at = [position[n] for n in names if n in position]
        at.sort()  # ints: no key function per name
        return [segments[i] for i in at]
    return _with_dependents(compiled, {n for n in names if n in position}, transitions)


def _with_dependents(
    compiled: Compiled, names: set[str], transitions: list[Transition]
) -> Iterator[CompiledSegment]:
    """``names`` in dependency order; a segment that flipped (``transitions`` grew while the
    caller looked at it) adds the segments that read it, after it."""
    position, segments = compiled.position, compiled.segments
    todo = [position[n] for n in names]
    heapq.heapify(todo)
    seen = set(names)
    while todo:
        seg = segments[heapq.heappop(todo)]
        made = len(transitions)
        yield seg
        if len(transitions) == made:
            continue
        for dependent in compiled.dependents.get(seg.name, ()):
            if dependent not in seen:
                seen.add(dependent)
                heapq.heappush(todo, position[dependent])


def due_now(state: dict[str, Any], now_ms: int) -> set[str]:
    """The segments whose due time has come (time alone may have changed them)."""
    dues: dict[str, int] = state.get("segment_due") or {}
    if not dues or min(dues.values()) > now_ms:
        return set()
    return {name for name, due in dues.items() if due <= now_ms}


def forget_deleted(compiled: Compiled, state: dict[str, Any], now_ms: int) -> list[Transition]:
    """Drop the memberships and due times of segments no longer defined; an exit for each
    membership dropped, so a reader of the transitions does not keep the profile in a segment
    that is gone."""
    current = state.setdefault("segments", {})
    exits = [
        Transition(name, current.pop(name)[0], EXIT, now_ms, False)
        for name in sorted(n for n in current if n not in compiled.by_name)
    ]
    dues = state.setdefault("segment_due", {})
    for gone in [n for n in dues if n not in compiled.by_name]:
        del dues[gone]
    return exits
