"""The CDNOW order log (shipped in the ``lifetimes`` wheel) as a store order file.

CDNOW_master.txt has one line per order: customer id, date (YYYYMMDD), number of CDs, dollars;
23,570 customers, 69,659 orders from 1997-98. ``write_orders`` turns it into the JSONL that
``wayline import orders`` reads: order id = line number, the customer id as ``loyalty_id``.
Tests and benchmarks replay it as real purchase data.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson


def cdnow_path() -> Path:
    """Where the installed ``lifetimes`` package keeps CDNOW_master.txt (found without importing
    it: importing lifetimes changes pandas options)."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the CDNOW data ships with the lifetimes package: pip install lifetimes"
        )
    return Path(spec.submodule_search_locations[0]) / "datasets" / "CDNOW_master.txt"


def cdnow_orders(path: Path | None = None) -> Iterator[dict[str, Any]]:
    """One order row per line of the log."""
    with (path or cdnow_path()).open(encoding="ascii") as handle:
        next(handle)  # header
        for number, line in enumerate(handle, start=1):
            customer, date, cds, dollars = line.split()
            yield {
                "order_id": f"cdnow-{number}",
                "time": f"{date[:4]}-{date[4:6]}-{date[6:]}T12:00:00Z",
                "store_id": "cdnow",
                "total": float(dollars),
                "currency": "USD",
                "items": [{"sku": "CD", "quantity": int(cds), "price": 0.0, "category": "music"}],
                "loyalty_id": f"C{customer}",
            }


def write_orders(target: Path, limit: int | None = None) -> int:
    """Write the log as an order JSONL file; the number of orders written."""
    count = 0
    with target.open("wb") as out:
        for row in cdnow_orders():
            if limit is not None and count >= limit:
                break
            out.write(orjson.dumps(row) + b"\n")
            count += 1
    return count
