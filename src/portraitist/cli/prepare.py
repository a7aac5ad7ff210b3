"""`portraitist prepare PHOTOS... --workspace WS`: photos in, a training set out (thesis 2.1-2.2)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from portraitist.cli.app import app, console, progress_display, quiet_libraries
from portraitist.cli.options import setting
from portraitist.config import load_config
from portraitist.prepare.config import PrepareConfig
from portraitist.workspace import DatasetManifest, Workspace

HELP = (
    "Turn a handful of ordinary photos of ONE person into a training set (thesis 2.1-2.2).\n\n"
    "Give photo files or folders (JPEG, PNG, WebP, HEIC; other files in a folder are reported and skipped). "
    "Each photo is read upright and checked:\n\n"
    "- rejected if it cannot be read, is empty or too large, shows no person or more than one person "
    "(small faces far in the background do not count), or a face too small to learn from;\n\n"
    "- cropped to a square three faces wide around the face, edges filled by repeating border pixels, "
    "resized to 512x512, with a person mask beside it;\n\n"
    "- rejected if nearly the same as an earlier photo; flagged if blurry, rejected if very blurry;\n\n"
    "- rejected if its face (dlib's face recognition) is not the person most of the photos show; "
    "photos of several people with no one in most of them are an error.\n\n"
    "Then CLIP picks the class word (girl, man, boy or baby) and each kept photo gets a caption "
    "'<context> <me> <class>'. Results go to WS/dataset/ (manifest.json, crops/, masks/); WS/photos/ keeps "
    "the originals.\n\n"
    "Examples:\n\n"
    "portraitist prepare ~/Pictures/me --workspace ./me\n\n"
    "portraitist prepare a.jpg b.heic c.png -w ./me --class-word girl --context photo_of\n\n"
    "portraitist prepare ./photos -w ./me --json > manifest.json\n\n"
    "portraitist prepare ./photos -w ./me --upscale-small-faces --upscaler realesr-animevideov3   "
    "(small faces enlarged by Real-ESRGAN, thesis 2.1.1)\n\n"
    "portraitist prepare ./world0 -w ./world0-ws --boxes ./world0/world_person.json   "
    "(faces a detector cannot see: the boxes and masks come from the file)\n\n"
    "Every setting (limits, margin, thresholds, tokens) can go in a TOML file, in a \\[prepare] table: "
    "see docs/prepare.md."
)


@app.command("prepare", help=HELP)
def prepare_command(
    photos: list[Path] = typer.Argument(..., help="Photo files and/or folders of photos of one person."),
    workspace: Path = typer.Option(
        ..., "--workspace", "-w", help="The job folder to write (created if missing)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="TOML file with a \\[prepare] table of settings (docs/prepare.md)."
    ),
    class_word: str | None = setting(PrepareConfig, "class_word"),
    context: str | None = setting(PrepareConfig, "context"),
    clip_model: str | None = setting(PrepareConfig, "clip_model"),
    upscale_small_faces: bool | None = setting(
        PrepareConfig, "upscale_small_faces", "--upscale-small-faces/--no-upscale-small-faces"
    ),
    upscaler: str | None = setting(PrepareConfig, "upscaler"),
    boxes: Path | None = typer.Option(
        None,
        "--boxes",
        help="JSON file giving each photo's face box (and person mask) instead of detecting them, e.g. the "
        "world_person.json of `portraitist world photos` (format: docs/prepare.md).",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the manifest as JSON on stdout instead of a table."
    ),
) -> None:
    quiet_libraries()
    from portraitist.prepare.stage import prepare  # mediapipe and torch load only when a command runs

    settings = load_config(
        PrepareConfig,
        config,
        "prepare",
        class_word=class_word,
        context=context,
        clip_model=clip_model,
        upscale_small_faces=upscale_small_faces,
        upscaler=upscaler,
    )
    ws = Workspace(workspace)
    if as_json:
        result = prepare(ws, photos, settings, boxes=boxes)
        typer.echo(result.manifest.model_dump_json(indent=2))
        return
    with progress_display() as progress:
        result = prepare(ws, photos, settings, progress, boxes=boxes)
    console.print(summary_table(result.manifest))
    if result.manifest.identity is not None:
        console.print(f"One person: {result.manifest.identity.note}")
    console.print(
        f"{len(result.kept)} of {len(result.manifest.photos)} photos kept; class word "
        f"[bold]{result.manifest.class_token}[/]. Dataset: {ws.manifest_path}"
    )


def summary_table(manifest: DatasetManifest) -> Table:
    """One row per photo: what was decided and why (or the caption it will train with)."""
    table = Table(title="prepare", show_lines=False)
    table.add_column("file", overflow="fold")
    table.add_column("status")
    table.add_column("reason / caption", overflow="fold")
    for photo in manifest.photos:
        if photo.status == "kept":
            note = photo.caption or ""
            if photo.flags:
                note += f"  [yellow]({', '.join(photo.flags)})[/]"
            table.add_row(Path(photo.source).name, "[green]kept[/]", note)
        else:
            table.add_row(Path(photo.source).name, "[red]rejected[/]", f"{photo.reason}: {photo.message}")
    return table
