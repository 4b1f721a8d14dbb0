"""The identity step: ``wayline.events`` → ``wayline.events.resolved`` keyed by profile id.

``wayline.events`` has one partition, so one task holds the whole identity graph and sees every
event in one order: a merge decided here is final, and two events for identifiers of one customer
can never race on different partitions. Resolution is a few key lookups per event; the heavy
work (the profile fold) is partitioned by profile id downstream.

For each event, in this order (all in one batch, so a crash replays them together):

1. one ``merge`` record per profile merged away, keyed by the *merged-away* id, so it lands on
   the partition that holds that profile's state, after every event routed to it;
2. the merge log entries (merges and refusals) on ``wayline.identity``;
3. the event, with ``profile_id``, the identifiers it linked and ``merged`` (the profiles it
   merged into this one, whose hand-offs the profile worker waits for), keyed by profile id.

Before that, a ``messageId`` that arrived in the last 24 hours is dropped, and in replay mode
events are put in event-time order (``streams.order``).
"""

from __future__ import annotations

import logging
from typing import Any, Final

import orjson

from wayline.profiles.identity import Ident, IdentityRules, LogEntry, Node, Resolution, resolve
from wayline.profiles.identity import event_identifiers as identifiers_of
from wayline.schemas.codec import decode, encode
from wayline.schemas.errors import ReasonCode
from wayline.schemas.timestamps import epoch_ms
from wayline.schemas.topics import Topics
from wayline.streams.dedupe import Dedupe
from wayline.streams.envelope import Envelope, Output, dead_letter
from wayline.streams.order import TICK, OrderBuffer
from wayline.streams.task import StoreView, TaskContext
from wayline.streams.timers import Timer

log: Final = logging.getLogger(__name__)

KIND_HEADER: Final = "wayline.kind"
EVENT: Final = b"event"
MERGE: Final = b"merge"
HANDOFF: Final = b"handoff"
TICK_KEY: Final = b"~tick"


class StoreGraph:
    """The identity graph on the task's ``graph`` store: ``o`` + identifier → profile id,
    ``n`` + profile id → node."""

    def __init__(self, view: StoreView) -> None:
        self.view = view

    @staticmethod
    def _owner_key(ident: Ident) -> bytes:
        return b"o" + ident[0].encode() + b"\x1f" + ident[1].encode()

    def owner(self, ident: Ident) -> str | None:
        value = self.view.get(self._owner_key(ident))
        return None if value is None else value.decode()

    def set_owner(self, ident: Ident, profile_id: str) -> None:
        self.view.put(self._owner_key(ident), profile_id.encode())

    def node(self, profile_id: str) -> Node | None:
        value = self.view.get(b"n" + profile_id.encode())
        return None if value is None else Node.from_dict(profile_id, orjson.loads(value))

    def put_node(self, node: Node) -> None:
        self.view.put(b"n" + node.profile_id.encode(), orjson.dumps(node.to_dict()))

    def delete_node(self, profile_id: str) -> None:
        self.view.delete(b"n" + profile_id.encode())


