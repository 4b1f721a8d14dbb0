"""Runs the dry run (``Timeline``: identity, fold, segments, triggers) over cases read as JSON
lines from stdin, one JSON line of results each; with ``WAYLINE_NATIVE=0`` on the pure-Python
reference, otherwise on the compiled core. The first line says which core runs."""

from __future__ import annotations

import dataclasses
import os
import sys

import orjson

from wayline import native

MODE = native.activate(os.environ.get("WAYLINE_NATIVE", "1") != "0")

from wayline.segments.compiler import SegmentDef, compile_segments  # noqa: E402
from wayline.segments.timeline import Timeline  # noqa: E402
from wayline.segments.triggers import TriggerConfig  # noqa: E402

DUMP = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def run(case: dict[str, object]) -> dict[str, object]:
    try:
        specs = case["segments"]
        assert isinstance(specs, list)
        defs = [SegmentDef(s["name"], s["rule"], 1, bool(s["notify"])) for s in specs]
        triggers = case["triggers"]
        assert isinstance(triggers, dict)
        timeline = Timeline(compile_segments(defs), TriggerConfig.from_mapping(triggers))
        events = case["events"]
        assert isinstance(events, list)
        until = case.get("until_ms")
        timeline.run(events, until_ms=until if isinstance(until, int) else None)
    except Exception as exc:  # the same failure is part of the same answer
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "happenings": [dataclasses.asdict(h) for h in timeline.happenings],
        "triggers": timeline.cloud_events,
        "documents": timeline.documents(),
    }


def main() -> None:
    sys.stdout.write(orjson.dumps({"mode": MODE}).decode() + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        sys.stdout.write(orjson.dumps(run(orjson.loads(line)), option=DUMP).decode() + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
