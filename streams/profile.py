"""The profile step: ``wayline.events.resolved`` → profile state, ``wayline.profiles`` snapshots.

Input records, by the ``wayline.kind`` header (all keyed by profile id, so one profile's records
are on one partition, in order):

- ``event``: fold the event into the profile (``profiles.state.apply_event``; a message id the
  profile already counted is ignored);
- ``merge`` (from the identity step, keyed by the merged-away id, after every event routed to
  it): remove the profile, remember ``forward[id] = survivor``, tombstone its snapshot and send
  its whole state as a ``handoff`` keyed by the survivor — to this same topic, so it reaches
  the survivor's partition;
- ``handoff``: fold the merged-away state into the survivor (``profiles.book.absorb``), unless
  the survivor already lists that id in ``merged_from``.

The move happens exactly once across crashes: removing the state, the forward entry and the
handoff are one batch (committed together or replayed together), and a replayed handoff finds
the id already in ``merged_from``. Anything that still arrives for a merged-away id (a handoff
to a profile that was itself merged on) is forwarded along ``forward``.

Within a batch, states are decoded once and written back once; one snapshot per changed
profile is produced at the end of the batch (the topic is compacted: the newest one counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from wayline.profiles.book import absorb
from wayline.profiles.state import State, apply_event, empty_state
from wayline.profiles.view import snapshot
from wayline.schemas.topics import Topics
from wayline.streams.envelope import Envelope, Output
from wayline.streams.identity import EVENT, HANDOFF, KIND_HEADER, MERGE
from wayline.streams.task import TaskContext

PROFILES, FORWARDS = "profiles", "forwards"


@dataclass
class _Entry:
    version: int
    state: State | None  # None: merged away in this batch
    changed: bool = False


class ProfileStep:
    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self._batch: dict[int, dict[str, _Entry]] = {}
        self.events_applied = 0
        self.duplicates = 0
        self.merges_out = 0
        self.handoffs_in = 0
        self.forwarded = 0

    def process(self, message: Envelope, ctx: TaskContext) -> list[Output]:
        assert message.key is not None
        assert message.value is not None
        pid = message.key.decode()
        kind = message.header(KIND_HEADER) or EVENT
        target = self._forward_of(pid, ctx)
        if target is not None and kind != MERGE:
            self.forwarded += 1
            forward = Output(
                self.topics.resolved,
                target.encode(),
                message.value,
                message.headers,
                timestamp_ms=message.timestamp_ms,
            )
            return [forward]
        body = orjson.loads(message.value)
        if kind == MERGE:
            return self._merge_away(pid, str(body["profile_id"]), ctx, message.timestamp_ms)
        if kind == HANDOFF:
            self._take_in(pid, body, ctx)
            return []
        self._apply(pid, body, ctx)
        return []

    def end_batch(self, ctx: TaskContext) -> list[Output]:
        entries = self._batch.pop(ctx.partition, {})
        store = ctx.store(PROFILES)
        outputs: list[Output] = []
        now = ctx.stream_time_ms
        for pid, entry in entries.items():
            if not entry.changed:
                continue
            if entry.state is None:
                store.delete(pid.encode())
                outputs.append(Output(self.topics.profiles, pid.encode(), None))
                continue
            store.put(pid.encode(), orjson.dumps({"v": entry.version, "s": entry.state}))
            doc = snapshot(pid, entry.state, now, entry.version)
            outputs.append(Output(self.topics.profiles, pid.encode(), orjson.dumps(doc)))
        return outputs

    def counters(self) -> dict[str, int]:
        return {
            "events_applied": self.events_applied,
            "duplicates_ignored": self.duplicates,
            "profiles_merged_away": self.merges_out,
            "handoffs_absorbed": self.handoffs_in,
            "forwarded": self.forwarded,
        }

    def _entry(self, pid: str, ctx: TaskContext) -> _Entry:
        entries = self._batch.setdefault(ctx.partition, {})
        entry = entries.get(pid)
        if entry is None:
            raw = ctx.store(PROFILES).get(pid.encode())
            if raw is None:
                entry = _Entry(0, empty_state())
            else:
                stored = orjson.loads(raw)
                entry = _Entry(int(stored["v"]), stored["s"])
            entries[pid] = entry
        return entry

    def _forward_of(self, pid: str, ctx: TaskContext) -> str | None:
        value = ctx.store(FORWARDS).get(pid.encode())
        return None if value is None else value.decode()

    def _apply(self, pid: str, event: dict[str, Any], ctx: TaskContext) -> None:
        entry = self._entry(pid, ctx)
        state = entry.state if entry.state is not None else empty_state()
        linked = [(str(k), str(v)) for k, v in event.get("linked") or ()]
        if apply_event(state, event, linked):
            self.events_applied += 1
        else:
            self.duplicates += 1
        entry.state, entry.version, entry.changed = state, entry.version + 1, True

    def _merge_away(self, pid: str, survivor: str, ctx: TaskContext, ts_ms: int) -> list[Output]:
        if self._forward_of(pid, ctx) is not None:  # a replayed merge record
            return []
        entry = self._entry(pid, ctx)
        state = entry.state if entry.state is not None else empty_state()
        ctx.store(FORWARDS).put(pid.encode(), survivor.encode())
        entry.state, entry.changed = None, True
        self.merges_out += 1
        body = {"merged_id": pid, "profile_id": survivor, "version": entry.version, "state": state}
        return [
            Output(
                self.topics.resolved,
                survivor.encode(),
                orjson.dumps(body),
                headers=((KIND_HEADER, HANDOFF),),
                timestamp_ms=ts_ms,
            )
        ]

    def _take_in(self, pid: str, body: dict[str, Any], ctx: TaskContext) -> None:
        loser = str(body["merged_id"])
        entry = self._entry(pid, ctx)
        state = entry.state if entry.state is not None else empty_state()
        if loser in state["merged_from"]:
            self.duplicates += 1
            return
        self.handoffs_in += 1
        entry.state = absorb(state, body["state"], loser)
        entry.version = max(entry.version, int(body.get("version", 0))) + 1
        entry.changed = True
