"""What the HTTP API tells whom: liveness and readiness say ok / not ok to anyone; reasons and
counters only with an API key; CORS only on the paths browsers post events to."""

from __future__ import annotations

import httpx
import pytest
from waylineproc import API_KEY, Running

pytestmark = pytest.mark.e2e

PREFLIGHT = {"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}


def test_health_and_readiness_say_no_more_than_ok(wayline_up: Running) -> None:
    with httpx.Client(base_url=wayline_up.url, timeout=10) as client:
        assert client.get("/health").json() == {"status": "ok"}
        ready = client.get("/ready")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        assert client.get("/v1/status").status_code == 401
        status = client.get("/v1/status", headers={"Authorization": f"Bearer {API_KEY}"}).json()
    assert status["ready"] is True
    assert status["reasons"] == []
    assert set(status["workers"]) == {"validate", "identity", "profile"}
    assert all(w["assigned"] for w in status["workers"].values())


def test_cors_answers_on_collector_paths_only(wayline_up: Running) -> None:
    with httpx.Client(base_url=wayline_up.url, timeout=10) as client:
        for path in ("/v1/batch", "/v1/track", "/v1/t", "/v1/p"):
            reply = client.options(
                path, headers={**PREFLIGHT, "Access-Control-Request-Headers": "content-type"}
            )
            assert reply.status_code == 200, path
            assert reply.headers["access-control-allow-origin"] == "*"
        for path in ("/v1/profiles/user_id/u1", "/v1/segments", "/v1/status", "/health"):
            preflight = {**PREFLIGHT, "Access-Control-Request-Method": "GET",
                         "Access-Control-Request-Headers": "authorization"}  # fmt: skip
            reply = client.options(path, headers=preflight)
            assert "access-control-allow-origin" not in reply.headers, path
            plain = client.get(path, headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in plain.headers, path
