"""The world's base (issue 9): the pixel codec, the model folder our loader reads, pretraining that
resumes to the same weights, and the folder going through train, generate and export unchanged."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from typer.testing import CliRunner

from portraitist.cli import app
from portraitist.errors import PortraitistError
from portraitist.generate.config import GenerateConfig
from portraitist.generate.stage import generate
from portraitist.models.loading import load_base
from portraitist.train.config import TrainConfig
from portraitist.train.export import export
from portraitist.train.stage import train
from portraitist.workspace import DatasetManifest, PhotoRecord, TokenInit, Workspace
from portraitist.world import family as world_family
from portraitist.world.codec import PixelCodec
from portraitist.world.model import BASE_DIR, build_codec, build_components, build_world_base
from portraitist.world.pretrain import CHECKPOINT, PretrainConfig, learning_rate, pretrain
from portraitist.world.render import held_out_person, person, random_scene, render_filtered

# the smallest run that still has several people, flips, empty captions and warm-up in it
TINY = {"architecture": "tiny", "identities": 3, "photos": 4, "batch": 4, "warmup": 2, "sample_steps": 2}


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_world_base(tmp_path_factory.mktemp("world") / "base", architecture="tiny")


def renders(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack([render_filtered(person(i), random_scene(rng), 32).image for i in range(n)])


@pytest.mark.parametrize(("architecture", "shape"), [("patch2", (12, 16, 16)), ("patch4", (48, 8, 8))])
def test_codec_is_lossless_space_to_depth_with_a_vaes_surface(architecture: str, shape: tuple) -> None:
    codec = build_codec(architecture)
    pixels = torch.from_numpy(renders(8)).permute(0, 3, 1, 2).float() / 127.5 - 1
    dist = codec.encode(pixels).latent_dist
    assert dist.mean.shape == (8, *shape)
    assert torch.equal(dist.sample(), dist.mean) and torch.equal(dist.mode(), dist.mean)
    assert float(dist.std.abs().max()) == 0.0
    assert torch.equal(codec.decode(dist.mean).sample, pixels)
    # what our code derives from a VAE's config: the latent side, about unit variance once scaled
    assert 32 // 2 ** (len(codec.config.block_out_channels) - 1) == shape[1]
    assert 0.85 < float((dist.mean * codec.config.scaling_factor).std()) < 1.15
    # callers read .dtype/.device, which a weightless codec must still answer
    assert codec.to(torch.bfloat16).dtype == torch.bfloat16


@pytest.mark.parametrize("architecture", ["patch2", "patch4"])
def test_full_architectures_are_small_32px_models(architecture: str) -> None:
    parts = build_components(architecture)
    unet, codec = parts["unet"], parts["vae"]
    assert unet.config.sample_size * 2 ** (len(codec.config.block_out_channels) - 1) == 32
    assert unet.config.in_channels == codec.config.latent_channels
    assert 4e6 < sum(p.numel() for p in unet.parameters()) < 6e6
    # the text encoder: CLIP's vocabulary at width 128, 3 layers
    assert parts["text_encoder"].get_input_embeddings().weight.shape == (49408, 128)
    assert parts["text_encoder"].config.num_hidden_layers == 3


def test_world_base_folder_loads_as_a_32px_sd_model_in_fp32(tiny_base: Path) -> None:
    with safe_open(str(tiny_base / "unet" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        assert f.get_tensor(next(iter(f.keys()))).dtype == torch.float16  # stored small
    model = load_base(str(tiny_base))
    assert isinstance(model.vae, PixelCodec)
    assert model.resolution == 32 and model.vae_scale_factor == 2
    assert model.unet.config.in_channels == model.vae.config.latent_channels == 12
    assert model.prediction_type == "v_prediction"
    assert {m.dtype for m in (model.unet, model.text_encoder, model.vae)} == {torch.float32}
    assert len(model.tokenizer) == 49408


def test_base_world_names_the_committed_folder_or_says_how_to_make_it(
    tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(world_family, "BASE_DIR", tmp_path / "missing")
    with pytest.raises(PortraitistError, match="portraitist world pretrain"):
        load_base("world")
    monkeypatch.setattr(world_family, "BASE_DIR", tiny_base)
    result = generate(None, GenerateConfig(base="world", out=tmp_path / "out", n=2, steps=3, dtype="fp32"))
    assert [Image.open(p).size for p in result.images] == [(32, 32), (32, 32)]


def test_a_vae_of_another_latent_shape_is_refused(tiny_base: Path, tmp_path: Path) -> None:
    from diffusers import AutoencoderKL

    AutoencoderKL(block_out_channels=(32,), norm_num_groups=32).save_pretrained(tmp_path / "vae")
    with pytest.raises(PortraitistError, match="4-channel latents"):
        load_base(str(tiny_base), vae=str(tmp_path / "vae"))


def tensors(out: Path) -> dict[str, torch.Tensor]:
    state = torch.load(out / CHECKPOINT, weights_only=True)
    flat = {
        f"{kind}.{part}.{k}": v
        for kind in ("weights", "ema")
        for part, d in state[kind].items()
        for k, v in d.items()
    }
    for index, values in state["optimizer"]["state"].items():
        flat |= {f"adam.{index}.{k}": v for k, v in values.items()}
    return flat


def test_interrupted_pretraining_resumes_to_the_same_weights(tmp_path: Path) -> None:
    whole = pretrain(tmp_path / "whole", PretrainConfig(steps=4, **TINY))
    pretrain(tmp_path / "parts", PretrainConfig(steps=2, **TINY))
    resumed = pretrain(tmp_path / "parts", PretrainConfig(steps=4, **TINY), resume=True)

    assert (whole.step, whole.images) == (resumed.step, resumed.images) == (4, 16)
    a, b = tensors(tmp_path / "whole"), tensors(tmp_path / "parts")
    assert a.keys() == b.keys() and len(a) > 100
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the run really trained: the weights moved from their initial values, the EMA trails them
    assert not torch.equal(a["weights.unet.conv_in.weight"], a["ema.unet.conv_in.weight"])
    # base/ is an ordinary model folder of the EMA weights, with the command that made it
    model = load_base(str(tmp_path / "parts" / "base"))
    ema = a["ema.unet.conv_in.weight"].half().float()
    assert torch.equal(model.unet.conv_in.weight, ema)
    assert "seed 0" in (tmp_path / "parts" / "base" / "README.md").read_text()
    log = [json.loads(line) for line in (tmp_path / "parts" / "log.jsonl").read_text().splitlines()]
    samples = [row for row in log if row["kind"] == "samples"]
    assert [row["step"] for row in samples] == [2, 4]
    assert Image.open(tmp_path / "parts" / samples[-1]["file"]).size == (8 * 128, 4 * 128)


def test_resume_refuses_other_settings_and_a_missing_run(tmp_path: Path) -> None:
    with pytest.raises(PortraitistError, match="Nothing to resume"):
        pretrain(tmp_path / "run", PretrainConfig(steps=1, **TINY), resume=True)
    pretrain(tmp_path / "run", PretrainConfig(steps=1, **TINY))
    with pytest.raises(PortraitistError, match="add --resume"):
        pretrain(tmp_path / "run", PretrainConfig(steps=2, **TINY))
    with pytest.raises(PortraitistError, match="batch: 4 then, 8 now"):
        pretrain(tmp_path / "run", PretrainConfig(steps=2, **{**TINY, "batch": 8}), resume=True)
    with pytest.raises(PortraitistError, match="budget-minutes"):
        pretrain(tmp_path / "other", PretrainConfig(**TINY))


def test_a_checkpoint_that_predates_a_setting_resumes_with_its_default(tmp_path: Path) -> None:
    pretrain(tmp_path / "run", PretrainConfig(steps=1, **TINY))
    state = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)
    del state["fingerprint"]["text_layers"], state["fingerprint"]["text_lr"]  # as written before they existed
    torch.save(state, tmp_path / "run" / CHECKPOINT)
    assert pretrain(tmp_path / "run", PretrainConfig(steps=2, **TINY), resume=True).step == 2
    with pytest.raises(PortraitistError, match="text_layers: 3 then, 4 now"):
        pretrain(tmp_path / "run", PretrainConfig(steps=3, text_layers=4, **TINY), resume=True)


def test_text_lr_gives_the_text_encoder_its_own_rate_on_the_same_schedule(tmp_path: Path) -> None:
    run = pretrain(tmp_path / "run", PretrainConfig(steps=3, lr=1e-3, text_lr=4e-3, **TINY))
    unet, text = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)["optimizer"]["param_groups"]
    assert unet["lr"] > 0 and text["lr"] == pytest.approx(4 * unet["lr"])
    assert json.loads((run.base / "pretrain.json").read_text())["made_by"][0].endswith("--text-lr 0.004")


def test_init_from_carries_a_base_on_in_a_new_run_folder(tmp_path: Path) -> None:
    first = pretrain(tmp_path / "first", PretrainConfig(steps=2, **TINY))
    # no steps left to take: the new run's base is exactly the base it started from
    same = pretrain(tmp_path / "same", PretrainConfig(steps=2, init_from=str(first.base), **TINY))
    assert same.step == 2
    before, after = load_base(str(first.base)), load_base(str(same.base))
    for part in ("unet", "text_encoder"):
        a, b = getattr(before, part).state_dict(), getattr(after, part).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)

    on = pretrain(tmp_path / "on", PretrainConfig(steps=4, init_from=str(first.base), **TINY))
    assert (on.step, on.images) == (4, 16)
    record = json.loads((on.base / "pretrain.json").read_text())
    assert record["step"] == 4 and len(record["made_by"]) == 2
    assert (
        "--init-from BASE --steps 4" in record["made_by"][1]
        and "--lr 0.0005 --warmup 2" in record["made_by"][1]
    )
    assert record["made_by"][1] in (on.base / "README.md").read_text()
    moved = load_base(str(on.base)).unet.conv_in.weight
    assert not torch.equal(moved, before.unet.conv_in.weight)

    with pytest.raises(PortraitistError, match="a tiny base"):
        pretrain(
            tmp_path / "other",
            PretrainConfig(steps=3, init_from=str(first.base), **{**TINY, "architecture": "patch2"}),
        )
    with pytest.raises(PortraitistError, match="no pretrain.json"):
        pretrain(tmp_path / "bare", PretrainConfig(steps=3, init_from=str(tmp_path), **TINY))
    with pytest.raises(PortraitistError, match="give one of them"):
        pretrain(tmp_path / "on", PretrainConfig(steps=5, init_from=str(first.base), **TINY), resume=True)


def test_init_from_deepens_the_text_encoder_with_layers_that_start_as_the_identity(tmp_path: Path) -> None:
    first = pretrain(tmp_path / "first", PretrainConfig(steps=2, **TINY))
    # no steps taken: the deeper encoder encodes every caption exactly as the base's own did
    deeper = pretrain(
        tmp_path / "deeper", PretrainConfig(steps=2, init_from=str(first.base), text_layers=5, **TINY)
    )
    before, after = load_base(str(first.base)).text_encoder, load_base(str(deeper.base)).text_encoder
    assert (before.config.num_hidden_layers, after.config.num_hidden_layers) == (3, 5)
    ids = torch.randint(0, 49408, (2, 77), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(before(ids).last_hidden_state, after(ids).last_hidden_state)

    on = pretrain(tmp_path / "on", PretrainConfig(steps=4, init_from=str(deeper.base), text_layers=5, **TINY))
    grown = load_base(str(on.base)).text_encoder.encoder.layers[4].mlp.fc2.weight
    assert grown.abs().max() > 0  # trained away from the zeros it started at
    record = json.loads((on.base / "pretrain.json").read_text())
    assert "--text-layers 5" in record["made_by"][1] and record["settings"]["text_layers"] == 5
    with pytest.raises(PortraitistError, match="5-layer text encoder; give --text-layers 5"):
        pretrain(tmp_path / "shallower", PretrainConfig(steps=3, init_from=str(on.base), **TINY))


def test_learning_rate_warms_up_then_holds_or_decays_to_zero() -> None:
    constant = PretrainConfig(lr=1e-3, warmup=10)
    decaying = PretrainConfig(lr=1e-3, warmup=10, decay_to=130)
    # the warm-up counts from where this run's optimizer started (100: an --init-from base's step)
    for config in (constant, decaying):
        assert learning_rate(config, 100, 100) == pytest.approx(1e-4)
        assert learning_rate(config, 109, 100) == pytest.approx(1e-3)
    assert learning_rate(constant, 10_000, 100) == pytest.approx(1e-3)
    assert learning_rate(decaying, 120, 100) == pytest.approx(0.5e-3)  # half-way from 110 to 130
    assert learning_rate(decaying, 130, 100) == learning_rate(decaying, 200, 100) == 0
    rates = [learning_rate(decaying, step, 100) for step in range(110, 131)]
    assert all(a > b for a, b in itertools.pairwise(rates))


def test_decay_is_recorded_and_must_end_after_the_warm_up(tmp_path: Path) -> None:
    run = pretrain(tmp_path / "run", PretrainConfig(steps=4, decay_to=4, **TINY))
    record = json.loads((run.base / "pretrain.json").read_text())
    assert record["made_by"][0].endswith("--decay-to 4")
    with pytest.raises(PortraitistError, match="ends before this run's warm-up"):
        pretrain(tmp_path / "on", PretrainConfig(steps=8, decay_to=5, init_from=str(run.base), **TINY))


def test_cli_pretrain_writes_a_base_folder(tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text('[pretrain]\narchitecture = "tiny"\nsample_steps = 2\n')
    args = [
        "world",
        "pretrain",
        "--out",
        str(tmp_path / "run"),
        "--steps",
        "2",
        "--batch",
        "4",
        "--identities",
        "2",
        "--photos",
        "2",
        "--warmup",
        "1",
        "--decay-to",
        "2",
        "--phrase-drop",
        "0.2",
        "--ema-decay",
        "0.99",
        "--text-layers",
        "4",
        "--text-lr",
        "0.002",
        "--config",
        str(tmp_path / "tiny.toml"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "step 2: 8 images" in result.output
    assert (tmp_path / "run" / "base" / "model_index.json").is_file()
    record = json.loads((tmp_path / "run" / "base" / "pretrain.json").read_text())
    settings = record["settings"]
    assert (settings["phrase_drop"], settings["ema_decay"], settings["text_lr"]) == (0.2, 0.99, 0.002)
    assert load_base(str(tmp_path / "run" / "base")).text_encoder.config.num_hidden_layers == 4
    # the recorded command names every setting the CLI can give, so it remakes the run without a --config
    assert "--architecture tiny --text-layers 4 --seed 0" in record["made_by"][0]
    assert record["made_by"][0].endswith(
        "--warmup 1 --identities 2 --photos 2 --phrase-drop 0.2 --ema-decay 0.99 --decay-to 2 --text-lr 0.002"
    )


def world_workspace(root: Path, n: int = 3) -> Workspace:
    """A prepared workspace of a held-out person's renders at the world's 32 px, as `prepare` leaves it."""
    ws = Workspace(root)
    rng = np.random.default_rng(1)
    photos = []
    for i in range(n):
        drawn = render_filtered(held_out_person(0), random_scene(rng), 32)
        for kind, image in (("crops", drawn.image), ("masks", drawn.person_mask.astype(np.uint8) * 255)):
            (ws.dataset_dir / kind).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(ws.dataset_dir / kind / f"{i}.png")
        photos.append(
            PhotoRecord(
                source=f"world_{i}.png",
                status="kept",
                image=f"dataset/crops/{i}.png",
                mask=f"dataset/masks/{i}.png",
                caption="a photo of <me> person",
            )
        )
    ws.write_manifest(
        DatasetManifest(
            class_token="person",
            instance_token="<me>",
            context="photo_of",
            instance_init=TokenInit(kind="word", word="face"),
            resolution=32,
            photos=photos,
        )
    )
    return ws


def test_world_base_trains_generates_and_exports_through_our_pipeline(
    tiny_base: Path, tmp_path: Path
) -> None:
    ws = world_workspace(tmp_path / "ws")
    result = train(ws, TrainConfig(steps=2, precision="fp32", base=str(tiny_base)))
    assert result.steps_done == 2
    images = generate(ws, GenerateConfig(n=1, steps=3, dtype="fp32")).images
    assert Image.open(images[0]).size == (32, 32)
    with pytest.raises(PortraitistError, match="--format diffusers"):
        export(ws, "single-file")
    folder = export(ws, "diffusers")[0]
    assert isinstance(load_base(str(folder)).vae, PixelCodec)


@pytest.mark.skipif(
    not (BASE_DIR / "model_index.json").is_file(), reason="the pretrained world base is not committed yet"
)
def test_committed_base_loads_through_base_world_and_generates(tmp_path: Path) -> None:
    result = generate(None, GenerateConfig(base="world", out=tmp_path, n=2, steps=10))
    pixels = np.stack([np.asarray(Image.open(p)) for p in result.images]).astype(float)
    assert pixels.std() > 10  # a picture, not a flat colour
