"""What other tools load: the LoRA back through load_trained, diffusers folders, A1111 single files,
kohya LoRAs and textual-inversion embeddings."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file
from typer.testing import CliRunner

from portraitist.cli.app import app
from portraitist.errors import PortraitistError
from portraitist.models import random_sd
from portraitist.models.loading import load_base
from portraitist.models.trained import load_trained
from portraitist.train.config import TrainConfig
from portraitist.train.export import export, ldm_unet_state_dict
from portraitist.train.stage import train

N_BASE = 49408


@pytest.fixture(scope="module")
def lora_workspace(prepared_template, tmp_path_factory, train_in_memory):
    """A LoRA trained with a high rate, so the adapters change predictions well beyond rounding."""
    import shutil

    from portraitist.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("lora") / "ws")
    shutil.copytree(prepared_template, ws.root)
    config = TrainConfig(
        base="tiny",
        recipe="lora",
        steps=3,
        precision="fp32",
        flip=False,
        lora_rank=4,
        learning_rates={"unet_lora": 1e-2, "text_encoder_lora": 1e-2},
    )
    _, trained = train_in_memory(ws, config)
    return ws, trained


def _prediction(model, prompt: str = "a photo of <sks> girl") -> torch.Tensor:
    torch.manual_seed(0)
    noisy = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        ids = model.tokenizer(prompt, padding="max_length", max_length=77, return_tensors="pt")["input_ids"]
        return model.unet(noisy, torch.tensor([500]), model.text_encoder(ids)[0]).sample


def test_lora_loads_back_and_reproduces_the_trained_model(lora_workspace):
    ws, trained = lora_workspace  # peft adapters still in place, unmerged
    loaded = load_trained(ws)  # a plain model: adapters merged into the weights

    assert not any(".lora_" in name for name in loaded.unet.state_dict())
    torch.testing.assert_close(_prediction(loaded), _prediction(trained), rtol=1e-4, atol=1e-5)
    base = load_base("tiny")
    base.tokenizer = loaded.tokenizer
    base.text_encoder.resize_token_embeddings(len(loaded.tokenizer), mean_resizing=False)
    assert (_prediction(base) - _prediction(loaded)).abs().max() > 1e-3
    sizes = {f.name: f.stat().st_size for f in ws.model_dir.glob("*.safetensors")}
    assert set(sizes) == {
        "unet_lora.safetensors",
        "text_encoder_lora.safetensors",
        "token_embeddings.safetensors",
    }


def test_kohya_lora_export(lora_workspace, tmp_path):
    ws, _ = lora_workspace
    out = tmp_path / "me.safetensors"
    written = export(ws, "kohya-lora", out)

    lora = load_file(str(out))
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight" in lora
    assert "lora_unet_up_blocks_1_attentions_1_transformer_blocks_0_attn1_to_out_0.lora_up.weight" in lora
    assert "lora_te_text_model_encoder_layers_1_self_attn_q_proj.lora_up.weight" in lora
    assert lora["lora_te_text_model_encoder_layers_1_self_attn_q_proj.alpha"].item() == 4.0
    downs = [k for k in lora if k.endswith(".lora_down.weight")]
    assert all(lora[k].shape[0] == 4 for k in downs)
    assert {k.rsplit(".", 2)[0] for k in lora} == {k.removesuffix(".lora_down.weight") for k in downs}
    embedding = load_file(str(tmp_path / "portraitist-sks.safetensors"))
    assert embedding["emb_params"].shape == (1, 32)
    trained_row = load_trained(ws).text_encoder.get_input_embeddings().weight[N_BASE]
    assert torch.equal(embedding["emb_params"][0], trained_row)
    assert {p.name for p in written} == {"me.safetensors"} | {
        f"portraitist-{name}.safetensors" for name in ("sks", "bg0", "bg1", "bg2", "bg3")
    }
    assert "a photo of portraitist-sks girl" in (tmp_path / "README.txt").read_text()


@pytest.fixture(scope="module")
def full_workspace(prepared_template, tmp_path_factory):
    import shutil

    from portraitist.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("full") / "ws")
    shutil.copytree(prepared_template, ws.root)
    train(ws, TrainConfig(base="tiny", steps=2, flip=False, precision="fp32"))
    return ws


def test_diffusers_export_loads_with_the_new_tokens(full_workspace, tmp_path):
    export(full_workspace, "diffusers", tmp_path / "pipe")
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path / "pipe", local_files_only=True)
    assert pipe.tokenizer("<sks> girl", add_special_tokens=False)["input_ids"][0] == N_BASE
    trained = load_trained(full_workspace)
    for name in ("unet", "text_encoder"):
        ours, theirs = getattr(trained, name).state_dict(), getattr(pipe, name).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), name


def test_single_file_has_the_sd_layout_and_round_trips(full_workspace, tmp_path):
    out = tmp_path / "me.safetensors"
    export(full_workspace, "single-file", out)
    state = load_file(str(out))
    assert {k.split(".")[0] for k in state} == {"model", "first_stage_model", "cond_stage_model"}
    assert (
        state["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"].shape[0] == N_BASE
    )
    assert state["first_stage_model.encoder.mid.attn_1.q.weight"].ndim == 4  # 1x1 convolutions, as in LDM
    assert "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight" in state
    assert "model.diffusion_model.output_blocks.1.1.conv.weight" in state  # up block 0's upsampler (1 layer)

    # diffusers' own single-file loader reads it back, given the base's configs (offline)
    base = load_base("tiny")
    StableDiffusionPipeline(
        vae=base.vae,
        text_encoder=base.text_encoder,
        tokenizer=base.tokenizer,
        unet=base.unet,
        scheduler=base.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    ).save_pretrained(tmp_path / "base")
    pipe = StableDiffusionPipeline.from_single_file(
        str(out), config=str(tmp_path / "base"), local_files_only=True, safety_checker=None
    )
    trained = load_trained(full_workspace)
    for name in ("unet", "vae", "text_encoder"):
        ours, theirs = getattr(trained, name).state_dict(), getattr(pipe, name).state_dict()
        assert ours.keys() == theirs.keys(), name
        for key, value in ours.items():
            assert torch.equal(value[: theirs[key].shape[0]], theirs[key]), (name, key)


def test_single_file_keys_of_the_sd15_block_layout():
    """cpu-bench has SD 1.5's block layout (4 blocks, 2 layers): spot-check keys that A1111 reads."""
    with torch.device("meta"):
        unet = random_sd.build_unet("cpu-bench")
    keys = set(ldm_unet_state_dict(unet))
    for key in (
        "model.diffusion_model.time_embed.0.weight",
        "model.diffusion_model.input_blocks.3.0.op.weight",
        "model.diffusion_model.input_blocks.11.0.out_layers.3.weight",
        "model.diffusion_model.middle_block.1.proj_in.weight",
        "model.diffusion_model.middle_block.2.emb_layers.1.weight",
        "model.diffusion_model.output_blocks.2.1.conv.weight",
        "model.diffusion_model.output_blocks.5.2.conv.weight",
        "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.ff.net.2.weight",
        "model.diffusion_model.output_blocks.3.0.skip_connection.weight",
        "model.diffusion_model.out.2.weight",
    ):
        assert key in keys, key
    assert len(keys) == len(unet.state_dict())


