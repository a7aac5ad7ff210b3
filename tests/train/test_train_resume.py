"""Kill training at any step, run the same command again: it continues from the last checkpoint to
the same weights as a run that was never interrupted, and a failed write never harms a checkpoint."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from portraitist.errors import MachineError, PortraitistError
from portraitist.progress import ProgressEvent
from portraitist.train import checkpoint
from portraitist.train.config import TrainConfig
from portraitist.train.loop import Loop
from portraitist.train.stage import train
from portraitist.workspace import Workspace

# 7 steps of the staged recipe: stage 1 is steps 1-3, stage 2 steps 4-7; checkpoints at 2, 3, 4, 6, 7
CONFIG = TrainConfig(
    base="tiny", recipe="staged", steps=7, checkpoint_every=2, keep_checkpoints=2, precision="fp32"
)
BF16 = CONFIG.model_copy(update={"precision": "bf16"})  # bf16 weights, fp32 masters: the CPU default here


class Killed(Exception):
    """Stands in for the process dying: raised from inside the loop, after a step."""


def kill_at(step: int):
    def progress(event: ProgressEvent) -> None:
        if event.step == step and event.message not in ("done",):
            raise Killed(step)

    return progress


def weights(ws: Workspace) -> dict[str, torch.Tensor]:
    out = {}
    for name in ("unet", "text_encoder", "token_embeddings"):
        for key, value in load_file(str(ws.model_dir / f"{name}.safetensors")).items():
            out[f"{name}.{key}"] = value
    return out


def assert_same_weights(a: Workspace, b: Workspace) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


@pytest.fixture(scope="module")
def uninterrupted_runs(prepared_template, tmp_path_factory):
    """One uninterrupted run per precision, shared by the tests that compare against it."""
    runs: dict[str, Workspace] = {}

    def run(config: TrainConfig) -> Workspace:
        if config.precision not in runs:
            ws = Workspace(tmp_path_factory.mktemp("uninterrupted") / "ws")
            shutil.copytree(prepared_template, ws.root)
            train(ws, config)
            runs[config.precision] = ws
        return runs[config.precision]

    return run


@pytest.fixture
def uninterrupted(uninterrupted_runs):
    return uninterrupted_runs(CONFIG)


@pytest.mark.parametrize("config", [CONFIG, BF16], ids=["fp32", "bf16-master"])
def test_resume_after_a_kill_gives_the_same_weights(prepared, uninterrupted_runs, config):
    with pytest.raises(Killed):
        train(prepared, config, kill_at(5))  # inside stage 2, one step after a checkpoint
    assert [p.name for p in checkpoint.list_checkpoints(prepared)] == ["step-0000003", "step-0000004"]
    assert not (prepared.model_dir / "model.json").exists()

    result = train(prepared, config)

    reference_ws = uninterrupted_runs(config)
    assert result.resumed_from == 4 and result.steps_done == 7
    assert_same_weights(prepared, reference_ws)
    log = [json.loads(line) for line in (prepared.model_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 8))  # step 5 of the killed run was cut, then redone
    assert [r["stage"] for r in log] == ["text encoder + unet"] * 3 + ["unet"] * 4
    reference = [
        json.loads(line) for line in (reference_ws.model_dir / "train_log.jsonl").read_text().splitlines()
    ]
    assert [r["loss"] for r in log] == [r["loss"] for r in reference]


def test_a_full_disk_keeps_the_last_checkpoint(prepared, uninterrupted, monkeypatch):
    real_save = checkpoint.save_file
    calls = []

    def disk_fills_up(tensors, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:  # the checkpoint of step 4: half written, then no space
            Path(path).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(tensors, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_file", disk_fills_up)
    with pytest.raises(MachineError, match="disk is full"):  # a service retries it elsewhere
        train(prepared, CONFIG)
    monkeypatch.setattr(checkpoint, "save_file", real_save)

    root = checkpoint.checkpoints_dir(prepared)
    assert sorted(p.name for p in root.iterdir()) == [
        "step-0000002",
        "step-0000003",
    ]  # no temporary leftovers
    assert load_file(str(root / "step-0000003" / "weights.safetensors"))  # intact, loadable

    result = train(prepared, CONFIG)
    assert result.resumed_from == 3
    assert_same_weights(prepared, uninterrupted)


def test_out_of_gpu_memory_says_what_to_do(prepared, monkeypatch):
    def oom(self, step):
        if step == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_loss(self, step)

    real_loss = Loop.loss
    monkeypatch.setattr(Loop, "loss", oom)
    with pytest.raises(PortraitistError, match="--low-memory"):
        train(prepared, CONFIG)
    assert [p.name for p in checkpoint.list_checkpoints(prepared)] == ["step-0000002"]


def test_other_settings_are_not_resumed_silently(prepared):
    with pytest.raises(Killed):
        train(prepared, CONFIG, kill_at(3))
    with pytest.raises(PortraitistError, match="--restart"):
        train(prepared, CONFIG.model_copy(update={"seed": 1}))
    result = train(prepared, CONFIG.model_copy(update={"seed": 1, "restart": True, "steps": 2}))
    assert result.resumed_from is None and result.steps_done == 2


def test_sigkill_of_the_command_then_the_same_command(prepared, uninterrupted):
    """The real thing: `portraitist train` killed with SIGKILL mid-run, then run again."""
    command = [
        str(Path(sys.executable).parent / "portraitist"),
        "train",
        "-w",
        str(prepared.root),
        "--base",
        "tiny",
        "--steps",
        "7",
        "--checkpoint-every",
        "2",
    ]
    config_file = prepared.root / "train.toml"
    config_file.write_text('[train]\nkeep_checkpoints = 2\nprecision = "fp32"\n')
    command += ["--config", str(config_file)]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    log = prepared.model_dir / "train_log.jsonl"
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 5:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "training finished before it could be killed"
    assert not (prepared.model_dir / "model.json").exists()

    rerun = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=300)

    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resumed at step" in rerun.stderr
    assert_same_weights(prepared, uninterrupted)
