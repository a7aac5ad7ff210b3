"""model/: what `train` leaves for `generate`, `evaluate` and `export` (CONTRACTS.md).

    model/model.json                 base, its family, vae, recipe, weights (full|lora), resolution,
                                     steps_done, seed, subject, and the weight files below
    model/tokens.json                every added token {text, id, init, embedding_file, encoder_files}
    model/token_embeddings.safetensors   the learned rows, keyed by token text (a second text
                                     encoder's: model/text_encoder_2_token_embeddings.safetensors)
    model/unet.safetensors, model/text_encoder[_2].safetensors             (full fine-tune: trained tensors)
    model/unet_lora.safetensors, model/text_encoder[_2]_lora.safetensors   (lora: adapters only)

`load_trained` rebuilds the trained model from these and the base, which is loaded again from
model.json's `base`, so the folder holds only what training changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, Field
from safetensors.torch import load_file, save_file
from torch import nn

from portraitist.errors import PortraitistError
from portraitist.models import family as families
from portraitist.models.loading import StableDiffusion, load_base
from portraitist.train.lora import merge_lora
from portraitist.train.tokens import AddedToken, restore_model_tokens
from portraitist.workspace import Workspace, atomic_path, write_json_atomic

TOKEN_EMBEDDINGS = "model/token_embeddings.safetensors"
WEIGHT_FILES = ("unet", "text_encoder", "text_encoder_2", "unet_lora", "text_encoder_lora", "text_encoder_2_lora")


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
    family: str = Field("sd1", description="The base's model family (sd1, sdxl, ...), checked when it is loaded again.")
    vae: str | None = None
    recipe: str
    weights: Literal["full", "lora"]
    resolution: int
    steps_done: int
    seed: int
    subject: str = Field(description="What `{me}` expands to in prompts: '<instance> <class>'.")
    files: dict[str, str] = Field(default_factory=dict, description="Weight files by part, workspace-relative.")
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


def save_safetensors_atomic(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    """safetensors via a temporary file and rename: a crash never leaves half a file."""
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata)


def model_info_path(workspace: Workspace) -> Path:
    return workspace.model_dir / "model.json"


def write_model(
    workspace: Workspace,
    info: ModelInfo,
    tokens: list[AddedToken],
    rows: dict[str, torch.Tensor],
    weights: dict[str, dict[str, torch.Tensor]],
) -> ModelInfo:
    """Write model/ : weight files first, model.json last, so model.json means 'complete'. `rows` holds
    each text encoder's rows of the added `tokens`, by encoder name."""
    model_info_path(workspace).unlink(missing_ok=True)
    for name in WEIGHT_FILES:
        workspace.path(f"model/{name}.safetensors").unlink(missing_ok=True)
    records = []
    if tokens:
        for encoder, table in rows.items():
            save_safetensors_atomic({t.text: row for t, row in zip(tokens, table, strict=True)}, workspace.path(token_file(encoder)))
        others = {encoder: token_file(encoder) for encoder in rows if encoder != "text_encoder"}
        records = [
            TokenRecord(text=t.text, id=t.id, init=t.init, embedding_file=TOKEN_EMBEDDINGS, encoder_files=others)
            for t in tokens
        ]
    write_json_atomic(workspace.model_dir / "tokens.json", [r.model_dump() for r in records])
    files = {}
    for name, tensors in weights.items():
        if name not in WEIGHT_FILES:
            raise ValueError(f"unknown weight file {name}")
        files[name] = f"model/{name}.safetensors"
        save_safetensors_atomic(tensors, workspace.path(files[name]))
    info = info.model_copy(update={"files": files})
    write_json_atomic(model_info_path(workspace), info.model_dump(mode="json"))
    return info


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


def _load_full(module: nn.Module, tensors: dict[str, torch.Tensor], what: str) -> None:
    own = module.state_dict()
    wrong = [k for k, v in tensors.items() if k not in own or own[k].shape != v.shape]
    if wrong:
        raise PortraitistError(
            f"The trained {what} weights do not fit the base model (e.g. {wrong[0]}); model/model.json's `base` "
            "must be the model it was trained from."
        )
    module.load_state_dict(tensors, strict=False)


def load_trained(workspace: Workspace, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> StableDiffusion:
    """The base model with the new tokens and the trained weights applied."""
    info = read_model_info(workspace)
    model = load_base(info.base, vae=info.vae)
    if model.family.name != info.family:
        raise PortraitistError(
            f"{workspace.root}'s model was trained on a {families.named(info.family).label} base, and {info.base} is "
            f"now a {model.family.label} model. Give `train` the base again, or retrain."
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
            raise PortraitistError(f"model/{name}.safetensors has no place in a {model.family.label} model; retrain.")
        if name.endswith("_lora"):
            if info.lora is None:
                raise PortraitistError(f"{model_info_path(workspace)} lists LoRA weights but no `lora` settings.")
            merge_lora(target, tensors, info.lora.scale)
        else:
            _load_full(target, tensors, name)
    return model.to(device, dtype)
