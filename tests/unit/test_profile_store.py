"""How the profile worker stores a profile: the counted message ids beside the state (one group
record per profile and batch), the trim and merges held to the reference fold, restore from the
changelog, and profiles written by the previous format read after the upgrade."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wayline import native
from wayline.profiles.book import absorb
from wayline.profiles.state import SEEN_LIMIT, SEEN_SLACK, State, apply_event, empty_state
from wayline.profiles.view import snapshot
from wayline.schemas.messages import SegmentTransitions
from wayline.schemas.normalize import Origin, normalize_event
from wayline.schemas.timestamps import format_ms
from wayline.schemas.topics import Topics
from wayline.segments.compiler import SegmentDef, compile_segments
from wayline.segments.membership import Transition, transition_id
from wayline.segments.triggers import TriggerConfig
from wayline.streams.changelog import DATA_PREFIX, fold_changelog, group_members
from wayline.streams.envelope import Envelope, Output
from wayline.streams.identity import KIND_HEADER, MERGE
from wayline.streams.keyedlog import PARTS, KeyedLog
from wayline.streams.profile import FORMAT, SPILL, ProfileStep, _Entry, read_record
from wayline.streams.store import MemoryStore
from wayline.streams.task import StoreView, Task, TaskContext

DATA = Path(__file__).parent / "data"
# records by the code of each earlier format: 1 (the ids inside the state), 2 (day buckets as
# a map; ``p_anna``'s ids beside the state, as local keys and group records), 4 (JSON records)
FORMATS = ("profiles-format1.json", "profiles-format2.json", "profiles-format4.json")
STORES = ("profiles", "forwards", "parked", "timers")
START = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass
class Worker:
    """The profile step in a task on in-memory stores, driven as the worker drives it."""

    step: ProfileStep
    task: Task = field(
        default_factory=lambda: Task(
            0,
            {n: StoreView(n, MemoryStore()) for n in STORES},
            {n: f"log.{n}" for n in STORES},
            clock="replay",
        )
    )
    changelog: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    offset: int = 0

    def feed(self, key: str, body: dict[str, Any], kind: bytes | None = None) -> list[Output]:
        ts = body.get("timestamp")
        if ts is not None:
            self.task.advance(int(datetime.fromisoformat(ts).timestamp() * 1000))
        headers = ((KIND_HEADER, kind),) if kind else ()
        self.offset += 1
        value, now = orjson.dumps(body), self.task.stream_time_ms
        message = Envelope("resolved", 0, self.offset, key.encode(), value, now, headers)
        return self.step.process(message, TaskContext(self.task, 0))

    def commit(self) -> list[Output]:
        """End the batch and commit it; what its end wrote."""
        ended = self.step.end_batch(TaskContext(self.task, 0))
        commit = self.task.prepare_commit()
        for out in [*commit.records, commit.marker]:
            if out.topic == "log.profiles" and out.key is not None:
                self.changelog.append((out.key, out.value))
        self.task.finish_commit(commit, {})
        return ended

    def run(self, events: list[dict[str, Any]], batch: int = 25) -> None:
        for at in range(0, len(events), batch):
            for event in events[at : at + batch]:
                self.feed(str(event["profile_id"]), event)
            self.commit()

    def batch(self, events: list[dict[str, Any]], ending: str) -> list[tuple[Any, ...]]:
        """One batch as the worker runs it, ending in ``commit``, ``abandon`` (rolled back
        before its end) or ``abandon after its end`` (ended, then rolled back before the
        commit), the abandoned ones then run again; what it wrote."""
        outputs: list[Output] = []
        if ending != "commit":
            saved = self.task.checkpoint()
            for e in events:
                self.feed(str(e["profile_id"]), e)
            if ending == "abandon after its end":
                self.step.end_batch(TaskContext(self.task, 0))
            self.task.roll_back(saved)
            self.step.abort_batch()
        for e in events:
            outputs += self.feed(str(e["profile_id"]), e)
        outputs += self.commit()
        return [(o.topic, o.key, o.value, o.headers, o.timestamp_ms) for o in outputs]

    def merge(self, loser: str, survivor: str) -> None:
        """The identity worker's merge record, then the hand-off it causes."""
        outputs = self.feed(loser, {"profile_id": survivor, "merged_id": loser}, MERGE)
        self.commit()
        for out in outputs:
            assert out.key is not None
            assert out.value is not None
            self.feed(out.key.decode(), orjson.loads(out.value), dict(out.headers)[KIND_HEADER])
        self.commit()

    def stored(self, pid: str) -> tuple[State, dict[str, list[Any]]]:
        """The profile's stored state and its message ids, as the next batch reads them."""
        view = self.task.views["profiles"]
        raw = view.get(pid.encode())
        assert raw is not None
        record = read_record(raw)
        assert record["f"] == FORMAT
        state = record["s"]
        for part in PARTS:
            if isinstance(state[part], int):  # kept beside the state
                state[part + "_entries"] = dict(KeyedLog(view, part, pid).scan())
                assert len(state[part + "_entries"]) == state[part]
                assert state[part] > SPILL
            else:
                state[part + "_entries"] = state[part]
                assert len(state[part]) <= SPILL
                assert not dict(KeyedLog(view, part, pid).scan())
        return state, state["seen_entries"]


