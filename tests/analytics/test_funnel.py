"""The conversion funnel (view → add to cart → order within a window) equals an independent
walk over each profile's events, on generated shoppers whose steps come in every order, with
gaps inside and outside the window."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from wayline.connectors.clickhouse import Client
from wayline.connectors.kpis import FUNNEL, conversion_funnel
from wayline.connectors.warehouse import TABLES

pytestmark = pytest.mark.timeout(120)
START = datetime(2026, 9, 1, tzinfo=UTC)
WINDOW_S = 3 * 86_400


def reached(events: list[tuple[datetime, str]]) -> int:
    """The deepest step a profile reached: each step needs the step before it, and the whole
    chain lies within the window of the view that started it (the oracle)."""
    start: dict[int, datetime] = {}
    for at, name in sorted(events):
        if name not in FUNNEL:
            continue
        step = FUNNEL.index(name)
        if step == 0:
            start[0] = at
        elif step - 1 in start and at <= start[step - 1] + timedelta(seconds=WINDOW_S):
            start[step] = start[step - 1]
    return max(start, default=-1) + 1


def test_funnel_equals_the_walk(migrated: tuple[Client, str]) -> None:
    client, database = migrated
    rng = random.Random(9)
    rows: list[list[Any]] = []
    by_profile: dict[str, list[tuple[datetime, str]]] = {}
    for p in range(800):
        pid = f"p{p}"
        used: set[datetime] = set()
        for n in range(rng.randint(1, 8)):
            at = START + timedelta(minutes=rng.randint(0, 20 * 24 * 60))
            while at in used:  # one event per moment: the order of a profile's steps is clear
                at += timedelta(minutes=1)
            used.add(at)
            name = rng.choice([*FUNNEL, *FUNNEL[:2], "Page Viewed"])
            by_profile.setdefault(pid, []).append((at, name))
            doc = {"profile_id": pid, "messageId": f"{pid}-{n}", "type": "track", "event": name,
                   "timestamp": at.isoformat(), "receivedAt": at.isoformat(),
                   "context": {"channel": "web"}, "properties": {}}  # fmt: skip
            (row,) = TABLES["events.resolved"].rows(None, doc, {})
            rows.append([*row, 0, len(rows)])
    columns = list(TABLES["events.resolved"].columns)
    client.insert(f"{database}.events", rows, column_names=columns)
    levels = [reached(events) for events in by_profile.values()]
    expected = [sum(1 for level in levels if level >= step) for step in (1, 2, 3)]
    found = conversion_funnel(client, database, START, START + timedelta(days=30), WINDOW_S)
    assert found == expected
    assert expected[0] > expected[1] > expected[2] > 0
