"""Who owns what under ``WAYLINE_DATA_DIR``: one exclusive lock per part of a running Wayline.

A worker's local state (its RocksDB stores), the embedded broker and the HTTP API each have a
lock file under ``locks/``. A process takes the locks of the parts it runs before it touches
anything, so a second instance in the same directory stops with one line naming the setting
and the running process — it never deletes or opens state that is in use. The locks are
``flock`` locks: the kernel releases them when the process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from wayline.schemas.errors import ConfigError


class DataDirLocks:
    def __init__(self, data_dir: Path) -> None:
        self.directory = Path(data_dir) / "locks"
        self._held: dict[str, IO[str]] = {}

    def acquire(self, names: list[str]) -> None:
        """Take every lock in ``names`` or none (``ConfigError`` naming who holds one)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        taken: list[str] = []
        for name in names:
            if name in self._held:
                continue
            handle = open(self.directory / f"{name}.lock", "a+")  # noqa: SIM115 - held open
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                self.release(taken)
                raise ConfigError(
                    f"setting WAYLINE_DATA_DIR: {self.directory.parent} is in use — {name} runs "
                    f"there already (pid {holder}); stop it, or give this process its own "
                    "WAYLINE_DATA_DIR"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            self._held[name] = handle
            taken.append(name)

    def free(self, name: str) -> bool:
        """True when no process holds ``name`` (checked by taking it for an instant)."""
        try:
            self.acquire([name])
        except ConfigError:
            return False
        self.release([name])
        return True

    def release(self, names: list[str] | None = None) -> None:
        for name in list(self._held) if names is None else names:
            handle = self._held.pop(name, None)
            if handle is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
