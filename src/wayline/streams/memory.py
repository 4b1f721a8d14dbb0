"""Garbage-collector settings for the worker processes.

Profile states are many small dicts and lists; with CPython's default thresholds the cyclic
collector runs every 700 container allocations and rescans a growing heap, which cost about a
third of the fold's CPU in ``python -m bench.profiles``. Wayline's state holds no reference
cycles that need prompt collection, so workers collect far less often and move what exists at
start-up (modules, config) out of the collector's view.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 100)


def tune_garbage_collector() -> None:
    """Call once per process, after start-up imports and before processing."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
