"""The ``wayline`` command: choose the per-event core, then run the command line.

The compiled modules (``wayline.native``) can only take the place of the sources before any of
them is imported, so this runs first; ``WAYLINE_NATIVE=0`` keeps the pure-Python reference.
"""

from __future__ import annotations

import os


def main() -> None:
    from wayline import native

    native.activate(os.environ.get("WAYLINE_NATIVE", "1") != "0")
    from wayline.cli import main as run

    run()
