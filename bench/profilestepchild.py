"""The child of ``bench.profilestep``: chooses the per-event core before anything imports
``wayline`` (the compiled modules can only take the place of modules not imported yet)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.pipeline import _activate

CORE = _activate()

from bench.profilestep import replay  # noqa: E402

if __name__ == "__main__":
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else None
    found = replay(Path(sys.argv[1]), int(sys.argv[2]), limit)
    print(json.dumps({"core": CORE} | found))
