"""The thesis's method on SDXL (tiny-xl): tokens in both text encoders, every recipe, exact resume,
the exports other tools load, and clear errors for a model of the other family."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
from safetensors.torch import load_file

from portraitist.errors import PortraitistError
from portraitist.models.family import SizeInfo, size_rows, tokenize
from portraitist.models.loading import load_base
from portraitist.models.trained import load_trained, model_info_path, read_model_info
from portraitist.train.config import TrainConfig
from portraitist.train.export import export
from portraitist.train.stage import train
from portraitist.train.tokens import add_model_tokens
from portraitist.workspace import Workspace

N_BASE = 49408
TABLE = "embeddings.token_embedding.weight"
ENCODERS = ("text_encoder", "text_encoder_2")


def _plain(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Plain names (peft keeps a wrapped Linear's weight under `base_layer`; transformers 5 drops
    `text_model.` from one CLIP class's keys), adapters left out."""
    return {
        k.replace(".base_layer", "").removeprefix("text_model."): v
        for k, v in state.items()
        if ".lora_" not in k
    }


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    """Which of the base's tensors differ (the token table is compared on its own)."""
    return {k for k, v in before.items() if k != TABLE and not torch.equal(v, after[k])}


def _table(text_encoder) -> torch.Tensor:
    """The whole token table, whether training left it split into pretrained and added rows or not."""
    table = text_encoder.get_input_embeddings()
    return torch.cat([table.base, table.added.detach()]) if hasattr(table, "added") else table.weight


def test_new_tokens_start_from_each_encoders_own_face(prepared):
    model = load_base("tiny-xl")
    added = add_model_tokens(model, prepared.read_manifest())
    face = model.tokenizer("face", add_special_tokens=False)["input_ids"][0]
    assert [t.id for t in added] == list(range(N_BASE, N_BASE + 5))
    for _, tokenizer, encoder in model.text_encoders:
        rows = _table(encoder)
        assert tokenizer.convert_tokens_to_ids("<sks>") == N_BASE
        assert torch.equal(rows[N_BASE], rows[face])
    # the two encoders are different networks: their "face" rows differ, so each row came from its own
    assert not torch.equal(_table(model.text_encoder)[face], _table(model.text_encoder_2)[face])


@pytest.mark.parametrize(
    ("recipe", "unet_trains", "text_trains", "files"),
    [
        ("staged", False, True, {"unet_lora", "text_encoder", "text_encoder_2"}),
        ("dreambooth", False, False, {"unet_lora"}),
        ("textual-inversion", False, False, set()),
        ("lora", False, False, {"unet_lora", "text_encoder_lora", "text_encoder_2_lora"}),
    ],
)
def test_every_recipe_changes_exactly_its_parts_in_both_encoders(
    prepared, train_in_memory, recipe, unet_trains, text_trains, files
):
    base = load_base("tiny-xl")
    config = TrainConfig(base="tiny-xl", recipe=recipe, steps=2, precision="fp32", flip=False)
    _, in_memory = train_in_memory(prepared, config)
    # (on SDXL the recipes train the UNet as LoRA by default: its weights stay, adapters are merged on load)

    unet_changed = _changed(_plain(base.unet.state_dict()), _plain(in_memory.unet.state_dict()))
    assert unet_changed == (set(_plain(base.unet.state_dict())) if unet_trains else set())
    tokens_added = recipe != "dreambooth"
    for name in ENCODERS:
        before = _plain(getattr(base, name).state_dict())
        after = _plain(getattr(in_memory, name).state_dict())
        rows = _table(getattr(in_memory, name))
        # the pretrained vocabulary rows never move, in either encoder
        assert torch.equal(rows[:N_BASE], before[TABLE]), name
        # SDXL reads the first encoder's penultimate layer: its last layer and final norm get no gradient
        unused = {k for k in before if k.startswith(("encoder.layers.1.", "final_layer_norm."))}
        trained = set(before) - {TABLE} - (unused if name == "text_encoder" else set())
        assert _changed(before, after) == (trained if text_trains else set()), name
        assert rows.shape[0] == N_BASE + (5 if tokens_added else 0), name
    info = read_model_info(prepared)
    assert info.family == "sdxl"
    assert set(info.files) == files
    loaded = load_trained(prepared)
    for name in ENCODERS:
        trained_rows = _table(getattr(in_memory, name))
        assert torch.equal(getattr(loaded, name).get_input_embeddings().weight, trained_rows), name


