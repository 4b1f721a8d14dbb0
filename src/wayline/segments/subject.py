"""What a rule reads: one profile at one moment, and the event counters rules keep.

``Subject`` reads the profile state (``profiles.state``) at ``now_ms`` the way the profile
document (``profiles.view.snapshot``) shows it, but computes only the parts a rule asks for
(most rules read one computed trait or one counter; building the whole document per event costs
more than the rules). Counters (``state["conds"]``) hold, per distinct ``performed`` condition,
the total of matching events and the newest matching ``[timestamp, message id]`` pairs — as many
as the strictest threshold needs — so windows are exact to the millisecond, not to a day bucket.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wayline.profiles import view
from wayline.profiles.state import State, message_token

if TYPE_CHECKING:
    from wayline.segments.compiler import Counter

DAY_MS: Final = 86_400_000
KEEP_LIMIT: Final = 1000

# computed trait → how to read it from the state at a moment (the document's ``computed``)
COMPUTED: Final[dict[str, Callable[[State, int], Any]]] = {
    "favorite_category": lambda s, _now: view.favorite_category(s),
    "recently_viewed": lambda s, _now: view.recently_viewed(s),
    "cart": lambda s, _now: view.cart(s),
    "lifecycle_stage": lambda s, _now: view.lifecycle_stage(s),
    "rfm": view.rfm,
    "event_counts": view.event_counts,
    "location": lambda s, _now: {k: v[0] for k, v in sorted(s["location"].items())},
    "timezone": lambda s, _now: s["tz"][0] if s["tz"] else None,
}
# computed traits that also change as time passes: rules on them are looked at on every event
# and have a due time of their own (``Subject.drift_due``)
DRIFTING: Final = frozenset({"rfm", "event_counts"})
ROOTS: Final[dict[str, Callable[[State], Any]]] = {
    "traits": lambda s: {
        **{k: v[0] for k, v in s["once"].items()},
        **{k: v[0] for k, v in s["traits"].items()},
    },
    "consent": lambda s: {k: v[0] for k, v in s["consent"].items()},
    "identifiers": lambda s: {k: list(v) for k, v in s["ids"].items()},
}


_CELLS: Final = ("traits", "consent")


def _cell(state: State, root: str, name: str) -> Any:
    if root == "traits":
        found = state["traits"].get(name)
        return found if found is not None else state["once"].get(name)
    return state["consent"].get(name)


def read_field(state: State, path: Sequence[str], now_ms: int) -> Any:
    """``traits.plan``, ``computed.revenue``, ``computed.cart.value``, ``consent.email`` …: the
    value the profile document would show at ``now_ms`` (None when absent)."""
    root = path[0]
    if root in _CELLS and len(path) == 2:  # one trait or consent value: no need for all of them
        cell = _cell(state, root, path[1])
        return None if cell is None else cell[0]
    if root == "computed" and len(path) > 1:
        name = path[1]
        if name in view.ORDER_FIELDS:
            value: Any = view.order_figure(state, name)
        else:
            reader = COMPUTED.get(name)
            value = None if reader is None else reader(state, now_ms)
        rest = path[2:]
    else:
        reader_of = ROOTS.get(root)
        value = None if reader_of is None else reader_of(state)
        rest = path[1:]
    for part in rest:
        if not isinstance(value, dict) and not isinstance(value, Mapping):  # dict: no ABC check
            return None
        value = value.get(part)
    return value


class Subject:
    def __init__(self, state: State, members: Container[str], now_ms: int) -> None:
        """``members``: the segments the profile is in (the membership map itself, so a segment
        that enters during an evaluation is seen by those read after it)."""
        self.state = state
        self.counters: Mapping[str, Any] = state.get("conds") or {}
        self.members = members
        self.now_ms = now_ms
        self._read: dict[tuple[str, ...], Any] = {}

    def field(self, path: tuple[str, ...] | list[str]) -> Any:
        key = path if isinstance(path, tuple) else tuple(path)
        if key not in self._read:
            self._read[key] = read_field(self.state, key, self.now_ms)
        return self._read[key]

    def _order_time(self, which: str) -> int | None:
        stats = self.state["order_stats"]
        if not stats["n"]:
            return None
        return int(stats["last"] if which == "last_order_at" else stats["first"])

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

    def drift_due(self, path: tuple[str, ...]) -> int | None:
        """When a drifting computed trait (``DRIFTING``) next changes by time alone: windowed
        event counts at the next UTC midnight while some counted day is inside a window,
        the RFM recency score when the days since the last order pass its next step."""
        if path[1] == "event_counts":
            today, longest = self.now_ms // DAY_MS, max(view.WINDOWS)
            recent = any(
                entry["days"] and today - entry["days"][-1] < longest
                for entry in self.state["counts"].values()
            )
            return (today + 1) * DAY_MS if recent else None
        last = self._order_time("last_order_at")
        if last is None:
            return None
        later = [
            last + days * DAY_MS + 1
            for days in view.RECENCY_DAYS
            if last + days * DAY_MS >= self.now_ms
        ]
        return min(later) if later else None

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
    state: dict[str, Any],
    event: Mapping[str, Any],
    ts: int,
    counters: list[Counter],
    now_ms: int,
) -> list[tuple[tuple[str, int | None], int]]:
    """Count ``event`` (already known to be new for this profile; ``ts`` its time) in the rule
    counters it matches (``EventCounters.matching``): the windows of each counter whose count it
    moved, each with the count it reached (one more than before) as rules see it at ``now_ms``."""
    if not counters:
        return []
    conds = state.setdefault("conds", {})
    stamp = [ts, message_token(str(event["messageId"]))]
    moved: list[tuple[tuple[str, int | None], int]] = []
    for counter in counters:
        key, keep = counter.key, counter.kept
        cell = conds.get(key)
        if cell is None:
            cell = conds[key] = {"n": 0, "t": []}
        if None in counter.windows:
            moved.append(((key, None), cell["n"] + 1))
        stamps, inside = cell["t"], 0
        for within in counter.timed:  # shortest first: each window holds what the last held
            since = now_ms - within
            while inside < len(stamps) and stamps[inside][0] > since:
                inside += 1
            if ts > since and inside < keep:  # the new stamp adds one where it is inside
                moved.append(((key, within), inside + 1))
        cell["n"] += 1
        _keep(stamps, stamp, keep)
    return moved


def _inside(stamps: Any, since_ms: int) -> int:
    """How many of the kept timestamps (newest first) are after ``since_ms``."""
    found = 0
    for ts, _ in stamps:
        if ts <= since_ms:
            break
        found += 1
    return found


def window_check(
    cell: Mapping[str, Any] | None, low: int, high: int | None, within_ms: int, now_ms: int
) -> tuple[bool, int | None]:
    """Whether ``low ≤ count ≤ high`` for the events inside the window, and the moment that
    answer changes by time alone: when the event that keeps the count at ``low`` (or above
    ``high``) leaves the window; None when only new events can change it."""
    stamps = cell["t"] if cell is not None else ()
    count = _inside(stamps, now_ms - within_ms)
    if high is not None and count > high:
        return False, int(stamps[high][0]) + within_ms
    if count >= low:
        return True, int(stamps[low - 1][0]) + within_ms if low >= 1 else None
    return False, None


def _keep(stamps: list[list[Any]], stamp: list[Any], keep: int) -> None:
    """Newest first, at most ``keep``."""
    if not stamps or stamp >= stamps[0]:
        stamps.insert(0, stamp)
    else:
        stamps.append(stamp)
        stamps.sort(reverse=True)
    del stamps[keep:]


def matches(event: Mapping[str, Any], path: tuple[str, ...], op: str, expected: Any) -> bool:
    """One ``where`` condition of a ``performed`` rule on one event."""
    value = value_at(event, path)
    if op == "eq" and isinstance(value, list):  # products: any line matches
        return expected in value
    return compare_values(value, op, expected)


def value_at(event: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = event
    for part in path:
        if not isinstance(value, dict) and not isinstance(value, Mapping):  # dict: no ABC check
            return None
        value = value.get(part)
    return value


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
