"""The `upscale` stage: the selected portraits, Real-ESRGAN-upscaled (thesis 2.4.2).

`rank` copies the k best into outputs/selected/; this stage moves each one into
outputs/selected/original/ and writes its upscaled version (512 -> 1024 at x2) in its place.
outputs/selected/upscale.json records what is done, so a rerun after a crash continues with the
images left, and a rerun with another scale or model redoes them from the originals.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from portraitist.errors import PortraitistError
from portraitist.models.esrgan import upscale_image
from portraitist.progress import ProgressCallback, ProgressEvent, no_progress
from portraitist.upscale.config import UpscaleConfig
from portraitist.workspace import Workspace, write_bytes_atomic, write_json_atomic

STAGE = "upscale"


@dataclass
class UpscaleResult:
    workspace: Workspace
    files: list[Path]  # the upscaled images, in outputs/selected/
    scale: int
    model: str
    reused: int = 0  # already upscaled with these settings by an earlier run
    seconds: list[float] = field(default_factory=list)  # per image upscaled in this run


def upscale(
    workspace: Workspace, config: UpscaleConfig | None = None, progress: ProgressCallback = no_progress
) -> UpscaleResult:
    config = config or UpscaleConfig()
    folder = workspace.outputs_dir / "selected"
    originals = folder / "original"
    names = sorted({p.name for p in folder.glob("*.png")} | {p.name for p in originals.glob("*.png")})
    if not names:
        raise PortraitistError(
            f"Nothing to upscale in {folder}. Run `portraitist rank --workspace {workspace.root}` first."
        )
    record_path = folder / "upscale.json"
    settings = {"scale": config.scale, "model": config.model}
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    done = set(record.get("done", [])) if record.get("settings") == settings else set()

    originals.mkdir(exist_ok=True)
    result = UpscaleResult(workspace, [folder / name for name in names], config.scale, config.model)
    for step, name in enumerate(names):
        progress(ProgressEvent(STAGE, step, len(names), name))
        if name in done and (folder / name).exists():
            result.reused += 1
            continue
        if not (originals / name).exists():
            (folder / name).replace(originals / name)
        start = time.perf_counter()
        with Image.open(originals / name) as original:
            upscaled = upscale_image(
                original, config.scale, model=config.model, tile=config.tile, device=config.device
            )
        buffer = io.BytesIO()
        upscaled.save(buffer, format="PNG")
        write_bytes_atomic(folder / name, buffer.getvalue())
        result.seconds.append(time.perf_counter() - start)
        done.add(name)
        write_json_atomic(record_path, {"settings": settings, "done": sorted(done)})
    progress(ProgressEvent(STAGE, len(names), len(names), f"x{config.scale}"))
    return result
