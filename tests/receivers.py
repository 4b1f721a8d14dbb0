"""Real local receivers for connector tests: an HTTP server (uvicorn) in a thread of its own
that records every request and answers as the path asks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from wayline.streams.broker import free_port


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """``/ok`` 200, ``/status/{code}`` that status (``?retry_after=`` adds the header),
    ``/redirect`` 302 to the metadata address, ``/slow`` answers after 3 s; and an SMS API of
    Twilio's shape at ``/2010-04-01/Accounts/{sid}/Messages.json`` (To +15550000000 has
    texted STOP: error 21610; To +15550000429 is rate-limited)."""

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
            if path.endswith("/Messages.json"):
                return _sms(request, body)
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


def _sms(request: Request, body: bytes) -> Response:
    form = dict(parse_qsl(body.decode()))
    if not request.headers.get("authorization", "").startswith("Basic "):
        return JSONResponse({"code": 20003, "message": "Authenticate"}, status_code=401)
    if form.get("To") == "+15550000000":
        unsubscribed = {"code": 21610, "message": "Attempt to send to unsubscribed recipient"}
        return JSONResponse(unsubscribed, status_code=400)
    if form.get("To") == "+15550000429":
        return JSONResponse({"code": 20429, "message": "Too Many Requests"}, 429,
                            headers={"retry-after": "5"})  # fmt: skip
    return JSONResponse({"sid": f"SM{abs(hash(body)):032x}"[:34], "status": "queued"}, 201)


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
