"""Rules generated into one Python function per segment: ``check(subject) -> (inside, due)``.

A segment evaluated per event must cost well under a microsecond per condition; a tree of
closures costs several (a call per node, and the due time walks the tree a second time). So a
parsed rule is written out as the source of one function and compiled once:

- a rule that time cannot change is one short-circuit expression (``due`` is always None);
- a timed rule evaluates each condition once into a local, then combines the locals into the
  answer and into the due time: the earliest moment a windowed count, a day count or the
  customer's midnight can change it, or None when a condition that time cannot change already
  decides it (a false member of ``all``, a true member of ``any``).

Constants (counter keys, field paths, comparison values) are passed in by name, never printed
into the source, so no rule text can change the code.
"""

from __future__ import annotations

from collections.abc import Callable
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
    Since,
)
from wayline.segments.subject import DRIFTING, Subject, compare_values, window_check

Check = Callable[[Subject], tuple[bool, int | None]]


def generate(name: str, node: Node) -> Check:
    """The compiled ``check`` of one segment's parsed rule."""
    writer = _Writer()
    body = writer.guarded(node) if _timed(node) else [f"return {writer.expression(node)}, None"]
    source = "def check(s):\n    C = s.counters\n    now = s.now_ms\n" + "".join(
        f"    {line}\n" for line in body
    )
    namespace: dict[str, Any] = {
        "compare": compare_values,
        "window_check": window_check,
        "earliest": _earliest,
        **writer.constants,
    }
    exec(compile(source, f"<segment {name}>", "exec"), namespace)
    check: Check = namespace["check"]
    return check


def _timed(node: Node) -> bool:
    if isinstance(node, AllOf | AnyOf):
        return any(_timed(item) for item in node.items)
    if isinstance(node, Not):
        return _timed(node.item)
    if isinstance(node, Performed):
        return node.within_ms is not None
    if isinstance(node, Compare):
        return _drifting(node)
    return isinstance(node, Since | Birthday)


def _drifting(node: Compare) -> bool:
    """A comparison on a computed trait that changes as time passes (``rfm``, ``event_counts``)."""
    path = node.field.split(".")
    return len(path) > 1 and path[0] == "computed" and path[1] in DRIFTING


def _earliest(*dues: int | None) -> int | None:
    found = [d for d in dues if d is not None]
    return min(found) if found else None


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}

    def constant(self, value: Any) -> str:
        name = f"k{len(self.constants)}"
        self.constants[name] = value
        return name

    def local(self, prefix: str) -> str:
        return f"{prefix}{len(self.lines)}"

    def expression(self, node: Node) -> str:
        """The truth of ``node`` as one expression (short-circuit, no due)."""
        if isinstance(node, AllOf):
            return "(" + " and ".join(self.expression(i) for i in node.items) + ")"
        if isinstance(node, AnyOf):
            return "(" + " or ".join(self.expression(i) for i in node.items) + ")"
        if isinstance(node, Not):
            return f"(not {self.expression(node.item)})"
        return self.leaf(node)

    def leaf(self, node: Node) -> str:
        if isinstance(node, Performed):  # all time: a window is timed (``statement``)
            assert node.within_ms is None
            key = self.constant(node.key)
            return _bounded(f"(C[{key}]['n'] if {key} in C else 0)", node.at_least, node.at_most)
        if isinstance(node, Compare):
            return self._compare(node)
        if isinstance(node, Since):
            value = self.constant(node.value)
            return f"compare(s.since({node.what!r}), {node.op!r}, {value})"
        if isinstance(node, Birthday):
            return "s.birthday_today()"
        assert isinstance(node, InSegment)
        return f"({self.constant(node.name)} in s.members)"

    def _compare(self, node: Compare) -> str:
        path, op, value = self.constant(tuple(node.field.split("."))), node.op, node.value
        kind = _plain_kind(value)
        if op in _ORDERING and kind is not None:  # the common case, without the general rules
            bound = self.constant(value)
            return f"(isinstance(x := s.field({path}), {kind}) and x {_ORDERING[op]} {bound})"
        if op == "eq" and kind is not None:
            return f"(s.field({path}) == {self.constant(value)})"
        return f"compare(s.field({path}), {op!r}, {self.constant(value)})"

    def guarded(self, node: Node) -> list[str]:
        """The body of a timed rule. At the top of ``all`` (``any``) the members time cannot
        change are tested first: one that is false (true) decides the answer for good — due
        None, as ``_combined`` would say — before any window is counted. "Cart abandoners in
        Germany" then costs a trait lookup for every shopper elsewhere."""
        guards = []
        if isinstance(node, AllOf | AnyOf):
            timed = tuple(item for item in node.items if _timed(item))
            for item in (item for item in node.items if not _timed(item)):
                test = self.expression(item)
                guards.append(
                    f"if not {test}: return False, None"
                    if isinstance(node, AllOf)
                    else f"if {test}: return True, None"
                )
            node = timed[0] if len(timed) == 1 else type(node)(timed)
        truth, due = self.statement(node)
        return [*guards, *self.lines, f"return {truth}, {due or 'None'}"]

    def statement(self, node: Node) -> tuple[str, str | None]:
        """Lines computing ``node`` once; the names of its truth and due (None: never timed)."""
        if isinstance(node, Not):
            truth, due = self.statement(node.item)
            return f"(not {truth})", due
        if isinstance(node, AllOf | AnyOf):
            return self._combined(node)
        if isinstance(node, Performed) and node.within_ms is not None:
            truth, due = self.local("t"), self.local("d")
            key, low, high = self.constant(node.key), node.at_least or 0, node.at_most
            self.lines.append(
                f"{truth}, {due} = window_check(C.get({key}), {low}, {high}, {node.within_ms}, now)"
            )
            return truth, due
        truth = self.local("t")
        self.lines.append(f"{truth} = {self.leaf(node)}")
        due_expression = self._leaf_due(node)
        if due_expression is None:
            return truth, None
        due = self.local("d")
        self.lines.append(f"{due} = {due_expression}")
        return truth, due

    def _leaf_due(self, node: Node) -> str | None:
        if isinstance(node, Compare) and _drifting(node):
            return f"s.drift_due({self.constant(tuple(node.field.split('.')))})"
        if isinstance(node, Since):
            value = self.constant(node.value)
            return f"s.since_due({node.what!r}, {node.op!r}, {value})"
        if isinstance(node, Birthday):
            return "s.next_midnight()"
        return None

    def _combined(self, node: AllOf | AnyOf) -> tuple[str, str | None]:
        parts = [self.statement(item) for item in node.items]
        joiner = " and " if isinstance(node, AllOf) else " or "
        truth = self.local("t")
        self.lines.append(f"{truth} = " + joiner.join(t for t, _ in parts))
        timed = [d for _, d in parts if d is not None]
        if not timed:
            return truth, None
        # decided by a member time cannot change: a false one for all, a true one for any
        settled = "not " if isinstance(node, AllOf) else ""
        deciders = [
            f"{settled}{t}" if d is None else f"({d} is None and {settled}{t})" for t, d in parts
        ]
        due = self.local("d")
        self.lines.append(
            f"{due} = None if ({' or '.join(deciders)}) else earliest({', '.join(timed)})"
        )
        return truth, due


_ORDERING = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def _plain_kind(value: Any) -> str | None:
    """The isinstance test under which a comparison with ``value`` is a plain one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return "(int, float)"
    return "str" if isinstance(value, str) else None


def _bounded(count: str, low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"({low} <= {count} <= {high})"
    if low is not None:
        return f"({count} >= {low})"
    return f"({count} <= {high})"
