"""`export`: the trained model in the formats other tools load.

- `diffusers`: a StableDiffusionPipeline folder (tokenizer with the new tokens included).
- `single-file`: one .safetensors in the original Stable Diffusion (LDM) key layout, which
  AUTOMATIC1111 and ComfyUI load, with the learned tokens beside it as textual-inversion
  embeddings (the checkpoint keeps the base's 49408-row vocabulary, as those tools expect).
- `kohya-lora`: a LoRA-trained model's adapters in kohya's key format
  (lora_unet_..., lora_te_..., .lora_down.weight / .lora_up.weight / .alpha), embeddings beside.

The embeddings are A1111's safetensors format ({"emb_params": rows}); in those tools the
token is written as the embedding's file name (`<me>` becomes `portraitist-me`), see README.txt.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import load_file

from portraitist.errors import PortraitistError
from portraitist.models.loading import StableDiffusion, has_pixel_codec
from portraitist.models.single_file import configs_metadata
from portraitist.train.artifacts import (
    TokenRecord,
    load_trained,
    read_model_info,
    read_tokens,
    save_safetensors_atomic,
)
from portraitist.workspace import Workspace, write_bytes_atomic

Format = Literal["diffusers", "single-file", "kohya-lora"]
FORMATS: tuple[Format, ...] = ("diffusers", "single-file", "kohya-lora")

# ---- key layout of the original SD 1.x checkpoints (CompVis/LDM), from the UNet's config ----

_UNET_TOP = [
    ("time_embedding.linear_1.", "time_embed.0."),
    ("time_embedding.linear_2.", "time_embed.2."),
    ("conv_in.", "input_blocks.0.0."),
    ("conv_norm_out.", "out.0."),
    ("conv_out.", "out.2."),
]
_UNET_RESNET = [
    ("norm1.", "in_layers.0."),
    ("conv1.", "in_layers.2."),
    ("norm2.", "out_layers.0."),
    ("conv2.", "out_layers.3."),
    ("time_emb_proj.", "emb_layers.1."),
    ("conv_shortcut.", "skip_connection."),
]


def unet_prefixes(unet: UNet2DConditionModel) -> list[tuple[str, str]]:
    """(diffusers prefix, LDM prefix) for every block of an SD 1.x-layout UNet of any depth."""
    config = unet.config
    n, layers = len(config.down_block_types), int(config.layers_per_block)
    out: list[tuple[str, str]] = []
    k = 1
    for i, kind in enumerate(config.down_block_types):
        for j in range(layers):
            out.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{k}.0."))
            if "CrossAttn" in kind:
                out.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{k}.1."))
            k += 1
        if i < n - 1:
            out.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{k}.0.op."))
            k += 1
    out.append(("mid_block.attentions.0.", "middle_block.1."))
    out += [(f"mid_block.resnets.{j}.", f"middle_block.{2 * j}.") for j in range(2)]
    k = 0
    for i, kind in enumerate(config.up_block_types):
        for j in range(layers + 1):
            out.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{k}.0."))
            if "CrossAttn" in kind:
                out.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{k}.1."))
            k += 1
        if i < n - 1:
            out.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{k - 1}.{2 if 'CrossAttn' in kind else 1}."))
    return out


def _rename(key: str, table: list[tuple[str, str]]) -> str:
    for old, new in table:
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def ldm_unet_state_dict(unet: UNet2DConditionModel) -> dict[str, torch.Tensor]:
    prefixes = _UNET_TOP + unet_prefixes(unet)
    out = {}
    for key, value in unet.state_dict().items():
        match = next(((old, new) for old, new in prefixes if key.startswith(old)), None)
        if match is None:
            raise PortraitistError(f"The UNet has a weight ({key}) outside the SD 1.x layout; export it as diffusers.")
        tail = key[len(match[0]) :]
        if ".resnets." in match[0]:
            tail = _rename(tail, _UNET_RESNET)
        out[f"model.diffusion_model.{match[1]}{tail}"] = value
    return out


def ldm_vae_state_dict(vae: AutoencoderKL) -> dict[str, torch.Tensor]:
    n, layers = len(vae.config.block_out_channels), int(vae.config.layers_per_block)
    table: list[tuple[str, str]] = []
    for i in range(n):
        table += [(f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}.") for j in range(layers)]
        table += [(f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{n - 1 - i}.block.{j}.") for j in range(layers + 1)]
        if i < n - 1:
            table.append((f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."))
            table.append((f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{n - 1 - i}.upsample."))
    for coder in ("encoder", "decoder"):
        table += [(f"{coder}.mid_block.resnets.{j}.", f"{coder}.mid.block_{j + 1}.") for j in range(2)]
        table += [(f"{coder}.mid_block.attentions.0.", f"{coder}.mid.attn_1."), (f"{coder}.conv_norm_out.", f"{coder}.norm_out.")]
    attention = [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out.")]
    out = {}
    for key, value in vae.state_dict().items():
        renamed = _rename(key, table).replace(".conv_shortcut.", ".nin_shortcut.")
        if ".mid.attn_1." in renamed:
            head, _, tail = renamed.partition(".mid.attn_1.")
            renamed = f"{head}.mid.attn_1.{_rename(tail, attention)}"
            if value.ndim == 2:  # LDM's VAE attention projections are 1x1 convolutions
                value = value[:, :, None, None]
        out[f"first_stage_model.{renamed}"] = value
    return out


def ldm_text_encoder_state_dict(model: StableDiffusion, vocabulary: int) -> dict[str, torch.Tensor]:
    """SD 1.x keeps transformers' CLIP keys under cond_stage_model.transformer.text_model."""
    if model.text_encoder.config.hidden_act != "quick_gelu":
        raise PortraitistError(
            "single-file export writes the SD 1.x (OpenAI CLIP) layout; this is an SD 2.x model. Export it as diffusers."
        )
    out = {}
    for key, value in model.text_encoder.state_dict().items():
        key = key.removeprefix("text_model.")
        if key == "embeddings.token_embedding.weight":
            value = value[:vocabulary]  # the learned tokens travel as embedding files
        out[f"cond_stage_model.transformer.text_model.{key}"] = value
    return out


