"""Layering rules from the design: pure packages do no I/O and read no clock.

``profiles/`` and ``segments/`` are pure functions of their inputs (time is passed in), so
replays are deterministic and property tests can run them in any order. ``schemas/`` knows no
broker, HTTP or database client.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "wayline"
CLIENTS = {
    "confluent_kafka",
    "aiokafka",
    "fastapi",
    "uvicorn",
    "httpx",
    "clickhouse_driver",
    "chdb",
}
IO = CLIENTS | {"socket", "requests", "urllib", "subprocess", "rocksdict", "time", "os"}
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic"}

RULES = {"profiles": IO, "segments": IO, "schemas": CLIENTS}


def imported_roots(tree: ast.AST) -> set[str]:
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def clock_reads(tree: ast.AST) -> list[int]:
    """Lines calling ``datetime.now()``, ``date.today()``, ``time.time()`` and the like."""
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in CLOCK_CALLS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in {"datetime", "date", "time"}
        ):
            lines.append(node.lineno)
    return lines


def modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).glob("**/*.py"))


@pytest.mark.parametrize("folder", sorted(RULES))
def test_package_imports_no_forbidden_module(folder: str) -> None:
    assert modules(folder), f"{folder}/ has no modules"
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            imported_roots(ast.parse(path.read_text())) & RULES[folder]
        )
        for path in modules(folder)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("folder", ["profiles", "segments"])
def test_pure_package_reads_no_clock(folder: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): clock_reads(ast.parse(path.read_text()))
        for path in modules(folder)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_checks_catch_a_violation() -> None:
    tree = ast.parse("import confluent_kafka\nfrom datetime import datetime\nx = datetime.now()\n")
    assert imported_roots(tree) & IO == {"confluent_kafka"}
    assert clock_reads(tree) == [3]


def test_the_layer_contracts_name_every_shell_module() -> None:
    """import-linter forbids the core and the runtime to import the shell by name: a module
    added to wayline/ must join those lists, or the contracts would not cover it."""
    shell = {f"wayline.{path.stem}" for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    forbidden = [
        set(c["forbidden_modules"]) for c in contracts if "wayline.cli" in c["forbidden_modules"]
    ]
    sources = [set(c["source_modules"]) for c in contracts if "wayline.cli" in c["source_modules"]]
    assert len(forbidden) == 2
    assert len(sources) == 1
    assert all(shell <= names for names in forbidden + sources)
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == {"streams", "profiles", "segments", "connectors", "schemas", "config"}
