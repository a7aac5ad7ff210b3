"""What every benchmark records beside its figures: the machine, the versions, the load, the file."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
from importlib import metadata
from pathlib import Path


def machine() -> dict[str, object]:
    import torch

    info: dict[str, object] = {"platform": platform.platform(), "python": platform.python_version()}
    if torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name(0)
    else:
        model = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
        info["device"] = model.group(1).strip() if model else platform.processor()
    info["cpu_count"] = os.cpu_count()
    info["torch_threads"] = torch.get_num_threads()
    info["slug"] = re.sub(r"[^a-z0-9]+", "-", str(info["device"]).lower()).strip("-")[:40] + (
        "" if torch.cuda.is_available() else f"-{os.cpu_count()}cpu"
    )
    return info


def versions() -> dict[str, str | None]:
    out = {}
    for pkg in ("torch", "diffusers", "transformers", "accelerate", "peft", "portraitist"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: other work on a shared machine slows the timings."""
    return [round(v, 2) for v in os.getloadavg()]


def results_path(folder: Path, kind: str, info: dict[str, object], label: str = "") -> Path:
    """benchmarks/results/<kind>-<machine>-<date-time>[-label].json (never overwrites a run)."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = "-" + re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:40] if label else ""
    return folder / f"{kind}-{info['slug']}-{dt.datetime.now().strftime('%Y-%m-%d-%H%M')}{suffix}.json"
