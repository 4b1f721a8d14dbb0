"""The identity graph: which identifiers belong to one customer, and which profile that is.

Pure: the graph is read and written through a ``GraphStore`` (a dict in tests, the identity
worker's RocksDB store in production); time arrives with the event.

Rules (docs/architecture.md, "Identity resolution"):

- an event's identifiers (user_id, external ids, email, phone, device_id, anonymous_id, and an
  alias call's previousId) are linked to each other, highest priority first;
- junk values (``null``, ``undefined``, ``0``, ...; configurable regexes) never link: they are
  dropped from the event's linking and logged as refused;
- a link that would break a per-type limit (defaults: 1 user_id, 5 emails, 3 phones,
  20 anonymous ids) is refused and the lower-priority side is dropped from this event's linking;
  the event still counts for the profile it resolves to;
- a profile's id is derived from its **anchor**, the highest-priority identifier it holds
  (ties: the smallest value). So the same links in any order give the same grouping *and* the
  same profile ids: when a link brings a stronger identifier, the profile is renamed, which the
  profile worker handles exactly like a merge.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, Protocol

Ident = tuple[str, str]
"""``(type, value)``, e.g. ``("email", "ada@example.com")``."""

BUILTIN_PRIORITY: Final = ("user_id", "email", "phone", "device_id", "anonymous_id")
DEFAULT_LIMITS: Final[dict[str, int]] = {
    "user_id": 1,
    "email": 5,
    "phone": 3,
    "device_id": 10,
    "anonymous_id": 20,
}
EXTERNAL_LIMIT: Final = 3
JUNK_VALUES: Final = frozenset(
    {
        "",
        "null",
        "none",
        "nil",
        "undefined",
        "nan",
        "0",
        "-1",
        "anonymous",
        "guest",
        "unknown",
        "[object object]",
        "00000000-0000-0000-0000-000000000000",
    }
)


@dataclass(frozen=True)
class IdentityRules:
    """Limits and blocklist; ``external_types`` rank between user_id and email, in order."""

    limits: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    external_types: tuple[str, ...] = ()
    external_limit: int = EXTERNAL_LIMIT
    blocked_patterns: tuple[str, ...] = ()
    compiled: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    ranks: dict[str, int] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        compiled = tuple(re.compile(p, re.IGNORECASE) for p in self.blocked_patterns)
        object.__setattr__(self, "compiled", compiled)

    def rank(self, kind: str) -> int:
        """Smaller is stronger."""
        cached = self.ranks.get(kind)
        if cached is not None:
            return cached
        rank = self._rank(kind)
        self.ranks[kind] = rank
        return rank

    def _rank(self, kind: str) -> int:
        if kind == "user_id":
            return 0
        if kind in self.external_types:
            return 1 + self.external_types.index(kind)
        if kind in BUILTIN_PRIORITY:
            return len(self.external_types) + BUILTIN_PRIORITY.index(kind)
        return len(self.external_types) + 1  # an unlisted external type: just above email

    def limit(self, kind: str) -> int:
        if kind in self.limits:
            return self.limits[kind]
        return DEFAULT_LIMITS.get(kind, self.external_limit)

    def junk(self, value: str) -> str | None:
        """Why ``value`` must never link, or None when it is a usable identifier."""
        text = value.strip().lower()
        if text in JUNK_VALUES:
            return f"blocked value {value!r}"
        for pattern in self.compiled:
            if pattern.search(value):
                return f"blocked by pattern {pattern.pattern!r}"
        return None

    def order(self, idents: Iterable[Ident]) -> list[Ident]:
        if isinstance(idents, list) and len(idents) == 1:
            return idents
        rank = self.rank
        return sorted(set(idents), key=lambda i: (rank(i[0]), i[0], i[1]))


def profile_id_for(anchor: Ident) -> str:
    """Deterministic profile id of a profile anchored at ``anchor``."""
    digest = hashlib.blake2b(f"{anchor[0]}\x1f{anchor[1]}".encode(), digest_size=10).hexdigest()
    return f"p_{digest}"


@dataclass
class Node:
    """A profile in the graph: its identifiers by type, and the ids merged into it."""

    profile_id: str
    identifiers: dict[str, list[str]] = field(default_factory=dict)
    merged_from: list[str] = field(default_factory=list)

    def idents(self) -> list[Ident]:
        return [(k, v) for k, values in self.identifiers.items() for v in values]

    def count(self, kind: str) -> int:
        return len(self.identifiers.get(kind, ()))

    def add(self, ident: Ident) -> None:
        values = self.identifiers.setdefault(ident[0], [])
        if ident[1] not in values:
            values.append(ident[1])
            values.sort()

    def to_dict(self) -> dict[str, Any]:
        return {"identifiers": self.identifiers, "merged_from": self.merged_from}

    @classmethod
    def from_dict(cls, profile_id: str, data: Mapping[str, Any]) -> Node:
        return cls(
            profile_id,
            {k: list(v) for k, v in data["identifiers"].items()},
            list(data.get("merged_from", [])),
        )


class GraphStore(Protocol):
    def owner(self, ident: Ident) -> str | None: ...

    def set_owner(self, ident: Ident, profile_id: str) -> None: ...

    def node(self, profile_id: str) -> Node | None: ...

    def put_node(self, node: Node) -> None: ...

    def delete_node(self, profile_id: str) -> None: ...


class MemoryGraph:
    """A ``GraphStore`` on dicts, for tests and dry runs."""

    def __init__(self) -> None:
        self.owners: dict[Ident, str] = {}
        self.nodes: dict[str, Node] = {}

    def owner(self, ident: Ident) -> str | None:
        return self.owners.get(ident)

    def set_owner(self, ident: Ident, profile_id: str) -> None:
        self.owners[ident] = profile_id

    def node(self, profile_id: str) -> Node | None:
        return self.nodes.get(profile_id)  # resolve() changes a node only to put it back

    def put_node(self, node: Node) -> None:
        self.nodes[node.profile_id] = node

    def delete_node(self, profile_id: str) -> None:
        self.nodes.pop(profile_id, None)

    def groups(self) -> set[frozenset[Ident]]:
        """The grouping of identifiers: one frozenset per profile."""
        return {frozenset(node.idents()) for node in self.nodes.values()}


class LogEntry(NamedTuple):
    """One entry of the merge log (``wayline.identity``)."""

    kind: str  # "merge" | "refused"
    profile_id: str
    merged_id: str | None
    identifiers: tuple[Ident, ...]
    reason: str


class Resolution(NamedTuple):
    """Where an event goes, and which profiles were merged away into which survivor."""

    profile_id: str | None
    merges: tuple[tuple[str, str], ...]  # (merged-away id, surviving id), in order
    log: tuple[LogEntry, ...]
    created: bool = False
    linked: tuple[Ident, ...] = ()  # the event's identifiers that belong to the profile


def event_identifiers(event: Mapping[str, Any]) -> list[Ident]:
    """The identifiers of a canonical event (its ``identifiers`` block)."""
    ids = event.get("identifiers") or {}
    found: list[Ident] = []
    for kind in _BLOCK_KINDS:
        value = ids.get(kind)
        if value:
            found.append((kind, value if isinstance(value, str) else str(value)))
    external = ids.get("external")
    if external:
        found += [(str(e["type"]), str(e["id"])) for e in external]
    return found


_BLOCK_KINDS: Final = ("user_id", "anonymous_id", "email", "phone", "device_id")


def resolve(
    graph: GraphStore,
    rules: IdentityRules,
    idents: Iterable[Ident],
    previous_id: str | None = None,
) -> Resolution:
    """Link ``idents`` (and an alias's ``previous_id``) in ``graph``; see the module rules."""
    log: list[LogEntry] = []
    wanted = list(idents)
    if previous_id:
        wanted.append(_previous(graph, previous_id))
    usable: list[Ident] = []
    for ident in rules.order(wanted):
        why = rules.junk(ident[1])
        if why is None:
            usable.append(ident)
        else:
            log.append(LogEntry("refused", "", None, (ident,), why))
    if len(usable) == 1 and not log:  # the common case: one identifier, already known
        known = graph.owner(usable[0])
        if known is not None:
            return Resolution(known, (), (), False, (usable[0],))
    if not usable:
        return Resolution(None, (), tuple(log))
    owners = {graph.owner(ident) for ident in usable}
    if len(owners) == 1 and None not in owners:  # the common case: nothing new to link
        (known,) = owners
        assert known is not None
        entries = tuple(LogEntry(e.kind, known, None, e.identifiers, e.reason) for e in log)
        return Resolution(known, (), entries, False, tuple(usable))
    resolution = _link(graph, rules, usable, log)
    entries = tuple(
        LogEntry(e.kind, resolution.profile_id or "", e.merged_id, e.identifiers, e.reason)
        if e.kind == "refused" and not e.profile_id
        else e
        for e in resolution.log
    )
    survivor = resolution.profile_id
    linked = tuple(i for i in usable if graph.owner(i) == survivor)
    return Resolution(survivor, resolution.merges, entries, resolution.created, linked)


def _previous(graph: GraphStore, value: str) -> Ident:
    """Segment's alias previousId is an earlier userId or anonymousId."""
    if graph.owner(("user_id", value)) is not None:
        return ("user_id", value)
    return ("anonymous_id", value)


def _link(
    graph: GraphStore, rules: IdentityRules, usable: list[Ident], log: list[LogEntry]
) -> Resolution:
    current: Node | None = None
    absorbed: list[str] = []
    created = False
    for ident in usable:
        owner = graph.owner(ident)
        if current is None:
            node = graph.node(owner) if owner else None
            if node is None:
                node, created = Node(profile_id_for(ident)), True
                node.add(ident)
            current = node
        elif owner == current.profile_id:
            continue
        elif owner is None:
            if _fits(rules, current, [ident]):
                current.add(ident)
            else:
                log.append(_refusal(rules, current, (ident,), "link"))
        else:
            other = graph.node(owner)
            if other is None or owner in absorbed:
                continue
            if _fits(rules, current, other.idents()):
                for each in other.idents():
                    current.add(each)
                current.merged_from = sorted({*current.merged_from, *other.merged_from, owner})
                absorbed.append(owner)
            else:
                log.append(_refusal(rules, current, tuple(other.idents()), f"merge with {owner}"))
    assert current is not None
    return _settle(graph, rules, current, absorbed, created, log)


def _settle(
    graph: GraphStore,
    rules: IdentityRules,
    node: Node,
    absorbed: list[str],
    created: bool,
    log: list[LogEntry],
) -> Resolution:
    """Rename to the anchor's id if needed, write the graph, and say who merged into whom."""
    before = node.profile_id
    anchor = rules.order(node.idents())[0]
    survivor = profile_id_for(anchor)
    losers = [pid for pid in absorbed if pid != survivor]
    if before != survivor and not created:
        losers.insert(0, before)
    node.profile_id = survivor
    node.merged_from = sorted(set(node.merged_from) - {survivor} | set(losers))
    for pid in losers:
        graph.delete_node(pid)
    graph.put_node(node)
    for ident in node.idents():
        if graph.owner(ident) != survivor:
            graph.set_owner(ident, survivor)
    merges = tuple((pid, survivor) for pid in losers)
    for pid in losers:
        reason = "renamed: a stronger identifier joined" if pid == before else "linked"
        log.append(LogEntry("merge", survivor, pid, tuple(node.idents()), reason))
    return Resolution(survivor, merges, tuple(log), created and not absorbed)


def _fits(rules: IdentityRules, node: Node, adding: Iterable[Ident]) -> bool:
    counts: dict[str, set[str]] = {k: set(v) for k, v in node.identifiers.items()}
    for kind, value in adding:
        counts.setdefault(kind, set()).add(value)
    return all(len(values) <= rules.limit(kind) for kind, values in counts.items())


def _refusal(rules: IdentityRules, node: Node, idents: tuple[Ident, ...], what: str) -> LogEntry:
    kinds = sorted({k for k, _ in idents}, key=rules.rank)
    over = [
        k
        for k in kinds
        if len({*node.identifiers.get(k, ()), *(v for t, v in idents if t == k)}) > rules.limit(k)
    ]
    limits = ", ".join(f"{k} {rules.limit(k)} per profile" for k in over)
    return LogEntry("refused", node.profile_id, None, idents, f"limit: {limits} ({what})")
