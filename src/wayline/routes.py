"""HTTP routes of the collector, with their OpenAPI description (served at ``/docs``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from wayline.connectors import sendgrid
from wayline.connectors.collector import (
    EVENT_TYPES,
    MAX_REQUEST_BYTES,
    SHORT_PATHS,
    Collector,
    Rejected,
    basic_username,
    decompress,
)
from wayline.schemas.event import RawEvent


class BatchRequest(BaseModel):
    """``POST /v1/batch``: what analytics-python and rudder-sdk-python send."""

    batch: list[RawEvent]
    sentAt: str | None = None
    context: dict[str, Any] | None = None
    writeKey: str | None = Field(default=None, description="instead of HTTP Basic auth")


class Accepted(BaseModel):
    success: bool
    accepted: int = Field(description="events acknowledged by the broker")


class ErrorReply(BaseModel):
    code: str
    message: str


class FieldProblem(BaseModel):
    field: str
    message: str


class RejectedEvent(BaseModel):
    index: int
    messageId: str | None
    reason: str = Field(description="the dead-letter reason code")
    errors: list[FieldProblem]


class AcceptedEvent(BaseModel):
    index: int
    messageId: str | None


class InvalidEvents(BaseModel):
    code: str
    message: str
    accepted: list[AcceptedEvent] | None = None
    rejected: list[RejectedEvent] | None = None


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Accepted, "description": "every event acknowledged by the broker"},
    400: {"model": InvalidEvents, "description": "not JSON, or invalid events (listed)"},
    401: {"model": ErrorReply, "description": "missing, unknown or revoked write key"},
    413: {"model": ErrorReply, "description": "body over 500 KB (after decompression)"},
    429: {"model": ErrorReply, "description": "source over its rate limit; see Retry-After"},
    503: {"model": ErrorReply, "description": "broker unavailable; retry after Retry-After"},
}
_BASIC = HTTPBasic(auto_error=False, description="write key as username, empty password")
Handler = Callable[..., Awaitable[JSONResponse]]


COLLECTOR_PATHS = frozenset(
    f"/v1/{kind}" for kind in ("batch", "b", *EVENT_TYPES, *SHORT_PATHS)
)  # what browsers post to (analytics.js): the only paths that answer CORS


def mount_collector(app: FastAPI, collector: Collector) -> None:
    """``/v1/batch``, one path per event type, and analytics.js's one-letter paths."""
    for kind in ("batch", *EVENT_TYPES):
        schema = "BatchRequest" if kind == "batch" else "RawEvent"
        app.post(
            f"/v1/{kind}",
            summary=f"Collect {'a batch of events' if kind == 'batch' else f'a {kind} event'}",
            tags=["collector"],
            responses=RESPONSES,
            openapi_extra=_body(schema),
        )(_endpoint(collector, kind))
    for short, kind in [*SHORT_PATHS.items(), ("b", "batch")]:
        schema = "BatchRequest" if kind == "batch" else "RawEvent"
        app.post(
            f"/v1/{short}",
            summary=f"analytics.js short path for {kind} (text/plain accepted)",
            tags=["collector"],
            responses=RESPONSES,
            openapi_extra=_body(schema),
        )(_endpoint(collector, kind))
    _mount_sendgrid(app, collector)
    _add_schemas(app)


def _mount_sendgrid(app: FastAPI, collector: Collector) -> None:
    sources = {s.name: s for s in collector.config.sources}
    replays = sendgrid.ReplayGuard()

    @app.post(
        "/v1/sources/{source}/sendgrid",
        summary="SendGrid Event Webhook (signed webhooks verified when the source has a key)",
        tags=["sources"],
        responses={**RESPONSES, 404: {"model": ErrorReply, "description": "unknown source"}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "array", "items": {}}}},
            }
        },
    )
    async def sendgrid_webhook(
        source: str,
        request: Request,
        _basic: Annotated[HTTPBasicCredentials | None, Depends(_BASIC)],
    ) -> JSONResponse:
        found = sources.get(source)
        if found is None:
            return _reply(404, "unknown_source", f"no source named {source!r}")
        try:
            body = decompress(await _read_capped(request), request.headers.get("content-encoding"))
        except Rejected as exc:
            return JSONResponse(exc.reply.body, exc.reply.status, exc.reply.headers)
        if found.sendgrid_verification_key:
            signature = request.headers.get(sendgrid.SIGNATURE_HEADER)
            stamp = request.headers.get(sendgrid.TIMESTAMP_HEADER)
            if not sendgrid.verify(found.sendgrid_verification_key, signature, stamp, body):
                return _reply(401, "invalid_signature", "missing or invalid webhook signature")
            assert signature is not None  # verified, so both are present
            assert stamp is not None
            problem = replays.problem(signature, stamp, time.time(), found.sendgrid_max_age_s)
            if problem is not None:
                return _reply(401, "stale_or_replayed", problem)
        else:
            try:
                keyed = collector.keys.source(basic_username(request.headers.get("authorization")))
            except Rejected as exc:
                return JSONResponse(exc.reply.body, exc.reply.status)
            if keyed.name != found.name:
                return _reply(401, "unknown_write_key", "the key belongs to another source")
        try:
            batch = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _reply(400, "invalid_json", f"body is not JSON: {exc}")
        if not isinstance(batch, list):
            return _reply(400, "invalid_batch", "a SendGrid webhook body is a JSON array")
        events, _ignored = sendgrid.to_track_events(batch)
        reply = await collector.deliver(events, found)
        return JSONResponse(reply.body, reply.status, reply.headers)


def _reply(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status)


def _endpoint(collector: Collector, kind: str) -> Handler:
    async def collect(
        request: Request, _basic: Annotated[HTTPBasicCredentials | None, Depends(_BASIC)]
    ) -> JSONResponse:
        try:
            body = await _read_capped(request)
        except Rejected as exc:
            return JSONResponse(exc.reply.body, exc.reply.status, exc.reply.headers)
        reply = await collector.handle(
            kind,
            body,
            request.headers.get("content-encoding"),
            request.headers.get("authorization"),
        )
        return JSONResponse(reply.body, reply.status, reply.headers)

    collect.__name__ = f"collect_{kind}"
    return collect


async def _read_capped(request: Request) -> bytes:
    """The raw body, refused with 413 as soon as it passes the limit (no unbounded buffering)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise Rejected(413, "request_too_large", f"request body over {MAX_REQUEST_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _body(schema: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": ref},
                "text/plain": {"schema": ref},
            },
        }
    }


def _add_schemas(app: FastAPI) -> None:
    """Register the request models, which the raw-body handlers do not declare themselves."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        _, defs = models_json_schema(
            [(BatchRequest, "validation"), (RawEvent, "validation")],
            ref_template="#/components/schemas/{model}",
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(defs.get("$defs", {}))
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
