"""Real local receivers for connector tests: an HTTP server (uvicorn) in a thread of its own
that records every request and answers as the path asks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, Request, Response

from wayline.streams.broker import free_port


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """``/ok`` 200, ``/status/{code}`` that status (``?retry_after=`` adds the header),
    ``/redirect`` 302 to the metadata address, ``/slow`` answers after 3 s."""

    port: int
    received: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path:path}")
        async def receive(path: str, request: Request) -> Response:
            body = await request.body()
            self.received.append(Received(f"/{path}", dict(request.headers), body))
            if path == "redirect":
                return Response(status_code=302, headers={"location": "http://169.254.169.254/"})
            if path == "slow":
                await asyncio.sleep(3)
            if path.startswith("status/"):
                code = int(path.split("/", 1)[1])
                wait = request.query_params.get("retry_after")
                return Response(status_code=code, headers={"retry-after": wait} if wait else {})
            return Response(status_code=200)

        return app


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(free_port())
    config = uvicorn.Config(receiver.app(), host="127.0.0.1", port=receiver.port, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the receiver did not start"
        time.sleep(0.02)
    try:
        yield receiver
    finally:
        server.should_exit = True
        thread.join(5)
