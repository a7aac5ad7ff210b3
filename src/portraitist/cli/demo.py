"""`portraitist demo`: the whole pipeline offline, on a person of the synthetic world (docs/world.md).

No real Stable Diffusion can be downloaded here, and a random-weight one draws noise, so the
demo runs where likeness can be seen and measured: the synthetic world (docs/world.md). Its
base model was pretrained in this repository on rendered people; the demo's person is a
held-out one it never saw, photographed by the renderer, which also knows each face box and
person mask exactly. The photos go through the same stages as a user's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from portraitist.cli.app import app, console, progress_display, quiet_libraries
from portraitist.cli.prepare import summary_table
from portraitist.workspace import Workspace

if TYPE_CHECKING:
    from portraitist.run_config import RunConfig

DEFAULT_WORKSPACE = Path("portraitist-demo")
PHOTOS = 8
TRAIN_STEPS = 400
IMAGES = 16  # generated in all, shared among the prompts
SAMPLING_STEPS = 30
PHOTO_SIZE = 256  # as a user's photos are larger than the model's images; prepare crops them down
CROP_SIZE = 128  # the renderer's drawing size: the judges' 32 px box filter divides it
# The world's head box spans the head oval (mediapipe's starts at the brows): 0.6 face boxes
# each side frame head and shoulders as the base model's 32 px pictures are.
MARGIN = 0.6
# The staged recipe's own rates are SD 1.5's (2e-6 for the networks); the world's 5M-parameter base,
# pretrained at 5e-4, barely moves at them: 0 of 16 images recognised as the person after 400 steps.
# x100, the factor `evaluate --world --sweep` chose for staged (docs/world-eval/sweep-chosen.json):
# 16 of 16 (measured on the base at step 4000 of its pretraining).
WORLD_LEARNING_RATES = {"tokens": 5e-3, "text_encoder": 2e-4, "unet": 2e-4}
# The world's model is small (16x16x12 latents, batch 1): a second torch thread mostly waits for
# the first, and on a shared, busy CPU it waits for a core. On a busy 2-core machine one
# thread trains several times faster than two.
THREADS = 1
# Scenes the person's photos do not all show; phrased as the world's captions are.
SCENES: tuple[dict[str, str], ...] = (
    {"background": "red"},
    {"shirt": "green"},
    {"expression": "smiling", "pattern": "stripes", "background": "blue"},
    {"shirt": "yellow", "background": "purple"},
)

# What each stage does in the demo, shown before it runs.
EXPLAINS = (
    (
        "photos",
        "a held-out person of the synthetic world, rendered in 8 scenes at 256 px, with ground-truth boxes",
    ),
    ("prepare", "face crops, person masks and captions from the given boxes (prepare --boxes)"),
    ("train", "the thesis's staged recipe on the world's base model (pretrained here, 32 px)"),
    ("generate", "Euler sampling of prompts in scenes the photos do not all show"),
    (
        "rank",
        (
            "by likeness: the world judges' face gate and face-ID; the 4 most alike kept (CLIP, LPIPS and "
            "aesthetic run on random stand-ins here: shown, meaningless)"
        ),
    ),
    ("upscale", "Real-ESRGAN x4 (the compact model): 32 px to 128 px"),
    ("report", "outputs/report.html: every stage's results on one page"),
)


def demo_prompts() -> list[str]:
    from portraitist.world.render import scene_prompt

    return [scene_prompt("{me}", **scene) for scene in SCENES]


def demo_config(
    base: str, class_word: str, steps: int = TRAIN_STEPS, n: int = IMAGES, k: int = 4
) -> RunConfig:
    """The whole run in the world: given boxes, world judges for identity, offline stand-ins for
    the CLIP-based scorers (a tiny random CLIP: their values mean nothing here).

    Imported lazily so that `--help` stays fast."""
    from portraitist.generate.config import GenerateConfig
    from portraitist.prepare.config import PrepareConfig
    from portraitist.rank.config import RankConfig
    from portraitist.run_config import RunConfig
    from portraitist.train.config import TrainConfig
    from portraitist.upscale.config import UpscaleConfig

    return RunConfig(
        base=base,
        steps=steps,
        styles=[],
        prompts=demo_prompts(),
        n=n,
        k=k,
        scale=4,
        prepare=PrepareConfig(resolution=CROP_SIZE, margin=MARGIN, context="photo_of", class_word=class_word),
        train=TrainConfig(learning_rates=WORLD_LEARNING_RATES),
        generate=GenerateConfig(steps=SAMPLING_STEPS, batch_size=n),
        rank=RankConfig(
            by=["identity"],  # the other scorers' models are random stand-ins offline
            identity_model="world",
            clip_model="tiny",
            aesthetic_weights="random",
            lpips_backbone="random",
        ),
        upscale=UpscaleConfig(model="realesr-animevideov3"),
    )


def write_demo_photos(folder: Path, person: int) -> tuple[list[Path], Path, str]:
    """The held-out person's photos, their boxes file and the class word their sex gives."""
    from portraitist.world.dataset import render_photos

    render_photos(folder, person, PHOTOS, size=PHOTO_SIZE)
    boxes = folder / "world_person.json"
    truth = json.loads(boxes.read_text())
    return [folder / photo["file"] for photo in truth["photos"]], boxes, truth["attributes"]["sex"]


