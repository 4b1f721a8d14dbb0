"""The API's view of ``wayline.profiles``: a segment's members page by page, while profiles
enter, leave and are merged away, exactly as the topic says; a document taken as of the time of
a request."""

from __future__ import annotations

import random

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wayline.profiles.state import apply_event, empty_state, merge
from wayline.profiles.view import (
    CountsMemo,
    at_moment,
    favorite_category,
    iso,
    recently_viewed,
    snapshot,
)
from wayline.streams.clients import KafkaConfig
from wayline.streams.profileview import ProfileView


def _doc(pid: str, segments: list[str]) -> bytes:
    return orjson.dumps(
        {"profile_id": pid, "identifiers": {"user_id": [pid]}, "segments": segments}
    )


def test_paging_a_segment_gives_every_member_once_in_order() -> None:
    view = ProfileView(KafkaConfig("unused:9092"), "wayline.profiles")  # fed by hand, never started
    rng = random.Random(5)
    inside: dict[str, set[str]] = {"vip": set(), "lapsed": set()}
    for step in range(6_000):
        pid = f"p{rng.randrange(2_500):05d}"
        if step % 17 == 0:  # merged away: a tombstone
            view.apply(pid.encode(), None)
            for members in inside.values():
                members.discard(pid)
            continue
        held = [name for name in inside if rng.random() < 0.4]
        view.apply(pid.encode(), _doc(pid, held))
        for name, members in inside.items():
            (members.add if name in held else members.discard)(pid)
    for name, members in inside.items():
        pages, cursor = [], None
        while page := view.members(name, cursor, 100):
            pages.append(page)
            cursor = page[-1]
        assert [pid for page in pages for pid in page] == sorted(members)
        assert all(len(page) == 100 for page in pages[:-1])
        assert view.size(name) == len(members)
    assert view.members("nobody", None, 100) == []


DAY_MS = 86_400_000
T0 = 1_767_261_600_000  # 2026-01-01T10:00Z


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["Product Viewed", "Order Completed", "Email Opened"]),
            st.integers(0, 200 * 24).map(lambda hours: hours * 3_600_000),
        ),
        min_size=1,
        max_size=25,
    ),
    st.one_of(st.integers(0, 200 * DAY_MS), st.integers(0, 200).map(lambda d: d * DAY_MS)),
)
def test_a_document_taken_as_of_a_later_moment_equals_one_computed_then(
    happened: list[tuple[str, int]], later: int
) -> None:
    """``at_moment`` (what ``GET /v1/profiles/...?at=now`` returns) against the document the
    profile would have if it were computed at that moment."""
    state = empty_state()
    for i, (name, offset) in enumerate(happened):
        event = {"type": "track", "event": name, "messageId": f"m{i}", "userId": "u",
                 "timestamp": iso(T0 + offset), "context": {"channel": "web"},
                 "properties": {"order_id": f"o{i}", "revenue": 10.0}}  # fmt: skip
        apply_event(state, event, [("user_id", "u")])
    as_of = T0 + max(offset for _, offset in happened)
    moment = as_of + later
    taken = at_moment(snapshot("p", state, as_of), moment)
    direct = snapshot("p", state, moment)
    assert taken["computed"]["event_counts"] == direct["computed"]["event_counts"]
    assert taken["computed"]["rfm"] == direct["computed"]["rfm"]
    assert taken["computed"]["as_of"] == iso(moment)
    assert at_moment(snapshot("p", state, as_of), as_of - 1) == snapshot("p", state, as_of)


@given(
    st.dictionaries(st.sampled_from([f"p{n}" for n in range(30)]), st.integers(0, 4), max_size=25),
    st.dictionaries(st.sampled_from(["shoes", "home", "beauty", "apparel"]), st.integers(1, 3)),
)
def test_recently_viewed_and_the_favorite_category_break_ties_as_documented(
    viewed: dict[str, int], cats: dict[str, int]
) -> None:
    """Newest view first (time, then product, both descending); the category seen most, the
    first by name among equals: checked against the sorts written plainly."""
    state = empty_state() | {"viewed": dict(viewed), "cats": cats}
    by_age = sorted(viewed, key=lambda product: (viewed[product], product))
    assert recently_viewed(state) == by_age[::-1]
    most = max(cats.values(), default=0)
    assert favorite_category(state) == min((c for c, n in cats.items() if n == most), default=None)


_STEP = st.one_of(
    st.tuples(
        st.just("event"),
        st.sampled_from(["Product Viewed", "Order Completed", "Email Opened", "Page Viewed"]),
        st.integers(-10, 400).map(lambda days: days * DAY_MS),
    ),
    st.tuples(
        st.just("merge"),
        st.sampled_from(["Email Opened", "Product Added"]),
        st.integers(0, 300).map(lambda days: days * DAY_MS),
    ),
    st.tuples(
        st.just("document"),
        st.just(""),
        st.one_of(st.integers(-5, 400), st.sampled_from([0, 95, 200])).map(
            lambda days: days * DAY_MS + 1
        ),
    ),
)


# a name's oldest days dropped by another name's newer event, read again as of before it
_TRIMMED = [("event", "Email Opened", 0), ("document", "", 1)]
_TRIMMED += [("event", "Page Viewed", 200 * DAY_MS), ("document", "", 1)]
# a day after the last one read, and a late event on the one before it, read together
_LATE = [("event", "Email Opened", 0), ("event", "Email Opened", DAY_MS)]
_LATE += [("event", "Email Opened", 0), ("document", "", DAY_MS + 1)]
# a late event on a day before the last one, read after the last one was
_EARLIER = [("event", "Email Opened", 0), ("event", "Email Opened", DAY_MS)]
_EARLIER += [("document", "", DAY_MS + 1), ("event", "Email Opened", 0)]


@settings(max_examples=200, deadline=None)
@given(st.lists(_STEP, min_size=1, max_size=40))
@example(_TRIMMED)
@example(_LATE)
@example(_EARLIER)
def test_a_document_read_with_the_activity_memo_equals_one_read_without(
    steps: list[tuple[str, str, int]],
) -> None:
    """The profile worker keeps each profile's activity as last read between its documents
    (``snapshot(..., memo=...)``): events counted in place (today's, older ones, ones past the
    91-day buckets that drop old days), merges (new count entries) and documents at any moment,
    later or earlier, give byte for byte the document read from scratch."""
    state, memo, now = empty_state(), CountsMemo(), T0
    for i, (kind, name, offset) in enumerate(steps):
        event = {"type": "track", "event": name, "messageId": f"m{i}", "userId": "u",
                 "timestamp": iso(T0 + offset), "context": {"channel": "web"}}  # fmt: skip
        if kind == "event":
            apply_event(state, event, [("user_id", "u")])
            now = max(now, T0 + offset)
        elif kind == "merge":
            other = empty_state()
            apply_event(other, event, [("user_id", "v")])
            state = merge(state, other)
        if kind != "event" or i % 3 == 0:  # documents as of the newest event or of any moment
            moment = T0 + offset if kind == "document" else now
            fresh = snapshot("p", state, moment)
            kept = snapshot("p", state, moment, memo=memo)
            assert orjson.dumps(kept) == orjson.dumps(fresh)
