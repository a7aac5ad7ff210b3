#!/usr/bin/env python
"""`portraitist bench generate`: our sampler against diffusers' StableDiffusion(XL)Pipeline.

    python benchmarks/bench_generate.py [--preset cpu-bench] [--batches 1,4] [--size 256x256]
                                        [--steps 30] [--guidance 7] [--calls 3] [--variants ours,ours-fp32]
    python benchmarks/bench_generate.py --preset sd15 --cases 512x512:1,512x512:8,512x912:8   # GPU
    python benchmarks/bench_generate.py --preset cpu-bench-xl --batches 1     # SDXL (--preset sdxl on a GPU)

Both sides sample the same random-weight model folder (bench_train.py's build_model), in one process:
  reference  reference/reference_generate.py's call: StableDiffusionPipeline.from_pretrained (for an
             SDXL folder StableDiffusionXLPipeline, no watermark, its defaults otherwise)
             + EulerDiscreteScheduler, safety checker off, fp32 on CPU / fp16 on CUDA, PIL output;
  ours       portraitist.generate's own path (load_model + txt2img: our Euler loop, CFG in one
             UNet call, text encoded once per batch, one VAE call, PIL output) with its default
             precision (bf16 on CPUs with bf16 instructions, fp16 on GPUs);
  ours-fp32  (optional) the same in fp32: shows the sampler itself matches the reference exactly;
  ours-no-graphs (optional, GPU) ours without CUDA-graph replay: what the graphs are worth.
After one warm-up call each, the timed calls alternate between the sides (reference, ours,
reference, ours, ...) so that other work on a shared machine slows both alike; every call's
time is kept (wall clock, and the process's CPU time, which other processes do not inflate
when torch runs one thread), and the load average before and after is recorded.

Peak memory: on the CPU each side runs apart in a fresh subprocess (load + one call) for its
host RSS; on a GPU, in the same process, each side's own weights plus the most its timed calls
allocated beyond what was resident (what reference_generate.py's peak_cuda_mb counts alone). \
Closeness: the first image of every timed call is drawn from the
same seed on both sides; the mean absolute difference (0-255 scale), the largest, and the PSNR
are reported. Results go to benchmarks/results/generate-<machine>-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "reference"))

# the model folders are bench_train.py's, so both benchmarks time the same files
from bench_train import PRESETS, build_model
from machine import load_average, machine, results_path, versions

PROMPT = "a photo of sks person"  # reference_generate.py's prompt


@dataclass
class Side:
    """One way of sampling: call(seed, batch, (width, height), steps, guidance) -> PIL images."""

    call: Callable[..., list]
    modules: list[Any]  # the torch modules it holds, to count their weights on the GPU

    def weight_bytes(self) -> int:
        return sum(
            t.numel() * t.element_size() for m in self.modules for t in [*m.parameters(), *m.buffers()]
        )


def reference_sampler(model: Path, device: str, dtype_name: str) -> Side:
    """reference_generate.py's set-up and call, unchanged."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline
    from reference_generate import pipeline_class_name

    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
    if pipeline_class_name(str(model)).startswith("StableDiffusionXL"):
        pipe = StableDiffusionXLPipeline.from_pretrained(str(model), torch_dtype=dtype, add_watermarker=False)
    else:
        pipe = StableDiffusionPipeline.from_pretrained(str(model), torch_dtype=dtype, safety_checker=None)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)

    def call(seed: int, batch: int, size: tuple[int, int], steps: int = 30, guidance: float = 7.0) -> list:
        g = torch.Generator(device="cpu").manual_seed(seed)
        return pipe(
            prompt=[PROMPT] * batch, height=size[1], width=size[0], num_inference_steps=steps,
            guidance_scale=guidance, generator=g,
        ).images  # fmt: skip

    return Side(
        call,
        [
            pipe.unet,
            pipe.vae,
            pipe.text_encoder,
            *([pipe.text_encoder_2] if hasattr(pipe, "text_encoder_2") else []),
        ],
    )


def our_sampler(model: Path, device: str, precision: str, cuda_graphs: bool = True) -> Side:
    """What `portraitist generate --base MODEL` runs, minus writing PNGs."""
    import torch

    from portraitist.generate.model import load_model, pick_dtype
    from portraitist.generate.txt2img import txt2img

    dev = torch.device(device)
    sd = load_model(None, str(model), None, dev, pick_dtype(precision, dev))  # type: ignore[arg-type]

    def call(seed: int, batch: int, size: tuple[int, int], steps: int = 30, guidance: float = 7.0) -> list:
        seeds = [seed + i for i in range(batch)]
        return txt2img(sd, PROMPT, "", seeds, size, steps, guidance, cuda_graphs=cuda_graphs)

    return Side(call, [sd.vae, *sd.networks])


