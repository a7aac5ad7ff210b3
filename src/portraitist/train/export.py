"""`export`: the trained model in the formats other tools load.

- `diffusers`: the family's pipeline folder (StableDiffusionPipeline, StableDiffusionXLPipeline;
  tokenizers with the new tokens included).
- `single-file`: one .safetensors in the original key layout (LDM for SD 1.x, SGM for SDXL),
  which AUTOMATIC1111 and ComfyUI load, with the learned tokens beside it as textual-inversion
  embeddings (the checkpoint keeps the base's 49408-row vocabulary, as those tools expect).
- `kohya-lora`: a LoRA-trained model's adapters in kohya's key format (lora_unet_..., lora_te_...
  for SD 1.x, lora_te1_/lora_te2_ for SDXL; .lora_down.weight / .lora_up.weight / .alpha),
  embeddings beside.

The embeddings are A1111's safetensors format ({"emb_params": rows} for SD 1.x, {"clip_l": ...,
"clip_g": ...} for SDXL); in those tools the token is written as the embedding's file name (`<me>`
becomes `portraitist-me`), see README.txt. Which layout a model takes is its family's data
(models/family.py); a family with none (the synthetic world's) exports only as diffusers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import load_file

from portraitist.errors import PortraitistError
from portraitist.models.loading import StableDiffusion
from portraitist.models.single_file import configs_metadata
from portraitist.models.trained import TokenRecord, load_trained, read_model_info, read_tokens
from portraitist.train.artifacts import save_safetensors_atomic
from portraitist.workspace import Workspace, write_bytes_atomic

Format = Literal["diffusers", "single-file", "kohya-lora"]
FORMATS: tuple[Format, ...] = ("diffusers", "single-file", "kohya-lora")

# ---- key layout of the original SD 1.x (CompVis/LDM) and SDXL (SGM) checkpoints, from the UNet's config ----

_UNET_TOP = [
    ("add_embedding.linear_1.", "label_emb.0.0."),  # SDXL's size and pooled-text embedding
    ("add_embedding.linear_2.", "label_emb.0.2."),
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
    """(diffusers prefix, LDM prefix) for every block of an SD 1.x- or SDXL-layout UNet of any depth."""
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
            out.append(
                (f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{k - 1}.{2 if 'CrossAttn' in kind else 1}.")
            )
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
            raise PortraitistError(
                f"The UNet has a weight ({key}) outside the SD 1.x layout; export it as diffusers."
            )
        tail = key[len(match[0]) :]
        if ".resnets." in match[0]:
            tail = _rename(tail, _UNET_RESNET)
        out[f"model.diffusion_model.{match[1]}{tail}"] = value
    return out


def ldm_vae_state_dict(vae: AutoencoderKL) -> dict[str, torch.Tensor]:
    n, layers = len(vae.config.block_out_channels), int(vae.config.layers_per_block)
    table: list[tuple[str, str]] = []
    for i in range(n):
        table += [
            (f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}.") for j in range(layers)
        ]
        table += [
            (f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{n - 1 - i}.block.{j}.")
            for j in range(layers + 1)
        ]
        if i < n - 1:
            table.append((f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."))
            table.append((f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{n - 1 - i}.upsample."))
    for coder in ("encoder", "decoder"):
        table += [(f"{coder}.mid_block.resnets.{j}.", f"{coder}.mid.block_{j + 1}.") for j in range(2)]
        table += [
            (f"{coder}.mid_block.attentions.0.", f"{coder}.mid.attn_1."),
            (f"{coder}.conv_norm_out.", f"{coder}.norm_out."),
        ]
    attention = [
        ("group_norm.", "norm."),
        ("to_q.", "q."),
        ("to_k.", "k."),
        ("to_v.", "v."),
        ("to_out.0.", "proj_out."),
    ]
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


def _clip_key(key: str) -> str:
    """A CLIP text model's key as the original checkpoints write it: transformers 5 drops `text_model.`
    from CLIPTextModel's keys (not from CLIPTextModelWithProjection's)."""
    return key if key.startswith("text_projection") else "text_model." + key.removeprefix("text_model.")


def _transformers_clip(encoder: torch.nn.Module, prefix: str, vocabulary: int) -> dict[str, torch.Tensor]:
    """OpenAI CLIP (SD 1.x, SDXL's first encoder) keeps transformers' keys under `prefix`."""
    if encoder.config.hidden_act != "quick_gelu":
        raise PortraitistError(
            "single-file export writes OpenAI CLIP's layout for this text encoder, "
            "and it is an OpenCLIP one (an SD 2.x model). Export it as diffusers."
        )
    out = {}
    for key, value in encoder.state_dict().items():
        key = _clip_key(key)
        if key == "text_model.embeddings.token_embedding.weight":
            value = value[:vocabulary]  # the learned tokens travel as embedding files
        out[prefix + key] = value
    return out


_OPEN_CLIP_LAYER = [
    ("self_attn.out_proj.", "attn.out_proj."),
    ("layer_norm1.", "ln_1."),
    ("layer_norm2.", "ln_2."),
    ("mlp.fc1.", "mlp.c_fc."),
    ("mlp.fc2.", "mlp.c_proj."),
]
_OPEN_CLIP_TOP = {
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_model.final_layer_norm.weight": "ln_final.weight",
    "text_model.final_layer_norm.bias": "ln_final.bias",
}


def _open_clip(encoder: torch.nn.Module, prefix: str, vocabulary: int) -> dict[str, torch.Tensor]:
    """OpenCLIP's layout (SDXL's second encoder): one fused q/k/v projection per layer, a transposed
    text projection."""
    state = {_clip_key(key): value for key, value in encoder.state_dict().items()}
    out = {prefix + new: state[old] for old, new in _OPEN_CLIP_TOP.items()}
    out[prefix + "token_embedding.weight"] = out[prefix + "token_embedding.weight"][:vocabulary]
    out[prefix + "text_projection"] = state["text_projection.weight"].T.contiguous()
    for i in range(encoder.config.num_hidden_layers):
        layer, block = f"text_model.encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            qkv = [state[f"{layer}self_attn.{p}_proj.{kind}"] for p in "qkv"]
            out[f"{block}attn.in_proj_{kind}"] = torch.cat(qkv)
            for old, new in _OPEN_CLIP_LAYER:
                out[f"{block}{new}{kind}"] = state[f"{layer}{old}{kind}"]
    return out


_ENCODER_LAYOUTS = {"transformers": _transformers_clip, "open_clip": _open_clip}


def original_sd_state_dict(model: StableDiffusion, vocabulary: int) -> dict[str, torch.Tensor]:
    """The whole model in its family's original single-file layout."""
    layouts = model.family.checkpoint_encoders
    out = {**ldm_unet_state_dict(model.unet), **ldm_vae_state_dict(model.vae)}
    for name, _, encoder in model.text_encoders:
        prefix, layout = layouts[name]
        out.update(_ENCODER_LAYOUTS[layout](encoder, prefix, vocabulary))
    return out


