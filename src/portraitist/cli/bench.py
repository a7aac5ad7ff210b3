"""`portraitist bench ...`: our commands against the reference, side by side (benchmarks/).

The benchmark scripts live in the source checkout's `benchmarks/` folder, beside the reference
they time; this command finds and runs them with the current Python.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

from portraitist.cli.app import app
from portraitist.errors import PortraitistError

bench_app = typer.Typer(
    help="Time our training/generation against diffusers' reference on the same model (see benchmarks/).",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")


def benchmarks_dir() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "benchmarks" / "reference" / "reference_train.py").exists():
            return parent / "benchmarks"
    raise PortraitistError(
        "The benchmarks live in portraitist's source checkout (benchmarks/); clone the repository "
        "and run `bash scripts/setup.sh` there to use `portraitist bench`."
    )


def run_script(name: str, args: list[str]) -> None:
    script = benchmarks_dir() / name
    env = dict(os.environ, PYTHONPATH=str(script.parent))
    code = subprocess.call([sys.executable, str(script), *args], env=env)
    if code:
        raise typer.Exit(code)


@bench_app.command(
    "run",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    help="Seconds per stage of `portraitist run` on the sample photos (benchmarks/bench_run.py --help).",
)
def bench_run(ctx: typer.Context) -> None:
    run_script("bench_run.py", ctx.args)


@bench_app.command(
    "train",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    help=(
        "Steps/s of `portraitist train` against diffusers' train_dreambooth.py "
        "(benchmarks/bench_train.py --help)."
    ),
)
def bench_train(ctx: typer.Context) -> None:
    run_script("bench_train.py", ctx.args)


@bench_app.command(
    "generate",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    help=(
        "Images/s of our sampler against diffusers' StableDiffusionPipeline "
        "(benchmarks/bench_generate.py --help)."
    ),
)
def bench_generate(ctx: typer.Context) -> None:
    run_script("bench_generate.py", ctx.args)