def require_world_base(base: str) -> None:
    """A missing world base is said before any work starts."""
    from portraitist.world.family import WORLD, world_base_dir

    if base == WORLD:
        world_base_dir()


@app.command(
    "demo",
    help=(
        "Run the whole pipeline offline, on the CPU, in a few minutes, in the synthetic world "
        "(docs/world.md): a held-out rendered person's 8 photos (with their ground-truth face boxes) "
        "-> prepare -> train on the world's base model, pretrained in this repository -> generate prompted "
        "scenes -> rank by the world's face-ID judges -> upscale -> report. Then open the report it writes. "
        "The people are cartoons drawn at 32 px, not photos: the world exists so that likeness can be "
        "checked offline."
    ),
)
def demo_command(
    workspace: Path = typer.Option(
        DEFAULT_WORKSPACE, "--workspace", "-w", help="Folder for the demo's photos and results."
    ),
    base: str = typer.Option(
        "world", "--base", help="The world's base model: `world` (committed) or a folder."
    ),
    person: int = typer.Option(
        0, "--person", min=0, help="Which held-out person of the world to personalise."
    ),
    steps: int = typer.Option(TRAIN_STEPS, "--steps", min=1, help="Training steps."),
    n: int = typer.Option(
        IMAGES, "--num-images", "-n", min=1, help="Images to generate, shared among the prompts."
    ),
) -> None:
    quiet_libraries()
    import torch

    from portraitist.pipeline import run_pipeline
    from portraitist.world.metrics import scenes_followed

    require_world_base(base)
    torch.set_num_threads(THREADS)
    ws = Workspace(workspace)
    (ws.root / "run.json").unlink(missing_ok=True)  # the demo always runs every stage
    photos, boxes, sex = write_demo_photos(ws.root / "world-photos", person)
    config = demo_config(base, sex, steps=steps, n=n)
    console.rule("[bold]portraitist demo: the synthetic world")
    for number, (name, explains) in enumerate(EXPLAINS, start=1):
        console.print(f"  {number}. [bold]{name}[/]: {explains}")
    with progress_display() as progress:
        result = run_pipeline(ws, photos, config, progress, boxes)
    console.print(summary_table(ws.read_manifest()))
    console.rule("[bold]demo finished")
    stages: dict[str, float] = {}
    for name, value in result.seconds.items():  # the generate steps (one per prompt) as one stage
        stages[name.split(":")[0]] = stages.get(name.split(":")[0], 0.0) + value
    seconds = ", ".join(f"{name} {value:.0f} s" for name, value in stages.items())
    scores = json.loads((ws.outputs_dir / "scores.json").read_text())["images"]
    alike = sum(image["passes_identity"] for image in scores)
    followed, made = scenes_followed(ws, SCENES)
    console.print(
        f"What this shows: every stage of portraitist on a base model pretrained in this repository on a "
        f"synthetic world of rendered people (docs/world.md; how far its pretraining got: the README in "
        f"src/portraitist/world/base/), personalised to held-out person {person} from {len(photos)} photos. "
        "The world's judges measure what a real run can only eyeball:"
    )
    console.print(
        f"  {alike} of {made} generated images are recognised as that person (a face, whose face-ID cosine "
        "to the photos is above halfway between the judges' typical same-person and different-person "
        "cosines);"
    )
    console.print(
        f"  {followed} of {made} show the scene their prompt asked for "
        "(background, pattern, shirt, expression)."
    )
    console.print(
        "The pictures are 32 px cartoons upscaled x4, not photos; with a real model (--base ./sd15), "
        "`portraitist run` does the same on your own photos."
    )
    console.print(f"Seconds: {seconds}")
    console.print(f"{len(result.selected)} portraits in {ws.outputs_dir / 'selected'}")
    console.print(f"Workspace: [bold]{ws.root}[/]")
    console.print(f"Report:    [bold]{result.report}[/]")
