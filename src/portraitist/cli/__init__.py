"""The `portraitist` command: one typer app, one module per command (group)."""

from __future__ import annotations

import sys

from portraitist.cli.app import app, console
from portraitist.errors import PortraitistError

# Each module registers its commands on `app` when imported.
from portraitist.cli import prepare  # noqa: E402,F401  (import registers commands)
from portraitist.cli import rank, upscale  # noqa: E402,F401
from portraitist.cli import export, train  # noqa: E402,F401
from portraitist.cli import generate, swap  # noqa: E402,F401
from portraitist.cli import bench, demo, evaluate, run, serve  # noqa: E402,F401
from portraitist.cli import world  # noqa: E402,F401


def main() -> None:
    """Entry point: user errors print as one red message and exit 1, without a traceback."""
    try:
        app()
    except PortraitistError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
