"""`portraitist world ...`: the synthetic world (docs/world.md) -- rendered people with known identities."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from portraitist.cli.app import app, console, progress_display, quiet_libraries
from portraitist.cli.options import setting
from portraitist.config import load_config
from portraitist.world.pretrain import PretrainConfig

world_app = typer.Typer(
    help=(
        "A synthetic world of procedurally drawn people whose every attribute is known, so likeness "
        "can be measured exactly and offline (docs/world.md)."
    ),
    no_args_is_help=True,
)
app.add_typer(world_app, name="world")


@world_app.command(
    "render",
    help=(
        "Render a data set: IDENTITIES people x PHOTOS photos each, as DIR/images.npy (N,size,size,3 uint8), "
        "masks.npy, labels.jsonl (person, every attribute, face box, caption, pose), world.json and "
        "preview.png. Pretraining people unless --held-out. The same arguments give the same files.\n\n"
        "Example: portraitist world render --out data/world --identities 1000 --photos 20"
    ),
)
def render_command(
    out: Path = typer.Option(..., "--out", help="Folder to write (created if missing)."),
    identities: int = typer.Option(..., "--identities", min=1, help="How many people."),
    photos: int = typer.Option(..., "--photos", min=1, help="Photos per person, each a different scene."),
    seed: int = typer.Option(0, "--seed", help="World seed: the same seed gives the same people and photos."),
    size: int = typer.Option(
        32, "--size", min=8, help="Image side in px (drawn at >= 128 px, box-filtered down)."
    ),
    held_out: bool = typer.Option(
        False, "--held-out", help="Held-out people (never seen by pretraining) instead of pretraining people."
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Processes drawing (default: one per core); the files are the same."
    ),
) -> None:
    from portraitist.world.dataset import render_dataset

    start = time.perf_counter()
    with progress_display() as progress:
        render_dataset(
            out, identities, photos, seed, size=size, held_out=held_out, progress=progress, workers=workers
        )
    seconds = time.perf_counter() - start
    count = identities * photos
    kind = "held-out" if held_out else "pretraining"
    console.print(
        f"{count} images of {identities} {kind} people in {seconds:.1f} s "
        f"({seconds / count * 1000:.2f} ms per image): {out}/ (preview: {out / 'preview.png'})"
    )


@world_app.command(
    "photos",
    help=(
        "A held-out person's photos as PNG files, like a user's photo folder, for `portraitist prepare DIR`: "
        "DIR/world_*.png, their person masks in DIR/masks/, and DIR/world_person.json (the person's "
        "attributes and, per file, the ground-truth face box and mask).\n\n"
        "Example: portraitist world photos --person 0 --out photos/world0 -n 8"
    ),
)
def photos_command(
    person: int = typer.Option(..., "--person", min=0, help="Which held-out person (0, 1, 2, ...)."),
    out: Path = typer.Option(..., "--out", help="Folder to write (created if missing)."),
    count: int = typer.Option(8, "-n", "--count", min=1, help="How many photos."),
    size: int = typer.Option(256, "--size", min=32, help="Photo side in px."),
    seed: int = typer.Option(0, "--seed", help="World seed (the same seed as the base model's world)."),
) -> None:
    from portraitist.world.dataset import render_photos

    render_photos(out, person, count, size=size, seed=seed)
    console.print(
        f"{count} photos of held-out person {person} in {out}/ (ground truth: {out / 'world_person.json'})"
    )


@world_app.command(
    "pretrain",
    help=(
        "Pretrain the world's base model from random weights (docs/world.md): renders a pool of "
        "pretraining people once (DIR/pool/), trains the 32 px UNet and text encoder on it, and writes "
        "DIR/base/ (the EMA weights, an ordinary model folder for --base), DIR/checkpoint.pt every few "
        "minutes, a sample grid of held-out people in DIR/samples/, and speed, loss and the judges' scores "
        "in DIR/log.jsonl. Stopped or out of budget, run it again with --resume: it goes on to the same "
        "weights an unbroken run reaches.\n\n"
        "Example: portraitist world pretrain --out runs/world --budget-minutes 120\n\n"
        "then:    portraitist world pretrain --out runs/world --budget-minutes 120 --resume\n\n"
        "or, from the committed base in a new run folder:\n\n"
        "         portraitist world pretrain --out runs/world2 --init-from world --budget-minutes 120"
    ),
)
def pretrain_command(
    out: Path = typer.Option(..., "--out", help="Run folder (pool, checkpoint, base, samples, log)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoint."),
    init_from: str | None = setting(PretrainConfig, "init_from"),
    budget_minutes: float | None = setting(PretrainConfig, "budget_minutes"),
    steps: int | None = setting(PretrainConfig, "steps"),
    architecture: str | None = setting(PretrainConfig, "architecture"),
    text_layers: int | None = setting(PretrainConfig, "text_layers"),
    batch: int | None = setting(PretrainConfig, "batch"),
    lr: float | None = setting(PretrainConfig, "lr"),
    text_lr: float | None = setting(PretrainConfig, "text_lr"),
    warmup: int | None = setting(PretrainConfig, "warmup"),
    decay_to: int | None = setting(PretrainConfig, "decay_to"),
    phrase_drop: float | None = setting(PretrainConfig, "phrase_drop"),
    ema_decay: float | None = setting(PretrainConfig, "ema_decay"),
    seed: int | None = setting(PretrainConfig, "seed"),
    identities: int | None = setting(PretrainConfig, "identities"),
    photos: int | None = setting(PretrainConfig, "photos"),
    threads: int | None = setting(PretrainConfig, "threads"),
    device: str | None = setting(PretrainConfig, "device"),
    config: Path | None = typer.Option(
        None, "--config", help="TOML file with a \\[pretrain] table (any setting)."
    ),
) -> None:
    from transformers.utils import logging as transformers_logging

    from portraitist.world.pretrain import pretrain

    settings = load_config(
        PretrainConfig, config, "pretrain", budget_minutes=budget_minutes, steps=steps, batch=batch,
        seed=seed, identities=identities, photos=photos, threads=threads, device=device,
        architecture=architecture, init_from=init_from, lr=lr, warmup=warmup, decay_to=decay_to,
        phrase_drop=phrase_drop, ema_decay=ema_decay, text_layers=text_layers,
        text_lr=text_lr,
    )  # fmt: skip
    quiet_libraries()
    transformers_logging.disable_progress_bar()  # its save/load bars would cut through ours at checkpoints
    with progress_display() as progress:
        result = pretrain(out, settings, resume=resume, progress=progress)
    console.print(
        f"step {result.step}: {result.images} images in {result.seconds / 3600:.2f} h of training "
        f"({result.images_per_second:.0f} images/s in this run); base model: {result.base} "
        f"(--base {result.base}); samples: {out / 'samples'}/"
    )


@world_app.command(
    "judges",
    help=(
        "Train the world's judges on renders of pretraining people and save them in DIR: the attribute "
        "classifier (every attribute readable at 32 px), the face-ID embedding and the is-a-face gate "
        "(judges.safetensors, and judges.json with the metrics and the command that made them). Prints, on "
        "held-out people the training never saw: accuracy per attribute, face-ID verification AUC, and the "
        "gate's pass rates for faces and for noise, blur and other non-faces.\n\n"
        "Example: portraitist world judges --out src/portraitist/world/judges --minutes 10"
    ),
)
def judges_command(
    out: Path = typer.Option(..., "--out", help="Folder to write (created if missing)."),
    minutes: float = typer.Option(
        10.0,
        "--minutes",
        min=0.1,
        help="Training time, rendering included; also sizes the data (200 people a minute).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for the training scenes, batches and weights."),
    steps: int | None = typer.Option(
        None,
        "--steps",
        min=3,
        help="Train this many steps in all, not by the clock (--minutes still sizes the data).",
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="Torch threads (default: the cores the load average leaves idle)."
    ),
) -> None:
    from rich.table import Table

    from portraitist.world.judges import train_judges

    with progress_display() as progress:
        result = train_judges(out, minutes, seed, progress, threads=threads, steps=steps)
    metrics, training = result["metrics"], result["training"]
    held_out = f"{metrics['held_out_images']} renders of {metrics['held_out_people']} held-out people"
    table = Table(title=f"attribute accuracy ({held_out})")
    for column in ("attribute", "clean", "blurred/noisy", "majority word"):
        table.add_column(column, justify="left" if column == "attribute" else "right")
    for name, accuracy in metrics["attribute_accuracy"].items():
        table.add_row(
            name,
            f"{accuracy:.3f}",
            f"{metrics['attribute_accuracy_degraded'][name]:.3f}",
            f"{metrics['attribute_majority_baseline'][name]:.3f}",
        )
    console.print(table)
    console.print(
        f"face-ID verification AUC {metrics['verification_auc']:.3f}; mean cosine: same person "
        f"{metrics['cosine_same_person']:.3f}, other people {metrics['cosine_other_people']:.3f}, "
        f"noise to a person {metrics['cosine_noise_to_person']:.3f} (ungated)"
    )
    gate = Table(title="face gate pass rate")
    gate.add_column("images")
    gate.add_column("passed", justify="right")
    for kind, rate in metrics["gate_pass_rate"].items():
        gate.add_row(kind, f"{rate:.3f}")
    console.print(gate)
    taken = ", ".join(f"{name} {count}" for name, count in training["steps"].items())
    console.print(
        f"{training['people']} people x {training['photos_per_person']} photos rendered in "
        f"{training['render_seconds']:.0f} s, trained in {training['train_seconds']:.0f} s on "
        f"{training['threads']} thread(s) (steps of {training['batch']}: {taken}); saved in {out}/"
    )


@world_app.command(
    "score",
    help=(
        "Judge a world base against the targets a usable base meets: one image for each of N held-out "
        "people's full captions (every attribute and the scene), read by the judges beside real renders "
        "of the same captions. Prints per attribute the share read as prompted (generated, real), and "
        "whether the targets are met: attribute accuracy at least 90% of the real renders', background "
        "and shirt colour 0.95, face gate 0.9.\n\n"
        "Example: portraitist world score --base world --prompts 256 --grid score.png"
    ),
)
def score_command(
    base: str = typer.Option("world", "--base", help="The base: `world` (committed) or a folder."),
    prompts: int = typer.Option(128, "--prompts", min=1, help="Held-out people, one prompt and image each."),
    steps: int = typer.Option(20, "--steps", min=1, help="Euler sampling steps."),
    guidance: float = typer.Option(4.0, "--guidance", min=1.0, help="Classifier-free guidance."),
    seed: int = typer.Option(0, "--seed", help="World seed (the people and scenes) and first sampling seed."),
    grid: Path | None = typer.Option(
        None, "--grid", help="Also save a PNG: real renders (top two rows) above the generated images."
    ),
) -> None:
    from rich.table import Table

    from portraitist.world.base_score import score_base

    quiet_libraries()
    with progress_display() as progress:
        score = score_base(base, prompts, seed, steps, guidance, grid=grid, progress=progress)
    table = Table(title=f"judged as prompted ({score.prompts} held-out prompts)")
    for column in ("attribute", "generated", "real renders"):
        table.add_column(column, justify="left" if column == "attribute" else "right")
    for name, value in score.generated.items():
        table.add_row(name, f"{value:.3f}", f"{score.real[name]:.3f}")
    table.add_row("face gate", f"{score.face_rate:.3f}", f"{score.real_face_rate:.3f}")
    console.print(table)
    targets = Table(title="targets of a usable base")
    for column in ("target", "value", "needs", "met"):
        targets.add_column(column, justify="left" if column == "target" else "right")
    for name, value, threshold, met in score.targets():
        targets.add_row(name, f"{value:.3f}", f">= {threshold:g}", "yes" if met else "[red]no[/]")
    console.print(targets)
    if grid is not None:
        console.print(f"grid: {grid}")
