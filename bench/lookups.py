"""Profile lookups: ``wayline up`` on the embedded broker holding N profiles, read by wrk.

``wayline up`` (every worker and the API in one process, as a user runs it) gets N customers
through its collector (an identify each), then wrk (``apt-get install wrk``) sends
``GET /v1/profiles/user_id/{id}`` over all of them from C keep-alive connections for D seconds.
Reported: requests per second, latency percentiles, the share of answers that were not 200;
beside them, in the same run, wrk against a static answer of the same HTTP server stack
(``/health``) — the ceiling of the server itself.

    python -m bench.lookups --json [--profiles 1000] [--connections 16] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.runtime import save_results
from wayline.streams.broker import free_port

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "ak_demo_admin"
WRITE_KEY = "wk_demo_web"
SCRIPT = """
local i = 0
request = function()
  i = (i + 1) %% %(profiles)d
  return wrk.format("GET", "/v1/profiles/user_id/u" .. i, {["Authorization"] = "Bearer %(key)s"})
end
"""


CONFIG = f"""
sources:
  - name: web
    channel: web
    write_keys: [{WRITE_KEY}]
api_keys: [{API_KEY}]
"""


def start(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    api_port, broker_port = free_port(), free_port()
    (folder / "wayline.yaml").write_text(CONFIG, "utf-8")
    env = os.environ | {
        "WAYLINE_CONFIG": str(folder / "wayline.yaml"),
        "WAYLINE_DATA_DIR": str(folder / "data"),
        "WAYLINE_API_PORT": str(api_port),
        "WAYLINE_BROKER_PORT": str(broker_port),
        "WAYLINE_ANALYTICS": "false",
        "WAYLINE_LOG_LEVEL": "WARNING",
    }
    command = [str(Path(sys.executable).parent / "wayline"), "up"]
    log = (folder / "wayline.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{api_port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.kill()
    raise TimeoutError(f"wayline up did not get ready; see {folder / 'wayline.log'}")


def load(url: str, profiles: int) -> float:
    """Send one identify per customer; seconds until the last one is a profile."""
    started = time.monotonic()
    with httpx.Client(base_url=url, auth=(WRITE_KEY, ""), timeout=30) as client:
        for first in range(0, profiles, 100):
            batch = [
                {"type": "identify", "userId": f"u{i}", "messageId": f"bench-{i}",
                 "traits": {"email": f"u{i}@example.com", "plan": "pro"}}
                for i in range(first, min(profiles, first + 100))
            ]  # fmt: skip
            reply = client.post("/v1/batch", json={"batch": batch})
            assert reply.status_code == 200, reply.text
    headers = {"Authorization": f"Bearer {API_KEY}"}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        last = httpx.get(f"{url}/v1/profiles/user_id/u{profiles - 1}", headers=headers)
        first_one = httpx.get(f"{url}/v1/profiles/user_id/u0", headers=headers)
        if last.status_code == first_one.status_code == 200:
            return time.monotonic() - started
        time.sleep(0.5)
    raise TimeoutError("the profiles did not appear")


def wrk(url: str, connections: int, seconds: int, script: Path | None) -> dict[str, Any]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = {p: _ms(re.search(rf"\s{p}%\s+([\d.]+\w+)", out)) for p in ("50", "99")}
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {
        "requests_per_s": round(rate),
        "p50_ms": latency["50"],
        "p99_ms": latency["99"],
        "requests": int(total.group(1)) if total else 0,
        "not_ok": int(non_2xx.group(1)) if non_2xx else 0,
    }


def _ms(found: re.Match[str] | None) -> float | None:
    if found is None:
        return None
    text = found.group(1)
    number = float(re.match(r"[\d.]+", text).group(0))  # type: ignore[union-attr]
    unit = text[len(str(re.match(r"[\d.]+", text).group(0))) :]  # type: ignore[union-attr]
    return round(number * {"us": 0.001, "ms": 1.0, "s": 1000.0}.get(unit, 1.0), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench.lookups needs wrk (apt-get install wrk): skipped", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory(prefix="wayline-lookups-") as tmp:
        folder = Path(tmp)
        process, url = start(folder)
        try:
            loaded_s = load(url, args.profiles)
            script = folder / "lookups.lua"
            script.write_text(SCRIPT % {"profiles": args.profiles, "key": API_KEY})
            wrk(url, args.connections, 2, script)  # warm-up
            lookups = wrk(url, args.connections, args.seconds, script)
            ceiling = wrk(f"{url}/health", args.connections, args.seconds, None)
        finally:
            process.terminate()
            process.wait(60)
    results = {
        "benchmark": "lookups",
        "profiles": args.profiles,
        "connections": args.connections,
        "seconds": args.seconds,
        "profiles_loaded_s": round(loaded_s, 1),
        "lookups": lookups,
        "health": ceiling,
        "lookups_vs_health": round(lookups["requests_per_s"] / ceiling["requests_per_s"], 2),
    }
    save_results("lookups", results)
    print(json.dumps(results) if args.json else json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
