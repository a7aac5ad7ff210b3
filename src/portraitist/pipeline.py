"""`portraitist run`: prepare -> train -> generate -> rank -> upscale, resumable.

WS/run.json records each step's settings (run_state.py): rerunning the same command after a crash,
a kill or a cancelled service job continues from the last finished step (training from its
checkpoint); rerunning with changed settings redoes the steps they affect and every later stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portraitist.errors import PortraitistError
from portraitist.generate.config import GenerateConfig
from portraitist.generate.outputs import OutputFolder
from portraitist.generate.stage import generate
from portraitist.prepare.stage import prepare
from portraitist.progress import ProgressCallback, ProgressEvent, no_progress
from portraitist.rank.stage import rank
from portraitist.report import write_report
from portraitist.run_config import RunConfig
from portraitist.run_state import Plan, RunState, plan_steps
from portraitist.train.stage import TrainResult, train
from portraitist.upscale.stage import upscale
from portraitist.workspace import Workspace


@dataclass(frozen=True)
class RunResult:
    workspace: Workspace
    selected: list[Path]
    report: Path
    plan: Plan  # which steps this call ran, skipped or ran again, and why
    seconds: dict[str, float]  # wall-clock seconds of each step this call ran (models loading included)
    training_resumed_from: int | None  # the checkpoint step, when this run continued a training


def read_done(workspace: Workspace) -> list[str]:
    """Stages (and generate's styles, as `generate:<style>`) this workspace has finished."""
    return list(RunState.read(workspace).done)


@dataclass(frozen=True)
class _Step:
    name: str
    settings: dict[str, Any]  # what the step's output depends on
    work: Callable[[bool], list[Path] | None]  # (start over?) -> the files it made that a rerun replaces


def _steps(
    workspace: Workspace,
    photos: list[Path],
    config: RunConfig,
    progress: ProgressCallback,
    boxes: Path | None,
    trained: list[TrainResult],
) -> list[_Step]:
    """Every step of the job in run order, each with the settings its output depends on."""
    configs = config.stage_configs()

    def prepare_step(_: bool) -> None:
        prepare(workspace, photos, configs["prepare"], progress, boxes)

    def train_step(fresh: bool) -> None:
        # a finished or outdated training is redone from step 0; an interrupted one continues
        settings = configs["train"].model_copy(update={"restart": fresh})
        trained.append(train(workspace, settings, progress))

    def generate_step(request: GenerateConfig) -> Callable[[bool], list[Path]]:
        return lambda _: generate(workspace, request, progress).images

    def rank_step(_: bool) -> None:
        rank(workspace, configs["rank"], progress)

    def upscale_step(_: bool) -> None:
        upscale(workspace, configs["upscale"], progress)

    requests = [(name, configs["generate"].model_copy(update=s)) for name, s in config.generation_requests()]
    return [
        _Step("prepare", configs["prepare"].output_settings(), prepare_step),
        _Step("train", configs["train"].output_settings(), train_step),
        *(_Step(name, request.output_settings(), generate_step(request)) for name, request in requests),
        _Step("rank", configs["rank"].output_settings(), rank_step),
        _Step("upscale", configs["upscale"].output_settings(), upscale_step),
    ]


def run_pipeline(
    workspace: Workspace,
    photos: Sequence[Path] | None,
    config: RunConfig,
    progress: ProgressCallback = no_progress,
    boxes: Path | None = None,
) -> RunResult:
    """Run every step not yet finished with these settings; an exception from `progress` stops the run there.

    boxes: the photos' face boxes and masks for prepare (`prepare --boxes`, prepare/boxes.py).
    """
    state = RunState.read(workspace)
    trained: list[TrainResult] = []
    steps = _steps(workspace, _photos(workspace, photos, state), config, progress, boxes, trained)
    plan = plan_steps(state, [(step.name, step.settings) for step in steps])
    _forget(workspace, state, plan)
    ran: dict[str, float] = {}
    for step in steps:
        if step.name not in plan.run:
            continue
        state.settings[step.name] = step.settings
        state.write(workspace)
        start = time.perf_counter()
        made = step.work(step.name not in plan.continued)
        ran[step.name] = state.seconds[step.name] = time.perf_counter() - start
        if made is not None:
            state.files[step.name] = [workspace.relative(path) for path in made]
        state.done.append(step.name)
        state.write(workspace)
        progress(ProgressEvent("run", len(state.done), len(steps), f"{step.name} done"))
    report = write_report(workspace)
    selected_dir = workspace.outputs_dir / "selected"
    selected = sorted(selected_dir.glob("*.png")) if selected_dir.exists() else []
    resumed = trained[0].resumed_from if trained else None
    return RunResult(workspace, selected, report, plan, ran, resumed)


def _photos(workspace: Workspace, photos: Sequence[Path] | None, state: RunState) -> list[Path]:
    """The photos prepare reads: those given, else the copies an earlier prepare kept in WS/photos/."""
    if photos:
        return list(photos)
    if workspace.photos_dir.is_dir() and any(workspace.photos_dir.iterdir()):
        return [workspace.photos_dir]
    if "prepare" not in state.done:
        raise PortraitistError(
            f"{workspace.root} has no prepared dataset yet: give the photos, "
            f"e.g. `portraitist run ~/Pictures/me/*.jpg --workspace {workspace.root} --base MODEL`."
        )
    return []


def _forget(workspace: Workspace, state: RunState, plan: Plan) -> None:
    """Before anything runs: the steps about to run, or no longer asked for, are no longer done and the
    images they made leave outputs/, so an interrupted rerun cannot leave stale ones to be ranked."""
    forget = plan.dropped + plan.run
    state.done = [name for name in state.done if name not in forget]
    for name in plan.dropped:
        state.settings.pop(name, None)
    outputs = OutputFolder.in_workspace(workspace, "images", "generations.jsonl")
    outputs.remove([file for name in forget for file in state.files.pop(name, [])])
    state.write(workspace)
