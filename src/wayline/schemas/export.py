"""Write the JSON Schema of every topic to ``schemas/json/`` and the canonical event examples.

Run ``python -m wayline.schemas.export`` after changing a model or normalization; a test fails
when a committed file differs from what the code generates. Review the diff: it is the change
consumers will see.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import JsonSchemaMode

from wayline.schemas.examples import write_canonical_examples
from wayline.schemas.messages import TOPIC_MODELS


def topic_schema(suffix: str) -> dict[str, Any]:
    model = TOPIC_MODELS[suffix]
    mode: JsonSchemaMode = "serialization" if suffix == "events.dlq" else "validation"
    schema = model.model_json_schema(by_alias=True, mode=mode)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://wayline.dev/schemas/{suffix}.json"
    return schema


def render(suffix: str) -> str:
    return json.dumps(topic_schema(suffix), indent=2, sort_keys=True) + "\n"


def main(folder: str | None = None) -> None:
    target = Path(folder) if folder else Path(__file__).resolve().parent / "json"
    target.mkdir(exist_ok=True)
    for suffix in TOPIC_MODELS:
        (target / f"{suffix}.json").write_text(render(suffix), encoding="utf-8")
    print(f"wrote {len(TOPIC_MODELS)} schemas to {target}")
    print(f"wrote {write_canonical_examples()} canonical event examples")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
