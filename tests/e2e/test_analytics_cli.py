"""``wayline analytics migrations``: pending, then applied once with ``--apply`` (a second apply
applies nothing), kept on disk across processes; refused with the setting while another process
owns the embedded engine's data path."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from wayline.datadir import DataDirLocks
from waylineproc import API_KEY, WAYLINE, Running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def analytics(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WAYLINE_")}
    env = {**clean, "WAYLINE_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "140"}
    return subprocess.run([WAYLINE, "analytics", "migrations", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def row(table: str, version: str) -> str:
    (found,) = [line for line in table.splitlines() if f"│ {version}" in line]
    return found


def test_migrations_listed_applied_once_and_locked(tmp_path: Path) -> None:
    first = analytics(tmp_path)
    assert first.returncode == 0, first.stderr
    assert "pending" in row(first.stdout, "0001")
    applied = analytics(tmp_path, "--apply")
    assert "1 applied now" in applied.stdout, applied.stderr
    again = analytics(tmp_path, "--apply")
    assert "0 applied now" in again.stdout
    assert "pending" not in row(again.stdout, "0001")
    locks = DataDirLocks(tmp_path / "data")
    locks.acquire(["clickhouse"])
    try:
        refused = analytics(tmp_path)
    finally:
        locks.release()
    assert refused.returncode == 2
    assert "setting WAYLINE_DATA_DIR" in refused.stderr
    assert "clickhouse runs there already" in refused.stderr


def test_analytics_api_statuses_a_client_acts_on(wayline_up: Running) -> None:
    """Without a key 401; a period that is not one 400; analytics off in this process 503 with
    the setting named — never a 500."""
    url = f"{wayline_up.url}/v1/analytics/orders"
    key = {"Authorization": f"Bearer {API_KEY}"}
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    bad = httpx.get(url, headers=key, params={"since": "last week"})
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_period"
    backwards = httpx.get(url, headers=key, params={"since": "2026-02-01", "until": "2026-01-01"})
    assert backwards.status_code == 400
    assert "must be before" in backwards.json()["message"]
    off = httpx.get(url, headers=key)
    assert off.status_code == 503
    assert "WAYLINE_ANALYTICS" in off.json()["message"]
    assert httpx.get(f"{wayline_up.url}/v1/analytics/uplift", headers=key,
                     params={"window_days": 0}).status_code == 422  # fmt: skip
