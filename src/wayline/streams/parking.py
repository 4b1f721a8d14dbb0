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
from typing import Any, Final

import orjson

from wayline.streams.task import Task, TaskContext

PARKED: Final = "parked"


@dataclass(init=False)
class Item:
    """One held record: ``event``, ``merge`` or ``handoff``; the moment it was (or would have
    been) evaluated at; the hand-offs it needs first."""

    kind: str
    body: dict[str, Any]
    now_ms: int
    needs: list[str]

    def __init__(self, kind: str, body: dict[str, Any], now_ms: int, needs: list[str]) -> None:
        self.kind, self.body, self.now_ms, self.needs = kind, body, now_ms, needs  # natively


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
    """The ``parked`` store of the profile worker's tasks.

    Which profiles wait is known in memory (read from the store once per task), so the other
    profiles' records cost no store read; a waiting profile's entry is decoded once per batch
    and written once, at the batch's end (``flush``)."""

    def __init__(self) -> None:
        self._waiting: dict[int, tuple[Task, set[str]]] = {}  # partition → its task, who waits
        self._open: dict[int, dict[str, Parked | None]] = {}  # this batch's entries; None: gone

    def get(self, pid: str, ctx: TaskContext) -> Parked | None:
        opened = self._open.setdefault(ctx.partition, {})
        if pid in opened:
            return opened[pid]
        if pid not in self._who_waits(ctx):
            return None
        raw = ctx.store(PARKED).get(pid.encode())
        parked = opened[pid] = None if raw is None else Parked.decode(raw)
        return parked

    def put(self, pid: str, parked: Parked, ctx: TaskContext) -> None:
        self._open.setdefault(ctx.partition, {})[pid] = parked
        self._who_waits(ctx).add(pid)

    def drop(self, pid: str, ctx: TaskContext) -> None:
        self._open.setdefault(ctx.partition, {})[pid] = None
        self._who_waits(ctx).discard(pid)

    def flush(self, ctx: TaskContext) -> None:
        """Write the batch's changed entries of this task to its store."""
        store = ctx.store(PARKED)
        for pid, parked in self._open.pop(ctx.partition, {}).items():
            if parked is None:
                if store.get(pid.encode()) is not None:
                    store.delete(pid.encode())
            else:
                store.put(pid.encode(), parked.encode())

    def forget(self) -> None:
        """The batch was rolled back: what is in memory is read again from the stores."""
        self._open.clear()
        self._waiting.clear()

    def _who_waits(self, ctx: TaskContext) -> set[str]:
        known = self._waiting.get(ctx.partition)
        if known is None or known[0] is not ctx.task:  # a task opened anew: read it again
            names = {key.decode() for key, _ in ctx.store(PARKED).items()}
            known = self._waiting[ctx.partition] = (ctx.task, names)
        return known[1]
