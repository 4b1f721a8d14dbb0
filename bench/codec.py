"""Hot-path codec benchmark: the validate step's orjson codec and hand validator against the
same step built on pydantic models.

Every variant runs over the same seeded simulator traffic in the same process, interleaved
round by round, so machine noise hits them alike; results are events per second (median of the
rounds) and ratios against the pydantic baseline measured in this run.

    make bench                 # or: .venv/bin/python bench/codec.py --events 20000 --rounds 7
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from wayline.connectors.simulator import Simulator
from wayline.schemas.codec import decode_raw, encode
from wayline.schemas.errors import InvalidEvent
from wayline.schemas.event import CanonicalEvent, RawEvent
from wayline.schemas.normalize import Origin, normalize_event

RESULTS = Path(__file__).resolve().parent / "results"


def traffic(count: int, seed: int) -> list[bytes]:
    simulator = Simulator(seed=seed, shoppers=2000, sessions_per_s=50)
    start = datetime(2026, 11, 23, 9, tzinfo=UTC)
    payloads: list[bytes] = []
    step = 0
    while len(payloads) < count:
        now = start + timedelta(milliseconds=250 * step)
        payloads += [orjson.dumps(event) for _, event in simulator.due(now)]
        step += 1
    return payloads[:count]


ORIGIN = Origin(datetime(2026, 11, 23, 9, 30, tzinfo=UTC), "bench", phone_region="US")


def wayline_hot_path(payload: bytes) -> bytes | None:
    """What the validate worker does per message: decode, validate, normalize, encode."""
    try:
        return encode(normalize_event(decode_raw(payload), ORIGIN))
    except InvalidEvent:
        return None


def pydantic_models(payload: bytes) -> bytes | None:
    """Baseline: the same step with pydantic models on the hot path — the raw event parsed
    into ``RawEvent``, normalized, and the result built as a ``CanonicalEvent``."""
    try:
        raw = RawEvent.model_validate_json(payload).model_dump(mode="json", exclude_unset=True)
        event = CanonicalEvent.model_validate(normalize_event(raw, ORIGIN))
        return event.model_dump_json().encode()
    except (ValueError, InvalidEvent):
        return None


def pydantic_validate_only(payload: bytes) -> bytes | None:
    """pydantic v2 (Rust core) validating and re-serializing the bytes: no normalization, no
    identifier extraction — less work than the step does, shown for scale."""
    try:
        return RawEvent.model_validate_json(payload).model_dump_json().encode()
    except ValueError:
        return None


def orjson_roundtrip(payload: bytes) -> bytes:
    """Ceiling: parse and re-serialize with no validation at all."""
    return orjson.dumps(orjson.loads(payload))


VARIANTS: dict[str, Callable[[bytes], object]] = {
    "pydantic_models (baseline)": pydantic_models,
    "wayline_hot_path": wayline_hot_path,
    "pydantic_validate_only": pydantic_validate_only,
    "orjson_roundtrip (ceiling)": orjson_roundtrip,
}


def measure(function: Callable[[bytes], object], payloads: list[bytes]) -> float:
    started = time.perf_counter()
    for payload in payloads:
        function(payload)
    return len(payloads) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS / "codec.json")
    args = parser.parse_args()

    payloads = traffic(args.events, args.seed)
    rejected = sum(wayline_hot_path(p) is None for p in payloads)
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, function in VARIANTS.items():
            rates[name].append(measure(function, payloads))

    baseline = statistics.median(rates["pydantic_models (baseline)"])
    results: dict[str, Any] = {
        "benchmark": "codec",
        "events": len(payloads),
        "rejected_by_wayline": rejected,
        "rounds": args.rounds,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "variants": {
            name: {
                "events_per_s_median": round(statistics.median(values)),
                "events_per_s_rounds": [round(v) for v in values],
                "ratio_to_baseline": round(statistics.median(values) / baseline, 2),
            }
            for name, values in rates.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"{len(payloads):,} simulator events, {args.rounds} interleaved rounds")
    for name, result in results["variants"].items():
        rate, ratio = result["events_per_s_median"], result["ratio_to_baseline"]
        print(f"  {name:32s} {rate:>10,} events/s   x{ratio:.2f}")
    print(f"written to {args.out.name} in {args.out.parent.name}/")


if __name__ == "__main__":
    main()
