"""The unmodified Segment and RudderStack Python clients against a running collector."""

from __future__ import annotations

import logging

import pytest
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient

from kafkatest import read_events
from waylineproc import Running

pytestmark = pytest.mark.e2e

PER_CLIENT = 10_000


def test_segment_and_rudder_clients_deliver_every_event_once(wayline_up: Running) -> None:
    errors: list[str] = []
    logging.getLogger("segment").setLevel(logging.CRITICAL)
    logging.getLogger("rudderstack").setLevel(logging.CRITICAL)
    segment = SegmentClient(
        "wk_web_e2e_1",
        host=wayline_up.url,
        gzip=True,
        max_queue_size=PER_CLIENT * 2,
        on_error=lambda e, _batch: errors.append(f"segment: {e}"),
    )
    rudder = RudderClient(
        "wk_app_e2e_1",
        host=wayline_up.url,
        gzip=True,
        max_queue_size=PER_CLIENT * 2,
        on_error=lambda e, _batch: errors.append(f"rudder: {e}"),
    )
    sent: dict[str, str] = {}  # messageId -> source channel
    for i in range(PER_CLIENT):
        ok, message = segment.track(f"user-{i % 700}", "Product Viewed", {"sku": f"SH-{i % 40}"})
        assert ok
        sent[message["messageId"]] = "web"
        ok, message = rudder.track(user_id=f"app-user-{i % 500}", event="Screen Opened")
        assert ok
        sent[message["messageId"]] = "app"
    segment.flush()
    rudder.flush()
    segment.join()
    rudder.join()
    assert errors == []

    received = read_events(wayline_up.kafka, wayline_up.topics, len(sent), 120, settle_s=1)
    assert len(received) == len(sent) == 2 * PER_CLIENT
    assert {e["messageId"]: e["context"]["channel"] for e in received} == sent
    assert {e.get("source") for e in received} == {"web", "app"}
