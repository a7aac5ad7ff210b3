#!/usr/bin/env python
"""`portraitist bench train`: our training loop against diffusers' DreamBooth scripts.

    python benchmarks/bench_train.py [--preset cpu-bench] [--steps 40] [--batch 1] [--cases unet,text-encoder]
    python benchmarks/bench_train.py --preset cpu-bench-xl [--cases lora]

Both sides train the same random-weight model folder (the real SD 1.x or SDXL classes, written
the way shared/bench/make_model.py writes them) on the same photos (reference/make_images.py),
at the model's resolution, and are timed by reference/reference_train.py's marginal method: each
command runs for N/4 and N steps, so loading and saving cancel out.

  unet          reference: train_dreambooth.py (UNet only)
                ours:      `portraitist train --recipe dreambooth`
  text-encoder  reference: train_dreambooth.py --train_text_encoder (on the CPU also with
                           --flush-denormal, see reference/README.md; ours then runs with the same)
                ours:      the first stage of `staged` (text encoder + UNet + new tokens), run alone
  low-memory    ours only: the whole `staged` recipe with --low-memory (its peak GPU memory)
  lora          (SDXL, the default there) reference: train_dreambooth_lora_sdxl.py, rank 4 on the
                           UNet's attention, lr 1e-4
                ours:      the lora recipe with the same adapters only (--lora-rank 4, unet_lora 1e-4)

--runner module runs our side as `python bench_train.py --run-train ...` (stage function, same
settings as the command) instead of the `portraitist` command, for machines where only the
training dependencies are installed (the GPU script).

Prints a table (steps/s, ratio, peak RSS; peak GPU memory with --gpu-memory) and writes
benchmarks/results/train-<machine>-<date>.json with the machine, the versions and the date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "reference"))

from machine import machine, results_path, versions
from reference_train import SCRIPTS, time_marginal

# bench name -> our preset (portraitist.models.random_sd / random_sdxl)
PRESETS = {
    "tiny": "tiny", "cpu-bench": "cpu-bench", "sd15": "sd15-random",
    "tiny-xl": "tiny-xl", "cpu-bench-xl": "cpu-bench-xl", "sdxl": "sdxl-random",
}  # fmt: skip
DEFAULT_CASES = {"sd1": "unet,text-encoder", "sdxl": "lora"}
INSTANCE_PROMPT_CLASS = "person"  # the reference's prompt is "a photo of sks person"


def build_model(preset: str, out: Path) -> Path:
    """A diffusers folder with seeded random weights (shared/bench/make_model.py's layout)."""
    if (out / "model_index.json").exists():
        return out
    from portraitist.models.loading import load_base
    from portraitist.models.tokenizer import write_clip_vocab

    model = load_base(PRESETS[preset], seed=0)
    pipe = model.family.pipeline(model, model.scheduler)
    tmp = out.with_name(out.name + ".tmp")
    pipe.save_pretrained(tmp, safe_serialization=True)
    for (
        name,
        _,
        _,
    ) in model.text_encoders:  # transformers 5 writes only tokenizer.json; other loaders want these
        write_clip_vocab(tmp / name.replace("text_encoder", "tokenizer"))
    info = {"preset": preset, "seed": 0, "resolution": model.resolution, "family": model.family.name}
    (tmp / "bench_preset.json").write_text(json.dumps(info))
    tmp.rename(out)
    return out


def build_images(out: Path, size: int = 512) -> Path:
    if not out.exists():
        subprocess.run(
            [sys.executable, str(HERE / "reference" / "make_images.py"), str(out), "--size", str(size)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return out


def build_workspace(images: Path, out: Path, resolution: int) -> Path:
    """A prepared workspace holding the reference's own images (as `prepare` would leave them)."""
    from PIL import Image

    from portraitist.workspace import DatasetManifest, PhotoRecord, Workspace

    ws = Workspace(out)
    if ws.manifest_path.exists():
        return out
    (ws.dataset_dir / "crops").mkdir(parents=True, exist_ok=True)
    photos = []
    for i, path in enumerate(sorted(images.glob("*.png"))):
        crop = f"dataset/crops/{i:02d}.png"
        Image.open(path).convert("RGB").resize((resolution, resolution), Image.LANCZOS).save(ws.path(crop))
        photos.append(
            PhotoRecord(
                source=path.name,
                status="kept",
                image=crop,
                caption=f"a photo of <sks> {INSTANCE_PROMPT_CLASS}",
            )
        )
    ws.write_manifest(
        DatasetManifest(
            class_token=INSTANCE_PROMPT_CLASS,
            instance_token="<sks>",
            context="photo_of",
            resolution=resolution,
            photos=photos,
        )
    )
    return out


def one_stage_config(out: Path, recipe: str, name: str, rates: dict[str, float]) -> Path:
    """A TOML that runs `recipe` as one stage training `rates`' parts for all steps."""
    listed = ", ".join(f"{part} = {rate}" for part, rate in rates.items())
    out.write_text(
        f'[train]\nrecipe = "{recipe}"\n\n[[train.stages]]\nname = "{name}"\nshare = 1.0\n'
        f"learning_rates = {{ {listed} }}\n"
    )
    return out


def first_stage_config(out: Path) -> Path:
    """The staged recipe's first stage (text encoder + UNet + tokens) for all steps."""
    from portraitist.train.recipes import RECIPES

    stage = RECIPES["staged"].stages[0]
    return one_stage_config(out, "staged", stage.name, stage.learning_rates)


def unet_lora_config(out: Path) -> Path:
    """The lora recipe training what train_dreambooth_lora_sdxl.py trains: UNet adapters, lr 1e-4."""
    return one_stage_config(out, "lora", "unet lora", {"unet_lora": float(SCRIPTS["lora-sdxl"][1])})


def run_train(argv: list[str]) -> None:
    """`bench_train.py --run-train`: `portraitist train`'s work without importing every command."""
    ap = argparse.ArgumentParser(prog="bench_train.py --run-train")
    ap.add_argument("--workspace", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--config", type=Path)
    ap.add_argument("--flush-denormal", action="store_true")
    ap.add_argument("--low-memory", action="store_true", default=None)
    ap.add_argument("--compile", action="store_true", default=None)
    for name in ("--recipe", "--precision"):
        ap.add_argument(name)
    for name in ("--steps", "--batch-size", "--checkpoint-every", "--lora-rank"):
        ap.add_argument(name, type=int)
    a = ap.parse_args(argv)
    import torch

    from portraitist.config import load_config
    from portraitist.train.config import TrainConfig
    from portraitist.train.stage import train
    from portraitist.workspace import Workspace

    if a.flush_denormal:
        torch.set_flush_denormal(True)
    config = load_config(
        TrainConfig,
        a.config,
        "train",
        base=a.base,
        recipe=a.recipe,
        precision=a.precision,
        steps=a.steps,
        batch_size=a.batch_size,
        checkpoint_every=a.checkpoint_every,
        low_memory=a.low_memory,
        compile=a.compile,
        lora_rank=a.lora_rank,
    )
    result = train(Workspace(a.workspace), config)
    print(
        json.dumps({"steps": result.steps_done, "seconds": result.seconds, "peak_gpu_mb": result.peak_gpu_mb})
    )


def ours_command(ws: Path, model: Path, extra: list[str], flush_denormal: bool, runner: str):
    if runner == "module":
        base = [sys.executable, str(Path(__file__).resolve()), "--run-train"]
        base += ["--flush-denormal"] if flush_denormal else []
    elif flush_denormal:  # as reference_train.py runs the script: torch.set_flush_denormal(True) first
        code = "import sys, torch; torch.set_flush_denormal(True); from portraitist.cli import main; main()"
        base = [sys.executable, "-c", code]
    else:
        base = [str(Path(sys.executable).parent / "portraitist")]

    command = [] if runner == "module" else ["train"]

    def make(steps: int, out: str) -> str:
        train = [
            *base,
            *command,
            "--workspace",
            f"{out}/ws",
            "--base",
            str(model),
            "--steps",
            str(steps),
            "--checkpoint-every",
            "100000000",
            *extra,
        ]
        return f"cp -r {shlex.quote(str(ws))} {shlex.quote(out)}/ws && {shlex.join(train)}"

    return make


class GpuMemory:
    """Peak GPU memory in use (nvidia-smi every 0.2 s, all processes) while the block runs."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.peak_mb: float | None = None
        self.idle_mb: float | None = None
        self._stop = threading.Event()

    @staticmethod
    def used_mb() -> float:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True,
            text=True,
            check=True,
        )
        return float(out.stdout.strip().splitlines()[0])

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb or 0.0, self.used_mb())
            time.sleep(0.2)

    def __enter__(self) -> Self:
        if self.enabled:
            self.idle_mb = self.used_mb()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()

    def record(self) -> dict[str, float | None]:
        return {"peak_gpu_mb": self.peak_mb, "idle_gpu_mb": self.idle_mb}


def reference_command(
    model: Path,
    images: Path,
    resolution: int,
    batch: int,
    case: str,
    flush_denormal: bool,
    mixed_precision: str,
):
    """The reference script's command for `case`: train_dreambooth.py (unet, text-encoder) or
    train_dreambooth_lora_sdxl.py (lora, rank 4), each at its own default learning rate."""
    script, learning_rate, _ = SCRIPTS["lora-sdxl" if case == "lora" else "dreambooth"]

    def make(steps: int, out: str) -> list[str]:
        head = (
            [sys.executable, str(HERE / "reference" / "reference_train.py"), "--run-flush-denormal"]
            if flush_denormal
            else [sys.executable]
        )
        cmd = [
            *head,
            script,
            "--pretrained_model_name_or_path",
            str(model),
            "--instance_data_dir",
            str(images),
            "--instance_prompt",
            f"a photo of sks {INSTANCE_PROMPT_CLASS}",
            "--output_dir",
            out,
            "--resolution",
            str(resolution),
            "--train_batch_size",
            str(batch),
            "--gradient_accumulation_steps",
            "1",
            "--learning_rate",
            learning_rate,
            "--lr_scheduler",
            "constant",
            "--lr_warmup_steps",
            "0",
            "--max_train_steps",
            str(steps),
            "--checkpointing_steps",
            "100000000",
            "--mixed_precision",
            mixed_precision,
            "--seed",
            "0",
        ]
        return cmd + {"text-encoder": ["--train_text_encoder"], "lora": ["--rank", "4"]}.get(case, [])

    return make


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--run-train":
        return run_train(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu-bench")
    ap.add_argument("--steps", type=int, default=40, help="long run's steps N (the short run has N/4)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument(
        "--cases",
        help="comma-separated: unet, text-encoder, low-memory (SD 1.x), lora (SDXL); "
        "default: unet,text-encoder on SD 1.x, lora on SDXL",
    )
    ap.add_argument("--runner", choices=["cli", "module"], default="cli", help="how our side is started")
    ap.add_argument(
        "--gpu-memory", action="store_true", help="sample GPU memory with nvidia-smi during each run"
    )
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "portraitist-bench")
    ap.add_argument("--skip-reference", action="store_true", help="time only our side")
    ap.add_argument(
        "--ours-extra", default="", help="more `portraitist train` options for our side (one string)"
    )
    ap.add_argument(
        "--mixed-precision",
        default=None,
        help="reference's --mixed_precision (default: no on CPU, bf16 on GPU)",
    )
    ap.add_argument("--label", default="", help="a note stored in the results file")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    a = ap.parse_args()

    import torch

    gpu = torch.cuda.is_available()
    mixed = a.mixed_precision or ("bf16" if gpu else "no")
    a.workdir.mkdir(parents=True, exist_ok=True)
    model = build_model(a.preset, a.workdir / "models" / a.preset)
    preset_info = json.loads((model / "bench_preset.json").read_text())
    resolution = preset_info["resolution"]
    cases = a.cases or DEFAULT_CASES[preset_info.get("family", "sd1")]
    images = build_images(a.workdir / "images")
    ws = build_workspace(images, a.workdir / f"ws-{a.preset}", resolution)
    stage_toml = first_stage_config(a.workdir / "first-stage.toml")
    lora_toml = unet_lora_config(a.workdir / "unet-lora.toml")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false")

    rows = []
    for case in [c.strip() for c in cases.split(",") if c.strip()]:
        text_encoder = case == "text-encoder"
        flush = (
            text_encoder and not gpu
        )  # reference/README.md: denormal stalls when the text encoder trains on a CPU
        extra = ["--batch-size", str(a.batch), *shlex.split(a.ours_extra)]
        extra += {
            "unet": ["--recipe", "dreambooth"],
            "text-encoder": ["--config", str(stage_toml)],
            "low-memory": ["--recipe", "staged", "--low-memory"],
            "lora": ["--config", str(lora_toml), "--lora-rank", "4"],
        }[case]
        print(f"[bench] {case}: ours", file=sys.stderr, flush=True)
        # one untimed 2-step run first: it fills torch.compile's on-disk cache (the optimizer
        # step's fused kernel), as any earlier use of the machine would, so that the short and
        # the long timed run start alike
        warm = tempfile.mkdtemp(prefix="bench-warm-")
        subprocess.run(
            ["bash", "-c", ours_command(ws, model, extra, flush, a.runner)(2, warm)],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(warm, ignore_errors=True)
        with GpuMemory(a.gpu_memory) as memory:
            ours = time_marginal(ours_command(ws, model, extra, flush, a.runner), a.steps, env=env)
        ours.update(memory.record())
        reference = None
        if not a.skip_reference and case != "low-memory":
            print(f"[bench] {case}: reference", file=sys.stderr, flush=True)
            with GpuMemory(a.gpu_memory) as memory:
                reference = time_marginal(
                    reference_command(model, images, resolution, a.batch, case, flush, mixed),
                    a.steps,
                    env=env,
                )
            reference.update(memory.record())
        rows.append({"case": case, "flush_denormal": flush, "ours": ours, "reference": reference})

    print(f"\n{a.preset} {resolution}px, batch {a.batch}, {a.steps // 4}/{a.steps} steps (marginal)")
    nan = float("nan")
    header = (
        f"{'case':<14}{'ours steps/s':>14}{'ref steps/s':>13}{'ratio':>8}"
        f"{'ours RSS MB':>13}{'ref RSS MB':>12}"
    )
    print(header + (f"{'ours GPU MB':>13}{'ref GPU MB':>12}" if a.gpu_memory else ""))
    for row in rows:
        ours, ref = row["ours"], row["reference"] or {}
        ratio = (
            ours["steps_per_s"] / ref["steps_per_s"]
            if ref.get("steps_per_s") and ours["steps_per_s"]
            else None
        )
        row["ratio"] = round(ratio, 3) if ratio else None
        line = (
            f"{row['case']:<14}{ours['steps_per_s'] or nan:>14.3f}{ref.get('steps_per_s') or nan:>13.3f}"
            f"{ratio or nan:>8.2f}{ours['peak_rss_mb']:>13.0f}{ref.get('peak_rss_mb') or nan:>12.0f}"
        )
        if a.gpu_memory:
            line += f"{ours['peak_gpu_mb'] or nan:>13.0f}{ref.get('peak_gpu_mb') or nan:>12.0f}"
        print(line)
    info = machine()
    result = {
        "benchmark": "train",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": info,
        "versions": versions(),
        "preset": a.preset,
        "resolution": resolution,
        "batch_size": a.batch,
        "steps": [a.steps // 4, a.steps],
        "reference_mixed_precision": mixed,
        "ours_extra": a.ours_extra,
        "label": a.label,
        "cases": rows,
    }
    path = results_path(a.results, "train", info, a.label)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
