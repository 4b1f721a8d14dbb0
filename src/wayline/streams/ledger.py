"""The delivery worker's durable memory, in its task's stores (changelogged like all state).

- ``ledger``: delivery id → ``Entry``. A delivery is decided once: a trigger replayed after a
  crash, or sent again by the profile worker, finds its entry and is not looked at again. While a
  delivery is open (deferred, retrying, sending) the entry keeps the trigger, so it can be
  decided again at release time against the profile as it is then. ``s:`` + id marks the entries
  whose connector call may be under way: written, and acknowledged, before the call starts.
- ``o:`` + sequence (in ``ledger``): records for ``wayline.deliveries`` decided by a committed
  batch and not yet published. A batch only queues its records; the next one publishes them
  (``Outbox.drain``) and deletes them with its commit. A crash before that commit publishes the
  very same records again — never a different outcome decided by a replayed batch.
- ``sent``: profile id → marketing send times per channel, as the frequency caps count them
  (a send counts from the moment it is decided, so two deliveries in one batch cannot both
  slip under a cap).
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from wayline.streams.envelope import Output
from wayline.streams.task import StoreView

_SEQ = struct.Struct(">Q")

LEDGER, SENT, TIMERS = "ledger", "sent", "timers"
OPEN = frozenset({"deferred", "retrying", "sending"})


@dataclass
class Entry:
    status: str  # an open state (OPEN) or the final status written to wayline.deliveries
    attempt: int = 0
    route: str = ""
    first_ms: int = 0  # when the delivery was first decided (deferral expiry counts from here)
    slot_ms: int | None = None  # the send time it reserved under the channel's caps
    slot_profile: str = ""  # … in this profile's history (the survivor, after a merge)
    attempted_ms: int | None = None  # when the latest connector call was decided on
    trigger: dict[str, Any] | None = field(default=None)  # kept while the delivery is open

    @property
    def open(self) -> bool:
        return self.status in OPEN


class Ledger:
    """Entries and the sending marks of one task."""

    def __init__(self, view: StoreView) -> None:
        self.view = view

    def get(self, delivery_id: str) -> Entry | None:
        raw = self.view.get(b"d:" + delivery_id.encode())
        return None if raw is None else Entry(**orjson.loads(raw))

    def put(self, delivery_id: str, entry: Entry) -> None:
        if not entry.open:
            entry.trigger = None  # a closed delivery needs its outcome only
        self.view.put(b"d:" + delivery_id.encode(), orjson.dumps(asdict(entry)))
        mark = b"s:" + delivery_id.encode()
        if entry.status == "sending":
            self.view.put(mark, b"")
        elif self.view.get(mark) is not None:
            self.view.delete(mark)

    def sending(self) -> list[str]:
        """Deliveries whose connector call was started and whose outcome is not recorded."""
        return [key[2:].decode() for key, _ in self.view.items(b"s:")]


class SendHistory:
    """Marketing send times per profile and channel, trimmed to the longest cap window."""

    def __init__(self, view: StoreView, keep_ms: int) -> None:
        self.view = view
        self.keep_ms = keep_ms

    def times(self, profile_id: str) -> dict[str, list[int]]:
        raw = self.view.get(b"p:" + profile_id.encode())
        return {} if raw is None else dict(orjson.loads(raw))

    def reserve(self, profile_id: str, channel: str, at_ms: int) -> None:
        times = self.times(profile_id)
        kept = [t for t in times.get(channel, []) if t > at_ms - self.keep_ms]
        times[channel] = sorted([*kept, at_ms])
        self.view.put(b"p:" + profile_id.encode(), orjson.dumps(times))

    def release(self, profile_id: str, channel: str, at_ms: int) -> None:
        """Give back a reservation whose message never went out."""
        times = self.times(profile_id)
        if at_ms in times.get(channel, []):
            times[channel].remove(at_ms)
            self.view.put(b"p:" + profile_id.encode(), orjson.dumps(times))


class RecordQueue:
    """Records a batch decided, published by the batch after it (see the module)."""

    def __init__(self, view: StoreView) -> None:
        self.view = view

    def put(
        self, topic: str, key: str, value: object, headers: dict[str, str] | None = None
    ) -> None:
        raw = self.view.get(b"n")
        seq = _SEQ.unpack(raw)[0] + 1 if raw else 1
        self.view.put(b"n", _SEQ.pack(seq))
        item = {"topic": topic, "key": key, "value": value, "headers": headers or {}}
        self.view.put(b"o:" + _SEQ.pack(seq), orjson.dumps(item))

    def drain(self) -> list[Output]:
        outputs = []
        for key, raw in list(self.view.items(b"o:")):
            item = orjson.loads(raw)
            headers = tuple((k, v.encode()) for k, v in item["headers"].items())
            outputs.append(
                Output(item["topic"], item["key"].encode(), orjson.dumps(item["value"]), headers)
            )
            self.view.delete(key)
        return outputs
