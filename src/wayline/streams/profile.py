"""The profile step: ``wayline.events.resolved`` → profile state, ``wayline.profiles`` snapshots.

Input records, by the ``wayline.kind`` header (keyed by profile id, so one profile's records
are on one partition, in order):

- ``event``: fold and evaluate it (a message id the profile already counted changes nothing);
  an event that merged other profiles into this one (``merged``) waits, with everything after
  it, until their states have arrived (``streams.parking``): no profile is evaluated on part of
  its history;
- ``merge`` (keyed by the merged-away id, after every event routed to it): remove the profile,
  remember ``forward[id] = survivor``, tombstone its snapshot and send its whole state as a
  ``handoff`` keyed by the survivor, to this same topic;
- ``handoff``: fold the merged-away state into the survivor (``profiles.book.absorb``) at the
  moment of the event that merged it, unless ``merged_from`` already lists that id;
- ``tick``: stream time moved on (the identity worker's released event time).

The move happens exactly once across crashes: removing the state, the forward entry and the
handoff are one batch, held records are state, and a replayed handoff finds the id already in
``merged_from``. Anything that still arrives for a merged-away id is forwarded. States are
decoded and written back once per batch, with one snapshot per changed profile, as of its
latest change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import orjson

from wayline.profiles.book import absorb
from wayline.profiles.state import State, empty_state, is_counted, upgrade
from wayline.profiles.view import CountsMemo, snapshot
from wayline.schemas.timestamps import format_ms
from wayline.schemas.topics import Topics
from wayline.segments.compiler import Compiled, changed_segments, compile_segments
from wayline.segments.engine import (
    Outcome,
    after_change,
    after_merge,
    at_due,
    at_time,
    on_event,
    trigger_document,
)
from wayline.segments.membership import Transition, transition_ids
from wayline.segments.triggers import TriggerConfig
from wayline.streams.definitions import Rules
from wayline.streams.envelope import Envelope, Output
from wayline.streams.identity import EVENT, HANDOFF, KIND_HEADER, MERGE
from wayline.streams.keyedlog import PARTS, KeyedLog
from wayline.streams.order import TICK
from wayline.streams.parking import Item, Parked, Parking
from wayline.streams.task import StoreView, TaskContext
from wayline.streams.timers import Timer

PROFILES: Final = "profiles"
FORWARDS: Final = "forwards"
# in the profiles store: the definitions last evaluated under
DEFINITIONS_KEY: Final = b"~definitions"
WAKE: Final = "profile-due"  # the one timer per profile: its next segment or trigger due time
FORMAT: Final = 5  # of a stored profile record: MessagePack, the rule counters' stamps with
# message tokens and viewed products by time alone; 4 was JSON with message ids in both; 3 had no
# order_stats; 2 kept the day buckets as {day: n} too; 1 (no "f") is 2 with every part inside
_PACK: Final = msgspec.msgpack.Encoder()
_UNPACK: Final = msgspec.msgpack.Decoder()
SPILL: Final = 64  # entries of a growing part kept inside the state; past that, beside it
WARM_BYTES: Final = 4 * 1024 * 1024  # of stored records whose decoded entries are kept, per task


@dataclass(init=False)
class _Entry:
    version: int
    state: State | None  # None: merged away in this batch
    kept: dict[str, KeyedLog]  # the parts kept beside the state (``streams.keyedlog``)
    changed: bool
    as_of: int  # the moment of the latest change: the document's windows are as of it
    transitions: list[str]  # this batch's, in order, each its JSON text
    last_transition_ms: int
    counts_read: CountsMemo  # what its documents last read of its counts

    def __init__(
        self, version: int, state: State | None, kept: dict[str, KeyedLog], as_of: int = 0
    ) -> None:  # written out: compiled to native stores (see streams.envelope)
        self.version, self.state, self.kept, self.as_of = version, state, kept, as_of
        self.changed, self.transitions, self.last_transition_ms = False, [], 0
        self.counts_read = CountsMemo()

    def touch(self, now_ms: int) -> None:
        self.changed = True
        self.as_of = max(self.as_of, now_ms)

    def settle(self) -> None:
        """Its batch is written: nothing changed yet for the next one."""
        self.changed, self.transitions, self.last_transition_ms = False, [], 0
        for log in self.kept.values():
            log.settle()


class _Warm:
    """The decoded entries of the profiles a task wrote lately, each with the record it wrote:
    the next batch of such a profile takes its entry instead of decoding the record again, when
    the stored record is still that one (a batch that was not committed leaves the one before).
    An entry is taken out while a batch uses it, so one that batch changed and then abandoned
    is never handed out. Up to ``WARM_BYTES`` of records, then forgotten at once."""

    def __init__(self, view: StoreView, limit: int) -> None:
        self.view = view  # the task's profiles store view: a new task starts cold
        self.limit = limit
        self.entries: dict[str, tuple[bytes, _Entry]] = {}
        self.size = 0

    def take(self, pid: str, raw: bytes) -> _Entry | None:
        found = self.entries.pop(pid, None)
        if found is None:
            return None
        self.size -= len(found[0])
        return found[1] if found[0] == raw else None

    def keep(self, pid: str, record: bytes, entry: _Entry) -> None:
        if self.size + len(record) > self.limit:
            self.entries.clear()
            self.size = 0
            if len(record) > self.limit:
                return
        entry.settle()
        self.entries[pid] = (record, entry)
        self.size += len(record)


class ProfileStep:
    def __init__(
        self,
        topics: Topics,
        segments: Compiled | None = None,
        triggers: TriggerConfig | None = None,
        definitions: Callable[[], Rules] | None = None,
        warm_bytes: int = WARM_BYTES,
    ) -> None:
        self.topics = topics
        self.warm_bytes = warm_bytes
        self.segments = segments if segments is not None else compile_segments([])
        self.triggers = triggers if triggers is not None else TriggerConfig()
        self.definitions = definitions
        self.rules: Rules | None = None
        self._seen_rules: dict[bytes, Rules] = {}  # fingerprint → definitions, the latest few
        self.reevaluated = 0
        self._batch: dict[int, dict[str, _Entry]] = {}
        self._warm: dict[int, _Warm] = {}  # partition → entries kept between batches
        self.transitions = 0
        self.triggers_fired = 0
        self.events_applied = 0
        self.duplicates = 0
        self.merges_out = 0
        self.handoffs_in = 0
        self.forwarded = 0
        self.parked = 0
        self.parking = Parking()

    def process(self, message: Envelope, ctx: TaskContext) -> list[Output]:
        assert message.key is not None
        assert message.value is not None
        kind = message.header(KIND_HEADER) or EVENT
        if kind == TICK:  # stream time moved on (the worker fired what fell due)
            return []
        pid = message.key.decode()
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
        parked = self.parking.get(pid, ctx)
        if kind == HANDOFF and parked is not None:
            parked.receive(str(body["merged_id"]), body)
            return self._drain(pid, parked, ctx)
        if kind == EVENT:
            waiting = self._waiting_for(pid, body, ctx)
            if waiting or parked is not None:
                self._park(pid, parked, Item("event", body, ctx.now_ms, waiting), ctx)
                return []
            return self._apply(pid, body, ctx, ctx.now_ms)
        if parked is not None:  # a merge of a profile still waiting: after what it waits for
            self._park(pid, parked, Item(kind.decode(), body, message.timestamp_ms, []), ctx)
            return []
        if kind == MERGE:
            return self._merge_away(pid, str(body["profile_id"]), ctx, message.timestamp_ms)
        return self._take_in(pid, body, ctx, ctx.now_ms)

    def _waiting_for(self, pid: str, event: dict[str, Any], ctx: TaskContext) -> list[str]:
        """The profiles this event merged into ``pid`` whose states have not arrived yet."""
        merged = event.get("merged")
        if not merged:
            return []
        state = self._entry(pid, ctx).state or empty_state()
        return [str(m) for m in merged if m not in state["merged_from"]]

    def _park(self, pid: str, parked: Parked | None, item: Item, ctx: TaskContext) -> None:
        """Hold ``item`` (and everything after it) until the hand-offs it needs have arrived:
        the profile is never evaluated on part of its history. Its timer waits too."""
        if parked is None:
            parked = Parked(ctx.timers.due_at(pid.encode(), WAKE))
            ctx.timers.cancel(pid.encode(), WAKE)
            self.parked += 1
        parked.add(item)
        self.parking.put(pid, parked, ctx)

    def _drain(self, pid: str, parked: Parked, ctx: TaskContext) -> list[Output]:
        """Apply the held records whose hand-offs are all in, in their order; at each one's
        moment, the due times that passed before it fire first, as they would have."""
        outputs: list[Output] = []
        due = parked.due
        while parked.queue and parked.ready(self._entry(pid, ctx).state):
            item = parked.queue.pop(0)
            entry = self._entry(pid, ctx)
            if entry.state is None:  # merged away while held: the rest goes to the survivor
                outputs.append(self._forward_item(pid, item, ctx))
                continue
            outputs += self._catch_up(pid, entry, due, item.now_ms, ctx)
            if item.kind == "merge":
                outputs += self._merge_away(pid, str(item.body["profile_id"]), ctx, item.now_ms)
                continue
            for loser in item.needs:
                outputs += self._take_in(pid, parked.got.pop(loser), ctx, item.now_ms)
            if item.kind == "event":
                outputs += self._apply(pid, item.body, ctx, item.now_ms)
            elif item.kind == "handoff":
                outputs += self._take_in(pid, item.body, ctx, item.now_ms)
            due = ctx.timers.due_at(pid.encode(), WAKE)
        if parked.queue:
            parked.due = due
            ctx.timers.cancel(pid.encode(), WAKE)
            self.parking.put(pid, parked, ctx)
        else:
            self.parking.drop(pid, ctx)
            if due is not None and self._entry(pid, ctx).state is not None:
                ctx.timers.schedule(pid.encode(), due, WAKE)  # fires now if already due
        return outputs

    def _catch_up(
        self, pid: str, entry: _Entry, due: int | None, until_ms: int, ctx: TaskContext
    ) -> list[Output]:
        """The profile's due times up to ``until_ms``, evaluated in order."""
        outputs: list[Output] = []
        while due is not None and due <= until_ms and entry.state is not None:
            outcome = at_due(self.segments, self.triggers, entry.state, due)
            if outcome.transitions or outcome.fired:
                entry.touch(due)
            outputs += self._emit(pid, entry.state, outcome, "timer", ctx)
            due = outcome.next_due
        return outputs

    def _forward_item(self, pid: str, item: Item, ctx: TaskContext) -> Output:
        target = self._forward_of(pid, ctx)
        assert target is not None
        self.forwarded += 1
        return Output(
            self.topics.resolved,
            target.encode(),
            orjson.dumps(item.body),
            ((KIND_HEADER, item.kind.encode()),),
            timestamp_ms=item.now_ms,
        )

    def refresh(self, ctx: TaskContext) -> list[Output]:
        """New definitions: switch to them, then re-evaluate every profile of this task once
        (at the later of stream time and the change time, so a replay after a crash computes
        the same). The task remembers which definitions it evaluated under; when this process
        still knows those, only the new and changed segments are evaluated, else all."""
        if self.definitions is None:
            return []
        rules = self.definitions()
        if rules is not self.rules:
            self.rules, self.segments, self.triggers = rules, rules.segments, rules.triggers
            self._seen_rules[rules.fingerprint.encode()] = rules
            while len(self._seen_rules) > 4:
                del self._seen_rules[next(iter(self._seen_rules))]
        store = ctx.store(PROFILES)
        marker = rules.fingerprint.encode()
        evaluated_under = store.get(DEFINITIONS_KEY)
        if evaluated_under == marker:
            return []
        store.put(DEFINITIONS_KEY, marker)
        before = self._seen_rules.get(evaluated_under or b"")
        changed = None if before is None else changed_segments(before.segments, self.segments)
        now = max(ctx.stream_time_ms, rules.changed_at_ms)
        outputs: list[Output] = []
        for key, _raw in list(store.items(b"p_")):
            pid = key.decode()
            entry = self._entry(pid, ctx)
            if entry.state is None:
                continue
            if changed is None:
                outcome = at_time(self.segments, self.triggers, entry.state, now)
            else:
                outcome = after_change(self.segments, self.triggers, entry.state, now, changed)
            if outcome.transitions or outcome.fired:
                entry.touch(now)
            outputs += self._emit(pid, entry.state, outcome, "definitions", ctx)
            self.reevaluated += 1
        return outputs

    def on_timer(self, timer: Timer, ctx: TaskContext) -> list[Output]:
        """A profile's due time: time alone may have changed segments or made a trigger due."""
        pid = timer.key.decode()
        entry = self._entry(pid, ctx)
        if entry.state is None or self._forward_of(pid, ctx) is not None:
            return []
        if self.parking.get(pid, ctx) is not None:
            return []  # a stale timer: a waiting profile's due time is kept with what it holds
        outcome = at_due(self.segments, self.triggers, entry.state, timer.due_ms)
        if outcome.transitions or outcome.fired:
            entry.touch(timer.due_ms)
        return self._emit(pid, entry.state, outcome, "timer", ctx)

    def end_batch(self, ctx: TaskContext) -> list[Output]:
        self.parking.flush(ctx)
        entries = self._batch.pop(ctx.partition, {})
        store = ctx.store(PROFILES)
        warm = self._warm_of(ctx.partition, store)
        outputs: list[Output] = []
        for pid, entry in entries.items():
            if entry.transitions:
                outputs.append(self._transitions(pid, entry))
            if not entry.changed:
                continue
            if entry.state is None:
                store.delete(pid.encode())
                outputs.append(Output(self.topics.profiles, pid.encode(), None))
                continue
            record = encode_record(entry.version, entry.state, entry.as_of, entry.kept)
            store.put(pid.encode(), record)
            doc = snapshot(pid, entry.state, entry.as_of, entry.version, memo=entry.counts_read)
            outputs.append(Output(self.topics.profiles, pid.encode(), orjson.dumps(doc)))
            warm.keep(pid, record, entry)
        return outputs

    def abort_batch(self) -> None:
        self._batch.clear()
        self.parking.forget()

    def counters(self) -> dict[str, int]:
        return {
            "events_applied": self.events_applied,
            "duplicates_ignored": self.duplicates,
            "profiles_merged_away": self.merges_out,
            "handoffs_absorbed": self.handoffs_in,
            "forwarded": self.forwarded,
            "profiles_waited_for_handoffs": self.parked,
            "segment_transitions": self.transitions,
            "triggers_fired": self.triggers_fired,
            "profiles_reevaluated": self.reevaluated,
        }

    def _entry(self, pid: str, ctx: TaskContext) -> _Entry:
        entries = self._batch.setdefault(ctx.partition, {})
        entry = entries.get(pid)
        if entry is None:
            view = ctx.store(PROFILES)
            raw = view.get(pid.encode())
            if raw is not None:
                entry = self._warm_of(ctx.partition, view).take(pid, raw)
            if entry is None:
                kept = {part: KeyedLog(view, part, pid) for part in PARTS}
                entry = _Entry(0, empty_state(), kept) if raw is None else decode_record(raw, kept)
            entries[pid] = entry
        return entry

    def _warm_of(self, partition: int, view: StoreView) -> _Warm:
        warm = self._warm.get(partition)
        if warm is None or warm.view is not view:
            warm = self._warm[partition] = _Warm(view, self.warm_bytes)
        return warm

    def _forward_of(self, pid: str, ctx: TaskContext) -> str | None:
        value = ctx.store(FORWARDS).get(pid.encode())
        return None if value is None else value.decode()

    def _apply(
        self, pid: str, event: dict[str, Any], ctx: TaskContext, now_ms: int
    ) -> list[Output]:
        entry = self._entry(pid, ctx)
        state = entry.state if entry.state is not None else empty_state()
        if is_counted(state, event):  # a repeat after a crash upstream: nothing changes
            self.duplicates += 1
            return []
        linked = [(str(k), str(v)) for k, v in event.get("linked") or ()]
        _counted, outcome = on_event(self.segments, self.triggers, state, event, linked, now_ms)
        self.events_applied += 1
        entry.state, entry.version = state, entry.version + 1
        entry.touch(now_ms)
        return self._emit(pid, state, outcome, str(event["messageId"]), ctx)

    def _emit(
        self, pid: str, state: State, outcome: Outcome, cause: str, ctx: TaskContext
    ) -> list[Output]:
        """Triggers as messages, transitions kept for the profile's record of the batch
        (``end_batch``); the profile's timer set to its next due."""
        if outcome.next_due is None:
            ctx.timers.cancel(pid.encode(), WAKE)
        elif ctx.timers.due_at(pid.encode(), WAKE) != outcome.next_due:
            ctx.timers.schedule(pid.encode(), outcome.next_due, WAKE)
        if outcome.transitions:
            self._keep(self._entry(pid, ctx), pid, outcome.transitions, cause)
        outputs: list[Output] = []
        for fired in outcome.fired:
            doc = trigger_document(self.segments, self.triggers, fired, pid, state)
            outputs.append(
                Output(
                    self.topics.triggers, pid.encode(), orjson.dumps(doc), timestamp_ms=fired.at_ms
                )
            )
        self.transitions += len(outcome.transitions)
        self.triggers_fired += len(outcome.fired)
        return outputs

    def _keep(self, entry: _Entry, pid: str, transitions: Sequence[Transition], cause: str) -> None:
        """The transitions as the profile's record of the batch lists them, each as its JSON
        text (an event at 1,000 segments makes dozens): what they share — profile, cause, one
        evaluation's moment — is encoded once."""
        kept = entry.transitions
        who, why = f'"profile_id":{_to_json(pid)}', f'"cause":{_to_json(cause)}'
        moment: int | None = None
        at = ""
        for t, tid in zip(transitions, transition_ids(pid, transitions), strict=True):
            if t.at_ms != moment:
                moment, at = t.at_ms, format_ms(t.at_ms)
            segment = _to_json(t.segment)
            kept.append(
                f'{{"id":"{tid}","segment":{segment},"rule_version":{t.version},{who},'
                f'"transition":"{t.kind}","at":"{at}",{why}}}'
            )
            if t.at_ms > entry.last_transition_ms:
                entry.last_transition_ms = t.at_ms

    def _transitions(self, pid: str, entry: _Entry) -> Output:
        """A profile's transitions of the batch, in order, as one record."""
        body = f'{{"profile_id":{_to_json(pid)},"transitions":[{",".join(entry.transitions)}]}}'
        return Output(
            self.topics.segments, pid.encode(), body.encode(), timestamp_ms=entry.last_transition_ms
        )

    def _merge_away(self, pid: str, survivor: str, ctx: TaskContext, ts_ms: int) -> list[Output]:
        if self._forward_of(pid, ctx) is not None:  # a replayed merge record
            return []
        entry = self._entry(pid, ctx)
        state = entry.state if entry.state is not None else empty_state()
        state = state | {part: dict(state[part].items()) for part in PARTS}  # in the hand-off
        for log in entry.kept.values():
            if log.count:
                log.drop()
        ctx.store(FORWARDS).put(pid.encode(), survivor.encode())
        entry.state, entry.changed = None, True
        self.merges_out += 1
        ctx.timers.cancel(pid.encode(), WAKE)
        exits = [
            Transition(name, version, "exit", ts_ms, False)
            for name, (version, _since) in sorted((state.get("segments") or {}).items())
        ]
        if exits:
            self._keep(entry, pid, exits, "merged")
        body = {
            "merged_id": pid,
            "profile_id": survivor,
            "version": entry.version,
            "as_of": entry.as_of,
            "state": state,
        }
        handoff = Output(
            self.topics.resolved,
            survivor.encode(),
            orjson.dumps(body),
            headers=((KIND_HEADER, HANDOFF),),
            timestamp_ms=ts_ms,
        )
        return [handoff]

    def _take_in(
        self, pid: str, body: dict[str, Any], ctx: TaskContext, now_ms: int
    ) -> list[Output]:
        loser = str(body["merged_id"])
        entry = self._entry(pid, ctx)
        state = entry.state if entry.state is not None else empty_state()
        if loser in state["merged_from"]:
            self.duplicates += 1
            return []
        self.handoffs_in += 1
        own = dict(state.get("segments") or {})
        entry.state = absorb(state, upgrade(body["state"]), loser)  # maybe from an older worker
        entry.version = max(entry.version, int(body.get("version", 0))) + 1
        entry.as_of = max(entry.as_of, int(body.get("as_of", 0)))
        entry.touch(now_ms)
        outcome = after_merge(self.segments, self.triggers, entry.state, own, now_ms)
        return self._emit(pid, entry.state, outcome, f"merged {loser}", ctx)


