"""The segment language: parse and check a rule, with errors that name the segment and path.

A rule is a tree of conditions (the keys are a public contract)::

    all: [COND, ...]            any: [COND, ...]            not: COND
    <field>: {OP: VALUE}        field = traits.X | computed.X | consent.X | lifecycle_stage
                                OP    = eq ne lt lte gt gte in contains exists between
    performed: {event: NAME, at_least|at_most|exactly: N, within: 90d,
                where: {FIELD: VALUE | {OP: V}}}
    days_since_last_order: {OP: N}      years_since_first_order: {OP: N}
    birthday_today: true                in_segment: NAME

``within`` takes ``s m h d w`` units (``90d``, ``60m``); without it, ``performed`` counts all time.
``parse_rule`` returns a tree of small frozen dataclasses; ``segments.compiler`` turns it into a
callable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "exists", "between")
FIELD_ROOTS = ("traits", "computed", "consent", "identifiers")
CONDITIONS = (
    "all", "any", "not", "performed", "days_since_last_order", "years_since_first_order",
    "birthday_today", "in_segment", "lifecycle_stage", "traits.X", "computed.X", "consent.X",
)  # fmt: skip
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


class RuleError(ValueError):
    """A rule that cannot compile; the message names the segment and the path."""

    def __init__(self, segment: str, path: str, problem: str) -> None:
        super().__init__(f"segment {segment!r}: {path}: {problem}")
        self.segment, self.path, self.problem = segment, path, problem


@dataclass(frozen=True)
class Compare:
    field: str  # "traits.plan", "computed.revenue", "consent.email", "lifecycle_stage"
    op: str
    value: Any


@dataclass(frozen=True)
class Performed:
    event: str
    where: tuple[tuple[str, str, Any], ...]  # (field, op, value)
    at_least: int | None
    at_most: int | None
    within_ms: int | None

    @property
    def key(self) -> str:
        """Identifies what is counted (not the thresholds or the window): rules share counters
        by it."""
        where = ";".join(f"{f} {op} {v!r}" for f, op, v in self.where)
        return f"{self.event}|{where}"

    @property
    def keep(self) -> int:
        """How many newest matching timestamps the count needs."""
        return max(self.at_least or 0, (self.at_most or 0) + 1, 1)


@dataclass(frozen=True)
class Since:
    what: str  # "days_since_last_order" | "years_since_first_order"
    op: str
    value: Any


@dataclass(frozen=True)
class Birthday:
    pass


@dataclass(frozen=True)
class InSegment:
    name: str


@dataclass(frozen=True)
class AllOf:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Compare | Performed | Since | Birthday | InSegment | AllOf | AnyOf | Not


def segments_read(node: Node) -> set[str]:
    """The segments a parsed rule reads with ``in_segment``, at any depth."""
    if isinstance(node, InSegment):
        return {node.name}
    if isinstance(node, AllOf | AnyOf):
        return set().union(*(segments_read(item) for item in node.items))
    if isinstance(node, Not):
        return segments_read(node.item)
    return set()


def duration_ms(text: Any) -> int | None:
    """``"90d"`` → milliseconds; None when it is not a duration."""
    if isinstance(text, int) and not isinstance(text, bool) and text > 0:
        return text * 1000
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match or int(match.group(1)) == 0:
        return None
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def parse_rule(segment: str, rule: Any, path: str = "rule") -> Node:
    """Check and parse one rule; ``RuleError`` names the first problem."""
    if not isinstance(rule, Mapping) or len(rule) != 1:
        raise RuleError(segment, path, "a condition is a mapping with exactly one key")
    ((key, body),) = rule.items()
    key = str(key)
    where = f"{path}.{key}"
    if key in ("all", "any"):
        if not isinstance(body, list) or not body:
            raise RuleError(segment, where, "expects a non-empty list of conditions")
        items = tuple(parse_rule(segment, item, f"{where}[{i}]") for i, item in enumerate(body))
        return AllOf(items) if key == "all" else AnyOf(items)
    if key == "not":
        return Not(parse_rule(segment, body, where))
    if key == "performed":
        return _performed(segment, body, where)
    if key in ("days_since_last_order", "years_since_first_order"):
        op, value = _comparison(segment, body, where, numeric=True)
        return Since(key, op, value)
    if key == "birthday_today":
        if body is not True:
            raise RuleError(segment, where, "write birthday_today: true")
        return Birthday()
    if key == "in_segment":
        if not isinstance(body, str) or not body:
            raise RuleError(segment, where, "expects a segment name")
        return InSegment(body)
    return _compare(segment, key, body, where)


def _compare(segment: str, key: str, body: Any, where: str) -> Compare:
    field = "computed.lifecycle_stage" if key == "lifecycle_stage" else key
    root, _, rest = field.partition(".")
    if root not in FIELD_ROOTS or not rest:
        known = ", ".join(CONDITIONS)
        raise RuleError(segment, where, f"unknown condition {key!r}; use one of: {known}")
    op, value = _comparison(segment, body, where)
    return Compare(field, op, value)


def _comparison(segment: str, body: Any, where: str, numeric: bool = False) -> tuple[str, Any]:
    if not isinstance(body, Mapping) or len(body) != 1:
        raise RuleError(segment, where, f"expects one comparison, e.g. {{gte: 30}}; ops: {OPS}")
    ((op, value),) = body.items()
    if op not in OPS:
        raise RuleError(segment, f"{where}.{op}", f"unknown operator; use one of {', '.join(OPS)}")
    _check_value(segment, f"{where}.{op}", str(op), value, numeric)
    return str(op), value


def _check_value(segment: str, where: str, op: str, value: Any, numeric: bool) -> None:
    if op == "between" and not (
        isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)
    ):
        raise RuleError(segment, where, "expects [low, high] numbers")
    if op == "in" and not isinstance(value, list):
        raise RuleError(segment, where, "expects a list")
    if op == "exists" and not isinstance(value, bool):
        raise RuleError(segment, where, "expects true or false")
    if op in ("lt", "lte", "gt", "gte") and not (_is_number(value) or isinstance(value, str)):
        raise RuleError(segment, where, "expects a number (or an ISO date string)")
    if numeric and op not in ("between", "exists") and not _is_number(value):
        raise RuleError(segment, where, "expects a number")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _performed(segment: str, body: Any, where: str) -> Performed:
    if not isinstance(body, Mapping):
        raise RuleError(segment, where, "expects {event: NAME, at_least: N, within: 30d, ...}")
    allowed = {"event", "at_least", "at_most", "exactly", "within", "where"}
    for key in body:
        if key not in allowed:
            raise RuleError(segment, f"{where}.{key}", f"unknown key; use {sorted(allowed)}")
    event = body.get("event")
    if not isinstance(event, str) or not event.strip():
        raise RuleError(segment, f"{where}.event", "expects an event name")
    counts = {k: body.get(k) for k in ("at_least", "at_most", "exactly") if k in body}
    for k, v in counts.items():
        if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            raise RuleError(segment, f"{where}.{k}", "expects a whole number ≥ 0")
    if "exactly" in counts and len(counts) > 1:
        raise RuleError(segment, f"{where}.exactly", "cannot be combined with at_least/at_most")
    at_least = counts.get("exactly", counts.get("at_least"))
    at_most = counts.get("exactly", counts.get("at_most"))
    if at_least is None and at_most is None:
        at_least = 1
    within = None
    if "within" in body:
        within = duration_ms(body["within"])
        if within is None:
            raise RuleError(segment, f"{where}.within", "expects a duration such as 30d, 12h, 45m")
    return Performed(
        event.strip(), _where(segment, body.get("where"), where), at_least, at_most, within
    )


def _where(segment: str, body: Any, path: str) -> tuple[tuple[str, str, Any], ...]:
    if body is None:
        return ()
    if not isinstance(body, Mapping) or not body:
        raise RuleError(segment, f"{path}.where", "expects {properties.X: VALUE, ...}")
    out = []
    for field, test in sorted(body.items()):
        where = f"{path}.where.{field}"
        if not str(field).startswith(("properties.", "context.")):
            raise RuleError(segment, where, "filter on properties.X or context.X")
        if isinstance(test, Mapping):
            op, value = _comparison(segment, test, where)
        else:
            op, value = "eq", test
        out.append((str(field), op, value))
    return tuple(out)
