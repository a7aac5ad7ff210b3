"""Every stage on an SDXL base (tiny-xl): `run` from photos to upscaled portraits, face swap,
export and the recipe comparison, as on SD 1.x."""

from __future__ import annotations

import tomllib
from pathlib import Path

from PIL import Image
from test_pipeline_run import OFFLINE_TOML

from portraitist import samples
from portraitist.evaluate.config import EvaluateConfig
from portraitist.evaluate.stage import evaluate
from portraitist.generate.config import SwapConfig
from portraitist.generate.swap import swap
from portraitist.models.trained import read_model_info
from portraitist.pipeline import RunConfig, run_pipeline
from portraitist.rank.config import RankConfig
from portraitist.train.config import TrainConfig
from portraitist.train.export import export
from portraitist.workspace import Workspace

OFFLINE_SCORING = RankConfig(clip_model="tiny", aesthetic_weights="random", lpips_backbone="random")


def test_run_swap_export_and_evaluate_on_sdxl(tmp_path: Path, sample_photos: list[Path]) -> None:
    workspace = Workspace(tmp_path / "ws")
    config = RunConfig.model_validate(
        dict(tomllib.loads(OFFLINE_TOML), base="tiny-xl", steps=4, styles=["photo"], n=2, k=1)
    )

    result = run_pipeline(workspace, sample_photos, config)

    assert read_model_info(workspace).family == "sdxl"
    assert len(result.selected) == 1
    assert Image.open(result.selected[0]).size == (128, 128)  # 64 px, upscaled x2 (the default scale)

    picture = tmp_path / "picture.png"
    samples.astronaut().save(picture)
    swapped = swap(workspace, picture, SwapConfig(n=1, steps=2, dtype="fp32"))
    assert Image.open(swapped.images[0]).size == samples.astronaut().size

    assert export(workspace, "single-file", tmp_path / "me.safetensors")[0].stat().st_size > 0

    comparison = EvaluateConfig(
        recipes=["staged", "textual-inversion"], every=2, steps=2, subject_images=1,
        edit_prompts=["Elmo holding a {me}"], sampling_steps=1,
        train=TrainConfig(precision="fp32", flip=False), scoring=OFFLINE_SCORING,
    )  # fmt: skip
    evaluation = evaluate(workspace, comparison, "tiny-xl")
    assert {r.recipe for r in evaluation.records} == {"staged", "textual-inversion"}
