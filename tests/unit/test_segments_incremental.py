"""Per-event evaluation looks only at the segments an event can flip (and the trigger rules it
can move); it must never disagree with evaluating everything from scratch. Random rules, random
histories, the full evaluation as the oracle after every event and every due time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wayline.profiles.state import empty_state
from wayline.profiles.view import snapshot
from wayline.segments.compiler import SegmentDef, changed_segments, compile_segments
from wayline.segments.engine import after_change, at_due, at_time, on_event
from wayline.segments.rules import (
    AllOf,
    AnyOf,
    Birthday,
    Compare,
    InSegment,
    Node,
    Not,
    Performed,
    Since,
    parse_rule,
)
from wayline.segments.subject import Subject, compare_values
from wayline.segments.triggers import TriggerConfig

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)
TRIGGERS = TriggerConfig.from_mapping(
    {
        "cart_abandoned": {"after": "60m"},
        "browse_abandoned": {"views": 2, "after": "4h"},
        "churn_risk": {"factor": 2.0, "min_orders": 2, "floor": "1d"},
        "milestones": {"orders": [1, 2], "revenue": [50], "anniversary": True},
    }
)
EVENTS = ["Page Viewed", "Product Viewed", "Product Added", "Order Completed", "Email Opened"]
GAPS = [timedelta(0), timedelta(minutes=1), timedelta(hours=5), timedelta(days=1),
        timedelta(days=6), timedelta(days=31)]  # fmt: skip

performed = st.builds(
    lambda event, bound, n, within, where: {
        "performed": {
            "event": event,
            bound: n,
            **({"within": within} if within else {}),
            **({"where": {"properties.category": where}} if where else {}),
        }
    },
    st.sampled_from(EVENTS),
    st.sampled_from(["at_least", "at_most", "exactly"]),
    st.integers(0, 3),
    st.sampled_from([None, "1d", "7d", "30d"]),
    st.sampled_from([None, "shoes"]),
).filter(lambda c: c["performed"].get("at_least", 1) >= 1)
compares = st.one_of(
    st.builds(
        lambda op, v: {"computed.revenue": {op: v}},
        st.sampled_from(["gte", "lt"]),
        st.sampled_from([0, 50, 100]),
    ),
    st.builds(lambda v: {"computed.order_count": {"gte": v}}, st.integers(0, 3)),
    st.builds(lambda v: {"traits.country": {"eq": v}}, st.sampled_from(["US", "GB"])),
    st.just({"traits.plan": {"exists": True}}),
    st.builds(
        lambda v: {"lifecycle_stage": {"in": v}},
        st.lists(
            st.sampled_from(["awareness", "consideration", "conversion", "retention"]),
            min_size=1,
            max_size=2,
        ),
    ),
    st.builds(lambda v: {"days_since_last_order": {"gte": v}}, st.sampled_from([5, 30])),
    st.just({"consent.email": {"ne": False}}),
    st.just({"computed.favorite_category": {"eq": "shoes"}}),
    st.builds(lambda v: {"computed.rfm.recency": {"gte": v}}, st.integers(2, 5)),
    st.builds(
        lambda name, window, v: {f"computed.event_counts.{name}.{window}": {"gte": v}},
        st.sampled_from(EVENTS),
        st.sampled_from(["7d", "30d"]),
        st.integers(1, 2),
    ),
)
rules = st.recursive(
    st.one_of(performed, compares),
    lambda inner: st.one_of(
        st.builds(lambda c: {"not": c}, inner),
        st.builds(lambda cs: {"all": cs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda cs: {"any": cs}, st.lists(inner, min_size=1, max_size=3)),
    ),
    max_leaves=4,
)
happening = st.tuples(
    st.sampled_from([*EVENTS, "Identify", "Unsubscribed"]),
    st.sampled_from(GAPS),
    st.sampled_from(["shoes", "books"]),
    st.sampled_from([20.0, 60.0]),
    st.sampled_from(["US", "GB"]),
)


def _defs(
    bodies: list[dict[str, Any]], reads: list[bool], versions: list[int] | None = None
) -> list[SegmentDef]:
    defs = []
    for i, (body, read) in enumerate(zip(bodies, reads, strict=True)):
        rule = {"all": [body, {"in_segment": f"s{i - 1}"}]} if read and i else body
        defs.append(SegmentDef(f"s{i}", rule, versions[i] if versions else 1))
    return defs


def _event(i: int, at: datetime, what: tuple[str, timedelta, str, float, str]) -> dict[str, Any]:
    name, _gap, category, revenue, country = what
    body: dict[str, Any] = {"messageId": f"m{i}", "timestamp": at.isoformat(),
                            "context": {"channel": "web"}}  # fmt: skip
    if name == "Identify":
        plan = {"plan": "pro"} if country == "GB" else {}
        return {**body, "type": "identify", "traits": {"country": country, **plan}}
    props: dict[str, Any] = {"category": category, "product_id": f"sku-{category}"}
    if name == "Order Completed":
        props |= {"order_id": f"o{i}", "revenue": revenue}
    return {**body, "type": "track", "event": name, "properties": props}


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(rules, min_size=1, max_size=6),
    st.lists(st.booleans(), min_size=7, max_size=7),
    st.lists(happening, min_size=1, max_size=14),
    st.lists(st.one_of(st.none(), rules), min_size=1, max_size=7),
)
def test_per_event_evaluation_agrees_with_evaluating_everything(
    bodies: list[dict[str, Any]],
    reads: list[bool],
    history: list[Any],
    edits: list[dict[str, Any] | None],
) -> None:
    compiled = compile_segments(_defs(bodies, reads[: len(bodies)]))
    fast, oracle = empty_state(), empty_state()
    at, due = T0, None

    def wake_until(moment: int) -> int | None:
        """The worker's timer on the fast side; the oracle looks at everything then too."""
        nonlocal due
        wakes = 0
        while due is not None and due <= moment:
            wakes += 1
            assert wakes < 500, "the profile keeps waking at the same moment"
            when = due
            due = at_due(compiled, TRIGGERS, fast, when).next_due
            at_time(compiled, TRIGGERS, oracle, when)
            assert set(fast["segments"]) == set(oracle["segments"]), when
        return due

    for i, what in enumerate(history):
        at += what[1]
        wake_until(ms(at))
        event = _event(i, at, what)
        _, outcome = on_event(compiled, TRIGGERS, fast, event, [("user_id", "u1")], ms(at))
        due = outcome.next_due
        on_event(compiled, TRIGGERS, oracle, event, [("user_id", "u1")], ms(at))
        at_time(compiled, TRIGGERS, oracle, ms(at))
        assert set(fast["segments"]) == set(oracle["segments"]), (i, event)
        assert set(fast["fired"]) == set(oracle["fired"]), (i, event)
    # time alone: the fast side only has its timers; the oracle looks at everything then
    quiet = ms(at + timedelta(days=40))
    wake_until(quiet)
    at_time(compiled, TRIGGERS, oracle, quiet)
    assert set(fast["segments"]) == set(oracle["segments"])
    assert set(fast["fired"]) == set(oracle["fired"])

    # new definitions (segments kept, changed, added, dropped): only the changed are evaluated
    edited = _edited(bodies, edits)
    changed = compile_segments(_defs(edited, reads[: len(edited)], _versions(bodies, edited)))
    later = ms(at + timedelta(days=41))
    wake_until(later)
    due = after_change(changed, TRIGGERS, fast, later, changed_segments(compiled, changed)).next_due
    at_time(changed, TRIGGERS, oracle, later)
    assert fast["segments"].keys() == oracle["segments"].keys()
    assert [v for v, _ in fast["segments"].values()] == [v for v, _ in oracle["segments"].values()]
    compiled = changed
    wake_until(ms(at + timedelta(days=400)))
    assert set(fast["segments"]) == set(oracle["segments"])


