"""What a user sees when they get the command line, a setting or the config file wrong."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

WAYLINE = str(Path(sys.executable).parent / "wayline")


def wayline(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WAYLINE_")}
    return subprocess.run(
        [WAYLINE, *args],
        cwd=tmp_path,
        env={**clean, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_help_lists_every_command(tmp_path: Path) -> None:
    result = wayline(tmp_path, "--help")
    assert result.returncode == 0
    for command in ("broker", "topics", "worker", "api", "up", "demo"):
        assert command in result.stdout


def test_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    result = wayline(tmp_path, "demo", "--durration", "5")
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith("wayline: error:")
    assert "--durration" in line


def test_out_of_range_value_is_a_usage_error(tmp_path: Path) -> None:
    result = wayline(tmp_path, "demo", "--duration", "0")
    assert result.returncode == 2
    assert "--duration" in one_line(result)


def test_unknown_worker_names_the_workers(tmp_path: Path) -> None:
    result = wayline(tmp_path, "worker", "validat")
    assert result.returncode == 2
    assert "validate" in one_line(result)


def test_missing_config_file(tmp_path: Path) -> None:
    result = wayline(tmp_path, "--config", "absent.yaml", "topics")
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith("wayline: configuration error:")
    assert "absent.yaml" in line


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "wayline.yaml").write_text(
        "sources:\n  - name: web\n    channel: fax\n    write_keys: [wk_web_0001]\n"
    )
    result = wayline(tmp_path, "topics", env={"WAYLINE_CONFIG": "wayline.yaml"})
    assert result.returncode == 2
    line = one_line(result)
    assert "sources[0].channel" in line
    assert "fax" in line or "web" in line


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WAYLINE_BROKER_PORT", "ninety"),
        ("WAYLINE_PARTITIONS", "0"),
        ("WAYLINE_KAFKA_OPTIONS", "{not json"),
        ("WAYLINE_LOG_LEVEL", "LOUD"),
    ],
)
def test_bad_setting_names_the_variable(tmp_path: Path, variable: str, value: str) -> None:
    result = wayline(tmp_path, "topics", env={variable: value})
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith("wayline: configuration error:")
    assert variable in line


def test_an_unreachable_cluster_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    from wayline.streams.broker import free_port

    env = {"WAYLINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    for args in (("topics",), ("worker", "validate"), ("up",)):
        started = time.monotonic()
        result = wayline(tmp_path, *args, env=env)
        took = time.monotonic() - started
        assert result.returncode == 2, result.stderr
        line = one_line(result)
        assert "WAYLINE_KAFKA_BOOTSTRAP" in line, line
        assert "no Kafka broker answers" in line
        assert took < 20, f"{args}: {took:.0f} s"
        assert len(result.stdout.splitlines()) < 5, result.stdout  # librdkafka kept quiet
