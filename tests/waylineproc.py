"""A running Wayline (``wayline up`` as a process) for e2e tests."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from wayline.schemas.topics import Topics
from wayline.streams.clients import KafkaConfig

STORY = re.compile(r"WARNING|ERROR|CRITICAL|Traceback|Error:|assigned|restored|consuming|stopped")
WAYLINE = str(Path(sys.executable).parent / "wayline")

# The key pair of the e2e SendGrid source: the public half goes in its config.
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC = base64.b64encode(
    SENDGRID_KEY.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
).decode()

API_KEY = "ak_e2e_admin_1"


def signed(body: bytes, timestamp: str | None = None, key: Any = SENDGRID_KEY) -> dict[str, str]:
    """Headers of a SendGrid signed Event Webhook post of ``body`` (sent now by default)."""
    timestamp = timestamp if timestamp is not None else str(int(time.time()))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


SOURCES = [
    {
        "name": "web",
        "channel": "web",
        "write_keys": ["wk_web_e2e_1"],
        "revoked_write_keys": ["wk_web_old_1"],
    },
    {"name": "app", "channel": "app", "write_keys": ["wk_app_e2e_1"]},
    {"name": "pos", "channel": "store", "write_keys": ["wk_pos_e2e_1"], "rate_limit_per_s": 100},
    {
        "name": "mail",
        "channel": "email",
        "write_keys": ["wk_mail_e2e_1"],
        "sendgrid_verification_key": SENDGRID_PUBLIC,
    },
]


@dataclass
class Running:
    """One ``wayline up`` process; ``restart()`` stops it and starts it again on the same ports."""

    url: str
    topics: Topics
    kafka: KafkaConfig
    env: dict[str, str]
    cwd: Path
    process: subprocess.Popen[bytes] | None = None
    args: tuple[str, ...] = ()  # extra arguments of `wayline up`

    def start(self) -> None:
        log = open(self.cwd / "wayline.log", "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [WAYLINE, "up", *self.args],
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, (self.cwd / "wayline.log").read_text()[-3000:]
            time.sleep(0.2)
        raise AssertionError("wayline up did not become ready in 60 s")

    def story(self, lines: int = 60) -> str:
        """The last ``lines`` lines of its log that tell what happened to the workers (warnings,
        errors, assignments, restores): for the message of a failed assertion."""
        log = (self.cwd / "wayline.log").read_text(errors="replace").splitlines()
        said = [line for line in log if STORY.search(line)]
        return "\n".join(["wayline up said:", *said[-lines:]])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cli(self, *args: str, timeout_s: float = 120, refused: bool = False, code: int = 1) -> str:
        """``wayline ARGS`` against this process's cluster; fails the test on a non-zero exit
        (on a zero one when ``refused``), else returns what it printed (a wide terminal, so
        tables do not wrap; with ``refused``, what it printed to stderr)."""
        result = subprocess.run(
            [WAYLINE, *args],
            cwd=self.cwd,
            env={**self.env, "COLUMNS": "160"},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if refused:
            assert result.returncode == code, result.stderr + result.stdout
            return " ".join(result.stderr.split())
        assert result.returncode == 0, result.stderr + result.stdout
        return result.stdout