def test_full_model_is_not_a_lora(full_workspace, tmp_path):
    with pytest.raises(PortraitistError, match="not a LoRA"):
        export(full_workspace, "kohya-lora", tmp_path / "x.safetensors")


def test_export_command(full_workspace):
    result = CliRunner().invoke(app, ["export", "-w", str(full_workspace.root), "--format", "single-file"])
    assert result.exit_code == 0, result.output
    assert (full_workspace.root / "export" / "model.safetensors").exists()
    assert (full_workspace.root / "export" / "portraitist-sks.safetensors").exists()


def test_an_exported_single_file_loads_back_offline_as_a_base(full_workspace, tmp_path):
    """portraitist's own single file is a --base anywhere, without a network: its configs ride along."""
    out = tmp_path / "me.safetensors"
    export(full_workspace, "single-file", out)

    loaded = load_base(str(out))  # tiny's shapes, which SD 1.5's configs would not fit
    trained = load_trained(full_workspace)
    for name in ("unet", "vae"):
        ours, theirs = getattr(trained, name).state_dict(), getattr(loaded, name).state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), name
    rows = loaded.text_encoder.get_input_embeddings().weight
    assert torch.equal(rows, trained.text_encoder.get_input_embeddings().weight[:N_BASE])
    assert loaded.scheduler.config.prediction_type == trained.scheduler.config.prediction_type

    # and `generate` samples it, with a VAE folder saved to disk in place of its own
    vae = tmp_path / "vae"
    random_sd.build_vae("tiny", seed=3).save_pretrained(vae)
    command = ["generate", "--base", str(out), "--vae", str(vae), "--out", str(tmp_path / "images"),
               "-n", "1", "--steps", "2", "--prompt", "a photo of portraitist-sks girl"]  # fmt: skip
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "images" / "generations.jsonl").read_text())
    assert record["vae"] == str(vae) and (tmp_path / "images" / record["file"]).exists()
