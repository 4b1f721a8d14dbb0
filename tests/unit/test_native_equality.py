"""The compiled per-event core and the pure-Python reference give the same answers.

Both run the dry run (identity with merges, the profile fold, segments and triggers) in a
process of their own (``tests/corerunner.py``); Hypothesis draws the events — four customers
whose identifiers meet, so profiles merge — and the segment rules, and every answer (each
transition and trigger with its reason, every profile document, or the same error) must be
identical. Skipped where the compiled core is not built (no C compiler: the reference runs).
"""

from __future__ import annotations

import os
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
