"""The child of ``bench.history``: chooses the per-event core before anything imports
``wayline`` (the compiled modules can only take the place of modules not imported yet)."""

from __future__ import annotations

from bench.pipeline import _activate

CORE = _activate()

from bench.history import child  # noqa: E402

if __name__ == "__main__":
    child(CORE)
