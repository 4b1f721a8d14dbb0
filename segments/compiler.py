"""Compile parsed rules once into callables, indexed by what they depend on.

Each condition becomes a pair of closures: ``test(subject) -> bool`` and
``due(subject) -> int | None``, the next moment (epoch ms) at which the answer may change by time
alone (a window sliding past an event, a day count crossing its threshold, the customer's
midnight). A segment's due time is the earliest of its conditions'.

The index says which segments an event can affect: those counting that event name, those reading
traits the event carries, those reading computed traits the event changes, and the segments that
depend on them (``in_segment``). Everything else keeps its membership without being evaluated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wayline.segments.rules import (
    AllOf,
    AnyOf,
    Birthday,
    Compare,
    InSegment,
    Node,
    Not,
    Performed,
    RuleError,
    Since,
    parse_rule,
)
from wayline.segments.subject import Subject, compare_values

Test = Callable[[Subject], bool]
Due = Callable[[Subject], int | None]
ANY_EVENT = "*"

# which events can change a computed trait (others change with any event)
COMPUTED_BY: dict[str, frozenset[str]] = {
    name: frozenset({"Order Completed"})
    for name in (
        "order_count",
        "revenue",
        "aov",
        "first_order_at",
        "last_order_at",
        "mean_days_between_orders",
        "rfm",
    )
} | {
    "cart": frozenset({"Product Added", "Product Removed", "Order Completed"}),
    "favorite_category": frozenset({"Product Viewed", "Product Added", "Order Completed"}),
    "recently_viewed": frozenset({"Product Viewed"}),
}


@dataclass(frozen=True)
class SegmentDef:
    name: str
    rule: Mapping[str, Any]
    version: int = 1
    notify: bool = False


@dataclass
class CompiledSegment:
    name: str
    version: int
    notify: bool
    test: Test
    due: Due
    events: set[str] = field(default_factory=set)  # event names it depends on ("*": any)
    traits: set[str] = field(default_factory=set)  # trait keys it reads
    needs: set[str] = field(default_factory=set)  # segments it reads (in_segment)
    timed: bool = False


@dataclass
class Compiled:
    """All segments, in dependency order, with the counters and the index."""

    segments: list[CompiledSegment]
    counters: dict[str, Performed]
    by_event: dict[str, list[Performed]]
    by_name: dict[str, CompiledSegment] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_name = {s.name: s for s in self.segments}
        self._dependents: dict[str, set[str]] = {}
        for seg in self.segments:
            for need in seg.needs:
                self._dependents.setdefault(need, set()).add(seg.name)
        self._by_event: dict[str, set[str]] = {}
        self._by_trait: dict[str, set[str]] = {}
        self._every: set[str] = set()
        for seg in self.segments:
            for event in seg.events:
                if event == ANY_EVENT:
                    self._every.add(seg.name)
                else:
                    self._by_event.setdefault(event, set()).add(seg.name)
            for trait in seg.traits:
                self._by_trait.setdefault(trait, set()).add(seg.name)

    def affected(self, event_name: str, trait_keys: Iterable[str]) -> set[str]:
        """The segments an event with this name and these traits may change (with dependents)."""
        names = set(self._every) | self._by_event.get(event_name, set())
        for key in trait_keys:
            names |= self._by_trait.get(key, set())
        return self.with_dependents(names)

    def with_dependents(self, names: set[str]) -> set[str]:
        todo, seen = list(names), set(names)
        while todo:
            for dependent in self._dependents.get(todo.pop(), ()):
                if dependent not in seen:
                    seen.add(dependent)
                    todo.append(dependent)
        return seen


def compile_segments(defs: Iterable[SegmentDef]) -> Compiled:
    """Check and compile; ``RuleError`` names the segment and the path of the first problem."""
    compiled: dict[str, CompiledSegment] = {}
    counters: dict[str, Performed] = {}
    for d in defs:
        if d.name in compiled:
            raise RuleError(d.name, "name", "defined twice")
        seg = CompiledSegment(d.name, d.version, d.notify, _never, _no_due)
        seg.test, seg.due = _build(parse_rule(d.name, d.rule), seg, counters)
        compiled[d.name] = seg
    ordered = _topological(compiled)
    by_event: dict[str, list[Performed]] = {}
    for counter in counters.values():
        by_event.setdefault(counter.event, []).append(counter)
    return Compiled(ordered, counters, by_event)


def _topological(segments: dict[str, CompiledSegment]) -> list[CompiledSegment]:
    ordered: list[CompiledSegment] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " → ".join([*chain[chain.index(name) :], name])
            raise RuleError(name, "rule", f"in_segment cycle: {cycle}")
        state[name] = 1
        for need in sorted(segments[name].needs):
            if need not in segments:
                raise RuleError(name, "rule", f"in_segment: unknown segment {need!r}")
            visit(need, [*chain, name])
        state[name] = 2
        ordered.append(segments[name])

    for name in segments:
        visit(name, [])
    return ordered


def _never(_s: Subject) -> bool:
    return False


def _no_due(_s: Subject) -> int | None:
    return None


def _build(node: Node, seg: CompiledSegment, counters: dict[str, Performed]) -> tuple[Test, Due]:
    if isinstance(node, AllOf | AnyOf):
        parts = [_build(item, seg, counters) for item in node.items]
        tests = [t for t, _ in parts]
        if isinstance(node, AllOf):
            return (lambda s: all(t(s) for t in tests)), _combined(parts, settled_by=False)
        return (lambda s: any(t(s) for t in tests)), _combined(parts, settled_by=True)
    if isinstance(node, Not):
        inner, due = _build(node.item, seg, counters)
        return (lambda s: not inner(s)), due
    if isinstance(node, Compare):
        return _build_compare(node, seg)
    if isinstance(node, Performed):
        counters.setdefault(node.key, node)
        previous = counters[node.key]
        if node.keep > previous.keep:  # the counter keeps what its hungriest user needs
            counters[node.key] = node
        seg.events.add(node.event)
        seg.timed = seg.timed or node.within_ms is not None
        return _performed_test(node), _performed_due(node)
    if isinstance(node, Since):
        seg.events.add("Order Completed")
        seg.timed = True
        return _since(node)
    if isinstance(node, Birthday):
        seg.traits |= {"birthday", "timezone"}
        seg.timed = True
        return (lambda s: s.birthday_today()), (lambda s: s.next_midnight())
    assert isinstance(node, InSegment)
    seg.needs.add(node.name)
    name = node.name
    return (lambda s: name in s.members), _no_due


def _build_compare(node: Compare, seg: CompiledSegment) -> tuple[Test, Due]:
    root, _, rest = node.field.partition(".")
    if root == "traits":
        seg.traits.add(rest.split(".")[0])
    elif root == "computed":
        seg.events |= COMPUTED_BY.get(rest.split(".")[0], frozenset({ANY_EVENT}))
    else:
        seg.events.add(ANY_EVENT)
    path, op, value = node.field.split("."), node.op, node.value
    return (lambda s: compare_values(s.field(path), op, value)), _no_due


def _performed_test(node: Performed) -> Test:
    key, low, high = node.key, node.at_least, node.at_most
    within = node.within_ms

    def test(s: Subject) -> bool:
        count = s.count(key, within)
        return (low is None or count >= low) and (high is None or count <= high)

    return test


def _performed_due(node: Performed) -> Due:
    key, within = node.key, node.within_ms
    if within is None:
        return _no_due
    return lambda s: s.window_exit(key, within)


def _since(node: Since) -> tuple[Test, Due]:
    what, op, value = node.what, node.op, node.value
    return (
        lambda s: compare_values(s.since(what), op, value),
        lambda s: s.since_due(what, op, value),
    )


def _combined(parts: list[tuple[Test, Due]], settled_by: bool) -> Due:
    """The due time of all/any: none when a child that time cannot change already decides it
    (a false child of ``all``, a true child of ``any``), else the earliest child's."""

    def due(s: Subject) -> int | None:
        found = []
        for test, child_due in parts:
            when = child_due(s)
            if when is None:
                if test(s) == settled_by:
                    return None
            else:
                found.append(when)
        return min(found) if found else None

    return due
