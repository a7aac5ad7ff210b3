"""`portraitist world ...`: the synthetic world of issue 9 -- rendered people with known identities."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from portraitist.cli.app import app, console, progress_display

world_app = typer.Typer(
    help=(
        "A synthetic world of procedurally drawn people whose every attribute is known, so likeness "
        "can be measured exactly and offline (issue 9; docs/world.md)."
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
) -> None:
    from portraitist.world.dataset import render_dataset

    start = time.perf_counter()
    with progress_display() as progress:
        render_dataset(out, identities, photos, seed, size=size, held_out=held_out, progress=progress)
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
