"""The API's view of ``wayline.profiles``: a segment's members page by page, while profiles
enter, leave and are merged away, exactly as the topic says."""

from __future__ import annotations

import random

import orjson

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