class IdentityStep:
    """dedupe → (replay: hold in event-time order) → resolve → emit.

    With ``order`` (replay mode), events are held until every raw partition is past them
    (``streams.order``) and resolved in ``(event time, messageId)`` order at the end of the
    batch, as the dry run applies a log. After each batch, every partition of
    ``wayline.events.resolved`` gets a tick carrying the event time released so far, so each
    profile partition's stream time — and its timers — follow the whole log, not only the
    profiles that happen to live there.
    """

    def __init__(
        self,
        topics: Topics,
        rules: IdentityRules,
        worker: str = "identity",
        dedupe: Dedupe | None = None,
        order: OrderBuffer | None = None,
    ) -> None:
        self.topics = topics
        self.rules = rules
        self.worker = worker
        self.dedupe = dedupe
        self.order = order
        self.merges = 0
        self.refusals = 0
        self.profiles_created = 0
        self.blocked_events = 0
        self.resolved = 0
        self._released_to = -1
        self._ticked_to = -1

    def process(self, message: Envelope, ctx: TaskContext) -> list[Output]:
        assert message.value is not None
        if message.header(KIND_HEADER) == TICK:
            if self.order is not None:
                mark = orjson.loads(message.value)
                partition, at_ms = int(mark["partition"]), int(mark["at_ms"])
                self.order.mark(ctx, partition, at_ms, quiet=mark.get("quiet") is True)
            return []
        event = decode(message.value)
        msgid = str(event["messageId"])
        # the 24 hours of the dedupe are of arrival: a client's retry is a repeat however far
        # apart the copies are in event time
        if self.dedupe is not None and not self.dedupe.first_time(msgid, ctx, _received_ms(event)):
            return []
        if self.order is None:
            return self._resolve(event, message, ctx)
        self.order.hold(ctx, message.timestamp_ms, msgid, message.offset, message.value)
        return []

    def on_timer(self, timer: Timer, ctx: TaskContext) -> list[Output]:
        if self.dedupe is not None:
            self.dedupe.on_timer(timer, ctx)
        return []

    def end_batch(self, ctx: TaskContext) -> list[Output]:
        outputs = self._release(ctx) if self.order is not None else []
        if self._released_to > self._ticked_to:
            self._ticked_to = self._released_to
            outputs += [
                Output(
                    self.topics.resolved,
                    TICK_KEY,
                    b"",
                    ((KIND_HEADER, TICK),),
                    partition=p,
                    timestamp_ms=self._released_to,
                )
                for p in range(self.topics.partitions)
            ]
        return outputs

    def abort_batch(self) -> None:
        self._released_to = self._ticked_to
        if self.dedupe is not None:
            self.dedupe.abort_batch()
        if self.order is not None:
            self.order.forget()

    def _release(self, ctx: TaskContext) -> list[Output]:
        assert self.order is not None
        outputs: list[Output] = []
        for held in self.order.release(ctx):
            message = Envelope(
                self.topics.events, ctx.partition, held.offset, None, held.value, held.at_ms
            )
            outputs += self._resolve(decode(held.value), message, ctx)
        return outputs

    def _resolve(self, event: dict[str, Any], message: Envelope, ctx: TaskContext) -> list[Output]:
        previous = event.get("previousId") if event.get("type") == "alias" else None
        graph = StoreGraph(ctx.store("graph"))
        resolution = resolve(graph, self.rules, identifiers_of(event), previous)
        self._count(resolution)
        self._released_to = max(self._released_to, message.timestamp_ms)
        at = str(event["timestamp"])
        msgid = str(event["messageId"])
        outputs = [
            self._merge(loser, survivor, at, msgid, message.timestamp_ms)
            for loser, survivor in resolution.merges
        ]
        outputs += [self._log_entry(entry, msgid, at, message) for entry in resolution.log]
        if resolution.profile_id is None:
            self.blocked_events += 1
            return [*outputs, self._dead_letter(message, resolution)]
        self.resolved += 1
        event["profile_id"] = resolution.profile_id
        event["linked"] = [list(i) for i in resolution.linked]
        if resolution.merges:  # the profile worker waits for their hand-offs before this event
            event["merged"] = [loser for loser, _survivor in resolution.merges]
        outputs.append(
            Output(
                self.topics.resolved,
                resolution.profile_id.encode(),
                encode(event),
                headers=((KIND_HEADER, EVENT),),
                timestamp_ms=message.timestamp_ms,
            )
        )
        return outputs

    def counters(self) -> dict[str, int]:
        held = self.order
        return {
            "duplicates_dropped": self.dedupe.duplicates if self.dedupe else 0,
            "dedupe_ids_expired": self.dedupe.expired if self.dedupe else 0,
            "held_for_order": held.held if held else 0,
            "released_in_order": held.released if held else 0,
            "late_for_order": held.late if held else 0,
            "events_resolved": self.resolved,
            "profiles_created": self.profiles_created,
            "merges": self.merges,
            "refused_links": self.refusals,
            "blocked_events": self.blocked_events,
        }

    def _count(self, resolution: Resolution) -> None:
        self.merges += len(resolution.merges)
        self.refusals += sum(1 for e in resolution.log if e.kind == "refused")
        self.profiles_created += int(resolution.created)

    def _merge(self, loser: str, survivor: str, at: str, msgid: str, ts_ms: int) -> Output:
        body = {"merged_id": loser, "profile_id": survivor, "at": at, "message_id": msgid}
        return Output(
            self.topics.resolved,
            loser.encode(),
            orjson.dumps(body),
            headers=((KIND_HEADER, MERGE),),
            timestamp_ms=ts_ms,  # event time: a merge must not move stream time to the wall clock
        )

    def _log_entry(self, entry: LogEntry, msgid: str, at: str, message: Envelope) -> Output:
        record: dict[str, Any] = {
            "kind": entry.kind,
            "profile_id": entry.profile_id,
            "merged_id": entry.merged_id,
            "identifiers": [{"type": k, "value": v} for k, v in entry.identifiers],
            "reason": entry.reason,
            "message_id": msgid,
            "at": at,
        }
        key = (entry.profile_id or msgid).encode()
        return Output(
            self.topics.identity, key, orjson.dumps(record), timestamp_ms=message.timestamp_ms
        )

    def _dead_letter(self, message: Envelope, resolution: Resolution) -> Output:
        detail = "identifiers: " + "; ".join(e.reason for e in resolution.log)
        reason = ReasonCode.BLOCKED_IDENTIFIER.value
        return dead_letter(message, self.topics.dlq, self.worker, reason, detail)


def _received_ms(event: dict[str, Any]) -> int:
    return epoch_ms(str(event["receivedAt"]))
