"""Published definitions: deleting a segment, and what the workers compile from the topic."""

from __future__ import annotations

import pytest

from wayline.config.workspace import parse_config
from wayline.streams.definitions import CannotDelete, compile_rules, plan, retire

CONFIG = """
segments:
  - name: buyers
    rule: {computed.order_count: {gte: 1}}
  - name: big_buyers
    rule: {all: [{in_segment: buyers}, {computed.revenue: {gte: 500}}]}
  - name: from_file
    rule: {traits.plan: {eq: pro}}
"""
NOW = 1_795_000_000_000


def published(text: str = CONFIG) -> dict[str, dict[str, object]]:
    """The topic after ``segments apply`` of ``text`` (the latest record per key)."""
    changes = plan(parse_config(text, origin="test.yaml"), {}, NOW)
    return {f"{d['kind']}:{d['name']}": d for d in changes}


def test_a_deleted_segment_is_gone_from_the_rules_even_when_the_config_file_has_it() -> None:
    current = published()
    (deleted,) = retire(current, ["big_buyers"], NOW + 1)
    assert (deleted["version"], deleted["deleted"]) == (2, True)
    current["segment:big_buyers"] = deleted
    rules = compile_rules(parse_config(CONFIG, origin="test.yaml"), current, 1)
    assert sorted(rules.segments.by_name) == ["buyers", "from_file"]
    # applying the file again brings it back, with the next version
    (back,) = plan(parse_config(CONFIG, origin="test.yaml"), current, NOW + 2)
    assert (back["name"], back["version"], "deleted" in back) == ("big_buyers", 3, False)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["buyers"], "segment 'buyers': read by big_buyers (in_segment)"),
        (["nope"], "segment 'nope': not published; a segment defined only in the config file"),
    ],
)
def test_deleting_is_refused_with_the_reason(names: list[str], message: str) -> None:
    with pytest.raises(CannotDelete, match=message.replace("(", r"\(").replace(")", r"\)")):
        retire(published(), names, NOW)


def test_a_segment_and_its_readers_can_go_together() -> None:
    assert [d["name"] for d in retire(published(), ["buyers", "big_buyers"], NOW)] == [
        "buyers",
        "big_buyers",
    ]