def event(pid: str, n: int, at: datetime, name: str = "Product Viewed") -> dict[str, Any]:
    raw = {
        "type": "track",
        "event": name,
        "userId": pid,
        "messageId": f"{pid}-{n}",
        "timestamp": at.isoformat(),
        "properties": {"product_id": f"sku{n % 7}", "category": "shoes", "revenue": 10.0},
    }
    canonical = normalize_event(raw, Origin(at + timedelta(milliseconds=5), "t", "web", "web"))
    return canonical | {"profile_id": pid, "linked": [["user_id", pid]]}


def reference(events: list[dict[str, Any]], merges: dict[int, tuple[str, str]]) -> dict[str, State]:
    """The fold over plain dicts (the dry run's states); ``merges[i]`` happens before event i."""
    states: dict[str, State] = {}
    for i, e in enumerate([*events, {}]):
        if i in merges:
            loser, survivor = merges[i]
            states[survivor] = absorb(states.get(survivor), states.pop(loser), loser)
        if e:
            state = states.setdefault(str(e["profile_id"]), empty_state())
            apply_event(state, e, [("user_id", str(e["profile_id"]))])
    return states


def held_like_reference(worker: Worker, pid: str, expected: State) -> None:
    state, seen = worker.stored(pid)
    assert seen == expected["seen"]
    assert state["orders_entries"] == expected["orders"]
    for part in ("counts", "order_stats", "cats", "cart", "traits", "merged_from", "ids", "viewed"):
        assert state[part] == expected[part], part
    as_of = int(datetime(2030, 1, 1, tzinfo=UTC).timestamp() * 1000)
    assert snapshot(pid, state, as_of, 1) == snapshot(pid, expected, as_of, 1)


def test_a_long_history_trims_and_merges_exactly_like_the_reference() -> None:
    """Past the limit and its slack the oldest ids go (a trimmed id counts again, as in the
    reference); a recent duplicate counts nothing; a merge takes back what both counted once."""
    total = SEEN_LIMIT + SEEN_SLACK + 300
    loyal = [event("p_loyal", n, START + timedelta(minutes=n)) for n in range(total)]
    other = [event("p_other", n, START + timedelta(minutes=n, seconds=30)) for n in range(40)]
    shared = [dict(e, profile_id="p_other") for e in loyal[-5:]]  # counted by both profiles
    repeats = [loyal[-1], loyal[3]]  # a recent duplicate, and an id the trim forgot
    orders = [  # each profile reaches its first-order milestone, at its own moment
        event(pid, 90_000, START + timedelta(hours=hours), "Order Completed")
        for pid, hours in (("p_loyal", 30), ("p_other", 2))
    ]
    events = loyal + other + shared + repeats + orders
    milestones = TriggerConfig.from_mapping({"milestones": {"orders": [1]}})
    worker = Worker(ProfileStep(Topics(), triggers=milestones))
    worker.run(events, batch=250)
    fired = [worker.stored(pid)[0]["fired_entries"] for pid in ("p_loyal", "p_other")]
    assert fired[0]["milestone:orders:1"] != fired[1]["milestone:orders:1"]
    worker.merge("p_other", "p_loyal")
    state, _seen = worker.stored("p_loyal")
    firsts = {k: min(f[k] for f in fired if k in f) for k in fired[0].keys() | fired[1].keys()}
    assert state["fired_entries"] == firsts, "a merge keeps each occasion's first firing"
    expected = reference(events, {len(events): ("p_other", "p_loyal")})["p_loyal"]
    held_like_reference(worker, "p_loyal", expected)
    state, seen = worker.stored("p_loyal")
    assert len(seen) <= SEEN_LIMIT + SEEN_SLACK
    assert state["counts"]["Product Viewed"]["n"] == total + 40 + 1  # loyal[3] counted twice
    assert state["counts"]["Order Completed"]["n"] == 2
    assert worker.task.views["profiles"].get(b"p_other") is None
    assert not list(worker.task.views["profiles"].items(b"\x01gseen:p_other\x00"))