SIDES: dict[str, Callable[[Path, str], Side]] = {
    "reference": lambda model, device: reference_sampler(
        model, device, "fp16" if device == "cuda" else "fp32"
    ),
    "ours": lambda model, device: our_sampler(model, device, "auto"),
    "ours-fp32": lambda model, device: our_sampler(model, device, "fp32"),
    "ours-no-graphs": lambda model, device: our_sampler(model, device, "auto", cuda_graphs=False),
}


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def closeness(a: Any, b: Any) -> dict[str, float]:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    diff = np.abs(x - y)
    mse = float((diff**2).mean())
    return {
        "mean_abs": round(float(diff.mean()), 4),
        "max_abs": float(diff.max()),
        "psnr_db": round(10 * np.log10(255**2 / mse), 2) if mse > 0 else float("inf"),
    }


def summary(times: list[float], batch: int) -> dict[str, Any]:
    total = sum(times)
    return {
        "images_per_s": round(batch * len(times) / total, 4),
        "s_per_image": round(total / (batch * len(times)), 4),
        "s_per_call": [round(t, 3) for t in times],
        # how noisy the shared machine was: spread of the calls
        "spread": round((max(times) - min(times)) / (total / len(times)), 3),
    }


def time_side_by_side(
    sides: dict[str, Side],
    batch: int,
    size: tuple[int, int],
    steps: int,
    guidance: float,
    calls: int,
    warmup: int,
    seed: int,
    device: str,
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list], dict[str, float], dict[str, str]]:
    """Alternate the sides call by call: each side's call times (wall and CPU), first images, (on a GPU) peak
    memory as if it ran alone (its own weights plus the most its calls allocated beyond them), and
    the error of any side that failed."""
    import torch

    times: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    firsts: dict[str, list] = {name: [] for name in sides}
    cuda_peak: dict[str, float] = {}
    failed: dict[str, str] = {}
    with torch.inference_mode():
        for name, side in sides.items():
            try:
                for i in range(warmup):
                    side.call(seed + 1000 + i, batch, size, steps, guidance)
                sync(device)
            except Exception as exc:  # noqa: BLE001  (a side that fails is reported; the others still run)
                failed[name] = f"{type(exc).__name__}: {exc}"
        for i in range(calls):
            for name, side in sides.items():
                if name in failed:
                    continue
                if device == "cuda":
                    before = torch.cuda.memory_allocated()
                    torch.cuda.reset_peak_memory_stats()
                start, cpu_start = time.perf_counter(), time.process_time()
                try:
                    images = side.call(seed + i, batch, size, steps, guidance)
                    sync(device)
                except Exception as exc:  # noqa: BLE001  (one broken variant must not cost the others' figures)
                    failed[name] = f"{type(exc).__name__}: {exc}"
                    continue
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - cpu_start)
                firsts[name].append(images[0])
                if device == "cuda":
                    peak = torch.cuda.max_memory_allocated() - before + side.weight_bytes()
                    cuda_peak[name] = max(cuda_peak.get(name, 0.0), round(peak / 2**20, 1))
    return times, cpu, firsts, cuda_peak, failed


def measure_memory(
    side: str, model: Path, device: str, batch: int, size: tuple[int, int], steps: int, threads: int
) -> dict[str, Any]:
    """Peak memory of one side alone: a fresh process that loads the model and makes one call."""
    cmd = [sys.executable, __file__, "--memory-of", side, "--model", str(model), "--batches", str(batch),
           "--size", f"{size[0]}x{size[1]}", "--steps", str(steps), "--device", device,
           "--threads", str(threads)]  # fmt: skip
    out = subprocess.run(
        cmd, check=True, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(HERE))
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_child(a: argparse.Namespace) -> None:
    import torch

    side = SIDES[a.memory_of](a.model, a.device)
    if a.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        side.call(0, int(a.batches), parse_size(a.size), a.steps, 7.0)
    sync(a.device)
    print(json.dumps({
        "peak_rss_mb": peak_rss_mb(),
        "peak_cuda_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if a.device == "cuda" else None,
    }))  # fmt: skip


