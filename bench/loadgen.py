"""Load generator for ``bench/collector.py``, run as its own process:
``python bench/loadgen.py URL REQUESTS CONCURRENCY BODIES_FILE WRITE_KEY``.
Prints the seconds taken and the count of each status code as JSON."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import httpx


async def post_all(
    url: str, bodies: list[bytes], requests: int, concurrency: int, key: str
) -> dict[str, object]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    statuses: dict[int, int] = {}

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            reply = await client.post(url, content=bodies[i % len(bodies)], auth=(key, ""))
            statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        started = time.monotonic()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return {"seconds": time.monotonic() - started, "statuses": statuses}


def main() -> None:
    url, requests, concurrency, bodies_file, key = sys.argv[1:6]
    bodies = Path(bodies_file).read_bytes().split(b"\n")
    result = asyncio.run(post_all(url, bodies, int(requests), int(concurrency), key))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
