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
from datetime import datetime
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
    problem = field_problem(field, op, value)
    if problem is not None:
        raise RuleError(segment, f"{where}.{op}", problem)
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


# What each field of the profile document holds, so a rule that can never be true (a typo in a
# field name, a value of the wrong type, a lifecycle stage that does not exist) is refused when
# it is tested, published or loaded, not discovered when nobody ever enters the segment.
STAGES = ("awareness", "consideration", "conversion", "retention", "advocacy")
WINDOW_KEYS = ("all_time", "7d", "30d", "90d")
_NUMBER, _DATE, _TEXT, _LIST, _OBJECT, _STAGE, _SCORE, _FLAG = (
    "number", "date", "text", "list", "object", "stage", "score", "flag"
)  # fmt: skip
COMPUTED_FIELDS: dict[str, str] = {
    "order_count": _NUMBER, "revenue": _NUMBER, "aov": _NUMBER,
    "mean_days_between_orders": _NUMBER, "first_order_at": _DATE, "last_order_at": _DATE,
    "favorite_category": _TEXT, "recently_viewed": _LIST, "cart": _OBJECT,
    "lifecycle_stage": _STAGE, "rfm": _OBJECT, "event_counts": _OBJECT, "location": _OBJECT,
    "timezone": _TEXT,
}  # fmt: skip
CART_FIELDS = {"cart_id": _TEXT, "value": _NUMBER, "last_activity_at": _DATE, "items": _LIST}
RFM_KEYS = ("recency", "frequency", "monetary")
_OPS_OF = {
    _NUMBER: ("eq", "ne", "lt", "lte", "gt", "gte", "in", "between", "exists"),
    _SCORE: ("eq", "ne", "lt", "lte", "gt", "gte", "in", "between", "exists"),
    _DATE: ("eq", "ne", "lt", "lte", "gt", "gte", "in", "exists"),
    _TEXT: ("eq", "ne", "in", "contains", "exists"),
    _STAGE: ("eq", "ne", "in", "exists"),
    _FLAG: ("eq", "ne", "exists"),
    _LIST: ("contains", "exists"),
    _OBJECT: ("exists",),
}


def field_kind(field: str) -> tuple[str | None, str | None]:
    """What ``field`` holds (None: anything, as for traits), or the problem with its name."""
    parts = field.split(".")
    root = parts[0]
    if root == "traits":
        return None, None
    if root == "consent":
        return (_FLAG, None) if len(parts) == 2 else (None, "consent.CHANNEL has no sub-fields")
    if root == "identifiers":
        return (_LIST, None) if len(parts) == 2 else (None, "identifiers.TYPE has no sub-fields")
    name, rest = parts[1], parts[2:]
    kind = COMPUTED_FIELDS.get(name)
    if kind is None:
        return None, f"unknown computed field {name!r}; use one of: {', '.join(COMPUTED_FIELDS)}"
    if not rest:
        return kind, None
    if name == "cart":
        inner = CART_FIELDS.get(rest[0]) if len(rest) == 1 else None
        known = ", ".join(f"computed.cart.{k}" for k in CART_FIELDS)
        return (inner, None) if inner else (None, f"unknown cart field; use one of: {known}")
    if name == "rfm":
        if len(rest) == 1 and rest[0] in RFM_KEYS:
            return _SCORE, None
        return None, f"unknown RFM score; use one of: {', '.join(RFM_KEYS)}"
    if name == "event_counts":
        if len(rest) == 2 and rest[1] in WINDOW_KEYS:
            return _NUMBER, None
        return None, f"use computed.event_counts.EVENT.WINDOW, WINDOW one of: {WINDOW_KEYS}"
    if name == "location":
        return (_TEXT, None) if len(rest) == 1 else (None, "use computed.location.KEY")
    return None, f"computed.{name} has no sub-fields"


def field_problem(field: str, op: str, value: Any) -> str | None:
    """Why ``field OP value`` can never be true (None: it can)."""
    kind, problem = field_kind(field)
    if problem is not None or kind is None:
        return problem
    if op not in _OPS_OF[kind]:
        return f"{field} holds {_DESCRIBED[kind]}: use {', '.join(_OPS_OF[kind])}"
    if op == "exists":
        return None
    values = value if op in ("in", "between") else [value]
    for each in values:
        wrong = _value_problem(kind, op, each)
        if wrong is not None:
            return f"{field} holds {_DESCRIBED[kind]}: {wrong} (got {each!r})"
    return None


_DESCRIBED = {
    _NUMBER: "a number", _SCORE: "an RFM score 0-5", _DATE: "an ISO time", _TEXT: "text",
    _STAGE: f"a lifecycle stage ({', '.join(STAGES)})", _FLAG: "true or false",
    _LIST: "a list", _OBJECT: "an object",
}  # fmt: skip


def _value_problem(kind: str, op: str, value: Any) -> str | None:
    if kind in (_NUMBER, _SCORE):
        if not _is_number(value):
            return "compare it with a number"
        return "scores are 0 to 5" if kind == _SCORE and not 0 <= value <= 5 else None
    if kind == _DATE:
        return None if isinstance(value, str) and _is_time(value) else "compare it with an ISO time"
    if kind == _STAGE:
        return None if value in STAGES else f"use one of: {', '.join(STAGES)}"
    if kind == _FLAG:
        return None if isinstance(value, bool) else "compare it with true or false"
    if kind in (_TEXT, _LIST):
        return None if isinstance(value, str) else "compare it with text"
    return None


def _is_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
