"""A dry run over a timeline of events: who enters and exits which segment when, which triggers
fire, and why — the same results the profile worker produces in replay mode.

Events are canonical (normalized); a message id seen before is dropped (the first copy in the
log counts, as the identity worker keeps the first to arrive), and the rest are applied in
``(event time, messageId)`` order — the order the identity worker releases a replayed log in.
Before each event, every profile whose due time has come is looked at again, exactly as the
worker's timers would. ``documents()`` gives each profile's document as of its latest change,
as the worker publishes it.
"""

from __future__ import annotations

import copy
import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wayline.profiles.book import ProfileBook, absorb
from wayline.profiles.state import empty_state, is_counted
from wayline.profiles.view import snapshot
from wayline.schemas.timestamps import epoch_ms
from wayline.segments.compiler import Compiled
from wayline.segments.engine import Outcome, after_merge, at_due, on_event, trigger_document
from wayline.segments.triggers import TriggerConfig


@dataclass(frozen=True)
class Happening:
    at_ms: int
    profile_id: str
    who: str  # the profile's strongest identifier, for people to read
    what: str  # "enter vip", "exit vip", "trigger cart_abandoned"
    why: str


class Timeline:
    def __init__(self, compiled: Compiled, triggers: TriggerConfig) -> None:
        self.compiled = compiled
        self.triggers = triggers
        self.book = ProfileBook()
        self.due: list[tuple[int, str]] = []
        self.happenings: list[Happening] = []
        self.as_of: dict[str, int] = {}
        self.cloud_events: list[dict[str, Any]] = []  # as the worker puts them on the topic
        self.seen: set[str] = set()
        self.duplicates = 0

    def run(self, events: Iterable[Mapping[str, Any]], until_ms: int | None = None) -> None:
        first: list[Mapping[str, Any]] = []
        for event in events:
            msgid = str(event["messageId"])
            if msgid in self.seen:
                self.duplicates += 1
                continue
            self.seen.add(msgid)
            first.append(event)
        ordered = sorted(first, key=lambda e: (epoch_ms(str(e["timestamp"])), str(e["messageId"])))
        for event in ordered:
            at = epoch_ms(str(event["timestamp"]))
            self.advance(at)
            self._ingest(event, at)
        if until_ms is not None:
            self.advance(until_ms)

    def advance(self, now_ms: int) -> None:
        """Look again at every profile whose due time is ≤ ``now_ms``, in due order."""
        while self.due and self.due[0][0] <= now_ms:
            due, pid = heapq.heappop(self.due)
            state = self.book.states.get(pid)
            if state is None or state.get("_due") != due:
                continue  # merged away, or rescheduled since
            outcome = at_due(self.compiled, self.triggers, state, due)
            if outcome.transitions or outcome.fired:
                self._touch(pid, due)
            self._record(pid, outcome)

    def documents(self) -> dict[str, dict[str, Any]]:
        """Every profile's document, as of its latest change."""
        return {
            pid: snapshot(pid, state, self.as_of.get(pid, 0))
            for pid, state in sorted(self.book.states.items())
        }

    def _touch(self, pid: str, at_ms: int) -> None:
        self.as_of[pid] = max(self.as_of.get(pid, 0), at_ms)

    def _ingest(self, event: Mapping[str, Any], at: int) -> None:
        book = self.book
        resolution = book.resolve(event)
        for loser, survivor in resolution.merges:
            loser_state = book.states.pop(loser, None) or empty_state()
            who = _who(loser_state)
            for segment in sorted(loser_state.get("segments") or {}):  # as the worker does
                self.happenings.append(
                    Happening(at, loser, who, f"exit {segment}", f"merged into {survivor}")
                )
            before = book.states.get(survivor)
            own = dict((before or {}).get("segments") or {})
            book.states[survivor] = absorb(before, loser_state, loser)
            self._touch(survivor, max(at, self.as_of.pop(loser, 0)))
            merged = after_merge(self.compiled, self.triggers, book.states[survivor], own, at)
            self._record(survivor, merged)
        pid = resolution.profile_id
        if pid is None:
            return
        state = book.states.setdefault(pid, empty_state())
        if is_counted(state, event):
            return
        _counted, outcome = on_event(
            self.compiled, self.triggers, state, event, list(resolution.linked), at
        )
        self._touch(pid, at)
        self._record(pid, outcome)

    def _record(self, pid: str, outcome: Outcome) -> None:
        state = self.book.states[pid]
        who = _who(state)
        for t in outcome.transitions:
            self.happenings.append(
                Happening(t.at_ms, pid, who, f"{t.kind} {t.segment}", f"rule version {t.version}")
            )
        for fired in outcome.fired:
            doc = trigger_document(self.compiled, self.triggers, fired, pid, state)
            self.cloud_events.append(copy.deepcopy(doc))
            reason = ", ".join(f"{k}={v}" for k, v in fired.reason.items())
            self.happenings.append(
                Happening(fired.at_ms, pid, who, f"trigger {fired.trigger}", reason)
            )
        state["_due"] = outcome.next_due
        if outcome.next_due is not None:
            heapq.heappush(self.due, (outcome.next_due, pid))


def _who(state: Mapping[str, Any]) -> str:
    for kind in ("user_id", "email", "phone", "device_id", "anonymous_id"):
        values = state["ids"].get(kind)
        if values:
            return f"{kind}:{values[0]}"
    for kind, values in sorted(state["ids"].items()):
        return f"{kind}:{values[0]}"
    return "?"