def _to_json(text: str) -> str:
    """A string as JSON."""
    return orjson.dumps(text).decode()


def encode_record(version: int, state: State, as_of: int, kept: dict[str, KeyedLog]) -> bytes:
    """A profile's stored record. A growing part stays inside the state while it is small
    (``SPILL`` entries); past that it moves beside it for good and the state holds its number
    of entries. A merged state's part replaces the stored one."""
    blob = dict(state)
    for part, log in kept.items():
        value = state[part]
        if value is not log:  # inside the state: new, small, or merged
            if len(value) <= SPILL and not log.count:
                continue
            log.replace(dict(value.items()))
            state[part] = log
        log.flush()
        blob[part] = len(log)
    return _PACK.encode({"f": FORMAT, "v": version, "s": blob, "t": as_of})


def read_record(raw: bytes) -> dict[str, Any]:
    """A stored profile record as written: ``f`` its format, ``v`` the version, ``s`` the state
    (a part kept beside it as its number of entries), ``t`` as of when. MessagePack from format
    5 on (a third smaller than the JSON of 4, and quicker to write); JSON before (a JSON record
    starts with ``{``, which no MessagePack map does)."""
    stored: dict[str, Any] = orjson.loads(raw) if raw[:1] == b"{" else _UNPACK.decode(raw)
    return stored


def decode_record(raw: bytes, kept: dict[str, KeyedLog]) -> _Entry:
    """A stored profile record of this format or an older one (upgraded here: ``FORMAT``)."""
    stored = read_record(raw)
    state: State = stored["s"]
    if int(stored.get("f", 1)) < FORMAT:
        upgrade(state)
    for part, log in kept.items():
        count = state.get(part)
        if isinstance(count, int):  # kept beside the state
            log.count = count
            state[part] = log
        elif count is None:
            state[part] = {}
    return _Entry(int(stored["v"]), state, kept, as_of=int(stored.get("t", 0)))
