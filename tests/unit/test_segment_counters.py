"""Counting events for ``performed`` rules: an event is counted once in every counter whose
``where`` it matches, however the counters are indexed."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from wayline.segments.compiler import Counter, EventCounters
from wayline.segments.subject import matches

values = st.one_of(
    st.sampled_from(["shoes", "outdoor", "home"]), st.integers(0, 2), st.booleans(), st.none()
)
wheres = st.lists(
    st.tuples(
        st.sampled_from(["properties.category", "properties.tier"]),
        st.sampled_from(["eq", "eq", "ne", "gte"]),
        values,
    ),
    max_size=2,
)
fields = st.one_of(values, st.lists(values, max_size=4), st.just({"nested": "shoes"}))


@given(st.lists(wheres, min_size=1, max_size=8), fields, fields)
def test_an_event_is_counted_once_in_each_counter_it_matches(
    conditions: list[list[tuple[str, str, Any]]], category: Any, tier: Any
) -> None:
    counters = [
        Counter(f"c{i}", "Order Completed", tuple(where)) for i, where in enumerate(conditions)
    ]
    index = EventCounters()
    for counter in counters:
        index.add(counter)
    event = {"event": "Order Completed", "properties": {"category": category, "tier": tier}}
    found = index.matching(event)
    expected = [c for c in counters if all(matches(event, *test) for test in c.match)]
    assert sorted(c.key for c in found) == sorted(c.key for c in expected)
