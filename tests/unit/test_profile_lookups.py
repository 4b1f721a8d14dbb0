"""The lookup fast lane gives the routes' answers: for every kind of request — by id, by each
identifier (normalized e-mail and phone, a value with slashes and non-ASCII), a missing
profile, no key, a wrong key, another scheme — status, headers and body are those of the
FastAPI route alone; what the lane does not answer (``?at=``) still reaches the route."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from wayline.config.workspace import WaylineConfig
from wayline.profileapi import ProfileLookups, mount_profiles
from wayline.schemas.examples import examples
from wayline.streams.clients import KafkaConfig
from wayline.streams.profileview import ProfileView

KEY = "ak_test_1"
SNAPSHOT = examples("profiles")["snapshot"]
PID = str(SNAPSHOT["profile_id"])


def view() -> ProfileView:
    """A real view, given its records directly (its consumer thread is never started)."""
    found = ProfileView(KafkaConfig("127.0.0.1:1"), "t.profiles")
    doc: dict[str, Any] = dict(SNAPSHOT)
    doc["identifiers"] = {**doc["identifiers"], "external:crm": ["a/b/ü"]}
    found.apply(PID.encode(), orjson.dumps(doc))
    return found


def app(lane: bool) -> FastAPI:
    config = WaylineConfig(api_keys=[KEY])
    profiles = view()
    built = FastAPI()
    mount_profiles(built, config, profiles)
    if lane:
        built.add_middleware(ProfileLookups, config=config, view=profiles)
    return built


def requests() -> list[tuple[str, dict[str, str]]]:
    good = {"Authorization": f"Bearer {KEY}"}
    email = SNAPSHOT["identifiers"]["email"][0]
    paths = [
        f"/v1/profiles/{PID}",
        "/v1/profiles/p_nobody",
        f"/v1/profiles/email/{email.upper()}",
        "/v1/profiles/email/nobody@example.com",
        "/v1/profiles/user_id/nobody",
        "/v1/profiles/external:crm/a/b/%C3%BC",
        f"/v1/profiles/{PID}?at=2026-12-01T00:00:00Z",  # not the lane's: the route's
    ]
    if SNAPSHOT["identifiers"].get("phone"):
        paths.append(f"/v1/profiles/phone/{SNAPSHOT['identifiers']['phone'][0]}")
    heads = [good, {}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {KEY}"},
             {"Authorization": f"bearer {KEY}"}, {"Authorization": "Bearer"}]  # fmt: skip
    return [(p, h) for p in paths for h in heads]


async def answer(built: FastAPI, path: str, headers: dict[str, str]) -> tuple[Any, ...]:
    transport = httpx.ASGITransport(app=built)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        reply = await client.get(path, headers=headers)
    kept = {k: v for k, v in reply.headers.items() if k in ("content-type", "www-authenticate")}
    return reply.status_code, kept, orjson.loads(reply.content)


@pytest.mark.parametrize(("path", "headers"), requests())
async def test_the_lane_answers_as_the_route(path: str, headers: dict[str, str]) -> None:
    assert await answer(app(True), path, headers) == await answer(app(False), path, headers)


async def test_the_lane_answers_the_documents_and_refusals() -> None:
    """Not merely equal: the document, a 404 and a 401 are what they should be."""
    lane = app(True)
    good = {"Authorization": f"Bearer {KEY}"}
    status, _, body = await answer(lane, f"/v1/profiles/{PID}", good)
    assert (status, body["profile_id"]) == (200, PID)
    status, _, body = await answer(lane, "/v1/profiles/external:crm/a/b/%C3%BC", good)
    assert (status, body["profile_id"]) == (200, PID)
    assert (await answer(lane, "/v1/profiles/p_x", good))[0] == 404
    assert (await answer(lane, f"/v1/profiles/{PID}", {}))[:2] == (
        401, {"content-type": "application/json", "www-authenticate": "Bearer"})  # fmt: skip
