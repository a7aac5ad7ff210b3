#!/usr/bin/env python
"""`portraitist bench run`: seconds per stage of `portraitist run`, photos to upscaled portraits.

    python benchmarks/bench_run.py [--preset tiny|cpu-bench|sd15] [--steps 800] [-n 32] [-k 4]

Runs the whole pipeline on the sample photos (portraitist.samples) with a random-weight base of
the preset's shapes. The scorers run at their real shapes where it matters for time: CLIP with
ViT-L/14's shapes and random weights (`vit-l-14-random`), LPIPS on a random AlexNet, dlib's real
face recognition. Prints seconds per stage (model loading included, as a user waits for it) and
seconds per image for rank and upscale, and writes benchmarks/results/run-<machine>-<date>.json.

Targets (issue 6): on one GPU with sd15, 800 steps, 32 generated, 4 selected: under 3 minutes;
on this 2-core CPU, the demo (README's first command) under 5 minutes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from machine import load_average, machine, results_path, versions

from portraitist.generate.config import GenerateConfig
from portraitist.pipeline import RunConfig, run_pipeline
from portraitist.prepare.config import PrepareConfig
from portraitist.rank.config import RankConfig
from portraitist.samples import write_sample_photos
from portraitist.train.config import TrainConfig
from portraitist.upscale.config import UpscaleConfig
from portraitist.workspace import Workspace

HERE = Path(__file__).resolve().parent
BASES = {"tiny": "tiny", "cpu-bench": "cpu-bench", "sd15": "sd15-random"}


def run_config(args: argparse.Namespace) -> RunConfig:
    return RunConfig(
        base=BASES[args.preset],
        steps=args.steps,
        styles=["photo", "oil-painting", "cinematic", "pencil-sketch"],
        n=args.n,
        k=args.k,
        prepare=PrepareConfig(clip_model="tiny"),  # class word only; a real CLIP would add seconds
        train=TrainConfig(checkpoint_every=max(args.steps // 4, 1)),
        generate=GenerateConfig(steps=args.sampling_steps, batch_size=args.batch_size),
        rank=RankConfig(
            clip_model="tiny" if args.preset == "tiny" else "vit-l-14-random",
            aesthetic_weights="random",
            lpips_backbone="random",
        ),
        upscale=UpscaleConfig(model=args.upscaler, scale=2),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(BASES), default="tiny")
    ap.add_argument("--steps", type=int, default=800, help="training steps")
    ap.add_argument("-n", type=int, default=32, help="images generated")
    ap.add_argument("-k", type=int, default=4, help="images selected and upscaled")
    ap.add_argument("--sampling-steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument(
        "--upscaler", default="realesrgan-x4plus", help="Real-ESRGAN model (realesr-animevideov3 is fast)"
    )
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "portraitist-bench-run")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--label", default="", help="a note stored in the results file")
    args = ap.parse_args()

    shutil.rmtree(args.workdir, ignore_errors=True)
    photos = write_sample_photos(args.workdir / "photos")
    workspace = Workspace(args.workdir / "ws")
    start = time.perf_counter()
    result = run_pipeline(workspace, photos, run_config(args))
    total = time.perf_counter() - start

    seconds = result.seconds
    generate_s = sum(v for k, v in seconds.items() if k.startswith("generate:"))
    stages = {
        "prepare": seconds["prepare"],
        "train": seconds["train"],
        "generate": generate_s,
        "rank": seconds["rank"],
        "upscale": seconds["upscale"],
    }
    per_image = {
        "generate_s_per_image": generate_s / args.n,
        "rank_s_per_image": seconds["rank"] / args.n,
        "upscale_s_per_image": seconds["upscale"] / args.k,
    }
    print(
        f"\nportraitist run, preset {args.preset}: {args.steps} steps, {args.n} generated, "
        f"{args.k} selected, x2"
    )
    print(f"{'stage':<10}{'seconds':>10}")
    for name, value in stages.items():
        print(f"{name:<10}{value:>10.1f}")
    print(f"{'total':<10}{total:>10.1f}")
    for name, value in per_image.items():
        print(f"{name:<22}{value:>8.2f}")
    record = dict(
        benchmark="run",
        preset=args.preset,
        label=args.label,
        steps=args.steps,
        n=args.n,
        k=args.k,
        sampling_steps=args.sampling_steps,
        upscaler=args.upscaler,
        total_s=total,
        stages_s=stages,
        steps_s=seconds,
        **per_image,
        machine=machine(),
        versions=versions(),
        load_average=load_average(),
    )
    path = results_path(args.results, "run", record["machine"], args.label)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({"total_s": round(total, 1), "results": str(path)}))


if __name__ == "__main__":
    main()
