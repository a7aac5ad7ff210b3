"""model/: the trained model `train` leaves for `generate`, `evaluate` and `export`, and loading it.

    model/model.json                 base, its family, vae, recipe, weights (full|lora), resolution,
                                     steps_done, seed, subject, and the weight files below
    model/tokens.json                every added token {text, id, init, embedding_file, encoder_files}
    model/token_embeddings.safetensors   the learned rows, keyed by token text (a second text
                                     encoder's: model/text_encoder_2_token_embeddings.safetensors)
    model/unet.safetensors, model/text_encoder[_2].safetensors             (full fine-tune: trained tensors)
    model/unet_lora.safetensors, model/text_encoder[_2]_lora.safetensors   (lora: adapters only)

`load_trained` rebuilds the trained model from these and the base, which is loaded again from
model.json's `base`, so the folder holds only what training changed. Writing it is training's
job (train/artifacts.py); every stage that uses the trained model reads it here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, Field
from safetensors.torch import load_file
from torch import nn
from transformers import CLIPTextModel, CLIPTokenizer

from portraitist.errors import PortraitistError
from portraitist.models import family as families
from portraitist.models.loading import StableDiffusion, load_base
from portraitist.workspace import Workspace

TOKEN_EMBEDDINGS = "model/token_embeddings.safetensors"


def token_file(encoder: str) -> str:
    """Where the learned rows of one text encoder's added tokens are kept."""
    return TOKEN_EMBEDDINGS if encoder == "text_encoder" else f"model/{encoder}_token_embeddings.safetensors"


class LoraInfo(BaseModel):
    rank: int
    alpha: float

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


class ModelInfo(BaseModel):
    """model/model.json."""

    base: str = Field(description="The spec load_base() takes (folder, file, hub id or preset).")
    family: str = Field(
        "sd1", description="The base's model family (sd1, sdxl, ...), checked when it is loaded again."
    )
    vae: str | None = None
    recipe: str
    weights: Literal["full", "lora"]
    resolution: int
    steps_done: int
    seed: int
    subject: str = Field(description="What `{me}` expands to in prompts: '<instance> <class>'.")
    files: dict[str, str] = Field(
        default_factory=dict, description="Weight files by part, workspace-relative."
    )
    lora: LoraInfo | None = None


class TokenRecord(BaseModel):
    """One entry of model/tokens.json."""

    text: str
    id: int
    init: str
    embedding_file: str
    encoder_files: dict[str, str] = Field(
        default_factory=dict, description="The rows of text encoders after the first, by encoder name (SDXL)."
    )

    def files(self) -> dict[str, str]:
        """Every text encoder's rows file, by encoder name."""
        return {"text_encoder": self.embedding_file, **self.encoder_files}


def model_info_path(workspace: Workspace) -> Path:
    return workspace.model_dir / "model.json"


def read_model_info(workspace: Workspace) -> ModelInfo:
    path = model_info_path(workspace)
    if not path.exists():
        raise PortraitistError(
            f"{workspace.root} has no trained model ({path} is missing). "
            f"Run `portraitist train --workspace {workspace.root}` first."
        )
    return ModelInfo.model_validate_json(path.read_text())


def read_tokens(workspace: Workspace) -> list[TokenRecord]:
    path = workspace.model_dir / "tokens.json"
    return [TokenRecord.model_validate(t) for t in json.loads(path.read_text())] if path.exists() else []


def restore_tokens(
    tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel, texts: list[str], rows: torch.Tensor
) -> list[int]:
    """Add tokens saved by a training run back to a fresh base and set their learned rows."""
    n_base = len(tokenizer)
    tokenizer.add_tokens(texts)
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    ids = tokenizer.convert_tokens_to_ids(texts)
    if ids != list(range(n_base, n_base + len(texts))):
        raise PortraitistError(
            f"The base model's tokenizer gave the trained tokens ids {ids}; it is not the base this model "
            "was trained on. Check model/model.json's `base`."
        )
    table = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        table[n_base:] = rows.to(table.dtype)
    return ids


def restore_model_tokens(model: StableDiffusion, texts: list[str], rows: dict[str, torch.Tensor]) -> None:
    """restore_tokens for every text encoder of the model, each from its own rows."""
    for name, tokenizer, encoder in model.text_encoders:
        if name not in rows:
            raise PortraitistError(
                f"model/ has no learned token rows for {model.source}'s {name}; it was trained on another "
                "base."
            )
        restore_tokens(tokenizer, encoder, texts, rows[name])


def merge_lora(module: nn.Module, state: dict[str, torch.Tensor], scale: float) -> None:
    """Add scale * B @ A into the plain Linear layers of `module` that the adapters were trained on
    (W += (alpha / rank) B A), so the loaded model is a plain one with no adapter overhead."""
    with torch.no_grad():
        for key, down in state.items():
            if not key.endswith(".lora_A.weight"):
                continue
            path = key.removesuffix(".lora_A.weight")
            up = state[f"{path}.lora_B.weight"]
            linear = module.get_submodule(path)
            delta = (up.float() @ down.float()) * scale
            linear.weight.add_(delta.to(linear.weight.dtype))


def _load_full(module: nn.Module, tensors: dict[str, torch.Tensor], what: str) -> None:
    own = module.state_dict()
    wrong = [k for k, v in tensors.items() if k not in own or own[k].shape != v.shape]
    if wrong:
        raise PortraitistError(
            f"The trained {what} weights do not fit the base model (e.g. {wrong[0]}); model/model.json's "
            "`base` must be the model it was trained from."
        )
    module.load_state_dict(tensors, strict=False)


def load_trained(
    workspace: Workspace, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> StableDiffusion:
    """The base model with the new tokens and the trained weights applied."""
    info = read_model_info(workspace)
    model = load_base(info.base, vae=info.vae)
    if model.family.name != info.family:
        raise PortraitistError(
            f"{workspace.root}'s model was trained on a {families.named(info.family).label} base, and "
            f"{info.base} is now a {model.family.label} model. Give `train` the base again, or retrain."
        )
    records = read_tokens(workspace)
    if records:
        files = {name: load_file(str(workspace.path(f))) for name, f in records[0].files().items()}
        rows = {name: torch.stack([table[r.text] for r in records]) for name, table in files.items()}
        restore_model_tokens(model, [r.text for r in records], rows)
    modules: dict[str, nn.Module] = {name: encoder for name, _, encoder in model.text_encoders}
    modules["unet"] = model.unet
    for name, relative in info.files.items():
        tensors = load_file(str(workspace.path(relative)))
        target = modules.get(name.removesuffix("_lora"))
        if target is None:
            raise PortraitistError(
                f"model/{name}.safetensors has no place in a {model.family.label} model; retrain."
            )
        if name.endswith("_lora"):
            if info.lora is None:
                raise PortraitistError(
                    f"{model_info_path(workspace)} lists LoRA weights but no `lora` settings."
                )
            merge_lora(target, tensors, info.lora.scale)
        else:
            _load_full(target, tensors, name)
    return model.to(device, dtype)