def original_sd_state_dict(model: StableDiffusion, vocabulary: int) -> dict[str, torch.Tensor]:
    return {**ldm_unet_state_dict(model.unet), **ldm_vae_state_dict(model.vae), **ldm_text_encoder_state_dict(model, vocabulary)}


# ---- kohya LoRA ----


def kohya_lora_state_dict(workspace: Workspace) -> dict[str, torch.Tensor]:
    info = read_model_info(workspace)
    if info.weights != "lora" or info.lora is None:
        raise PortraitistError(
            f"The model in {workspace.root} is a full fine-tune ({info.recipe}), not a LoRA; export it as diffusers or "
            "single-file, or train with --recipe lora."
        )
    out: dict[str, torch.Tensor] = {}
    for name, prefix, module_prefix in (("unet_lora", "lora_unet", ""), ("text_encoder_lora", "lora_te", "text_model.")):
        if name not in info.files:
            continue
        for key, value in load_file(str(workspace.path(info.files[name]))).items():
            path, _, kind = key.removesuffix(".weight").rpartition(".")
            kohya = f"{prefix}_{(module_prefix + path.removeprefix('text_model.')).replace('.', '_')}"
            out[f"{kohya}.{'lora_down' if kind == 'lora_A' else 'lora_up'}.weight"] = value
            out[f"{kohya}.alpha"] = torch.tensor(info.lora.alpha)
    return out


# ---- textual-inversion embeddings beside the checkpoint ----


def embedding_name(token: TokenRecord) -> str:
    """The file name (= the word to type in A1111/ComfyUI) of a token: '<me>' -> 'portraitist-me'.

    Prefixed, because those tools replace the name wherever it occurs in a prompt ('me' would).
    """
    return "portraitist-" + (re.sub(r"[^A-Za-z0-9_-]+", "", token.text) or str(token.id))


def write_embeddings(workspace: Workspace, out_dir: Path) -> list[Path]:
    tokens = read_tokens(workspace)
    if not tokens:
        return []
    rows = load_file(str(workspace.path(tokens[0].embedding_file)))
    paths = []
    for token in tokens:
        path = out_dir / f"{embedding_name(token)}.safetensors"
        save_safetensors_atomic({"emb_params": rows[token.text].float().reshape(1, -1)}, path)
        paths.append(path)
    lines = [f"{embedding_name(t)}: portraitist's {t.text} ({t.init})" for t in tokens]
    subject = read_model_info(workspace).subject
    for t in tokens:
        subject = subject.replace(t.text, embedding_name(t))
    note = (
        "Textual-inversion embeddings learned by portraitist (A1111/ComfyUI safetensors format).\n"
        "Put them in the tool's embeddings folder and write their file name in prompts, e.g.\n"
        f"  a photo of {subject}\n\n" + "\n".join(lines) + "\n"
    )
    write_bytes_atomic(out_dir / "README.txt", note.encode())
    return paths


def _default_out(workspace: Workspace, fmt: Format) -> Path:
    return workspace.root / "export" / {"diffusers": "diffusers", "single-file": "model.safetensors", "kohya-lora": "lora.safetensors"}[fmt]


def export(workspace: Workspace, fmt: Format, out: Path | None = None) -> list[Path]:
    """Write the workspace's trained model in `fmt`; return the files and folders written."""
    if fmt not in FORMATS:
        raise PortraitistError(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    if fmt != "diffusers" and has_pixel_codec(read_model_info(workspace).base):
        raise PortraitistError(
            f"The model in {workspace.root} is built on the synthetic world's base (a pixel codec in the "
            "VAE's place, 32 px), which AUTOMATIC1111, ComfyUI and kohya's tools cannot load, so "
            f"{fmt} does not apply. Export it with --format diffusers (portraitist loads that folder with --base)."
        )
    out = Path(out) if out else _default_out(workspace, fmt)
    if fmt == "kohya-lora":
        save_safetensors_atomic(kohya_lora_state_dict(workspace), out)
        return [out, *write_embeddings(workspace, out.parent)]
    model = load_trained(workspace)
    if fmt == "diffusers":
        pipe = StableDiffusionPipeline(
            vae=model.vae, text_encoder=model.text_encoder, tokenizer=model.tokenizer, unet=model.unet,
            scheduler=model.scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )
        pipe.save_pretrained(out, safe_serialization=True)
        return [out]
    vocabulary = len(model.tokenizer) - len(read_tokens(workspace))
    # the parts' configs ride along, so portraitist loads the file offline whatever its shapes
    metadata = configs_metadata(model.unet, model.vae, model.text_encoder, model.scheduler, vocabulary)
    save_safetensors_atomic(original_sd_state_dict(model, vocabulary), out, metadata)
    return [out, *write_embeddings(workspace, out.parent)]
