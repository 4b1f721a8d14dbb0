"""A dry run over a timeline of events: who enters and exits which segment when, which triggers
fire, and why — the same results the profile worker produces in replay mode.

Events are canonical (normalized) and applied in event-time order; before each event, every
profile whose due time has come is looked at again, exactly as the worker's timers would.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wayline.profiles.book import ProfileBook, absorb
from wayline.profiles.state import empty_state, epoch_ms
from wayline.segments.compiler import Compiled
from wayline.segments.engine import Outcome, after_merge, at_due, on_event
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

    def run(self, events: Iterable[Mapping[str, Any]], until_ms: int | None = None) -> None:
        ordered = sorted(events, key=lambda e: (epoch_ms(str(e["timestamp"])), str(e["messageId"])))
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
            self._record(pid, at_due(self.compiled, self.triggers, state, due))

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
            merged = after_merge(self.compiled, self.triggers, book.states[survivor], own, at)
            self._record(survivor, merged)
        pid = resolution.profile_id
        if pid is None:
            return
        state = book.states.setdefault(pid, empty_state())
        _counted, outcome = on_event(
            self.compiled, self.triggers, state, event, list(resolution.linked), at
        )
        self._record(pid, outcome)

    def _record(self, pid: str, outcome: Outcome) -> None:
        state = self.book.states[pid]
        who = _who(state)
        for t in outcome.transitions:
            self.happenings.append(
                Happening(t.at_ms, pid, who, f"{t.kind} {t.segment}", f"rule version {t.version}")
            )
        for fired in outcome.fired:
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