def test_restore_from_the_changelog_brings_back_exactly_the_kept_ids() -> None:
    """Trims rewrite group records and a merge drops the loser's: a store restored from the
    changelog (compacted to the latest record per key) equals the worker's store."""
    events = [event("p_a", n, START + timedelta(minutes=n)) for n in range(SEEN_LIMIT + 800)]
    events += [event("p_b", n, START + timedelta(minutes=n)) for n in range(30)]
    worker = Worker(ProfileStep(Topics()))
    worker.run(events[:SEEN_LIMIT], batch=400)
    checkpoint, local = len(worker.changelog), dict(worker.task.views["profiles"].store.items())
    worker.run(events[SEEN_LIMIT:], batch=400)  # the trims come after the checkpoint
    worker.merge("p_b", "p_a")
    live = dict(worker.task.views["profiles"].store.items())
    from_scratch = MemoryStore()
    continued = MemoryStore()  # a local store at the checkpoint, reading the log from there
    continued.write_batch(local)
    for store, log in (
        (from_scratch, worker.changelog),
        (continued, worker.changelog[checkpoint:]),
    ):
        values = fold_changelog(log).values
        store.write_batch(group_members(values, store.get) | values)
        assert dict(store.items()) == live
    ids = [k for k, _ in worker.changelog if k.startswith(DATA_PREFIX + b"\x02")]
    assert not ids, "message ids reach the changelog only inside group records"


@pytest.mark.parametrize("written_by", FORMATS)
def test_profiles_written_by_the_previous_format_are_read_after_the_upgrade(
    written_by: str,
) -> None:
    """Records written by the code of an earlier format (fixtures made by that code) are read,
    continue exactly as if written by this one, and are rewritten."""
    fixture = json.loads((DATA / written_by).read_text())
    encoding = fixture.get("value_encoding", "utf-8")
    segments = compile_segments([SegmentDef(s["name"], s["rule"]) for s in fixture["segments"]])
    triggers = TriggerConfig.from_mapping(fixture["triggers"])
    old_events: list[dict[str, Any]] = fixture["events"]
    later = START + timedelta(days=40)
    new_events = [event(pid, 1000 + n, later + timedelta(hours=n)) for pid in ("p_anna", "p_ben")
                  for n in range(12)]  # fmt: skip
    new_events += [e for e in old_events if e["profile_id"] == "p_anna"][-3:]  # replays
    upgraded = Worker(ProfileStep(Topics(), segments, triggers))
    upgraded.task.views["profiles"].store.write_batch(
        {k.encode("latin1"): v.encode(encoding) for k, v in fixture["profiles_store"].items()}
    )
    upgraded.task.views["forwards"].store.write_batch({b"p_cleo": b"p_ben"})
    upgraded.run(new_events)
    fresh = Worker(ProfileStep(Topics(), segments, triggers))
    fresh.run(old_events, batch=20)
    fresh.merge("p_cleo", "p_ben")
    fresh.run(new_events)
    for pid in ("p_anna", "p_ben"):
        state, seen = upgraded.stored(pid)
        assert (state, seen) == fresh.stored(pid)
        folded_in = {pid, "p_cleo"} if pid == "p_ben" else {pid}
        ids = {str(e["messageId"]) for e in old_events + new_events if e["profile_id"] in folded_in}
        assert set(seen) == ids
        assert sum(c["n"] for c in state["counts"].values()) == len(ids)


