"""Compile parsed rules once into callables, indexed by what they depend on.

Each segment becomes one generated function (``codegen``), ``check(subject) -> (inside, due)``,
where ``due`` is the next moment (epoch ms) at which the answer may change by time alone (a
window sliding past an event, a day count crossing its threshold, the customer's midnight).

The index (``Compiled``) says which segments an event can flip, at the level of single
conditions: a ``performed`` count flips only the segments whose threshold it moved past, a changed
trait or computed value only the segments whose comparison answers differently for the old and
the new value; ``in_segment`` adds the segments that read a segment that flipped. Everything
else keeps its membership without being evaluated, so the cost of an event follows what it
changed, not how many segments exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final

import orjson

from wayline.profiles.state import CONSENT_OFF_EVENTS, empty_state
from wayline.profiles.view import ADVOCACY, INTEREST, ORDER_FIELDS
from wayline.segments.codegen import Check, generate
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
from wayline.segments.subject import (
    DRIFTING,
    KEEP_LIMIT,
    Subject,
    compare_values,
    matches,
    value_at,
)

Path = tuple[str, ...]
Window = tuple[str, int | None]  # (counter key, window in ms or None for all time)
TRAIT_EVENTS: Final = "traits"  # a trait changes with the events that carry it

# which events can change a computed trait; the others may change with any event
COMPUTED_BY: Final[dict[str, frozenset[str]]] = {
    name: frozenset({"Order Completed"}) for name in ORDER_FIELDS
} | {
    "cart": frozenset({"Product Added", "Product Removed", "Order Completed"}),
    "favorite_category": frozenset({"Product Viewed", "Product Added", "Order Completed"}),
    "recently_viewed": frozenset({"Product Viewed"}),
    "lifecycle_stage": frozenset({*INTEREST, *ADVOCACY, "Order Completed"}),
}
CONSENT_EVENTS: Final = "consent"  # consent changes with the events that carry it (or revoke it)
_NONE: Final[set[str]] = set()  # shared, never changed


@dataclass
class Counter:
    """Events of one name matching one ``where``, counted for every rule that asks: the total and
    the newest ``keep`` timestamps (enough for the strictest threshold in any of ``windows``)."""

    key: str
    event: str
    where: tuple[tuple[str, str, Any], ...]
    keep: int = 1
    windows: set[int | None] = field(default_factory=set)

    @property
    def kept(self) -> int:
        """How many timestamps a cell keeps."""
        return min(self.keep, KEEP_LIMIT)

    @cached_property
    def timed(self) -> list[int]:
        """The windows of this counter, shortest first."""
        return sorted(w for w in self.windows if w is not None)

    @cached_property
    def match(self) -> tuple[tuple[tuple[str, ...], str, Any], ...]:
        """``where`` with each field split into its path, as events are matched against it."""
        return tuple((tuple(f.split(".")), op, value) for f, op, value in self.where)


@dataclass
class EventCounters:
    """The counters of one event name, arranged so an event finds the ones it matches without
    testing every ``where``: those without one, those whose ``where`` is one equality (found by
    the event's value at that field: a workspace counts "bought shoes", "bought outdoor", … for
    each category) and the rest, tested one by one."""

    always: list[Counter] = field(default_factory=list)
    by_value: dict[tuple[str, ...], dict[Any, list[Counter]]] = field(default_factory=dict)
    other: list[Counter] = field(default_factory=list)

    def add(self, counter: Counter) -> None:
        if not counter.match:
            self.always.append(counter)
            return
        path, op, value = counter.match[0]
        if len(counter.match) == 1 and op == "eq" and _hashable(value):
            self.by_value.setdefault(path, {}).setdefault(value, []).append(counter)
        else:
            self.other.append(counter)

    def matching(self, event: Mapping[str, Any]) -> list[Counter]:
        found = list(self.always)
        for path, index in self.by_value.items():
            value = value_at(event, path)
            if isinstance(value, list):  # products: any line matches, each counter once
                hits = {id(c): c for v in value if _hashable(v) for c in index.get(v, ())}
                found += hits.values()
            elif _hashable(value):
                found += index.get(value, ())
        found += [c for c in self.other if all(matches(event, *test) for test in c.match)]
        return found


def _hashable(value: Any) -> bool:
    return isinstance(value, str | int | float) and value == value  # not None, a dict or NaN


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
    check: Check  # subject → (inside, next due time or None)
    crossings: set[tuple[Window, int]] = field(default_factory=set)  # counter, count it flips at
    compares: list[tuple[Path, str, str, Any]] = field(
        default_factory=list
    )  # field, op, key, value
    watches: set[Path] = field(default_factory=set)  # fields any change of which matters
    needs: set[str] = field(default_factory=set)  # segments it reads (in_segment)
    timed: bool = False
    order: int = 0  # position in dependency order
    content: str = ""  # the definition as written (rule, version, notify): what a change changes


@dataclass
class Compiled:
    """All segments, in dependency order, with their counters and the index that says which
    segments an event can affect:

    - ``crossings``: counter → count → segments whose ``performed`` threshold lies there (a count
      that moves past it may flip them; one that moves elsewhere cannot);
    - ``comparisons``: field → distinct (op, value) → segments (a changed value flips only the
      comparisons whose answer differs);
    - ``watches``: field → segments re-evaluated on any change (day counts, birthdays);
    - ``readers``: event name → the fields that event can change (read before and after it).
    """

    segments: list[CompiledSegment]
    counters: dict[str, Counter]
    by_event: dict[str, EventCounters]
    by_name: dict[str, CompiledSegment] = field(default_factory=dict)
    crossings: dict[Window, dict[int, set[str]]] = field(default_factory=dict)
    comparisons: dict[Path, dict[tuple[str, str], tuple[Any, set[str]]]] = field(
        default_factory=dict
    )
    watches: dict[Path, set[str]] = field(default_factory=dict)
    dependents: dict[str, set[str]] = field(default_factory=dict)
    at_rest: set[str] = field(default_factory=set)
    position: dict[str, int] = field(default_factory=dict)  # name → dependency order
    drifting: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.by_name = {s.name: s for s in self.segments}
        for order, seg in enumerate(self.segments):
            seg.order = self.position[seg.name] = order
            for need in seg.needs:
                self.dependents.setdefault(need, set()).add(seg.name)
            for counter, at in seg.crossings:
                self.crossings.setdefault(counter, {}).setdefault(at, set()).add(seg.name)
            for path, op, value_key, value in seg.compares:
                distinct = self.comparisons.setdefault(path, {})
                distinct.setdefault((op, value_key), (value, set()))[1].add(seg.name)
            for path in seg.watches:
                self.watches.setdefault(path, set()).add(seg.name)
        fields = set(self.comparisons) | set(self.watches)
        self._any_event = [p for p in fields if _changed_by(p) is None]
        self._traits = [p for p in fields if _changed_by(p) == TRAIT_EVENTS]
        self._consent = [p for p in fields if _changed_by(p) == CONSENT_EVENTS]
        self._by_event: dict[str, list[Path]] = {}
        for path in fields:
            events = _changed_by(path)
            if isinstance(events, frozenset):
                for name in events:
                    self._by_event.setdefault(name, []).append(path)
        self.at_rest = _at_rest(self.segments)
        self.drifting = {
            name
            for path, distinct in self.comparisons.items()
            if path[0] == "computed" and len(path) > 1 and path[1] in DRIFTING
            for _value, names in distinct.values()
            for name in names
        }

    def fields_changed_by(self, event_name: str, trait_keys: set[str]) -> list[Path]:
        """The fields rules read that an event with this name and these traits (``consent``
        among them when it carries consent anywhere) can change."""
        found = [*self._any_event, *self._by_event.get(event_name, ())]
        found += [p for p in self._traits if len(p) > 1 and p[1] in trait_keys]
        if self._consent and ("consent" in trait_keys or event_name in CONSENT_OFF_EVENTS):
            found += self._consent
        return found

    def flipped(self, path: Path, before: Any, after: Any) -> set[str]:
        """The segments a field's change from ``before`` to ``after`` can flip."""
        names = set(self.watches.get(path, ()))
        for (op, _json), (value, segs) in self.comparisons.get(path, {}).items():
            if compare_values(before, op, value) != compare_values(after, op, value):
                names |= segs
        return names

    def crossed(self, window: Window, reached: int) -> set[str]:
        """The segments a count that just went up to ``reached`` can flip (those holding
        ``at_least: reached`` or ``at_most: reached - 1`` on that window)."""
        at = self.crossings.get(window)
        return at.get(reached, _NONE) if at else _NONE