def test_training_conditions_each_photo_on_its_crop_size(prepared):
    """SDXL's micro-conditioning: a crop cut 300 px wide from the photo says so; generation asks for an
    uncropped image at the target size."""
    manifest = prepared.read_manifest()
    manifest.photos[0].crop_box = [10.0, 20.0, 310.0, 320.0]
    prepared.write_manifest(manifest)
    from portraitist.train.data import encode, load_photos

    model = load_base("tiny-xl")
    data = encode(load_photos(prepared, ["a"] * 4, 64), model.vae, model.tokenizer, True, torch.device("cpu"))
    assert data.sizes[0].tolist() == [300, 300, 0, 0, 64, 64]
    assert data.sizes[4].tolist() == [300, 300, 0, 0, 64, 64]  # its mirror image
    assert data.sizes[1].tolist()[:2] == [64, 64]  # the fixture's other crops carry no box: their own size
    cond = model.family.encode(model, tokenize(model, ["a"]), data.sizes[:1])
    assert cond.added["time_ids"].tolist() == [[300, 300, 0, 0, 64, 64]]


def test_resume_after_a_kill_gives_the_same_weights(prepared, tmp_path):
    config = TrainConfig(
        base="tiny-xl", recipe="staged", steps=5, checkpoint_every=2, precision="fp32", unet_lora=False
    )
    reference = Workspace(tmp_path / "reference")
    shutil.copytree(prepared.root, reference.root)
    train(reference, config)

    def kill_at_3(event):
        if event.step == 3 and event.message != "done":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(prepared, config, progress=kill_at_3)
    resumed = train(prepared, config)

    assert resumed.resumed_from == 2
    for name in (
        "unet",
        "text_encoder",
        "text_encoder_2",
        "token_embeddings",
        "text_encoder_2_token_embeddings",
    ):
        ours, theirs = (load_file(str(ws.model_dir / f"{name}.safetensors")) for ws in (prepared, reference))
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), name


@pytest.fixture(scope="module")
def xl_base_folder(tmp_path_factory):
    """tiny-xl saved as a diffusers folder, as users keep SDXL base 1.0."""
    folder = tmp_path_factory.mktemp("tiny-xl") / "base"
    base = load_base("tiny-xl")
    base.family.pipeline(base, EulerDiscreteScheduler.from_config(base.scheduler.config)).save_pretrained(
        folder
    )
    return folder


def test_a_diffusers_sdxl_folder_is_recognised_and_trains(prepared, xl_base_folder):
    assert load_base(str(xl_base_folder)).family.name == "sdxl"
    result = train(
        prepared, TrainConfig(base=str(xl_base_folder), recipe="textual-inversion", steps=1, precision="fp32")
    )
    assert result.steps_done == 1


def test_kohya_lora_loads_into_diffusers_and_reproduces_our_unet(prepared, xl_base_folder, tmp_path):
    lora = TrainConfig(base=str(xl_base_folder), recipe="lora", steps=3, precision="fp32", flip=False)
    train(prepared, lora)
    out = tmp_path / "lora.safetensors"
    export(prepared, "kohya-lora", out)
    state = load_file(str(out))
    prefixes = {k.split("_", 2)[1] for k in state}
    assert prefixes == {"unet", "te1", "te2"}
    # kohya's SDXL UNet keeps the original (SGM) block names (one layer per level in tiny-xl: the
    # second level's attention is input block 3; SDXL base 1.0 has two, and it is block 4 there)
    assert "lora_unet_input_blocks_3_1_transformer_blocks_0_attn1_to_q.lora_down.weight" in state
    assert "lora_unet_middle_block_1_transformer_blocks_1_attn2_to_k.lora_up.weight" in state
    embedding = load_file(str(tmp_path / "portraitist-sks.safetensors"))
    assert {k: v.shape[1] for k, v in embedding.items()} == {"clip_l": 32, "clip_g": 32}

    pipe = StableDiffusionXLPipeline.from_pretrained(xl_base_folder, local_files_only=True)
    pipe.load_lora_weights(str(out))
    ours = load_trained(prepared)
    sizes = size_rows([SizeInfo.plain(64, 64)])
    cond = ours.family.encode(ours, tokenize(ours, ["a photo of a girl"]), sizes)
    x, t = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([500])
    with torch.no_grad():
        expected = ours.unet(x, t, **cond.unet_kwargs()).sample
        got = pipe.unet(x, t, **cond.unet_kwargs()).sample
        plain = load_base(str(xl_base_folder)).unet(x, t, **cond.unet_kwargs()).sample
    # the adapters change the prediction, and diffusers applies them as we merged them
    assert (expected - plain).abs().max() > 1e-4
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()


