"""`portraitist demo`: the whole pipeline offline, on sample photos and tiny models.

The demo is a list of steps over one workspace (DEMO_STEPS), each calling a stage with settings
that need no download and run in seconds on a CPU; a new stage adds its step there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import RenderableType

from portraitist.cli.app import app, console, progress_display, quiet_libraries
from portraitist.cli.prepare import summary_table
from portraitist.progress import ProgressCallback
from portraitist.samples import no_person, two_people, write_sample_photos
from portraitist.workspace import Workspace

DEFAULT_WORKSPACE = Path("portraitist-demo")


@dataclass(frozen=True)
class DemoStep:
    """One stage of the demo: what it does, a function that runs it and says in a line what it
    made, and optionally a fuller report read back from the workspace afterwards."""

    name: str
    explains: str
    run: Callable[[Workspace, ProgressCallback], str]
    report: Callable[[Workspace], RenderableType] | None = None


def write_demo_photos(folder: Path) -> list[Path]:
    """Six photos of the astronaut (the user) and two that prepare must reject."""
    paths = write_sample_photos(folder)
    for name, image in (("two_people.jpg", two_people()), ("no_person.jpg", no_person())):
        image.save(folder / name, quality=92)
        paths.append(folder / name)
    return paths


def _prepare_step(workspace: Workspace, progress: ProgressCallback) -> str:
    from portraitist.prepare.config import PrepareConfig
    from portraitist.prepare.stage import prepare

    photos = write_demo_photos(workspace.root / "sample-photos")
    result = prepare(workspace, photos, PrepareConfig(clip_model="tiny"), progress)
    return (
        f"{len(result.kept)} of {len(result.manifest.photos)} photos kept, class word "
        f"'{result.manifest.class_token}' -> {workspace.relative(workspace.manifest_path)}"
    )


def _train_step(workspace: Workspace, progress: ProgressCallback) -> str:
    from portraitist.train.config import TrainConfig
    from portraitist.train.stage import train

    result = train(workspace, TrainConfig(steps=DEMO_TRAIN_STEPS, device="cpu"), base="tiny", progress=progress)
    return f"{result.recipe} recipe, {result.steps_done} steps on the tiny model -> {workspace.relative(result.model_dir)}"


def _generate_step(workspace: Workspace, progress: ProgressCallback) -> str:
    from portraitist.generate.config import GenerateConfig
    from portraitist.generate.stage import generate

    result = generate(workspace, GenerateConfig(n=4, steps=4, device="cpu"), progress)
    return f"{len(result.images)} images for '{result.prompt.text}' -> outputs/images/"


def _rank_step(workspace: Workspace, progress: ProgressCallback) -> str:
    from portraitist.rank.config import RankConfig
    from portraitist.rank.stage import rank

    # random aesthetic head and LPIPS backbone: their real weights come from the hub
    config = RankConfig(k=2, clip_model="tiny", aesthetic_weights="random", lpips_backbone="random")
    result = rank(workspace, config, progress)
    return f"{len(result.images)} images scored by {', '.join(result.order)}; the best 2 -> outputs/selected/"


def _upscale_step(workspace: Workspace, progress: ProgressCallback) -> str:
    from portraitist.upscale.config import UpscaleConfig
    from portraitist.upscale.stage import upscale

    # the compact Real-ESRGAN: the photo model takes minutes per image on a CPU
    result = upscale(workspace, UpscaleConfig(model="realesr-animevideov3"), progress)
    return f"{len(result.files)} images upscaled x{result.scale} with {result.model}"


def _report_step(workspace: Workspace, progress: ProgressCallback) -> str:
    from portraitist.report import write_report

    return f"-> {workspace.relative(write_report(workspace, title='portraitist demo'))}"


DEMO_TRAIN_STEPS = 4

DEMO_STEPS: list[DemoStep] = [
    DemoStep(
        "prepare",
        "sample photos -> face crops, masks and captions (tiny random CLIP picks the class word)",
        _prepare_step,
        report=lambda workspace: summary_table(workspace.read_manifest()),
    ),
    DemoStep("train", "the thesis's staged recipe on a tiny random Stable Diffusion, a few steps", _train_step),
    DemoStep("generate", "Euler sampling with the new tokens (random weights draw noise)", _generate_step),
    DemoStep("rank", "score the images against the crops and keep the best", _rank_step),
    DemoStep("upscale", "Real-ESRGAN x2 of the selected images", _upscale_step),
    DemoStep("report", "an HTML page of every stage's results", _report_step),
]


@app.command(
    "demo",
    help=(
        "Run the pipeline offline on sample photos (scikit-image's astronaut, plus a photo with two "
        "people and one with none) with tiny random models, on the CPU. Shows what each stage does and "
        "leaves a workspace to inspect. Random weights know no faces: the images it generates are noise."
    ),
)
def demo_command(
    workspace: Path = typer.Option(
        DEFAULT_WORKSPACE, "--workspace", "-w", help="Folder for the demo's photos and results."
    ),
) -> None:
    quiet_libraries()
    ws = Workspace(workspace)
    done = []
    for number, step in enumerate(DEMO_STEPS, start=1):
        console.rule(f"[bold]{number}/{len(DEMO_STEPS)} {step.name}[/]: {step.explains}")
        with progress_display() as progress:
            outcome = step.run(ws, progress)
        if step.report is not None:
            console.print(step.report(ws))
        done.append((step.name, outcome))
    console.rule("[bold]demo finished")
    for name, outcome in done:
        console.print(f"  [green]{name}[/]: {outcome}")
    console.print(f"Workspace: [bold]{ws.root}[/]")