# ---- kohya LoRA ----


def _kohya_unet_path(path: str, unet: UNet2DConditionModel | None) -> str:
    """A UNet module path as kohya names it: diffusers' own for SD 1.x, the SGM layout's for SDXL."""
    if unet is None:
        return path
    return _rename(path + ".", _UNET_TOP + unet_prefixes(unet)).removesuffix(".")


def kohya_lora_state_dict(workspace: Workspace, model: StableDiffusion) -> dict[str, torch.Tensor]:
    """The workspace's LoRA adapters in kohya's key names for `model`'s family."""
    info = read_model_info(workspace)
    if info.weights != "lora" or info.lora is None:
        raise PortraitistError(
            f"The model in {workspace.root} is a full fine-tune ({info.recipe}), not a LoRA; "
            "export it as diffusers or single-file, or train with --recipe lora."
        )
    whole = sorted(name for name in info.files if not name.endswith("_lora"))
    if whole:
        raise PortraitistError(
            f"The model in {workspace.root} also fine-tuned {', '.join(whole)} whole ({info.recipe}), "
            "which a LoRA file cannot carry. Export it as single-file or diffusers."
        )
    family = model.family
    unet = model.unet if family.kohya_unet_names == "ldm" else None
    prefixes = {"unet_lora": "lora_unet", **{f"{name}_lora": p for name, p in family.kohya_encoders.items()}}
    out: dict[str, torch.Tensor] = {}
    for name, relative in info.files.items():
        for key, value in load_file(str(workspace.path(relative))).items():
            path, _, kind = key.removesuffix(".weight").rpartition(".")
            module = _kohya_unet_path(path, unet) if name == "unet_lora" else _clip_key(path)
            kohya = f"{prefixes[name]}_{module.replace('.', '_')}"
            out[f"{kohya}.{'lora_down' if kind == 'lora_A' else 'lora_up'}.weight"] = value
            out[f"{kohya}.alpha"] = torch.tensor(info.lora.alpha)
    return out