def peak_rss_mb() -> float:
    """This process's own resident-set high-water mark. (getrusage's ru_maxrss would also count
    the parent's memory at fork time: Linux carries it across exec.)"""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def parse_size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu-bench")
    ap.add_argument("--model", type=Path, help="a model folder to use instead of building the preset's")
    ap.add_argument("--batches", default="1,4", help="comma-separated batch sizes")
    ap.add_argument("--size", default=None, help="WxH (default: the model's resolution, square)")
    ap.add_argument(
        "--cases", default=None, help="WxH:BATCH pairs, comma-separated (instead of --size/--batches)"
    )
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--guidance", type=float, default=7.0)
    ap.add_argument("--calls", type=int, default=3, help="timed calls per side")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--variants", default="ours", help="our sides to time beside the reference: ours, ours-fp32"
    )
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's, one per core)"
    )
    ap.add_argument("--no-memory", action="store_true", help="skip the per-side peak-memory subprocesses")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "portraitist-bench")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--label", default="", help="a note stored in the results file")
    ap.add_argument("--memory-of", choices=sorted(SIDES), help=argparse.SUPPRESS)
    a = ap.parse_args()

    import torch

    a.device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.memory_of:
        memory_child(a)
        return
    model = a.model or build_model(a.preset, a.workdir / "models" / a.preset)
    resolution = json.loads((model / "bench_preset.json").read_text())["resolution"]
    if a.cases:
        cases = [(parse_size(c.split(":")[0]), int(c.split(":")[1])) for c in a.cases.split(",")]
    else:
        size = parse_size(a.size or f"{resolution}x{resolution}")
        cases = [(size, int(b)) for b in a.batches.split(",")]
    names = ["reference", *a.variants.split(",")]
    info = machine()
    print(f"{info['device']}, {info['torch_threads']} threads; model {model}", flush=True)

    load_s = {}
    sides = {}
    for name in names:
        start = time.perf_counter()
        sides[name] = SIDES[name](model, a.device)
        load_s[name] = round(time.perf_counter() - start, 2)

    runs = []
    for size, batch in cases:
        load_before = load_average()
        times, cpu, firsts, cuda_peak, failed = time_side_by_side(
            sides, batch, size, a.steps, a.guidance, a.calls, a.warmup, a.seed, a.device
        )
        run: dict[str, Any] = {
            "size": f"{size[0]}x{size[1]}",
            "batch": batch,
            "load_average": [load_before, load_average()],
        }
        for name, error in failed.items():
            run[name] = {"error": error}
            print(f"{name} failed at {run['size']} batch {batch}: {error}", flush=True)
        for name in [n for n in names if n not in failed]:
            run[name] = summary(times[name], batch)
            run[name]["cpu_s_per_image"] = round(sum(cpu[name]) / (batch * len(cpu[name])), 4)
            if a.device == "cuda":
                run[name]["peak_cuda_mb"] = cuda_peak[name]
            elif not a.no_memory:
                run[name].update(
                    measure_memory(name, model, a.device, batch, size, a.steps, torch.get_num_threads())
                )
            if name != "reference" and "reference" not in failed:
                run[name]["speedup"] = round(run["reference"]["s_per_image"] / run[name]["s_per_image"], 3)
                run[name]["closeness"] = [closeness(r, o) for r, o in zip(firsts["reference"], firsts[name])]
        runs.append(run)
        print_run(run, names)
    result = {
        "benchmark": "generate",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "preset": a.preset,
        "model": str(model), "prompt": PROMPT, "steps": a.steps, "guidance": a.guidance, "calls": a.calls,
        "warmup": a.warmup, "device": a.device, "load_s": load_s,
        "machine": info, "versions": versions(), "label": a.label, "runs": runs,
    }  # fmt: skip
    path = results_path(a.results, "generate", info, a.label)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


def print_run(run: dict[str, Any], names: list[str]) -> None:
    print(f"\n{run['size']} batch {run['batch']}  (load average before/after {run['load_average']})")
    print(
        f"  {'side':<14} {'img/s':>8} {'s/img':>8} {'cpu s/img':>9} {'speedup':>8} {'RSS MB':>8} "
        f"{'CUDA MB':>8}  per call (s)"
    )
    for name in [n for n in names if "error" not in run[n]]:
        r = run[name]
        print(
            f"  {name:<14} {r['images_per_s']:>8.3f} {r['s_per_image']:>8.3f} {r['cpu_s_per_image']:>9.3f} "
            f"{r.get('speedup', 1.0):>8.2f} {r.get('peak_rss_mb') or '-':>8} "
            f"{r.get('peak_cuda_mb') or '-':>8}  {r['s_per_call']}"
        )
        for c in r.get("closeness", []):
            print(
                f"    vs reference: mean |diff| {c['mean_abs']}/255, max {c['max_abs']}, "
                f"PSNR {c['psnr_db']} dB"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
