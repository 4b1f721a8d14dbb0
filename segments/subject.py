"""What a rule reads: one profile at one moment, and the event counters rules keep.

``Subject`` wraps the profile document (``profiles.view.snapshot``), the profile state's rule
counters and the current memberships, at ``now_ms``. Counters (``state["conds"]``) hold, per
distinct ``performed`` condition, the total of matching events and the newest matching
``[timestamp, message id]`` pairs — as many as the strictest threshold needs — so windows are
exact to the millisecond, not to a day bucket.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wayline.segments.rules import Performed

DAY_MS = 86_400_000
KEEP_LIMIT = 1000


class Subject:
    def __init__(
        self,
        doc: Mapping[str, Any],
        counters: Mapping[str, Any],
        members: set[str],
        now_ms: int,
    ) -> None:
        self.doc = doc
        self.counters = counters
        self.members = members
        self.now_ms = now_ms

    def field(self, path: list[str]) -> Any:
        value: Any = self.doc
        for part in path:
            if not isinstance(value, Mapping):
                return None
            value = value.get(part)
        return value

    def count(self, key: str, within_ms: int | None) -> int:
        counter = self.counters.get(key)
        if counter is None:
            return 0
        if within_ms is None:
            return int(counter["n"])
        since = self.now_ms - within_ms
        return sum(1 for ts, _ in counter["t"] if ts > since)

    def window_exit(self, key: str, within_ms: int) -> int | None:
        """When the oldest matching event still inside the window leaves it."""
        counter = self.counters.get(key)
        if counter is None:
            return None
        exits = [ts + within_ms for ts, _ in counter["t"] if ts + within_ms > self.now_ms]
        return min(exits) if exits else None

    def _order_time(self, which: str) -> int | None:
        text = self.field(["computed", which])
        return _epoch_ms(text) if isinstance(text, str) else None

    def since(self, what: str) -> float | None:
        if what == "days_since_last_order":
            last = self._order_time("last_order_at")
            return None if last is None else (self.now_ms - last) / DAY_MS
        first = self._order_time("first_order_at")
        if first is None:
            return None
        return float(_whole_years(first, self.now_ms))

    def since_due(self, what: str, op: str, value: Any) -> int | None:
        """When the day or year count next crosses a threshold of the rule."""
        bounds = value if op == "between" else [value]
        if not all(isinstance(b, int | float) for b in bounds):
            return None
        if what == "days_since_last_order":
            last = self._order_time("last_order_at")
            if last is None:
                return None
            found = [int(last + b * DAY_MS) for b in bounds]
            found += [int(last + b * DAY_MS) + 1 for b in bounds]  # "gt": just past it
            later = [t for t in found if t > self.now_ms]
            return min(later) if later else None
        first = self._order_time("first_order_at")
        return None if first is None else _next_anniversary(first, self.now_ms)

    def _zone(self) -> ZoneInfo:
        name = self.field(["computed", "timezone"]) or self.field(["traits", "timezone"])
        try:
            return ZoneInfo(name) if isinstance(name, str) and name else ZoneInfo("UTC")
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")

    def birthday_today(self) -> bool:
        birthday = _month_day(self.field(["traits", "birthday"]))
        if birthday is None:
            return False
        today = datetime.fromtimestamp(self.now_ms / 1000, self._zone()).date()
        return (today.month, today.day) == birthday

    def next_midnight(self) -> int | None:
        if _month_day(self.field(["traits", "birthday"])) is None:
            return None
        zone = self._zone()
        local = datetime.fromtimestamp(self.now_ms / 1000, zone)
        midnight = datetime.combine(local.date() + timedelta(days=1), clock_time(0), zone)
        return int(midnight.timestamp() * 1000)


def compare_values(actual: Any, op: str, expected: Any) -> bool:
    """One comparison of the rule language; a missing value only ever satisfies exists: false."""
    if op == "exists":
        return (actual is not None) == bool(expected)
    if actual is None:
        return op == "ne"
    if op == "eq":
        return bool(actual == expected)
    if op == "ne":
        return bool(actual != expected)
    if op == "in":
        return actual in expected
    if op == "contains":
        return isinstance(actual, str | list | dict) and expected in actual
    if op == "between":
        return _ordered(expected[0], actual) and _ordered(actual, expected[1])
    if not _comparable(actual, expected):
        return False
    if op == "lt":
        return bool(actual < expected)
    if op == "lte":
        return bool(actual <= expected)
    if op == "gt":
        return bool(actual > expected)
    return bool(actual >= expected)  # gte


def _comparable(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return (isinstance(a, numbers) and isinstance(b, numbers)) or (
        isinstance(a, str) and isinstance(b, str)
    )


def _ordered(low: Any, high: Any) -> bool:
    return _comparable(low, high) and bool(low <= high)


def track(
    state: dict[str, Any], event: Mapping[str, Any], name: str, counters: list[Performed]
) -> None:
    """Count ``event`` (already known to be new for this profile) in the rule counters."""
    if not counters:
        return
    conds = state.setdefault("conds", {})
    ts = _epoch_ms(str(event["timestamp"]))
    msgid = str(event["messageId"])
    for counter in counters:
        if not all(_matches(event, f, op, v) for f, op, v in counter.where):
            continue
        cell = conds.setdefault(counter.key, {"n": 0, "t": []})
        cell["n"] += 1
        _keep(cell, [ts, msgid], min(counter.keep, KEEP_LIMIT))
    del name


def _keep(cell: dict[str, Any], stamp: list[Any], keep: int) -> None:
    stamps = cell["t"]
    stamps.append(stamp)
    stamps.sort(reverse=True)
    del stamps[keep:]


def _matches(event: Mapping[str, Any], field: str, op: str, expected: Any) -> bool:
    value: Any = event
    for part in field.split("."):
        if not isinstance(value, Mapping):
            value = None
            break
        value = value.get(part)
    if op == "eq" and isinstance(value, list):  # products: any line matches
        return expected in value
    return compare_values(value, op, expected)


def _epoch_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def _month_day(value: Any) -> tuple[int, int] | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if text.startswith("--"):  # --MM-DD, a birthday without the year
            return int(text[2:4]), int(text[5:7])
        parsed = date.fromisoformat(text[:10])
    except ValueError:
        return None
    return parsed.month, parsed.day


def _whole_years(first_ms: int, now_ms: int) -> int:
    first = datetime.fromtimestamp(first_ms / 1000, UTC)
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    years = now.year - first.year
    if _within_year(now) < _within_year(first):
        years -= 1
    return max(years, 0)


def _within_year(moment: datetime) -> tuple[int, ...]:
    return (moment.month, moment.day, moment.hour, moment.minute, moment.second, moment.microsecond)


def _next_anniversary(first_ms: int, now_ms: int) -> int:
    first = datetime.fromtimestamp(first_ms / 1000, UTC)
    years = _whole_years(first_ms, now_ms) + 1
    try:
        moment = first.replace(year=first.year + years)
    except ValueError:  # 29 February
        moment = first.replace(year=first.year + years, day=28)
    return int(moment.timestamp() * 1000)
