"""Where customers say no, and providers tell us: one-click unsubscribe and Twilio's SMS
webhooks. Each turns into a consent event in the pipeline (``wayline.connectors.consent``).

- ``POST /v1/unsubscribe/{token}``: RFC 8058 one-click (what mail clients call from the
  ``List-Unsubscribe-Post`` header): no authentication, no redirect, 200 once recorded. ``GET``
  shows a page with a button that posts (link scanners fetch GETs; a GET never unsubscribes).
- ``POST /v1/sources/{source}/twilio/inbound``: an incoming text; STOP (and Twilio's other
  opt-out words) opts the number out, START opts it back in, HELP gets the help reply.
- ``POST /v1/sources/{source}/twilio/status``: a message's status callback; error 21610 (the
  number texted STOP to the provider) is recorded as an opt-out.

Twilio's requests are checked against ``X-Twilio-Signature`` (HMAC-SHA1 of the public URL and
the sorted form fields, keyed by the source's ``twilio_auth_token``); a missing or wrong
signature gets 403 and changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from wayline.config.workspace import Source
from wayline.connectors.collector import Collector
from wayline.connectors.consent import Change, consent_event
from wayline.connectors.links import Links
from wayline.routes import ErrorReply

STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
)
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})
OPTED_OUT = "21610"
UNSUBSCRIBES = Source(name="wayline", channel="email", write_keys=["wayline-consent-events"])
TWIML = "application/xml"
_GONE = {"model": ErrorReply, "description": "not a link Wayline made (or altered)"}
_BUSY = {"model": ErrorReply, "description": "broker unavailable; retry after Retry-After"}
_BAD = {"model": ErrorReply, "description": "the consent event is invalid (an address)"}
PAGE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "the page with the button"},
    404: {"content": {"text/html": {}}, "description": "not a link Wayline made"},
}
UNSUBSCRIBE: dict[int | str, dict[str, Any]] = {400: _BAD, 404: _GONE, 503: _BUSY}
TWILIO: dict[int | str, dict[str, Any]] = {
    200: {"content": {TWIML: {}}, "description": "TwiML: empty, or the HELP reply"},
    400: _BAD,
    403: {"model": ErrorReply, "description": "missing or wrong X-Twilio-Signature"},
    404: {"model": ErrorReply, "description": "no such source with a Twilio auth token"},
    503: _BUSY,
}


def twilio_signature(auth_token: str, url: str, form: dict[str, str]) -> str:
    """What Twilio puts in ``X-Twilio-Signature`` for a form POST to ``url``."""
    text = url + "".join(f"{key}{form[key]}" for key in sorted(form))
    digest = hmac.new(auth_token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def mount_consent(app: FastAPI, collector: Collector, links: Links, public_url: str | None) -> None:
    @app.get("/v1/unsubscribe/{token}", summary="The unsubscribe page (a button that posts)",
             tags=["consent"], response_class=HTMLResponse, responses=PAGE)  # fmt: skip
    def unsubscribe_page(token: str) -> HTMLResponse:
        if links.read(token) is None:
            return HTMLResponse(_page("This link is not valid.", ""), 404)
        form = (f'<form method="post" action="/v1/unsubscribe/{escape(token)}">'
                '<button type="submit">Unsubscribe</button></form>')  # fmt: skip
        return HTMLResponse(_page("Unsubscribe from these e-mails?", form))

    @app.post("/v1/unsubscribe/{token}", summary="RFC 8058 one-click unsubscribe",
              tags=["consent"], responses=UNSUBSCRIBE)  # fmt: skip
    async def unsubscribe(token: str, request: Request) -> Response:
        recipient = links.read(token)
        if recipient is None:
            return JSONResponse({"code": "unknown_link", "message": "not a valid link"}, 404)
        event = consent_event("Unsubscribed", recipient.address, _now(), "one_click", token)
        reply = await collector.deliver([event], UNSUBSCRIBES)
        if reply.status != 200:
            return JSONResponse(reply.body, reply.status, reply.headers)
        if "text/html" in request.headers.get("accept", ""):  # the page's button
            return HTMLResponse(_page("You are unsubscribed.", ""))
        return JSONResponse({"unsubscribed": True})

    sources = {s.name: s for s in collector.config.sources if s.twilio_auth_token}

    @app.post("/v1/sources/{source}/twilio/{kind}", summary="Twilio SMS webhooks: inbound "
              "(STOP/START/HELP) and status callbacks", tags=["sources"],
              responses=TWILIO)  # fmt: skip
    async def twilio(source: str, kind: str, request: Request) -> Response:
        found = sources.get(source)
        if found is None or kind not in ("inbound", "status"):
            return JSONResponse({"code": "unknown_source", "message": "no such Twilio source"},
                                404)  # fmt: skip
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        assert found.twilio_auth_token is not None
        url = _signed_url(request, public_url)
        given = request.headers.get("x-twilio-signature", "")
        if not hmac.compare_digest(given, twilio_signature(found.twilio_auth_token, url, form)):
            return JSONResponse({"code": "invalid_signature", "message": "bad signature"}, 403)
        change, reply_text = _meaning(kind, form, found.sms_help)
        if change is not None:
            number = form.get("From" if kind == "inbound" else "To", "")
            once = form.get("MessageSid") or form.get("SmsSid") or ""
            event = consent_event(change, number, _now(), f"twilio_{kind}", once)
            reply = await collector.deliver([event], found)
            if reply.status != 200:
                return JSONResponse(reply.body, reply.status, reply.headers)
        body = f"<Message>{escape(reply_text)}</Message>" if reply_text else ""
        return Response(f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>',
                        media_type=TWIML)  # fmt: skip


def _meaning(kind: str, form: dict[str, str], help_text: str) -> tuple[Change | None, str]:
    """The consent change a Twilio request stands for, and the text to answer with."""
    if kind == "status":
        return ("SMS Opted Out" if form.get("ErrorCode") == OPTED_OUT else None), ""
    word = form.get("Body", "").strip().upper()
    if word in STOP_WORDS:
        return "SMS Opted Out", ""
    if word in START_WORDS:
        return "SMS Opted In", ""
    return None, help_text if word in HELP_WORDS else ""


def _signed_url(request: Request, public: str | None) -> str:
    """The URL Twilio called (and signed): the public address when Wayline is behind a proxy."""
    if public:
        query = f"?{request.url.query}" if request.url.query else ""
        return public.rstrip("/") + request.url.path + query
    return str(request.url)


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"</head><body><h1>{escape(title)}</h1>{body}</body></html>")  # fmt: skip


def _now() -> datetime:
    return datetime.now(UTC)
