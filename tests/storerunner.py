"""Applies a workload of batches to a ``RocksStore`` and answers range reads, with
``WAYLINE_NATIVE=0`` on the pure-Python reference, otherwise on the compiled core. Reads one JSON
object from stdin (keys and values in hex: ``batches`` of ``[changes, meta]``, the store closed
and reopened every ``reopen_every`` batches, then ``queries`` of ``[prefix, start]``) and writes
one JSON object: the mode and, per query, the keys and values read."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import orjson

from wayline import native

MODE = native.activate(os.environ.get("WAYLINE_NATIVE", "1") != "0")

from wayline.streams.store import RocksStore  # noqa: E402


def main() -> None:
    work = orjson.loads(sys.stdin.buffer.read())
    with tempfile.TemporaryDirectory(prefix="wayline-store-") as folder:
        path = Path(folder) / "s"
        store = RocksStore(path)
        for n, (changes, meta) in enumerate(work["batches"], start=1):
            store.write_batch(
                {bytes.fromhex(k): None if v is None else bytes.fromhex(v) for k, v in changes},
                {bytes.fromhex(k): bytes.fromhex(v) for k, v in meta},
            )
            if n % work["reopen_every"] == 0:
                store.close()
                store = RocksStore(path)
        answers = [
            [[k.hex(), v.hex()] for k, v in store.items(bytes.fromhex(p), bytes.fromhex(s))]
            for p, s in work["queries"]
        ]
        store.close()
    sys.stdout.write(orjson.dumps({"mode": MODE, "answers": answers}).decode())


if __name__ == "__main__":
    main()