def changed_segments(before: Compiled, after: Compiled) -> set[str]:
    """The segments of ``after`` that are new or defined differently than in ``before``."""
    return {
        name
        for name, seg in after.by_name.items()
        if name not in before.by_name or before.by_name[name].content != seg.content
    }


def _key(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


def _at_rest(segments: list[CompiledSegment]) -> set[str]:
    """The segments a profile with no events may already be in (``not performed``, ``at_most``,
    ``lt`` …): looked at on a profile's first event, since no condition of theirs flips then."""
    members: dict[str, bool] = {}
    subject = Subject(empty_state(), members, 0)
    found = set()
    for seg in segments:  # dependency order: in_segment sees what came before
        inside, due = seg.check(subject)
        if inside:
            members[seg.name] = True
        if inside or due is not None:
            found.add(seg.name)
    return found


def _changed_by(path: Path) -> frozenset[str] | str | None:
    """Which events can change a field: a set of names, ``TRAIT_EVENTS``, ``CONSENT_EVENTS``,
    or None for any."""
    if path[0] == "traits":
        return TRAIT_EVENTS
    if path[0] == "consent":
        return CONSENT_EVENTS
    if path[0] == "computed" and len(path) > 1:
        return COMPUTED_BY.get(path[1])
    return None


def compile_segments(defs: Iterable[SegmentDef]) -> Compiled:
    """Check and compile; ``RuleError`` names the segment and the path of the first problem."""
    compiled: dict[str, CompiledSegment] = {}
    counters: dict[str, Counter] = {}
    checks: dict[str, Check] = {}  # rule as written → its check: equal rules share one
    for d in defs:
        if d.name in compiled:
            raise RuleError(d.name, "name", "defined twice")
        node = parse_rule(d.name, d.rule)
        rule = _key(d.rule)
        if rule not in checks:
            checks[rule] = generate(d.name, node)
        seg = CompiledSegment(d.name, d.version, d.notify, checks[rule])
        seg.content = _key([d.rule, d.version, d.notify])
        _register(node, seg, counters)
        compiled[d.name] = seg
    ordered = _topological(compiled)
    by_event: dict[str, EventCounters] = {}
    for counter in counters.values():
        by_event.setdefault(counter.event, EventCounters()).add(counter)
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


def _register(node: Node, seg: CompiledSegment, counters: dict[str, Counter]) -> None:
    """Record what ``node`` reads: counters and thresholds, fields, timers, other segments."""
    if isinstance(node, AllOf | AnyOf):
        for item in node.items:
            _register(item, seg, counters)
    elif isinstance(node, Not):
        _register(node.item, seg, counters)
    elif isinstance(node, Compare):
        seg.compares.append((tuple(node.field.split(".")), node.op, _key(node.value), node.value))
    elif isinstance(node, Performed):
        counter = counters.setdefault(node.key, Counter(node.key, node.event, node.where))
        counter.keep = max(counter.keep, node.keep)  # what its hungriest user needs
        counter.windows.add(node.within_ms)
        window = (node.key, node.within_ms)
        if node.at_least is not None:
            seg.crossings.add((window, node.at_least))
        if node.at_most is not None:
            seg.crossings.add((window, node.at_most + 1))
        seg.timed = seg.timed or node.within_ms is not None
    elif isinstance(node, Since):
        which = "last_order_at" if node.what == "days_since_last_order" else "first_order_at"
        seg.watches.add(("computed", which))
        seg.timed = True
    elif isinstance(node, Birthday):
        seg.watches |= {("traits", "birthday"), ("traits", "timezone"), ("computed", "timezone")}
        seg.timed = True
    else:
        assert isinstance(node, InSegment)
        seg.needs.add(node.name)
