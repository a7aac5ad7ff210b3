"""`generate` end to end on tiny models: seeds, {me}, formats, the log, and the errors users meet."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portraitist.errors import PortraitistError
from portraitist.generate.config import GenerateConfig
from portraitist.generate.stage import generate
from portraitist.models.random_sd import build_vae
from portraitist.workspace import Workspace


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.int16)


@pytest.mark.parametrize(("dtype", "max_levels", "mean_levels"), [("fp32", 1, 0.01), ("bf16", 4, 0.5)])
def test_each_image_is_remade_alone_from_its_seed(
    tmp_path: Path, dtype: str, max_levels: int, mean_levels: float
) -> None:
    """Image i of a batch uses seed + i: asking for that seed alone gives the same picture."""
    common = {"base": "tiny", "steps": 4, "dtype": dtype}
    batch = generate(None, GenerateConfig(out=tmp_path / "a", n=3, seed=10, batch_size=2, **common))
    assert batch.seeds == [10, 11, 12]
    alone = generate(None, GenerateConfig(out=tmp_path / "b", n=1, seed=11, **common))
    # a batch of 2 and a batch of 1 take different CPU kernels, which round differently (more so in bf16)
    diff = np.abs(pixels(batch.images[1]) - pixels(alone.images[0]))
    assert diff.max() <= max_levels and diff.mean() < mean_levels, (diff.max(), diff.mean())
    assert np.abs(pixels(batch.images[0]) - pixels(batch.images[1])).mean() > 1


def test_rerun_rewrites_the_same_files_and_log_lines(tmp_path: Path) -> None:
    config = GenerateConfig(base="tiny", out=tmp_path, n=2, steps=2, style="anime")
    first = generate(None, config)
    again = generate(None, config)
    assert first.images == again.images
    assert all(np.array_equal(pixels(p), pixels(q)) for p, q in zip(first.images, again.images))
    log = [json.loads(line) for line in (tmp_path / "generations.jsonl").read_text().splitlines()]
    assert [r["file"] for r in log] == [p.name for p in first.images]
    assert log[0]["style"] == "anime" and log[0]["seed"] == 0 and log[1]["seed"] == 1


@pytest.mark.parametrize(("aspect", "size"), [("9:16", (64, 112)), ("4:5", (64, 80)), ("16:9", (112, 64))])
def test_portrait_formats_come_out_at_the_requested_ratio(
    tmp_path: Path, aspect: str, size: tuple[int, int]
) -> None:
    result = generate(None, GenerateConfig(base="tiny", out=tmp_path, n=1, steps=2, aspect=aspect))
    assert Image.open(result.images[0]).size == size
    record = json.loads((tmp_path / "generations.jsonl").read_text())
    assert (record["width"], record["height"]) == size


def test_me_expands_to_the_workspace_subject(trained: Workspace) -> None:
    subject = json.loads((trained.model_dir / "model.json").read_text())["subject"]
    result = generate(trained, GenerateConfig(prompt="an oil painting of {me}, by rembrandt", n=1, steps=2))
    assert result.prompt.text == f"an oil painting of {subject}, by rembrandt"
    assert result.images[0].parent == trained.outputs_dir / "images"
    record = json.loads((trained.outputs_dir / "generations.jsonl").read_text())
    assert record["prompt"] == result.prompt.text
    assert record["file"] == f"outputs/images/{result.images[0].name}"
    assert set(record) == {
        "file", "prompt", "negative_prompt", "style", "seed", "steps", "guidance", "width", "height",
        "scheduler", "vae", "control",
    }  # fmt: skip


@pytest.mark.parametrize("recipe", ["dreambooth", "lora"])
def test_full_fine_tune_and_lora_workspaces_both_generate(
    trained_templates: dict[str, Path], tmp_path: Path, recipe: str
) -> None:
    ws = Workspace(shutil.copytree(trained_templates[recipe], tmp_path / recipe))
    info = json.loads((ws.model_dir / "model.json").read_text())
    assert info["weights"] == ("lora" if recipe == "lora" else "full")
    result = generate(ws, GenerateConfig(style="cyborg", n=2, batch_size=2, steps=3))
    assert len(result.images) == 2 and all(p.exists() for p in result.images)
    assert result.prompt.text.startswith(f"a portrait of {info['subject']} as a cyborg")


def test_trained_weights_change_the_images(trained_templates: dict[str, Path], tmp_path: Path) -> None:
    """The workspace's model is the trained one, not the base: same prompt and seed, other pixels."""
    ws = Workspace(shutil.copytree(trained_templates["dreambooth"], tmp_path / "ws"))
    config = {"prompt": "a photo of a person", "n": 1, "steps": 3}
    ours = generate(ws, GenerateConfig(**config))
    base = generate(None, GenerateConfig(base="tiny", out=tmp_path / "base", **config))
    assert not np.array_equal(pixels(ours.images[0]), pixels(base.images[0]))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"style": "steampunk-unicorn"}, r"Unknown style 'steampunk-unicorn'. Styles: photo, studio"),
        ({"aspect": "9:16", "size": 500}, r"not a positive multiple of 8.*496 or 504"),
        ({"aspect": "tall"}, r"Unsupported aspect ratio .tall.. Use one of 1:1, 4:5"),
        ({"prompt": "a photo of {me}"}, r"uses \{me\}.*give --workspace"),
        ({"style": "anime", "prompt": "a cat"}, r"either a style .* or your own prompt"),
        ({"scheduler": "warp-drive"}, r"Unknown scheduler 'warp-drive'. Schedulers: euler, euler-a"),
    ],
)
def test_bad_requests_get_a_clear_error(tmp_path: Path, config: dict, message: str) -> None:
    with pytest.raises(PortraitistError, match=message):
        generate(None, GenerateConfig(base="tiny", out=tmp_path, n=1, steps=1, **config))


def test_control_needs_a_reference_image() -> None:
    with pytest.raises(PortraitistError, match="--control KIND and --reference IMAGE go together"):
        GenerateConfig(base="tiny", control="pose")


def test_untrained_workspace_and_missing_output_are_explained(tmp_path: Path) -> None:
    with pytest.raises(PortraitistError, match="no trained model"):
        generate(Workspace(tmp_path / "empty"), GenerateConfig(style="photo"))
    with pytest.raises(PortraitistError, match="give --out DIR"):
        generate(None, GenerateConfig(base="tiny", prompt="a cat"))


def test_sizes_follow_the_models_latent_scale(tmp_path: Path) -> None:
    """The world base's latents are 2x smaller, not SD's 8x: 34 px is a size it can draw."""
    result = generate(None, GenerateConfig(base="world", out=tmp_path, n=1, steps=1, size=34))
    assert Image.open(result.images[0]).size == (34, 34)
    with pytest.raises(PortraitistError, match="33 px is not a positive multiple of 2"):
        generate(None, GenerateConfig(base="world", out=tmp_path, n=1, steps=1, size=33))


def test_the_vae_that_decoded_an_image_is_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "my-vae"
    build_vae("tiny", seed=5).save_pretrained(folder)  # a VAE saved to disk, as --vae takes it
    generate(None, GenerateConfig(base="tiny", out=tmp_path / "own", n=1, steps=1))
    generate(None, GenerateConfig(base="tiny", out=tmp_path / "swapped", n=1, steps=1, vae=str(folder)))
    own = json.loads((tmp_path / "own" / "generations.jsonl").read_text())
    swapped = json.loads((tmp_path / "swapped" / "generations.jsonl").read_text())
    assert own["vae"] is None  # the base's own
    assert swapped["vae"] == str(folder)
