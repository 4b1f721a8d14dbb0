"""The profile lookup API: ``GET /v1/profiles/{profile_id}`` and ``/v1/profiles/{type}/{value}``.

Served from the API process's own materialized view of ``wayline.profiles``
(``streams.profileview``); callers authenticate with ``Authorization: Bearer <api key>`` (the
``api_keys`` of the config file, compared in constant time). A document is as of its latest
change (``computed.as_of``); ``?at=now`` (or an ISO time) takes its windowed counts and RFM
recency as of that moment instead — what personalisation at request time needs.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Query
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from wayline.config.workspace import WaylineConfig
from wayline.profiles.view import at_moment
from wayline.routes import ErrorReply
from wayline.schemas.messages import ProfileSnapshot
from wayline.schemas.normalize import normalize_email, normalize_phone
from wayline.schemas.timestamps import parse_timestamp
from wayline.streams.definitions import Rules
from wayline.streams.profileview import ProfileView

_BEARER = HTTPBearer(auto_error=False, description="an api key from the config file")
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": ProfileSnapshot, "description": "the profile"},
    400: {"model": ErrorReply, "description": "`at` is not `now` or an ISO time"},
    401: {"model": ErrorReply, "description": "missing or unknown API key"},
    404: {"model": ErrorReply, "description": "no profile for this id or identifier"},
}
At = Annotated[
    str | None,
    Query(
        description="`now` or an ISO time: windowed counts and RFM recency as of then "
        "(default: as of the document's latest change, `computed.as_of`)"
    ),
]


UNAUTHORIZED = {"code": "unauthorized", "message": "send Authorization: Bearer <api key>"}
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]


class Answer:
    """401 without a valid API key, 404 when there is nothing, else the document."""

    def __init__(self, config: WaylineConfig) -> None:
        self.keys = [k.encode() for k in config.api_keys]

    def authorized(self, credentials: HTTPAuthorizationCredentials | None) -> bool:
        return self.known(None if credentials is None else credentials.credentials)

    def known(self, token: str | None) -> bool:
        if token is None:
            return False
        given = token.encode()
        return any([hmac.compare_digest(k, given) for k in self.keys])  # every key compared

    def __call__(
        self,
        credentials: HTTPAuthorizationCredentials | None,
        doc: Any,
        what: str,
        at: str | None = None,
    ) -> Any:
        if not self.authorized(credentials):
            return JSONResponse(
                UNAUTHORIZED, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        moment = None
        if at is not None:
            moment = _moment(at)
            if moment is None:
                message = f"at: {at!r} is not 'now' or an ISO time"
                return JSONResponse({"code": "invalid_at", "message": message}, status_code=400)
        if doc is None:
            return JSONResponse(not_found(what), status_code=404)
        if isinstance(doc, bytes):  # the document as the topic has it: answered as is
            if moment is None:
                return Response(doc, media_type="application/json")
            doc = orjson.loads(doc)
        return JSONResponse(doc if moment is None else at_moment(doc, moment))


def mount_profiles(app: FastAPI, config: WaylineConfig, view: ProfileView) -> None:
    answer = Answer(config)

    @app.get(
        "/v1/profiles/{profile_id}",
        summary="A profile by its id",
        responses=RESPONSES,
        tags=["profiles"],
    )
    async def profile_by_id(profile_id: str, credentials: Credentials, at: At = None) -> Any:
        return answer(credentials, view.raw_by_id(profile_id), by_id(profile_id), at)

    @app.get(
        "/v1/profiles/{identifier_type}/{value:path}",
        summary="A profile by one of its identifiers",
        description="identifier_type: user_id, anonymous_id, email, phone, device_id or an "
        "external id type. E-mail addresses and phone numbers are normalized as on ingestion.",
        responses=RESPONSES,
        tags=["profiles"],
    )
    async def profile_by_identifier(
        identifier_type: str,
        value: str,
        credentials: Credentials,
        at: At = None,
    ) -> Any:
        doc = view.raw_by_identifier(identifier_type, _normalized(identifier_type, value))
        return answer(credentials, doc, by_identifier(identifier_type, value), at)


def not_found(what: str) -> dict[str, str]:
    return {"code": "not_found", "message": f"no {what}"}


def by_id(profile_id: str) -> str:
    return f"profile with id {profile_id!r}"


def by_identifier(kind: str, value: str) -> str:
    return f"profile for {kind} {value!r}"


BY_ID_ROUTE = SimpleNamespace(path="/v1/profiles/{profile_id}")
BY_IDENTIFIER_ROUTE = SimpleNamespace(path="/v1/profiles/{identifier_type}/{value:path}")


class ProfileLookups:
    """``GET /v1/profiles/...`` without a query answered before the framework runs: the same
    answers as the routes of ``mount_profiles`` — which define them, document them and answer
    every other request (``?at=``, another method) — at a fraction of the cost of a request.
    (``tests/unit/test_profile_lookups.py`` holds the two to the same answers.)"""

    def __init__(self, app: ASGIApp, config: WaylineConfig, view: ProfileView) -> None:
        self.app = app
        self.answer = Answer(config)
        self.view = view

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or scope["query_string"]
            or not path.startswith("/v1/profiles/")
        ):
            await self.app(scope, receive, send)
            return
        rest = path[len("/v1/profiles/") :]
        kind, _, value = rest.partition("/")
        if not kind or (_ and not value):
            await self.app(scope, receive, send)  # no such route: the framework's 404
            return
        scope["route"] = BY_IDENTIFIER_ROUTE if value else BY_ID_ROUTE
        status, body, extra = self._answer(scope, kind, value)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _answer(
        self, scope: Scope, kind: str, value: str
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        if not self.answer.known(_bearer(scope)):
            return 401, orjson.dumps(UNAUTHORIZED), [(b"www-authenticate", b"Bearer")]
        if value:
            doc = self.view.raw_by_identifier(kind, _normalized(kind, value))
            what = by_identifier(kind, value)
        else:
            doc, what = self.view.raw_by_id(kind), by_id(kind)
        if doc is None:
            return 404, orjson.dumps(not_found(what)), []
        return 200, doc, []


def _bearer(scope: Scope) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (the scheme in any case), as HTTPBearer
    reads it."""
    for name, raw in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = raw.decode("latin-1").partition(" ")
            return token if scheme.lower() == "bearer" and token else None
    return None