def test_single_file_export_loads_with_diffusers(prepared, xl_base_folder, tmp_path):
    train(
        prepared,
        TrainConfig(base="tiny-xl", recipe="staged", steps=2, precision="fp32", flip=False, unet_lora=False),
    )
    out = tmp_path / "me.safetensors"
    export(prepared, "single-file", out)
    state = load_file(str(out))
    assert {k.split(".")[0] for k in state} == {"model", "first_stage_model", "conditioner"}
    assert "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight" in state
    assert "model.diffusion_model.label_emb.0.0.weight" in state

    pipe = StableDiffusionXLPipeline.from_single_file(
        str(out), config=str(xl_base_folder), local_files_only=True
    )
    trained = load_trained(prepared)
    # diffusers recognises the OpenCLIP encoder of a single file by its 10th layer, which tiny-xl's
    # two-layer encoder lacks: its keys are read back with diffusers' own converter instead
    text_encoder_2 = convert_open_clip_checkpoint(
        pipe.text_encoder_2, state, prefix="conditioner.embedders.1.model."
    )
    loaded = {"unet": pipe.unet.state_dict(), "vae": pipe.vae.state_dict(),
              "text_encoder": pipe.text_encoder.state_dict(), "text_encoder_2": text_encoder_2}  # fmt: skip
    for name, state_dict in loaded.items():
        ours, theirs = _plain(getattr(trained, name).state_dict()), _plain(state_dict)
        assert ours.keys() == theirs.keys(), name
        for key, value in ours.items():
            assert torch.equal(value[: theirs[key].shape[0]], theirs[key]), (name, key)


def test_a_model_of_the_other_family_is_refused(prepared):
    train(prepared, TrainConfig(base="tiny", recipe="textual-inversion", steps=1, precision="fp32"))
    info = json.loads(model_info_path(prepared).read_text())
    model_info_path(prepared).write_text(json.dumps(dict(info, base="tiny-xl")))
    with pytest.raises(
        PortraitistError, match="trained on a Stable Diffusion 1.x/2.x base.*Stable Diffusion XL"
    ):
        load_trained(prepared)


def test_a_checkpoint_of_no_known_family_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"transformer.blocks.0.weight": torch.zeros(2)}, str(tmp_path / "flux.safetensors"))
    with pytest.raises(PortraitistError, match="Stable Diffusion 1.x/2.x, Stable Diffusion XL"):
        load_base(str(tmp_path / "flux.safetensors"))


def test_staged_trains_the_sdxl_unet_as_lora_by_default_and_whole_when_asked(prepared):
    staged = TrainConfig(base="tiny-xl", recipe="staged", steps=2, precision="fp32", flip=False)
    train(prepared, staged)
    assert set(read_model_info(prepared).files) == {"unet_lora", "text_encoder", "text_encoder_2"}
    with pytest.raises(PortraitistError, match="fine-tuned text_encoder, text_encoder_2 whole"):
        export(prepared, "kohya-lora", prepared.root / "lora.safetensors")

    train(prepared, staged.model_copy(update={"unet_lora": False, "restart": True}))
    assert set(read_model_info(prepared).files) == {"unet", "text_encoder", "text_encoder_2"}


def test_an_exported_sdxl_single_file_loads_back_offline(prepared, tmp_path):
    tokens = TrainConfig(base="tiny-xl", recipe="textual-inversion", steps=1, precision="fp32", flip=False)
    train(prepared, tokens)
    out = tmp_path / "me.safetensors"
    export(prepared, "single-file", out)

    loaded = load_base(str(out))  # HF_HUB_OFFLINE is set for the tests: the configs come from the file

    base = load_base("tiny-xl")
    assert loaded.family.name == "sdxl"
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        ours, theirs = _plain(getattr(base, name).state_dict()), _plain(getattr(loaded, name).state_dict())
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), name
    assert loaded.tokenizer_2.pad_token == "!"


def test_a_foreign_sdxl_file_gets_sdxl_base_configs():
    """An A1111/ComfyUI SDXL file carries no configs: SDXL base 1.0's, read off the meta device."""
    from portraitist.models.single_file import family_configs

    configs = family_configs("sdxl-random")
    assert configs["unet"]["cross_attention_dim"] == 2048
    assert list(configs["unet"]["transformer_layers_per_block"]) == [1, 2, 10]
    assert configs["text_encoder_2"]["hidden_size"] == 1280 and configs["vae"]["scaling_factor"] == 0.13025


def test_the_attention_loss_reads_sdxls_cross_attention(prepared):
    """Thesis 2.3's masked cross-attention loss on SDXL's maps: it changes what training does."""
    plain = TrainConfig(base="tiny-xl", recipe="textual-inversion", steps=2, precision="fp32", flip=False)
    rows = {}
    for weight in (0.0, 1.0):
        train(prepared, plain.model_copy(update={"attention_loss": weight, "restart": True}))
        rows[weight] = load_trained(prepared).text_encoder_2.get_input_embeddings().weight[N_BASE]
    assert not torch.equal(rows[0.0], rows[1.0])


def test_a_vae_override_keeps_the_sdxl_latent_scale(tmp_path):
    """sdxl-vae-fp16-fix style: another VAE for an SDXL base; its latents stay scaled as SDXL's UNet needs."""
    from portraitist.models.random_sd import build_vae

    build_vae("tiny").save_pretrained(tmp_path / "vae")  # SD's scaling factor, 0.18215
    model = load_base("tiny-xl", vae=str(tmp_path / "vae"))
    assert model.vae.config.scaling_factor == 0.13025 and model.vae_source == str(tmp_path / "vae")