def _edited(bodies: list[dict[str, Any]], edits: list[dict[str, Any] | None]) -> list[Any]:
    """Each segment kept (None) or given a new rule; a longer list adds segments, a shorter one
    drops the last ones."""
    return [
        (bodies[i] if i < len(bodies) else {"computed.revenue": {"gte": 1}}) if e is None else e
        for i, e in enumerate(edits)
    ]


def _versions(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[int]:
    return [1 if i < len(before) and before[i] == rule else 2 for i, rule in enumerate(after)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(rules, min_size=1, max_size=6),
    st.lists(happening, min_size=1, max_size=14),
    st.sampled_from([timedelta(0), timedelta(days=2), timedelta(days=45)]),
)
def test_generated_checks_answer_as_the_rules_read(
    bodies: list[dict[str, Any]], history: list[Any], later: timedelta
) -> None:
    """Each compiled check (one generated function per rule, untimed members tested first at
    the top of a timed rule) answers what the rule says, read condition by condition from the
    same profile — after every event and once more some time after the last."""
    compiled = compile_segments(_defs(bodies, [False] * len(bodies)))
    nodes = {
        seg.name: parse_rule(seg.name, body)
        for seg, body in zip(compiled.segments, bodies, strict=True)
    }
    state, at = empty_state(), T0
    for i, what in enumerate(history):
        at += what[1]
        on_event(compiled, TRIGGERS, state, _event(i, at, what), [("user_id", "u1")], ms(at))
        at_time(compiled, TRIGGERS, state, ms(at))
        _assert_checks(compiled.segments, nodes, state, ms(at))
    _assert_checks(compiled.segments, nodes, state, ms(at + later))


def _assert_checks(segments: Any, nodes: dict[str, Node], state: Any, now: int) -> None:
    for seg in segments:
        subject = Subject(state, state["segments"], now)
        expected = _reads(nodes[seg.name], subject)
        assert seg.check(subject)[0] == expected, (seg.name, nodes[seg.name])


def _reads(node: Node, s: Subject) -> bool:
    """The rule read literally: each condition on its own, no short cuts."""
    if isinstance(node, AllOf):
        return all([_reads(item, s) for item in node.items])
    if isinstance(node, AnyOf):
        return any([_reads(item, s) for item in node.items])
    if isinstance(node, Not):
        return not _reads(node.item, s)
    if isinstance(node, Performed):
        cell = s.state["conds"].get(node.key) or {"n": 0, "t": []}
        if node.within_ms is None:
            count = cell["n"]
        else:
            count = sum(1 for ts, _ in cell["t"] if ts > s.now_ms - node.within_ms)
        low, high = node.at_least or 0, node.at_most
        return low <= count and (high is None or count <= high)
    if isinstance(node, Compare):  # as the profile document shows the field
        value: Any = snapshot("p", s.state, s.now_ms)
        for part in node.field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return compare_values(value, node.op, node.value)
    if isinstance(node, Since):
        return compare_values(s.since(node.what), node.op, node.value)
    if isinstance(node, Birthday):
        return s.birthday_today()
    assert isinstance(node, InSegment)
    return node.name in s.members
