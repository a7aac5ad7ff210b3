"""The `portraitist` command: one typer app, one module per command (group)."""

from __future__ import annotations

import sys

# the synthetic world plugs in as a model family and the named base `--base world`
import portraitist.world.plugin

# Each module registers its commands on `app` when imported.
from portraitist.cli import (
    bench,
    demo,
    evaluate,
    export,
    generate,
    prepare,
    rank,
    run,
    serve,
    swap,
    train,
    upscale,
    world,
)
from portraitist.cli.app import app, console
from portraitist.errors import PortraitistError

# `portraitist --help` shows the commands in panels, in the order a new user meets them
# (typer would list them in the order the modules above happen to register them).
PANELS: dict[str, list[str]] = {
    "Start here": ["demo", "run"],
    "One stage at a time": ["prepare", "train", "generate", "rank", "upscale", "swap", "export"],
    "Measure": ["evaluate", "bench", "world"],
    "Serve many users": ["serve", "worker", "bot"],
}


def _arrange() -> None:
    order = [name for names in PANELS.values() for name in names]
    panel = {name: title for title, names in PANELS.items() for name in names}
    for infos in (app.registered_commands, app.registered_groups):
        for info in infos:
            info.rich_help_panel = panel[info.name]  # a new command must be given a panel here
        infos.sort(key=lambda info: order.index(info.name))


_arrange()


def main() -> None:
    """Entry point: user errors print as one red message and exit 1, without a traceback."""
    try:
        app()
    except PortraitistError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
