"""The profile lookup API: ``GET /v1/profiles/{profile_id}`` and ``/v1/profiles/{type}/{value}``.

Served from the API process's own materialized view of ``wayline.profiles``
(``streams.profileview``); callers authenticate with ``Authorization: Bearer <api key>`` (the
``api_keys`` of the config file, compared in constant time).
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from wayline.config import WaylineConfig
from wayline.routes import ErrorReply
from wayline.schemas.messages import ProfileSnapshot
from wayline.schemas.normalize import normalize_email, normalize_phone
from wayline.streams.profileview import ProfileView

_BEARER = HTTPBearer(auto_error=False, description="an api key from the config file")
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": ProfileSnapshot, "description": "the profile"},
    401: {"model": ErrorReply, "description": "missing or unknown API key"},
    404: {"model": ErrorReply, "description": "no profile for this id or identifier"},
}


def mount_profiles(app: FastAPI, config: WaylineConfig, view: ProfileView) -> None:
    keys = [k.encode() for k in config.api_keys]

    def authorized(credentials: HTTPAuthorizationCredentials | None) -> bool:
        if credentials is None:
            return False
        given = credentials.credentials.encode()
        return any([hmac.compare_digest(k, given) for k in keys])

    def answer(credentials: HTTPAuthorizationCredentials | None, doc: Any, what: str) -> Any:
        if not authorized(credentials):
            return JSONResponse(
                {"code": "unauthorized", "message": "send Authorization: Bearer <api key>"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        if doc is None:
            return JSONResponse(
                {"code": "not_found", "message": f"no profile for {what}"}, status_code=404
            )
        return JSONResponse(doc)

    @app.get(
        "/v1/profiles/{profile_id}",
        summary="A profile by its id",
        responses=RESPONSES,
        tags=["profiles"],
    )
    def profile_by_id(
        profile_id: str,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> Any:
        return answer(credentials, view.by_id(profile_id), f"profile id {profile_id!r}")

    @app.get(
        "/v1/profiles/{identifier_type}/{value:path}",
        summary="A profile by one of its identifiers",
        description="identifier_type: user_id, anonymous_id, email, phone, device_id or an "
        "external id type. E-mail addresses and phone numbers are normalized as on ingestion.",
        responses=RESPONSES,
        tags=["profiles"],
    )
    def profile_by_identifier(
        identifier_type: str,
        value: str,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> Any:
        lookup = _normalized(identifier_type, value)
        doc = view.by_identifier(identifier_type, lookup)
        return answer(credentials, doc, f"{identifier_type} {value!r}")


def _normalized(kind: str, value: str) -> str:
    if kind == "email":
        return normalize_email(value) or value
    if kind == "phone":
        return normalize_phone(value) or value
    return value
