"""`portraitist demo`: the whole pipeline offline, on sample photos and tiny models.

The demo is a list of steps over one workspace; each later stage adds its step to DEMO_STEPS.
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


DEMO_STEPS: list[DemoStep] = [
    DemoStep(
        "prepare",
        "sample photos -> face crops, masks and captions (tiny random CLIP picks the class word)",
        _prepare_step,
        report=lambda workspace: summary_table(workspace.read_manifest()),
    ),
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
