"""The typer app every command module registers on, and the terminal progress display."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from portraitist.progress import ProgressCallback, ProgressEvent

app = typer.Typer(
    name="portraitist",
    help=(
        "Portraits of a person from a handful of ordinary photos: prepare a training set, fine-tune "
        "Stable Diffusion on it (the staged recipe of the HSE 2023 thesis), generate in any style.\n\n"
        "Start with `portraitist demo` (offline, CPU, a few minutes), then "
        "`portraitist prepare PHOTOS... --workspace WS`."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)


def quiet_libraries() -> None:
    """Keep the libraries' own lines off the user's terminal: the progress display says what runs.

    mediapipe's C++ logging (glog, TF Lite) reads its level when mediapipe loads, which commands
    do only when a stage runs, after this; transformers and diffusers (imported with the command
    modules) have a level and progress bars ("Loading weights") of their own. Errors still show.
    A hub download keeps its progress bar (huggingface_hub's, not these).
    """
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import diffusers.utils.logging
    import transformers.utils.logging

    for library in (transformers.utils.logging, diffusers.utils.logging):
        library.set_verbosity_error()
        library.disable_progress_bar()
    for name in ("absl", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextmanager
def progress_display() -> Iterator[ProgressCallback]:
    """A rich progress bar per stage, fed by ProgressEvents."""
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[message]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    tasks: dict[str, TaskID] = {}
    with Progress(*columns, console=console, transient=False) as bars:

        def show(event: ProgressEvent) -> None:
            metrics = " ".join(f"{k} {v:.4g}" for k, v in event.metrics.items())
            message = " ".join(s for s in (event.message, metrics) if s)
            if event.stage not in tasks:
                tasks[event.stage] = bars.add_task(event.stage, total=event.total, message=message)
            bars.update(tasks[event.stage], completed=event.step, total=event.total, message=message)

        yield show
