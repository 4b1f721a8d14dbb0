"""Every topic has a committed JSON Schema; every example message validates against it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from wayline.schemas.codec import decode_raw
from wayline.schemas.errors import InvalidEvent, ReasonCode
from wayline.schemas.examples import (
    ROOT,
    InvalidExample,
    canonical_of,
    examples,
    invalid_raw_examples,
)
from wayline.schemas.export import render, topic_schema
from wayline.schemas.messages import TOPIC_MODELS
from wayline.schemas.normalize import Origin, normalize_event
from wayline.schemas.topics import Topics

SCHEMA_DIR = ROOT.parent / "json"


def validator(suffix: str) -> Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / f"{suffix}.json").read_text("utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def all_examples() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (suffix, name, value) for suffix in TOPIC_MODELS for name, value in examples(suffix).items()
    ]


def test_every_topic_has_a_schema_and_examples() -> None:
    suffixes = set(TOPIC_MODELS)
    assert {spec.suffix for spec in Topics().specs()} == suffixes
    for suffix in suffixes:
        assert (SCHEMA_DIR / f"{suffix}.json").is_file(), suffix
        assert examples(suffix), f"no example for {suffix}"


@pytest.mark.parametrize("suffix", sorted(TOPIC_MODELS))
def test_committed_schema_is_up_to_date(suffix: str) -> None:
    committed = (SCHEMA_DIR / f"{suffix}.json").read_text("utf-8")
    assert committed == render(suffix), (
        f"schemas/json/{suffix}.json is stale: run python -m wayline.schemas.export"
    )
    assert topic_schema(suffix)["$id"].endswith(f"/{suffix}.json")


@pytest.mark.parametrize(
    ("suffix", "name", "value"), all_examples(), ids=[f"{s}/{n}" for s, n, _ in all_examples()]
)
def test_example_validates_against_its_topic_schema(
    suffix: str, name: str, value: dict[str, Any]
) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator(suffix).iter_errors(value)]
    assert errors == []
    TOPIC_MODELS[suffix].model_validate(value)  # the pydantic model agrees with its schema


@pytest.mark.parametrize("name", sorted(examples("events.raw")))
def test_raw_example_normalizes_to_its_canonical_golden(name: str) -> None:
    raw = examples("events.raw")[name]
    golden = json.loads((ROOT / "events" / f"{name}.json").read_text("utf-8"))
    assert canonical_of(raw) == golden


def test_schema_rejects_what_the_validator_rejects() -> None:
    """The raw-event schema and the hot-path validator agree on the structural cases."""
    schema = validator("events.raw")
    agreed = 0
    for example in invalid_raw_examples():
        if example.reason in {ReasonCode.INVALID_JSON, ReasonCode.EVENT_TOO_LARGE}:
            continue  # not expressible as a JSON Schema over one value
        value = json.loads(example.payload)
        if example.reason == ReasonCode.INVALID_TIMESTAMP:
            continue  # a string the schema accepts; the format check happens in code
        assert not schema.is_valid(value), example.name
        agreed += 1
    assert agreed >= 6


@pytest.mark.parametrize("example", invalid_raw_examples(), ids=lambda e: e.name)
def test_invalid_example_is_rejected_with_its_reason(example: InvalidExample) -> None:
    origin = Origin(datetime(2026, 11, 20, 10, tzinfo=UTC), "m-1")
    with pytest.raises(InvalidEvent) as caught:
        normalize_event(decode_raw(example.payload), origin)
    assert caught.value.reason == example.reason
    assert caught.value.errors, "a rejection names at least one field"


def test_examples_are_shipped_with_the_package() -> None:
    assert Path(ROOT).is_dir()
    assert len(list(ROOT.glob("*/*.json"))) >= 20
