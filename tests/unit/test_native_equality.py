"""The compiled per-event core and the pure-Python reference give the same answers.

Both run the dry run (identity with merges, the profile fold, segments and triggers) in a
process of their own (``tests/corerunner.py``); Hypothesis draws the events — four customers
whose identifiers meet, so profiles merge — and the segment rules, and every answer (each
transition and trigger with its reason, every profile document, or the same error) must be
identical. Skipped where the compiled core is not built (no C compiler: the reference runs).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_profiles_fold import event_args, make_event

from wayline import native
from wayline.streams.store import MemoryStore

RUNNER = Path(__file__).resolve().parents[1] / "corerunner.py"
EVENT_NAMES = ["Product Viewed", "Product Added", "Order Completed", "Signed Up", "Email Bounced"]
WINDOWS = ["1d", "7d", "30d"]
TRIGGERS = {"cart_abandoned": {"after": "60m"}, "churn_risk": {}, "milestones": {"orders": [1, 3]}}


class Core:
    """One runner process; ``ask`` sends a case and returns its answer."""

    def __init__(self, native_core: bool) -> None:
        env = os.environ | {"WAYLINE_NATIVE": "1" if native_core else "0"}
        self.process = subprocess.Popen(
            [sys.executable, str(RUNNER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.mode = str(self._read()["mode"])

    def ask(self, case: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(orjson.dumps(case) + b"\n")
        self.process.stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        answer: dict[str, Any] = orjson.loads(self.process.stdout.readline())
        return answer

    def close(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        self.process.wait(10)


@pytest.fixture(scope="module")
def cores() -> Iterator[tuple[Core, Core]]:
    if native.activate() != "native" and "not built" in native.mode():
        pytest.skip(f"the compiled core is not built here ({native.mode()})")
    compiled, reference = Core(True), Core(False)
    try:
        assert compiled.mode == "native", compiled.mode
        assert reference.mode == "WAYLINE_NATIVE=0"
        yield compiled, reference
    finally:
        compiled.close()
        reference.close()


performed = st.fixed_dictionaries(
    {"event": st.sampled_from(EVENT_NAMES)},
    optional={
        "at_least": st.integers(1, 3),
        "within": st.sampled_from(WINDOWS),
        "where": st.sampled_from([{"properties.category": "cat1"}, {"context.channel": "web"}]),
    },
).map(lambda body: {"performed": body})
leaf = st.one_of(
    performed,
    st.builds(lambda n: {"computed.order_count": {"gte": n}}, st.integers(0, 3)),
    st.builds(lambda n: {"computed.revenue": {"gte": n}}, st.sampled_from([0, 25, 60])),
    st.builds(lambda p: {"traits.plan": {"eq": p}}, st.sampled_from(["p0", "p1", "p2"])),
    st.just({"consent.email": {"ne": False}}),
    st.builds(lambda d: {"days_since_last_order": {"gte": d}}, st.integers(0, 20)),
)
rule = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, inner),
    ),
    max_leaves=4,
)
segments = st.lists(st.tuples(rule, st.booleans()), min_size=1, max_size=6)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(event_args, min_size=1, max_size=30),
    segments,
    st.one_of(st.none(), st.integers(0, 60 * 1440)),
)
def test_compiled_and_reference_cores_answer_alike(
    cores: tuple[Core, Core],
    args: list[tuple[int, list[int], int, int]],
    rules: list[tuple[dict[str, Any], bool]],
    later_minutes: int | None,
) -> None:
    events = [make_event(i, *a) for i, a in enumerate(args)]
    events.sort(key=lambda e: (e["timestamp"], e["messageId"]))  # a log in event-time order
    case = {
        "events": events,
        "segments": [{"name": f"s{i}", "rule": r, "notify": n} for i, (r, n) in enumerate(rules)],
        "triggers": TRIGGERS,
        "until_ms": None if later_minutes is None else 1_767_225_600_000 + later_minutes * 60_000,
    }
    compiled, reference = cores
    assert compiled.ask(case) == reference.ask(case)


def test_the_comparison_sees_a_difference(cores: tuple[Core, Core]) -> None:
    """Different cases give different answers: the test above can fail."""
    compiled, _ = cores
    orders = {"name": "s", "rule": {"computed.order_count": {"gte": 1}}, "notify": True}
    base = {"segments": [orders], "triggers": TRIGGERS}
    one = compiled.ask({**base, "events": [make_event(0, 0, [0], 3, 10)]})
    two = compiled.ask({**base, "events": [make_event(0, 1, [0], 3, 10)]})
    assert "error" not in one
    assert one != two


STORE_RUNNER = RUNNER.with_name("storerunner.py")


def queue_workload(seed: int) -> tuple[dict[str, Any], MemoryStore]:
    """Batches like the delivery ledger's: a queue of numbered records drained behind its head,
    a few other prefixes, metadata after the data; the store is reopened now and then so the
    reads meet flushed files, deletions and the metadata right after the last prefix."""
    rnd = random.Random(seed)
    oracle, batches, seq = MemoryStore(), [], 0
    for n in range(200):
        changes: dict[bytes, bytes | None] = {}
        for _ in range(rnd.randint(1, 4)):
            seq += 1
            changes[b"o:" + seq.to_bytes(8, "big")] = b'{"topic":"t"}'
            changes[b"d:%d" % rnd.randint(0, 50)] = b'{"status":"sent"}'
        if seq > 5 and rnd.random() < 0.7:
            for old in range(max(1, seq - 8), seq - 2):
                changes.setdefault(b"o:" + old.to_bytes(8, "big"), None)
        changes[b"n"] = seq.to_bytes(8, "big")
        meta = {b"commit": b"%d" % n, b"changelog_offset": b"%d" % seq}
        oracle.write_batch(changes, meta)
        batches.append(
            [
                [[k.hex(), None if v is None else v.hex()] for k, v in changes.items()],
                [[k.hex(), v.hex()] for k, v in meta.items()],
            ]
        )
    return {"batches": batches, "reopen_every": 50, "queries": STORE_QUERIES}, oracle


STORE_QUERIES = [
    [p.hex(), s.hex()]
    for p, s in [
        (b"o:", b""),
        (b"o:", (400).to_bytes(8, "big")),
        (b"d:", b""),
        (b"d:", b"3"),
        (b"n", b""),
        (b"", b""),
        (b"z", b""),
    ]
]


def read_store(native_core: bool, work: dict[str, Any]) -> dict[str, Any]:
    env = os.environ | {"WAYLINE_NATIVE": "1" if native_core else "0"}
    done = subprocess.run(
        [sys.executable, str(STORE_RUNNER)],
        input=orjson.dumps(work),
        capture_output=True,
        env=env,
        check=True,
        timeout=60,
    )
    answer: dict[str, Any] = orjson.loads(done.stdout)
    return answer


@pytest.mark.parametrize("seed", [1, 2])
def test_compiled_and_reference_stores_read_the_same_ranges(seed: int) -> None:
    """Range reads on the compiled store match the reference and an in-memory oracle: a bounded
    RocksDB iterator once stopped short of its bound or ran past it into the metadata (the
    delivery ledger then read a commit offset as a queued record) only when compiled."""
    if native.activate() != "native" and "not built" in native.mode():
        pytest.skip(f"the compiled core is not built here ({native.mode()})")
    work, oracle = queue_workload(seed)
    want = [
        [[k.hex(), v.hex()] for k, v in oracle.items(bytes.fromhex(p), bytes.fromhex(s))]
        for p, s in STORE_QUERIES
    ]
    assert sum(len(a) for a in want[:2]) > 50  # the queue holds records to read
    compiled, reference = read_store(True, work), read_store(False, work)
    assert compiled["mode"] == "native"
    assert reference["mode"] == "WAYLINE_NATIVE=0"
    assert compiled["answers"] == want
    assert reference["answers"] == want
