"""Never a 2xx for an event that could be lost: with the broker gone, the collector answers 503
with Retry-After, in bounded time, and accepts again once the broker is back."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest

from wayline.streams.broker import EmbeddedBroker, free_port
from waylineproc import WAYLINE

pytestmark = pytest.mark.e2e

CONFIG = "sources:\n  - {name: web, channel: web, write_keys: [wk_web_down_1]}\n"
EVENT = orjson.dumps({"userId": "u-1", "event": "Product Viewed"})


def post(url: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/track", content=EVENT, auth=("wk_web_down_1", ""), timeout=30)


def test_broker_outage_gives_503_then_recovers(tmp_path: Path) -> None:
    broker_port, api_port = free_port(), free_port()
    (tmp_path / "wayline.yaml").write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAYLINE_")}
    env |= {
        "WAYLINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker_port}",
        "WAYLINE_API_PORT": str(api_port),
        "WAYLINE_CONFIG": "wayline.yaml",
        "WAYLINE_DATA_DIR": str(tmp_path / "data"),
        "WAYLINE_KAFKA_OPTIONS": '{"log_level": 0}',
    }
    url = f"http://127.0.0.1:{api_port}"
    broker = EmbeddedBroker(port=broker_port)
    broker.start()
    api = subprocess.Popen([WAYLINE, "api"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if post(url).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert post(url).status_code == 200

        broker.stop()
        started = time.monotonic()
        down = post(url)
        assert down.status_code == 503, down.text
        assert int(down.headers["Retry-After"]) >= 1
        assert down.json()["code"] == "broker_unavailable"
        assert time.monotonic() - started < 15, "a request waited longer than the ack timeout"

        broker = EmbeddedBroker(port=broker_port)  # in-memory: a fresh, empty broker
        broker.start()
        subprocess.run(
            [WAYLINE, "topics", "--create"], cwd=tmp_path, env=env, check=True, capture_output=True
        )
        deadline = time.monotonic() + 60
        while (status := post(url).status_code) != 200 and time.monotonic() < deadline:
            assert status == 503
            time.sleep(0.5)
        assert status == 200
    finally:
        api.terminate()
        api.wait(30)
        broker.stop()