# ---- textual-inversion embeddings beside the checkpoint ----


def embedding_name(token: TokenRecord) -> str:
    """The file name (= the word to type in A1111/ComfyUI) of a token: '<me>' -> 'portraitist-me'.

    Prefixed, because those tools replace the name wherever it occurs in a prompt ('me' would).
    """
    return "portraitist-" + (re.sub(r"[^A-Za-z0-9_-]+", "", token.text) or str(token.id))


# A1111's key for each text encoder's rows: one encoder's file is {"emb_params"}, SDXL's two are
# {"clip_l", "clip_g"} (what A1111, ComfyUI and diffusers' load_textual_inversion read)
_EMBEDDING_KEYS = {
    1: {"text_encoder": "emb_params"},
    2: {"text_encoder": "clip_l", "text_encoder_2": "clip_g"},
}


def write_embeddings(workspace: Workspace, out_dir: Path) -> list[Path]:
    tokens = read_tokens(workspace)
    if not tokens:
        return []
    files = tokens[0].files()
    keys = _EMBEDDING_KEYS[len(files)]
    rows = {name: load_file(str(workspace.path(f))) for name, f in files.items()}
    paths = []
    for token in tokens:
        path = out_dir / f"{embedding_name(token)}.safetensors"
        save_safetensors_atomic(
            {keys[name]: r[token.text].float().reshape(1, -1) for name, r in rows.items()}, path
        )
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
    return (
        workspace.root
        / "export"
        / {"diffusers": "diffusers", "single-file": "model.safetensors", "kohya-lora": "lora.safetensors"}[
            fmt
        ]
    )


def export(workspace: Workspace, fmt: Format, out: Path | None = None) -> list[Path]:
    """Write the workspace's trained model in `fmt`; return the files and folders written."""
    if fmt not in FORMATS:
        raise PortraitistError(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    out = Path(out) if out else _default_out(workspace, fmt)
    model = load_trained(workspace)
    if fmt != "diffusers" and not model.family.checkpoint_encoders:
        raise PortraitistError(
            f"The model in {workspace.root} is built on {model.family.label}, "
            f"which AUTOMATIC1111, ComfyUI and kohya's tools cannot load, so {fmt} does not apply. "
            "Export it with --format diffusers (portraitist loads that folder with --base)."
        )
    if fmt == "kohya-lora":
        save_safetensors_atomic(kohya_lora_state_dict(workspace, model), out)
        return [out, *write_embeddings(workspace, out.parent)]
    if fmt == "diffusers":
        model.family.pipeline(model, model.scheduler).save_pretrained(out, safe_serialization=True)
        return [out]
    vocabulary = len(model.tokenizer) - len(read_tokens(workspace))
    # the parts' configs ride along, so portraitist loads the file offline whatever its shapes
    metadata = configs_metadata(model, vocabulary)
    save_safetensors_atomic(original_sd_state_dict(model, vocabulary), out, metadata)
    return [out, *write_embeddings(workspace, out.parent)]
