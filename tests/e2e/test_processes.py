"""Real processes: ``wayline broker``, ``wayline up`` and ``wayline demo`` start, serve and stop
without leaving a broker behind, even when killed with SIGKILL."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from wayline import native
from wayline.schemas.topics import Topics
from wayline.streams.admin import describe_topics
from wayline.streams.broker import free_port
from wayline.streams.clients import KafkaConfig

pytestmark = pytest.mark.e2e

WAYLINE = str(Path(sys.executable).parent / "wayline")


class Process:
    """A ``wayline`` command whose output lines can be waited for."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("WAYLINE_")}
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.popen = subprocess.Popen(
            [WAYLINE, *args],
            cwd=tmp_path,
            env={**clean, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        with self.popen.stdout:
            for line in self.popen.stdout:
                self.lines.put(line.rstrip("\n"))

    def wait_for_line(self, pattern: str, timeout_s: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.popen.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no line matching {pattern!r}; output so far:\n" + self.output())

    def output(self) -> str:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "\n".join(self.seen)

    def finish(self, timeout_s: float = 30.0) -> int:
        code = self.popen.wait(timeout_s)
        time.sleep(0.1)  # let the pump thread drain the pipe
        self.output()
        return code

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie waiting to be reaped counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def gone_within(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def broker_pid(process: Process) -> int:
    return int(process.wait_for_line(r"embedded broker .*pid (\d+)").group(1))


def test_broker_command_creates_topics_and_stops_on_sigint(tmp_path: Path) -> None:
    port = free_port()
    process = Process(tmp_path, "broker", "--port", str(port), env={"WAYLINE_PARTITIONS": "2"})
    try:
        process.wait_for_line(rf"broker ready on 127\.0\.0\.1:{port}")
        pid = broker_pid(process)
        assert alive(pid)
        topics = Topics(partitions=2)
        names = [spec.name for spec in topics.specs()]
        found = {t.name: t for t in describe_topics(KafkaConfig(f"127.0.0.1:{port}"), names)}
        assert set(found) == set(names)
        assert found["wayline.profiles"].configs["cleanup.policy"] == "compact"
        assert found["wayline.events"].configs["cleanup.policy"] == "delete"
        assert found["wayline.events.raw"].partitions == 2
        assert found["wayline.events"].partitions == 1  # one total order for identity
        process.popen.send_signal(signal.SIGINT)
        assert process.finish() == 0, process.output()
        assert gone_within(pid, 5), "the broker outlived its command"
    finally:
        process.kill()


def test_sigkill_of_the_parent_takes_the_broker_down(tmp_path: Path) -> None:
    process = Process(tmp_path, "broker", "--port", str(free_port()))
    try:
        pid = broker_pid(process)
        process.popen.send_signal(signal.SIGKILL)
        process.popen.wait(10)
        assert gone_within(pid, 5), f"orphaned broker pid {pid} still running"
    finally:
        process.kill()


def expected_core() -> str:
    """What ``wayline up`` should say it runs: the compiled core where ``make native`` built it
    from these very sources (``make test`` does), else the reference."""
    try:
        built = json.loads((native.native_dir() / native.MANIFEST).read_text("utf-8"))
    except OSError:
        return "pure-Python reference (not built"
    if built.get("sources") != native.sources():
        return "pure-Python reference (stale"
    return f"compiled ({len(native.MODULES)} modules"


def test_up_serves_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    api_port = free_port()
    env = {
        "WAYLINE_BROKER_PORT": str(free_port()),
        "WAYLINE_API_PORT": str(api_port),
        "WAYLINE_PARTITIONS": "2",
    }
    process = Process(tmp_path, "up", env=env)
    try:
        process.wait_for_line("Wayline up")
        pid = broker_pid(process)
        response = httpx.get(f"http://127.0.0.1:{api_port}/health", timeout=10)
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
        said = " ".join(process.output().split())  # no config file here: said out loud
        assert "no sources in the config file" in said
        assert "no api_keys in the config file" in said
        assert f"per-event core: {expected_core()}" in said  # which one runs, said once
        assert said.count("per-event core:") == 1
        process.popen.send_signal(signal.SIGTERM)
        assert process.finish() == 0, process.output()
        assert gone_within(pid, 5)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{api_port}/health", timeout=2)
    finally:
        process.kill()


def test_a_second_up_in_the_same_directory_touches_nothing(tmp_path: Path) -> None:
    """Same data directory, other ports: refused before anything is touched (the running
    instance keeps its local state); a busy API port is one line too."""
    api_port = free_port()
    env = {"WAYLINE_BROKER_PORT": str(free_port()), "WAYLINE_API_PORT": str(api_port)}
    first = Process(tmp_path, "up", env=env)
    try:
        first.wait_for_line("Wayline up")
        deadline = time.monotonic() + 60
        while httpx.get(f"http://127.0.0.1:{api_port}/ready", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "not ready in 60 s"
            time.sleep(0.2)
        state = tmp_path / "wayline-data" / "state"
        before = sorted(p.relative_to(tmp_path) for p in state.rglob("*"))
        assert before, "the first instance has local state"
        others = {"WAYLINE_BROKER_PORT": str(free_port()), "WAYLINE_API_PORT": str(free_port())}
        second = Process(tmp_path, "up", env=others)
        assert second.finish() == 2, second.output()
        lines = [line for line in second.output().splitlines() if line.strip()]
        assert len(lines) == 1, lines
        assert "WAYLINE_DATA_DIR" in lines[0]
        assert f"pid {first.popen.pid}" in lines[0]
        assert sorted(p.relative_to(tmp_path) for p in state.rglob("*")) == before
        (tmp_path / "elsewhere").mkdir()
        others["WAYLINE_API_PORT"] = str(api_port)
        busy = Process(tmp_path / "elsewhere", "up", env=others)
        assert busy.finish() == 2, busy.output()
        lines = [line for line in busy.output().splitlines() if line.strip()]
        assert len(lines) == 1, lines
        assert f"WAYLINE_API_PORT: port {api_port}" in lines[0]
        assert httpx.get(f"http://127.0.0.1:{api_port}/health", timeout=5).status_code == 200
    finally:
        first.kill()


def test_up_says_so_in_one_line_when_its_embedded_broker_dies(tmp_path: Path) -> None:
    env = {"WAYLINE_BROKER_PORT": str(free_port()), "WAYLINE_API_PORT": str(free_port())}
    process = Process(tmp_path, "up", env=env)
    try:
        process.wait_for_line("Wayline up")
        os.kill(broker_pid(process), signal.SIGKILL)
        assert process.finish(30) == 1
        said = [line for line in process.output().splitlines() if "embedded broker ended" in line]
        assert len(said) == 1, process.output()[-2000:]
        assert "start Wayline again" in said[0]
    finally:
        process.kill()


def test_second_broker_on_the_same_port_is_a_config_error(tmp_path: Path) -> None:
    port = str(free_port())
    first = Process(tmp_path, "broker", "--port", port)
    try:
        first.wait_for_line("broker ready")
        second = Process(tmp_path, "broker", "--port", port)
        assert second.finish() == 2
        assert f"WAYLINE_BROKER_PORT: port {port}" in second.output()
    finally:
        first.kill()


def test_demo_accounts_for_every_event(tmp_path: Path) -> None:
    env = {
        "WAYLINE_BROKER_PORT": str(free_port()),
        "WAYLINE_API_PORT": str(free_port()),
        "WAYLINE_DATA_DIR": str(tmp_path / "data"),
    }
    process = Process(tmp_path, "demo", "--duration", "12", "--rate", "30", env=env)
    try:
        pid = broker_pid(process)
        assert process.finish(timeout_s=90) == 0, process.output()
        summary = re.search(
            r"([\d,]+) events sent \((\d+) deliberately broken\), ([\d,]+) validated, "
            r"([\d,]+) dead-lettered",
            process.output(),
        )
        assert summary, process.output()
        sent, broken, validated, dead = (int(g.replace(",", "")) for g in summary.groups())
        assert sent > 100
        assert (validated, dead) == (sent - broken, broken)
        assert "every event accounted for exactly once" in process.output()
        decided = re.search(
            r"([\d,]+) deliveries decided: ([\d,]+) sent or delivered, .* the local receivers "
            r"got ([\d,]+) messages",
            " ".join(process.output().split()),
        )
        assert decided, process.output()
        _total, reached, got = (int(g.replace(",", "")) for g in decided.groups())
        assert reached > 0  # new buyers reached the team's Slack and milestones the CRM
        assert got >= reached  # every one the pipeline counts arrived (more may be in flight)
        assert gone_within(pid, 5)
        assert (tmp_path / "data" / "broker.log").exists()
        report = (tmp_path / "data" / "report.html").read_text()  # the demo ends with a report
        assert "Wayline demo report" in report
        assert "<svg" in report  # the conversion funnel at least: shoppers browsed
        assert "the run's report: " in process.output()
    finally:
        process.kill()
