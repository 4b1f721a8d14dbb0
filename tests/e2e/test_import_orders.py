"""``wayline import orders``: a 10,000-row store export with 3 % bad rows, imported twice."""

from __future__ import annotations

import csv
import json
import random
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from kafkatest import read_events
from waylineproc import WAYLINE, Running

pytestmark = pytest.mark.e2e

ROWS = 10_000
BAD_KINDS = {
    "missing_order_id": lambda r: r | {"order_id": ""},
    "invalid_time": lambda r: r | {"time": "last tuesday"},
    "invalid_total": lambda r: r | {"total": "12,50 EUR"},
    "missing_identifier": lambda r: r | {"loyalty_id": "", "email": "", "phone": ""},
    "invalid_items": lambda r: r | {"items": "[{broken"},
    "missing_time": lambda r: r | {"time": ""},
}


def write_orders(path: Path, seed: int = 5) -> Counter[str]:
    rng = random.Random(seed)
    bad_rows = set(rng.sample(range(ROWS), ROWS * 3 // 100))
    kinds = list(BAD_KINDS)
    expected: Counter[str] = Counter()
    with path.open("w", newline="") as handle:
        names = ["order_id", "time", "store_id", "total", "currency", "items"]
        writer = csv.DictWriter(handle, fieldnames=[*names, "loyalty_id", "email", "phone"])
        writer.writeheader()
        for i in range(ROWS):
            items = [{"sku": f"SH-{i % 30}", "quantity": 1 + i % 3, "price": 19.5}]
            row = {
                "order_id": f"o-{i}",
                "time": f"2026-10-{1 + i % 28:02d}T1{i % 10}:00:00Z",
                "store_id": f"st-{i % 7}",
                "total": f"{19.5 * (1 + i % 3):.2f}",
                "currency": "eur",
                "items": json.dumps(items),
                "loyalty_id": f"L-{i % 3000}" if i % 3 else "",
                "email": f"shopper{i % 4000}@example.com" if i % 3 == 0 else "",
                "phone": "+4930901820" + f"{i % 100:02d}" if i % 5 == 0 else "",
            }
            if i in bad_rows:
                kind = kinds[i % len(kinds)]
                row = BAD_KINDS[kind](row)
                expected[kind] += 1
            writer.writerow(row)
    return expected


def run_import(wayline_up: Running, path: Path) -> str:
    return wayline_up.cli("import", "orders", str(path), "--source", "pos", timeout_s=300)


def test_import_counts_rejects_and_reimport_adds_nothing(
    wayline_up: Running, tmp_path: Path
) -> None:
    path = tmp_path / "orders.csv"
    expected_rejects = write_orders(path)
    accepted = ROWS - sum(expected_rejects.values())
    first = run_import(wayline_up, path)
    assert re.search(rf"accepted\s*│\s*{accepted:,}", first), first
    for reason, count in expected_rejects.items():
        assert re.search(rf"rejected: {reason}\s*│\s*{count:,}", first), (reason, first)

    rejected_file = tmp_path / "orders.rejected.csv"
    with rejected_file.open() as handle:
        rejected = list(csv.DictReader(handle))
    assert Counter(r["reason"] for r in rejected) == expected_rejects
    assert all(r["line"].isdigit() and r["error"] for r in rejected)

    second = run_import(wayline_up, path)
    assert re.search(rf"accepted\s*│\s*{accepted:,}", second)

    orders = read_events(wayline_up.kafka, wayline_up.topics, accepted, timeout_s=120, settle_s=2)
    assert len(orders) == accepted, "a re-import added events"
    assert {o["event"] for o in orders} == {"Order Completed"}
    assert {o["context"]["channel"] for o in orders} == {"store"}
    assert len({o["properties"]["order_id"] for o in orders}) == accepted
    sample = next(o for o in orders if o["properties"]["order_id"] == "o-1")
    assert sample["identifiers"]["external"] == [{"type": "loyalty_id", "id": "L-1"}]
    assert sample["properties"]["currency"] == "EUR"


def test_unknown_source_and_format_are_usage_errors(wayline_up: Running, tmp_path: Path) -> None:
    (tmp_path / "orders.xlsx").write_text("x")
    for args in (["--source", "nope", "orders.xlsx"], ["--source", "pos", "orders.xlsx"]):
        result = subprocess.run(
            [WAYLINE, "import", "orders", *args],
            cwd=tmp_path,
            env=wayline_up.env | {"WAYLINE_CONFIG": str(wayline_up.cwd / "wayline.yaml")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("wayline: error:")
