"""Build the compiled per-event core: the modules ``wayline.native.MODULES`` through mypyc.

    python native/build.py

The sources are copied to a temporary folder and compiled there as one group; the extension
modules go to ``{sys.prefix}/wayline-native`` with a manifest of the sources' hashes, which
``wayline.native.activate`` checks before it uses them. Without mypyc or a C compiler this says
so and leaves the pure-Python reference in use (the build is optional).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wayline import native


def build(target: Path) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wayline-native-") as tmp:
        work = Path(tmp) / "src"
        shutil.copytree(native.PACKAGE, work / "wayline", ignore=shutil.ignore_patterns("*.so"))
        files = [
            str(native.source_of(m).relative_to(native.PACKAGE.parent)) for m in native.MODULES
        ]
        command = [sys.executable, "-m", "mypyc", *files]
        done = subprocess.run(command, cwd=work, capture_output=True, text=True)
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()[-3:]
            print(f"native: not built ({' / '.join(said)}); the pure-Python reference runs")
            return 0
        if target.exists():
            shutil.rmtree(target)
        for library in work.rglob("*.so"):
            if "build" in library.relative_to(work).parts:
                continue
            destination = target / library.relative_to(work)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(library, destination)
    manifest = {"python": sys.implementation.cache_tag, "sources": native.sources()}
    (target / native.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    took = time.monotonic() - started
    print(f"native: {len(native.MODULES)} modules compiled into {target} in {took:.0f} s")
    return 0


if __name__ == "__main__":
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        print("native: no C compiler; the pure-Python reference runs")
        sys.exit(0)
    sys.exit(build(native.native_dir()))
