"""Records of a profile held until the states merged into it have arrived.

Identity decides a merge at one event; the merged-away profiles' states live on their own
partitions and reach the survivor as hand-offs some time later, after events the survivor may
already have received. Such events are held here (the ``parked`` store, one entry per profile)
with everything for that profile behind them, and applied in their order as soon as the
hand-offs they need are in — so no trigger, transition or document is ever computed on part of
a customer's history. The entry also keeps the profile's due time while it waits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from wayline.streams.task import TaskContext

PARKED = "parked"


@dataclass
class Item:
    """One held record: ``event``, ``merge`` or ``handoff``; the moment it was (or would have
    been) evaluated at; the hand-offs it needs first."""

    kind: str
    body: dict[str, Any]
    now_ms: int
    needs: list[str]


@dataclass
class Parked:
    due: int | None  # the profile's next due time, kept while its timer is off
    queue: list[Item] = field(default_factory=list)
    got: dict[str, dict[str, Any]] = field(default_factory=dict)  # merged id → its hand-off

    def add(self, item: Item) -> None:
        self.queue.append(item)

    def receive(self, merged_id: str, handoff: dict[str, Any]) -> None:
        """A hand-off: kept for the record that needs it (or, needed by none, applied in order
        as a record of its own)."""
        if any(merged_id in item.needs for item in self.queue):
            self.got.setdefault(merged_id, handoff)
        else:
            self.add(Item("handoff", handoff, self.queue[-1].now_ms if self.queue else 0, []))

    def ready(self, state: Mapping[str, Any] | None) -> bool:
        """The first held record has every hand-off it needs: in, or already merged into
        ``state`` (a crash replays a merging event; its copy needs a hand-off taken in)."""
        head = self.queue[0]
        if state is not None:
            head.needs = [m for m in head.needs if m not in state["merged_from"]]
        return all(loser in self.got for loser in head.needs)

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "due": self.due,
                "queue": [[i.kind, i.body, i.now_ms, i.needs] for i in self.queue],
                "got": self.got,
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> Parked:
        data = orjson.loads(raw)
        queue = [
            Item(str(k), b, int(n), [str(x) for x in needs]) for k, b, n, needs in data["queue"]
        ]
        return cls(data["due"], queue, dict(data["got"]))


class Parking:
    """The ``parked`` store of the profile worker's tasks."""

    def get(self, pid: str, ctx: TaskContext) -> Parked | None:
        raw = ctx.store(PARKED).get(pid.encode())
        return None if raw is None else Parked.decode(raw)

    def put(self, pid: str, parked: Parked, ctx: TaskContext) -> None:
        ctx.store(PARKED).put(pid.encode(), parked.encode())

    def drop(self, pid: str, ctx: TaskContext) -> None:
        ctx.store(PARKED).delete(pid.encode())
