"""``wayline segments test``: a marketer tries definitions on a timeline before they go live."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli_errors import one_line, wayline

from segment_examples import EXAMPLE_SEGMENTS

pytestmark = pytest.mark.e2e

DEFINITIONS = (
    EXAMPLE_SEGMENTS
    + """
triggers:
  churn_risk: {factor: 2.0, min_orders: 3, floor: 14d}
  milestones: {orders: [3]}
"""
)


def order(user: str, day: int, number: int) -> str:
    return json.dumps({"type": "track", "userId": user, "event": "Order Completed",
                       "timestamp": f"2026-01-{day:02d}T10:00:00Z",
                       "properties": {"order_id": f"{user}-{number}", "revenue": 200.0,
                                      "category": "shoes"}})  # fmt: skip


def test_dry_run_shows_who_enters_exits_and_fires_when(tmp_path: Path) -> None:
    (tmp_path / "segments.yaml").write_text(DEFINITIONS)
    lines = [order("ada", day, i) for i, day in enumerate([1, 11, 21, 31])]
    (tmp_path / "events.jsonl").write_text("\n".join([*lines, "{broken"]) + "\n")
    result = wayline(tmp_path, "segments", "test", "segments.yaml", "--events", "events.jsonl",
                     "--until", "2026-06-01T00:00:00Z")  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [" ".join(r.split()) for r in result.stdout.splitlines() if "user_id:ada" in r]
    happened = [(r.split("│")[1].strip(), r.split("│")[3].strip()) for r in rows]
    assert happened == [
        ("2026-01-21T10:00:00.000Z", "enter vip"),
        ("2026-01-21T10:00:00.000Z", "trigger milestone"),
        ("2026-01-21T10:00:00.000Z", "trigger segment_entered"),
        ("2026-02-20T10:00:00.000Z", "trigger churn_risk"),
        ("2026-04-01T10:00:00.000Z", "enter lapsed_shoe_buyers"),
        ("2026-04-21T10:00:00.000Z", "exit vip"),
        ("2026-04-21T10:00:00.000Z", "trigger segment_exited"),
    ]
    assert "skipped line 5: not JSON" in result.stdout


def test_an_invalid_rule_is_refused_with_its_path(tmp_path: Path) -> None:
    broken = DEFINITIONS.replace("within: 60d", "within: sixty days")
    (tmp_path / "segments.yaml").write_text(broken)
    (tmp_path / "events.jsonl").write_text(order("ada", 1, 1) + "\n")
    result = wayline(tmp_path, "segments", "test", "segments.yaml", "--events", "events.jsonl")
    assert result.returncode == 2
    assert "segments[1] (lapsed_shoe_buyers): rule.all[1].not.performed.within: expects a " \
           "duration" in one_line(result)  # fmt: skip


@pytest.mark.parametrize(
    ("typo", "message"),
    [
        ("computed.revnue: {gte: 500}", "unknown computed field 'revnue'"),
        ("computed.revenue: {gte: lots}", "computed.revenue holds a number"),
        ("lifecycle_stage: {eq: champion}", "(got 'champion')"),
    ],
)
def test_a_rule_nobody_can_enter_is_refused_before_it_goes_live(
    tmp_path: Path, typo: str, message: str
) -> None:
    (tmp_path / "segments.yaml").write_text(f"segments:\n  - name: big\n    rule: {{{typo}}}\n")
    (tmp_path / "events.jsonl").write_text(order("ada", 1, 1) + "\n")
    for command in (
        ["test", "segments.yaml", "--events", "events.jsonl"],
        ["apply", "segments.yaml"],
    ):
        result = wayline(tmp_path, "segments", *command)
        assert result.returncode == 2, result.stdout
        assert "segments[0] (big): rule." in one_line(result)
        assert message in one_line(result)
