"""model/ round trip: what `train` writes, `load_trained` gives back (the contract `generate` relies on)."""

from __future__ import annotations

import json

import pytest
import torch

from portraitist.errors import PortraitistError
from portraitist.models.loading import load_base
from portraitist.models.trained import ModelInfo, load_trained
from portraitist.train.artifacts import write_model
from portraitist.train.tokens import add_tokens, token_table


def _info(**kw) -> ModelInfo:
    return ModelInfo(
        base="tiny",
        recipe="staged",
        weights="full",
        resolution=64,
        steps_done=3,
        seed=0,
        subject="<sks> girl",
        **kw,
    )


def test_full_weights_and_tokens_load_back(prepared):
    model = load_base("tiny")
    added = add_tokens(model.tokenizer, model.text_encoder, prepared.read_manifest())
    split = model.text_encoder.get_input_embeddings()
    with torch.no_grad():
        split.added[0] += 0.5  # as if training moved the instance token
        model.unet.conv_in.weight.mul_(1.1)
        model.text_encoder.final_layer_norm.weight.add_(0.25)
    table = torch.cat([split.base, split.added.detach()])
    write_model(
        prepared,
        _info(),
        added,
        {"text_encoder": split.added.detach()},
        {
            "unet": model.unet.state_dict(),
            "text_encoder": {"final_layer_norm.weight": model.text_encoder.final_layer_norm.weight},
        },
    )

    loaded = load_trained(prepared)

    assert [t["text"] for t in json.loads((prepared.model_dir / "tokens.json").read_text())] == [
        "<sks>",
        "<bg0>",
        "<bg1>",
        "<bg2>",
        "<bg3>",
    ]
    ids = loaded.tokenizer("a photo of <sks> girl")["input_ids"]
    assert added[0].id in ids
    assert torch.equal(token_table(loaded.text_encoder).weight, table)
    for name, tensor in model.unet.state_dict().items():
        assert torch.equal(loaded.unet.state_dict()[name], tensor), name
    assert torch.equal(
        loaded.text_encoder.final_layer_norm.weight, model.text_encoder.final_layer_norm.weight
    )
    # the VAE was not trained: it comes from the base unchanged
    assert torch.equal(loaded.vae.encoder.conv_in.weight, load_base("tiny").vae.encoder.conv_in.weight)


def test_untrained_workspace_says_to_train(prepared):
    with pytest.raises(PortraitistError, match="portraitist train"):
        load_trained(prepared)


def test_weights_of_another_base_are_refused(prepared):
    write_model(prepared, _info(), [], {}, {"unet": {"conv_in.weight": torch.zeros(7, 4, 3, 3)}})
    with pytest.raises(PortraitistError, match="do not fit the base"):
        load_trained(prepared)