def _moment(at: str) -> int | None:
    """``now`` or an ISO time as epoch milliseconds; None when it is neither."""
    if at == "now":
        return int(time.time() * 1000)
    parsed = parse_timestamp(at)
    return None if parsed is None else int(parsed.timestamp() * 1000)


def _normalized(kind: str, value: str) -> str:
    if kind == "email":
        return normalize_email(value) or value
    if kind == "phone":
        return normalize_phone(value) or value
    return value


SEGMENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the segment(s)"},
    401: {"model": ErrorReply, "description": "missing or unknown API key"},
    404: {"model": ErrorReply, "description": "no such segment"},
}


def mount_segments(
    app: FastAPI, config: WaylineConfig, view: ProfileView, rules: Callable[[], Rules]
) -> None:
    """Segments in force and their members, from the same materialized view."""
    answer = Answer(config)

    def describe(name: str) -> dict[str, Any] | None:
        seg = rules().segments.by_name.get(name)
        if seg is None:
            return None
        return {"name": name, "version": seg.version, "notify": seg.notify, "size": view.size(name)}

    @app.get("/v1/segments", summary="Every segment in force, with its size", tags=["segments"],
             responses=SEGMENT_RESPONSES)  # fmt: skip
    def segments(credentials: Credentials) -> Any:
        names = [s.name for s in rules().segments.segments]
        return answer(credentials, {"segments": [describe(n) for n in names]}, "segments")

    @app.get("/v1/segments/{name}/size", summary="How many profiles are in a segment",
             tags=["segments"], responses=SEGMENT_RESPONSES)  # fmt: skip
    def size(name: str, credentials: Credentials) -> Any:
        return answer(credentials, describe(name), f"segment {name!r}")

    @app.get("/v1/segments/{name}/members", summary="The profile ids in a segment, paged",
             tags=["segments"], responses=SEGMENT_RESPONSES)  # fmt: skip
    def members(
        name: str,
        credentials: Credentials,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    ) -> Any:
        if describe(name) is None:
            return answer(credentials, None, f"segment {name!r}")
        page = view.members(name, cursor, limit)
        body = {"segment": name, "members": page,
                "next_cursor": page[-1] if len(page) == limit else None}  # fmt: skip
        return answer(credentials, body, f"segment {name!r}")
