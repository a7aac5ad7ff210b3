"""`portraitist demo`: the whole pipeline offline, on sample photos and tiny models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from portraitist.cli.app import app, console, progress_display, quiet_libraries
from portraitist.cli.prepare import summary_table
from portraitist.samples import no_person, two_people, write_sample_photos
from portraitist.workspace import Workspace

if TYPE_CHECKING:
    from portraitist.pipeline import RunConfig

DEFAULT_WORKSPACE = Path("portraitist-demo")

# What each stage does in the demo, shown before it runs.
EXPLAINS = (
    ("prepare", "sample photos -> face crops, person masks and captions (mediapipe's real detectors)"),
    ("train", "the thesis's staged recipe (text encoder + UNet, then UNet) on a tiny random Stable Diffusion"),
    ("generate", "Euler sampling of two styles with the learned tokens"),
    ("rank", "identity gate (dlib's real face recognition), then aesthetic; the best 2 kept"),
    ("upscale", "Real-ESRGAN x2 (the compact model: the photo model takes minutes per image on a CPU)"),
    ("report", "outputs/report.html: every stage's results on one page"),
)


def write_demo_photos(folder: Path) -> list[Path]:
    """Six photos of the astronaut (the user) and two that prepare must reject."""
    paths = write_sample_photos(folder)
    for name, image in (("two_people.jpg", two_people()), ("no_person.jpg", no_person())):
        image.save(folder / name, quality=92)
        paths.append(folder / name)
    return paths


def demo_config() -> RunConfig:
    """Offline stand-ins for every hub model: tiny random SD and CLIP, random scorer heads.

    Imported lazily so that `--help` stays fast."""
    from portraitist.generate.config import GenerateConfig
    from portraitist.pipeline import RunConfig
    from portraitist.prepare.config import PrepareConfig
    from portraitist.rank.config import RankConfig
    from portraitist.upscale.config import UpscaleConfig

    return RunConfig(
        base="tiny",
        steps=8,
        styles=["photo", "oil-painting"],
        n=4,
        k=2,
        prepare=PrepareConfig(clip_model="tiny"),
        generate=GenerateConfig(steps=8),
        rank=RankConfig(clip_model="tiny", aesthetic_weights="random", lpips_backbone="random"),
        upscale=UpscaleConfig(model="realesr-animevideov3"),
    )


@app.command(
    "demo",
    help=(
        "Run the whole pipeline offline on sample photos (scikit-image's astronaut, plus a photo with two "
        "people and one with none) with tiny random models, on the CPU, in a few minutes; then open the "
        "report it writes. Random weights know no faces, so the portraits are noise; the photo filter, "
        "crops, masks, identity scorer and upscaler are real models doing real work."
    ),
)
def demo_command(
    workspace: Path = typer.Option(DEFAULT_WORKSPACE, "--workspace", "-w", help="Folder for the demo's photos and results."),
) -> None:
    quiet_libraries()
    from portraitist.pipeline import run_pipeline

    ws = Workspace(workspace)
    (ws.root / "run.json").unlink(missing_ok=True)  # the demo always runs every stage
    photos = write_demo_photos(ws.root / "sample-photos")
    console.rule("[bold]portraitist demo")
    for number, (name, explains) in enumerate(EXPLAINS, start=1):
        console.print(f"  {number}. [bold]{name}[/]: {explains}")
    with progress_display() as progress:
        result = run_pipeline(ws, photos, demo_config(), progress)
    console.print(summary_table(ws.read_manifest()))
    console.rule("[bold]demo finished")
    console.print(
        "The base model has random weights, so the portraits are noise by design; with a real model "
        "(--base ./sd15) the same commands make portraits of the person in the photos."
    )
    console.print(f"{len(result.selected)} portraits in {ws.outputs_dir / 'selected'}")
    console.print(f"Workspace: [bold]{ws.root}[/]")
    console.print(f"Report:    [bold]{result.report}[/]")
