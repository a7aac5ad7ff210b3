"""Writing model/, the trained model a run leaves (its layout, and reading it: models/trained.py)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from portraitist.models.trained import TOKEN_EMBEDDINGS, ModelInfo, TokenRecord, model_info_path, token_file
from portraitist.train.tokens import AddedToken
from portraitist.workspace import Workspace, atomic_path, write_json_atomic

WEIGHT_FILES = (
    "unet",
    "text_encoder",
    "text_encoder_2",
    "unet_lora",
    "text_encoder_lora",
    "text_encoder_2_lora",
)


def save_safetensors_atomic(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    """safetensors via a temporary file and rename: a crash never leaves half a file."""
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata)


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
            save_safetensors_atomic(
                {t.text: row for t, row in zip(tokens, table, strict=True)},
                workspace.path(token_file(encoder)),
            )
        others = {encoder: token_file(encoder) for encoder in rows if encoder != "text_encoder"}
        records = [
            TokenRecord(
                text=t.text, id=t.id, init=t.init, embedding_file=TOKEN_EMBEDDINGS, encoder_files=others
            )
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
