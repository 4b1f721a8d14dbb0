"""A marketer publishes a segment, then tightens it, while Wayline runs: members enter and exit
without a restart, and the profile API shows the memberships."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from kafkatest import produce, read_transitions
from waylineproc import API_KEY, Running

pytestmark = pytest.mark.e2e

SEGMENT = """
segments:
  - name: big_spenders
    notify: true
    rule: {computed.revenue: {gte: THRESHOLD}}
"""


def apply(running: Running, tmp_path: Path, threshold: int) -> str:
    path = tmp_path / f"segments-{threshold}.yaml"
    path.write_text(SEGMENT.replace("THRESHOLD", str(threshold)))
    printed = running.cli("segments", "apply", str(path), timeout_s=60)
    return " ".join(printed.replace("│", " ").split())


def transitions(running: Running, expect: int) -> list[tuple[str, str, int]]:
    docs = read_transitions(running.kafka, running.topics.segments, expect=expect, timeout_s=60)
    return sorted((d["profile_id"], d["transition"], d["rule_version"]) for d in docs)


def profile(running: Running, user: str) -> dict[str, Any]:
    reply = httpx.get(f"{running.url}/v1/profiles/user_id/{user}",
                      headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)  # fmt: skip
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def test_publishing_and_changing_a_segment_needs_no_restart(
    wayline_up: Running, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    spend = {"ann": 50.0, "bob": 150.0, "cy": 400.0}
    produce(wayline_up.kafka, wayline_up.topics.raw, [
        (user.encode(), orjson.dumps({
            "type": "track", "userId": user, "event": "Order Completed",
            "messageId": f"order-{user}", "timestamp": (now - timedelta(days=1)).isoformat(),
            "properties": {"order_id": f"o-{user}", "revenue": revenue}}))
        for user, revenue in spend.items()
    ])  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if profile(wayline_up, "cy")["computed"]["revenue"] == 400.0:
                break
        except AssertionError:
            time.sleep(0.3)
    pids = {user: profile(wayline_up, user)["profile_id"] for user in spend}

    assert "segment big_spenders 1 created" in apply(wayline_up, tmp_path, 100)
    assert transitions(wayline_up, expect=2) == sorted(
        [(pids["bob"], "enter", 1), (pids["cy"], "enter", 1)]
    )
    assert "segment big_spenders 1 unchanged" in apply(wayline_up, tmp_path, 100)

    assert "segment big_spenders 2 updated" in apply(wayline_up, tmp_path, 300)
    after = transitions(wayline_up, expect=5)
    assert after == sorted([
        (pids["bob"], "enter", 1), (pids["cy"], "enter", 1),
        (pids["bob"], "exit", 1), (pids["cy"], "exit", 1), (pids["cy"], "enter", 2),
    ])  # fmt: skip
    deadline = time.monotonic() + 30
    while profile(wayline_up, "cy")["segments"] != ["big_spenders"] and time.monotonic() < deadline:
        time.sleep(0.3)
    assert profile(wayline_up, "cy")["segments"] == ["big_spenders"]
    assert profile(wayline_up, "bob")["segments"] == []

    api = httpx.Client(base_url=wayline_up.url, headers={"Authorization": f"Bearer {API_KEY}"})
    with api:
        listed = api.get("/v1/segments").json()["segments"]
        assert listed == [{"name": "big_spenders", "version": 2, "notify": True, "size": 1}]
        assert api.get("/v1/segments/big_spenders/size").json()["size"] == 1
        page = api.get("/v1/segments/big_spenders/members", params={"limit": 10}).json()
        assert (page["members"], page["next_cursor"]) == ([pids["cy"]], None)
        assert api.get("/v1/segments/nope/size").status_code == 404
        assert httpx.get(f"{wayline_up.url}/v1/segments").status_code == 401

        # deleted while running: its member leaves it, the API forgets it, a second try is refused
        printed = wayline_up.cli("segments", "delete", "big_spenders").replace("│", " ")
        assert "segment big_spenders 3 deleted" in " ".join(printed.split())
        assert transitions(wayline_up, expect=6) == sorted([*after, (pids["cy"], "exit", 2)])
        deadline = time.monotonic() + 30
        while api.get("/v1/segments").json()["segments"] and time.monotonic() < deadline:
            time.sleep(0.3)
        assert api.get("/v1/segments").json()["segments"] == []
        assert profile(wayline_up, "cy")["segments"] == []
        assert wayline_up.cli("segments", "delete", "big_spenders", refused=True) == (
            "wayline: nothing deleted: segment 'big_spenders': deleted already; a segment "
            "defined only in the config file is removed by taking it out of the file"
        )
        listed = " ".join(wayline_up.cli("segments", "list").replace("│", " ").split())
        assert re.search(r"segment big_spenders 3 \S+Z deleted", listed), listed
