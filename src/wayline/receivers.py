"""Local receivers for ``wayline demo``: where its messages go when nothing real is configured.

An SMTP server (aiosmtpd) that keeps the mail, and one HTTP server (uvicorn) that is a webhook
endpoint verifying Standard Webhooks signatures, an SMS API of Twilio's Messages shape and a
Slack incoming webhook. Each counts what it got, so the live view can show deliveries arriving.
"""

from __future__ import annotations

import email
import logging
import threading
import time
from collections import Counter, deque
from email.policy import default
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from standardwebhooks import Webhook, WebhookVerificationError

from wayline.streams.broker import free_port

DEMO_SECRET = "whsec_ZGVtby1zZWNyZXQtb2YtdGhlLWRlbW8tMTIz"
LOCAL = ["127.0.0.0/8"]


class DemoReceivers:
    """``start`` both servers; ``channels()`` is the config that sends to them."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.latest: deque[str] = deque(maxlen=6)
        self._lock = threading.Lock()
        self.smtp_port, self.http_port = free_port(), free_port()
        self._smtp = Controller(_Mailbox(self), hostname="127.0.0.1", port=self.smtp_port)
        config = uvicorn.Config(self._app(), host="127.0.0.1", port=self.http_port,
                                log_level="warning", access_log=False)  # fmt: skip
        self._http = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._http.run, name="receivers", daemon=True)

    def start(self) -> None:
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command
        self._smtp.start()
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._http.started and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        self._http.should_exit = True
        self._thread.join(5)
        self._smtp.stop()

    def got(self, kind: str, what: str) -> None:
        with self._lock:
            self.counts[kind] += 1
            self.latest.appendleft(f"{time.strftime('%H:%M:%S')}  {kind:<8} {what}"[:100])

    def snapshot(self) -> tuple[dict[str, int], list[str]]:
        with self._lock:
            return dict(self.counts), list(self.latest)

    def channels(self) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.http_port}"
        return [
            {"name": "mail", "type": "email", "host": "127.0.0.1", "port": self.smtp_port,
             "tls": "none", "from": "Wayline Demo Shop <shop@demo.example>"},
            {"name": "texts", "type": "sms", "base_url": url, "account_sid": "ACdemo",
             "auth_token": "demo-token", "from": "+15550100", "allow_networks": LOCAL},
            {"name": "crm", "type": "webhook", "url": f"{url}/hooks/crm",
             "secrets": [DEMO_SECRET], "allow_networks": LOCAL},
            {"name": "team", "type": "slack", "url": f"{url}/slack", "allow_networks": LOCAL},
        ]  # fmt: skip

    def _app(self) -> FastAPI:
        app = FastAPI()
        verifier = Webhook(DEMO_SECRET)

        @app.post("/hooks/crm")
        async def webhook(request: Request) -> Response:
            body = await request.body()
            try:
                verifier.verify(body, dict(request.headers))
            except WebhookVerificationError:
                self.got("refused", "a webhook with a bad signature")
                return Response(status_code=401)
            self.got("webhook", request.headers.get("webhook-id", "?"))
            return Response(status_code=200)

        @app.post("/slack")
        async def slack(request: Request) -> Response:
            text = (await request.json()).get("text", "")
            self.got("slack", str(text))
            return Response("ok")

        @app.post("/2010-04-01/Accounts/{sid}/Messages.json")
        async def sms(sid: str, request: Request) -> Response:
            form = dict(parse_qsl((await request.body()).decode()))
            self.got("sms", f"{form.get('To')}: {form.get('Body')}")
            return JSONResponse({"sid": f"SM{time.time_ns():032x}"[:34], "status": "queued"}, 201)

        return app


class _Mailbox:
    def __init__(self, receivers: DemoReceivers) -> None:
        self.receivers = receivers

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = email.message_from_bytes(envelope.content, policy=default)
        self.receivers.got("e-mail", f"{mail['To']}: {mail['Subject']}")
        return "250 Message accepted"


def demo_subscriptions() -> list[dict[str, Any]]:
    """What the demo sends: carts by e-mail (10 % held out) and SMS, milestones to the CRM,
    new buyers to the team's Slack."""
    return [
        {"name": "cart_mail", "channel": "mail", "triggers": ["cart_abandoned"],
         "holdout_pct": 10,
         "template": {"subject": "{{ payload['items'] | length }} items are waiting for you",
                      "text": "Hi {{ profile.traits.first_name | default('there') }}, your cart "
                              "is waiting.\n\nUnsubscribe: {{ unsubscribe_url }}",
                      "html": "<p>Hi {{ profile.traits.first_name | default('there') }}, your "
                              "cart is waiting.</p>"}},
        {"name": "cart_text", "channel": "texts", "triggers": ["cart_abandoned"],
         "template": {"text": "Your cart is waiting. Reply STOP to opt out."}},
        {"name": "milestones_to_crm", "channel": "crm", "triggers": ["milestone"],
         "kind": "transactional"},
        {"name": "new_buyers", "channel": "team", "segments": {"entered": ["buyers"]},
         "kind": "transactional",
         "template": {"text": "New buyer: {{ profile.profile_id }}"}},
    ]  # fmt: skip
