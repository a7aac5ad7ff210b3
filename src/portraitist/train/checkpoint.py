"""Resumable checkpoints in model/checkpoints/: kill training at any step, run the same command
again, and it continues from the last checkpoint to the same final weights.

A checkpoint holds what the run cannot recompute: the fp32 values of every tensor trained so
far, the current stage's optimizer state, the step, the RNG state and a fingerprint of the
settings. (Data order, noise and timesteps are drawn from per-step seeds, so they need no
state.) It is written into a temporary folder and renamed into place, so a crash or a full
disk never leaves a half-written checkpoint, and older ones are removed only after the new one
exists.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from portraitist.errors import PortraitistError
from portraitist.workspace import Workspace, atomic_dir

NAME = re.compile(r"^step-(\d{7})$")


@dataclass
class Checkpoint:
    step: int
    values: dict[str, torch.Tensor]  # fp32 trained tensors by name
    optimizer: dict[str, Any] | None  # the state of the optimizer of the stage that ran `step`
    stage: int  # index of the stage the optimizer state belongs to
    fingerprint: dict[str, Any]
    seconds: float  # training time so far, continued in train_log.jsonl
    rng: torch.Tensor


def checkpoints_dir(workspace: Workspace) -> Path:
    return workspace.model_dir / "checkpoints"


def save(workspace: Workspace, checkpoint: Checkpoint, keep: int) -> Path:
    """Write atomically, then drop all but the `keep` newest checkpoints."""
    final = checkpoints_dir(workspace) / f"step-{checkpoint.step:07d}"
    if (final / "checkpoint.json").exists():  # a rerun reached the same step: same seed, same state
        return final
    with atomic_dir(final) as tmp:  # replaces an incomplete folder of that name (no checkpoint.json)
        save_file(
            {k: v.detach().float().contiguous().cpu() for k, v in checkpoint.values.items()},
            tmp / "weights.safetensors",
        )
        torch.save({"optimizer": checkpoint.optimizer, "rng": checkpoint.rng}, tmp / "state.pt")
        meta = {
            "step": checkpoint.step,
            "stage": checkpoint.stage,
            "seconds": checkpoint.seconds,
            "fingerprint": checkpoint.fingerprint,
        }
        (tmp / "checkpoint.json").write_text(json.dumps(meta, indent=2))
    for old in list_checkpoints(workspace)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(workspace: Workspace) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of interrupted writes are not listed)."""
    root = checkpoints_dir(workspace)
    if not root.exists():
        return []
    found = [p for p in root.iterdir() if NAME.match(p.name) and (p / "checkpoint.json").exists()]
    return sorted(found, key=lambda p: int(NAME.match(p.name).group(1)))  # type: ignore[union-attr]


def clear(workspace: Workspace) -> None:
    shutil.rmtree(checkpoints_dir(workspace), ignore_errors=True)


def load_latest(workspace: Workspace, fingerprint: dict[str, Any], device: torch.device) -> Checkpoint | None:
    """The newest checkpoint of a run with these settings; None when there is none.

    A checkpoint of a run with other settings is not silently thrown away: the user decides.
    """
    found = list_checkpoints(workspace)
    if not found:
        return None
    path = found[-1]
    meta = json.loads((path / "checkpoint.json").read_text())
    if meta["fingerprint"] != fingerprint:
        changed = sorted(
            k
            for k in fingerprint.keys() | meta["fingerprint"].keys()
            if fingerprint.get(k) != meta["fingerprint"].get(k)
        )
        raise PortraitistError(
            f"{path} is a checkpoint of a run with other settings (changed: {', '.join(changed)}). "
            "Run the same command again to resume it, "
            "or add --restart to start over (its checkpoints are deleted)."
        )
    state = torch.load(path / "state.pt", map_location=device, weights_only=True)
    return Checkpoint(
        step=meta["step"],
        values=load_file(str(path / "weights.safetensors"), device=str(device)),
        optimizer=state["optimizer"],
        stage=meta["stage"],
        fingerprint=meta["fingerprint"],
        seconds=meta["seconds"],
        rng=state["rng"].cpu(),
    )
