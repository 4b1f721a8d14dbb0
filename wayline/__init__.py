"""Wayline: a Kafka-native customer data platform."""

from pathlib import Path

__version__ = "0.1.0"

# The subpackages live in top-level folders (streams/, profiles/, segments/, connectors/,
# schemas/) that the installed package maps to wayline.streams, ... When Python runs from the
# source root (``python -m bench.runtime``), this folder is imported instead of the installed
# package; searching the root as well keeps ``wayline.streams`` and the others importable.
_ROOT = Path(__file__).parent.parent
if (_ROOT / "streams" / "worker.py").is_file() and not (Path(__file__).parent / "streams").is_dir():
    __path__.append(str(_ROOT))
