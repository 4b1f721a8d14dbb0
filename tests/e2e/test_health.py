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
    assert set(status["workers"]) == {"validate", "identity", "profile", "deliver"}
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


def test_metrics_count_what_happened(wayline_up: Running) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from kafkatest import produce, wait_for

    running = wayline_up
    batch = [
        {"type": "track", "event": "X", "userId": f"m{i}", "messageId": f"mx{i}"} for i in range(30)
    ]
    with httpx.Client(base_url=running.url, timeout=10) as client:
        assert (
            client.post("/v1/batch", json={"batch": batch}, auth=("wk_web_e2e_1", "")).status_code
            == 200
        )
        produce(
            running.kafka, running.topics.raw, [(b"k", b"not json")]
        )  # validate dead-letters it
        assert client.get("/metrics").status_code == 401
        auth = {"Authorization": f"Bearer {API_KEY}"}

        def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            text = client.get("/metrics", headers=auth).text
            return {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }

        def counted() -> bool:
            found = samples()
            return (
                found.get(("wayline_worker_events_in_total", (("worker", "identity"),)), 0) >= 30
                and found.get(
                    (
                        "wayline_dead_letters_total",
                        (("reason", "invalid_json"), ("worker", "validate")),
                    ),
                    0,
                )
                >= 1
            )

        wait_for(counted, 30, "the metrics")
        found = samples()
    assert found[("wayline_http_responses_total", (("route", "/v1/batch"), ("status", "200")))] >= 1
    assert found[("wayline_worker_partitions", (("worker", "profile"),))] == 3
    assert found[("wayline_worker_batch_seconds_count", (("worker", "validate"),))] >= 1
