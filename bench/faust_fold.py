"""The benchmark's baseline: the same summing fold as a faust-streaming agent with a table.

Run by ``bench/runtime.py`` as its own process (faust owns its event loop):
``python bench/faust_fold.py worker`` with WAYLINE_BENCH_* variables set. It writes
``{"events", "cpu_s", "wall_s"}`` — CPU time from the first event to the last — to
WAYLINE_BENCH_RESULT and exits.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import faust
import orjson

BOOTSTRAP = os.environ["WAYLINE_BENCH_BOOTSTRAP"]
TOPIC = os.environ["WAYLINE_BENCH_TOPIC"]
EVENTS = int(os.environ["WAYLINE_BENCH_EVENTS"])
PARTITIONS = int(os.environ["WAYLINE_BENCH_PARTITIONS"])
RESULT = Path(os.environ["WAYLINE_BENCH_RESULT"])

app = faust.App(
    f"{TOPIC}-faust",
    broker=f"kafka://{BOOTSTRAP}",
    store="memory://",
    topic_partitions=PARTITIONS,
    broker_session_timeout=6,
    broker_heartbeat_interval=1,
    web_enabled=False,
)
source = app.topic(TOPIC, key_type=bytes, value_type=bytes, value_serializer="raw")
sums = app.Table("sums", default=int, partitions=PARTITIONS)
progress: dict[str, Any] = {"count": 0, "cpu": 0.0, "wall": 0.0}


@app.agent(source)
async def fold(stream: Any) -> None:
    async for key, value in stream.items():
        if progress["count"] == 0:
            progress["cpu"], progress["wall"] = time.process_time(), time.monotonic()
        sums[key] += orjson.loads(value)["amount"]
        progress["count"] += 1
        if progress["count"] == EVENTS:
            result = {
                "events": EVENTS,
                "cpu_s": time.process_time() - progress["cpu"],
                "wall_s": time.monotonic() - progress["wall"],
            }
            RESULT.write_text(json.dumps(result))
            os._exit(0)


if __name__ == "__main__":
    app.main()
