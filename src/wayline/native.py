"""The per-event modules compiled to C (mypyc), used when they match the sources exactly.

The pure-Python modules are the reference: the compiled ones are the same source, built by
``make native`` (``native/build.py``, which needs mypyc and a C compiler) into
``{sys.prefix}/wayline-native`` with a manifest of the sources' hashes. ``activate`` — called
once by the command line before it imports anything else of Wayline — puts them in front of
the sources only when every hashed source is the one they were built from and none of them is
imported yet; otherwise the reference runs. Either way it says which, once.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

# Compiled together (one group): the fold, the segment engine, normalization, the runtime loop.
MODULES = (
    "wayline.profiles.state",
    "wayline.profiles.view",
    "wayline.profiles.identity",
    "wayline.segments.engine",
    "wayline.segments.membership",
    "wayline.segments.subject",
    "wayline.segments.triggers",
    "wayline.segments.compiler",
    "wayline.schemas.normalize",
    "wayline.schemas.canonical",
    "wayline.schemas.timestamps",
    "wayline.schemas.codec",
    "wayline.streams.profile",
    "wayline.streams.identity",
    "wayline.streams.validate",
    "wayline.streams.task",
    "wayline.streams.store",
    "wayline.streams.parking",
    "wayline.streams.timers",
    "wayline.streams.dedupe",
    "wayline.streams.changelog",
    "wayline.streams.worker",
    "wayline.streams.outbox",
    "wayline.streams.clients",
    "wayline.streams.envelope",
)
MANIFEST = "manifest.json"
PACKAGE = Path(__file__).resolve().parent


def native_dir() -> Path:
    return Path(sys.prefix) / "wayline-native"


def source_of(module: str) -> Path:
    """The source file of a module of this package (without importing it)."""
    return PACKAGE.joinpath(*module.split(".")[1:]).with_suffix(".py")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sources() -> dict[str, str]:
    """Each compiled module's source hash, as a build of these sources records it."""
    return {module: digest(source_of(module)) for module in MODULES}


class _Finder(MetaPathFinder):
    def __init__(self, libraries: dict[str, Path]) -> None:
        self.libraries = libraries

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        library = self.libraries.get(fullname)
        if library is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(library))
        return importlib.util.spec_from_file_location(fullname, library, loader=loader)


_state: dict[str, str] = {}


def activate(enabled: bool = True, where: Path | None = None) -> str:
    """Use the compiled modules if they are current; ``"native"`` or why the reference runs
    (``describe`` says it for the log). Idempotent: the first answer stands."""
    if "mode" in _state:
        return _state["mode"]
    mode = _choose(enabled, where or native_dir())
    _state["mode"] = mode
    return mode


def describe() -> str:
    """One line for the start-up log: which per-event core runs, and why."""
    found = mode()
    if found == "native":
        return f"per-event core: compiled ({len(MODULES)} modules, {native_dir()})"
    return f"per-event core: pure-Python reference ({found})"


def mode() -> str:
    """``"native"``, or why the reference runs (``"not activated"`` before ``activate``)."""
    return _state.get("mode", "not activated")


def _choose(enabled: bool, where: Path) -> str:
    if not enabled:
        return "WAYLINE_NATIVE=0"
    try:
        built = json.loads((where / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return "not built: `make native` builds it"
    if built.get("python") != sys.implementation.cache_tag:
        return f"built for {built.get('python')}, not {sys.implementation.cache_tag}"
    recorded = built.get("sources") or {}
    changed = [m for m, h in sources().items() if recorded.get(m) != h]
    if changed:
        return f"stale: {changed[0]} changed since the build; `make native` rebuilds it"
    loaded = [m for m in MODULES if m in sys.modules]
    if loaded:
        return f"{loaded[0]} was imported before activation"
    libraries = {m: _library(where, m) for m in MODULES}
    missing = [m for m, path in libraries.items() if path is None]
    if missing:
        return f"no compiled {missing[0]} in {where}"
    sys.path.append(str(where))  # the group's shared library is a top-level module
    sys.meta_path.insert(0, _Finder({m: p for m, p in libraries.items() if p is not None}))
    return "native"


def _library(where: Path, module: str) -> Path | None:
    folder = where.joinpath(*module.split(".")[:-1])
    found = sorted(folder.glob(f"{module.rsplit('.', 1)[1]}.*.so"))
    return found[0] if found else None
