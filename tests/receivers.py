"""Real local receivers for connector tests: an HTTP server (uvicorn) in a thread of its own
that records every request and answers as the path asks."""

from __future__ import annotations

import asyncio
import email
import ipaddress
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from wayline.connectors.email import SmtpServer
from wayline.streams.broker import free_port

LOCAL = (ipaddress.ip_network("127.0.0.0/8"),)  # what tests allow-list: receivers run here


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """``/ok`` 200, ``/status/{code}`` that status (``?retry_after=`` adds the header),
    ``/redirect`` 302 to the metadata address, ``/slow`` answers after 3 s (any path after
    ``?delay=`` seconds); and an SMS API of
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
            if path.startswith("slow/"):  # a base URL under /slow: a provider that takes 1 s
                await asyncio.sleep(1)
            if path.endswith("/Messages.json"):
                return _sms(request, body)
            if path == "redirect":
                return Response(status_code=302, headers={"location": "http://169.254.169.254/"})
            if path == "slow":
                await asyncio.sleep(3)
            if "delay" in request.query_params:  # a receiver that takes its time
                await asyncio.sleep(float(request.query_params["delay"]))
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


class Mailbox:
    """Accepts mail, except for bounce@ (550) and full@ (452); slow@ takes a second."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("bounce@"):
            return "550 5.1.1 no such user"
        if address.startswith("full@"):
            return "452 4.2.2 mailbox full"
        if address.startswith("slow@"):
            await asyncio.sleep(1)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=default)
        self.messages.append(parsed)
        return "250 Message accepted"


@contextmanager
def smtp_receiver() -> Iterator[tuple[Mailbox, SmtpServer]]:
    """A real SMTP server (aiosmtpd) on a free port, and the settings to reach it."""
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield box, SmtpServer("127.0.0.1", controller.port, "Shop <shop@example.com>", "none")
    finally:
        controller.stop()