KINDS = ("Product Viewed", "Product Added", "Order Completed", "Email Opened")
WARM_SEGMENTS = [
    SegmentDef("buyers", {"performed": {"event": "Order Completed", "at_least": 2}}),
    SegmentDef("browsers", {"performed": {"event": "Product Viewed", "at_least": 3,
                                          "within": "7d"}}, notify=True),
]  # fmt: skip
WARM_TRIGGERS = {
    "milestones": {"orders": [1, 3], "revenue": [25]},
    "cart_abandoned": {"after": "1h"},
}
# a batch: (profile, kind, minutes later) per event, then how it ends
batches = st.lists(
    st.tuples(
        st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(KINDS), st.integers(0, 900)),
                 min_size=1, max_size=12),
        st.sampled_from(["commit", "commit", "abandon", "abandon after its end", "merge"]),
    ),
    min_size=1, max_size=14,
)  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(batches)
def test_entries_kept_between_batches_change_nothing(
    plan: list[tuple[list[tuple[str, str, int]], str]],
) -> None:
    """A profile's next batch takes the entry its last one left instead of decoding its record
    again: with batches abandoned (before their end, or after it and before the commit, as a
    broker fault does) and merges between them, every record, trigger and stored byte equals
    that of a step that decodes every time."""
    segments, triggers = compile_segments(WARM_SEGMENTS), TriggerConfig.from_mapping(WARM_TRIGGERS)
    warm = Worker(ProfileStep(Topics(), segments, triggers))
    cold = Worker(ProfileStep(Topics(), segments, triggers, warm_bytes=0))
    at, n, merged = START, 0, set[str]()
    for events, ending in plan:
        batch = []
        for pid, kind, minutes in events:
            at, n = at + timedelta(minutes=minutes), n + 1
            batch.append(event(f"p_{pid}", n, at, kind))
        if ending == "merge":
            pair = sorted({e["profile_id"] for e in batch} - merged)[:2]
            if len(pair) == 2:  # the second takes the first in
                for worker in (warm, cold):
                    worker.merge(pair[0], pair[1])
                merged.add(pair[0])
            ending = "commit"
        batch = [e for e in batch if e["profile_id"] not in merged]
        written = [worker.batch(batch, ending) for worker in (warm, cold)]
        assert written[0] == written[1]
    assert dict(warm.task.views["profiles"].store.items()) == dict(
        cold.task.views["profiles"].store.items()
    )
    assert warm.changelog == cold.changelog


def test_the_compiled_core_stores_profiles_alike() -> None:
    """The tests above, in a process of their own on the compiled core (``make native``)."""
    if native.activate() != "native" and "not built" in native.mode():
        pytest.skip(f"the compiled core is not built here ({native.mode()})")
    script = (
        "import sys; from wayline import native; mode = native.activate(True); "
        "print('core:', mode, flush=True); import pytest; "
        "sys.exit(pytest.main([sys.argv[1], '-q', '-p', 'no:cacheprovider', '-k', 'not compiled'])"
        " if mode == 'native' else 3)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, __file__], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "core: native" in done.stdout
    assert f"{4 + len(FORMATS)} passed" in done.stdout


@settings(max_examples=200, deadline=None)
@given(
    pid=st.text(min_size=1, max_size=20),
    cause=st.text(max_size=20),
    transitions=st.lists(
        st.builds(
            Transition,
            segment=st.text(min_size=1, max_size=12),
            version=st.integers(1, 9),
            kind=st.sampled_from(["enter", "exit"]),
            at_ms=st.sampled_from([-1, 0, 1_764_000_000_000, 1_764_000_060_001]),
            notify=st.booleans(),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_a_batch_of_transitions_is_the_json_of_its_documented_record(
    pid: str, cause: str, transitions: list[Transition]
) -> None:
    """The profile worker writes each transition's JSON text itself: any segment name, profile
    id or cause (quotes, backslashes, any script) gives, byte for byte, the JSON encoding of the
    record ``schemas.messages.SegmentTransitions`` describes."""
    step, entry = ProfileStep(Topics()), _Entry(1, empty_state(), {})
    half = len(transitions) // 2  # two evaluations of one batch
    if half:
        step._keep(entry, pid, transitions[:half], cause)
    step._keep(entry, pid, transitions[half:], cause)
    record = step._transitions(pid, entry)
    expected = {
        "profile_id": pid,
        "transitions": [
            {
                "id": transition_id(pid, t),
                "segment": t.segment,
                "rule_version": t.version,
                "profile_id": pid,
                "transition": t.kind,
                "at": format_ms(t.at_ms),
                "cause": cause,
            }
            for t in transitions
        ],
    }
    assert record.value == orjson.dumps(expected)
    assert SegmentTransitions.model_validate_json(record.value).transitions[0].segment == (
        transitions[0].segment
    )
    assert record.timestamp_ms == max(0, *(t.at_ms for t in transitions))
