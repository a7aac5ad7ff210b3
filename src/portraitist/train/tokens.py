"""New tokenizer entries for the subject and its photos' backgrounds (thesis 2.2.2-2.2.3).

The instance token and, with the `background_tokens` context, one token per photo are added
to the tokenizer as NEW words and get new rows at the end of the text encoder's token table.
The instance row starts as the embedding of "face" (thesis 2.2.2's choice); Gaussian noise, a
rare existing token (DreamBooth's "sks") or any given word are the alternatives it compared.
Background rows start random (thesis 2.2.3).

The table is split rather than grown: the pretrained rows stay a frozen buffer and only the added
rows are a parameter (`SplitTokenEmbedding`). Existing tokens therefore keep their embeddings
bit for bit, and the optimizer steps over a handful of rows instead of all 49408. A trained
model's table is grown when it loads (models/trained.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPTextModel, CLIPTokenizer

from portraitist.errors import PortraitistError
from portraitist.models.loading import StableDiffusion
from portraitist.workspace import DatasetManifest, TokenInit

RARE_TOKEN = "sks"  # DreamBooth's rare identifier (Ruiz et al. 2023), an existing CLIP token


@dataclass(frozen=True)
class AddedToken:
    """One new tokenizer entry: its text, its id and how its embedding row started."""

    text: str
    id: int
    init: str  # "word:face", "noise", "rare:sks", "random"


def token_table(text_encoder: CLIPTextModel) -> nn.Embedding:
    return text_encoder.get_input_embeddings()  # type: ignore[return-value]


def word_embedding(tokenizer: CLIPTokenizer, table: torch.Tensor, word: str) -> torch.Tensor:
    """The embedding of a word: its token's row, or the mean of its tokens' rows if it splits."""
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    if not ids:
        raise PortraitistError(
            f"The initialisation word {word!r} has no tokens; give a real word (e.g. 'face')."
        )
    return table[ids].mean(dim=0)


def _init_row(
    init: TokenInit | None,
    tokenizer: CLIPTokenizer,
    table: torch.Tensor,
    generator: torch.Generator,
    noise_scale: Callable[[], float],
) -> tuple[torch.Tensor, str]:
    """The starting row for a new token and a label for tokens.json; None means random."""
    if init is None or init.kind == "noise":
        # same scale as the pretrained rows, so the token neither vanishes nor dominates
        row = torch.randn(table.shape[1], generator=generator) * noise_scale()
        return row.to(table.dtype), "noise" if init is not None else "random"
    word = RARE_TOKEN if init.kind == "rare" else (init.word or "face")
    return word_embedding(tokenizer, table, word), f"{init.kind}:{word}"


def add_tokens(
    tokenizer: CLIPTokenizer,
    text_encoder: CLIPTextModel,
    manifest: DatasetManifest,
    seed: int = 0,
) -> list[AddedToken]:
    """Add the manifest's instance and background tokens; return them in id order.

    The text encoder's table becomes a SplitTokenEmbedding: the pretrained rows as they are (not
    copied into a bigger table: SDXL's two tables are 200 MB in fp32) and one new row per token.
    """
    kept = manifest.kept
    wanted: list[tuple[str, TokenInit | None]] = [(manifest.instance_token, manifest.instance_init)]
    wanted += [(p.background_token, None) for p in kept if p.background_token]
    texts = [text for text, _ in wanted]
    if len(set(texts)) != len(texts):
        raise PortraitistError(
            f"dataset/manifest.json repeats a token among {texts}; re-run `portraitist prepare`."
        )
    clashing = [t for t in texts if t in tokenizer.get_vocab()]
    if clashing:
        raise PortraitistError(
            f"The token(s) {clashing} already exist in the base model's vocabulary; a new token must be a "
            "new word. Re-run `portraitist prepare` with another instance token."
        )
    n_base = len(tokenizer)
    tokenizer.add_tokens(texts)
    table = token_table(text_encoder).weight.detach()[:n_base]
    generator = torch.Generator().manual_seed(seed)
    # one pass over the whole table (63M values on SDXL), not one per background token
    noise_scale = functools.cache(lambda: table.std().item())
    added, rows = [], []
    for offset, (text, init) in enumerate(wanted):
        token_id = tokenizer.convert_tokens_to_ids(text)
        if token_id != n_base + offset:
            raise PortraitistError(f"The tokenizer gave {text!r} id {token_id}, expected {n_base + offset}.")
        row, label = _init_row(init, tokenizer, table, generator, noise_scale)
        rows.append(row)
        added.append(AddedToken(text, token_id, label))
    text_encoder.set_input_embeddings(SplitTokenEmbedding(table, torch.stack(rows)))
    return added


def add_model_tokens(model: StableDiffusion, manifest: DatasetManifest, seed: int = 0) -> list[AddedToken]:
    """The manifest's tokens in every text encoder of the model (SDXL: both), each row initialised from
    that encoder's own embedding of the init word; the ids are the same in every tokenizer."""
    added: list[AddedToken] = []
    for offset, (_, tokenizer, encoder) in enumerate(model.text_encoders):
        tokens = add_tokens(tokenizer, encoder, manifest, seed=seed + offset)
        if added and [t.id for t in tokens] != [t.id for t in added]:
            raise PortraitistError(
                f"{model.source}'s tokenizers gave the new tokens different ids; use an unmodified base."
            )
        added = added or tokens
    return added


class SplitTokenEmbedding(nn.Module):
    """A token table as frozen pretrained rows plus trainable added rows.

    Looks up like an nn.Embedding of both; gradients reach only `added`.
    """

    def __init__(self, base: torch.Tensor, added: torch.Tensor):
        super().__init__()
        self.n_base = base.shape[0]
        self.register_buffer("base", base, persistent=False)
        self.added = nn.Parameter(added.clone())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        is_added = (ids >= self.n_base).unsqueeze(-1)
        pretrained = F.embedding(ids.clamp(max=self.n_base - 1), self.base)
        added = F.embedding((ids - self.n_base).clamp(min=0), self.added)
        return torch.where(is_added, added.to(pretrained.dtype), pretrained)
