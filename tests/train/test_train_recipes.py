"""Each recipe trains exactly the parts it names; everything else stays bit for bit the base's."""

from __future__ import annotations

import json

import pytest
import torch

from portraitist.models.loading import load_base
from portraitist.models.trained import load_trained, read_model_info
from portraitist.train.config import TrainConfig
from portraitist.train.recipes import Stage, get_recipe, stage_steps
from portraitist.train.stage import train

N_BASE = 49408
TABLE = "embeddings.token_embedding.weight"


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    return {
        k for k, v in before.items() if not torch.equal(v, after[k][: v.shape[0]] if k == TABLE else after[k])
    }


def _lora_free(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """peft keeps the wrapped Linear's weights under `base_layer`; map them back to plain names."""
    return {k.replace(".base_layer", ""): v for k, v in state.items() if ".lora_" not in k}


@pytest.mark.parametrize(
    ("recipe", "extra", "unet_trains", "text_trains", "tokens_added"),
    [
        ("staged", {}, True, True, True),
        ("dreambooth", {}, True, False, False),
        ("dreambooth", {"train_text_encoder": True}, True, True, False),
        ("textual-inversion", {}, False, False, True),
        ("lora", {}, False, False, True),
    ],
)
def test_recipe_changes_exactly_its_parts(prepared, recipe, extra, unet_trains, text_trains, tokens_added):
    base = load_base("tiny")
    config = TrainConfig(base="tiny", recipe=recipe, steps=2, precision="fp32", flip=False, **extra)

    result = train(prepared, config)

    unet_after = _lora_free(result.model.unet.state_dict())
    text_after = _lora_free(result.model.text_encoder.state_dict())
    unet_changed = _changed(base.unet.state_dict(), unet_after)
    text_changed = _changed(base.text_encoder.state_dict(), text_after)
    # the pretrained vocabulary rows never move, whatever the recipe
    assert torch.equal(text_after[TABLE][:N_BASE], base.text_encoder.state_dict()[TABLE])
    assert TABLE not in text_changed
    if unet_trains:
        assert unet_changed == set(base.unet.state_dict())
    else:
        assert unet_changed == set()
    if text_trains:
        assert text_changed == set(base.text_encoder.state_dict()) - {TABLE}
    else:
        assert text_changed == set()
    rows = text_after[TABLE]
    assert rows.shape[0] == (N_BASE + 5 if tokens_added else N_BASE)
    tokens = json.loads((prepared.model_dir / "tokens.json").read_text())
    assert [t["text"] for t in tokens] == (
        ["<sks>", "<bg0>", "<bg1>", "<bg2>", "<bg3>"] if tokens_added else []
    )
    if tokens_added:
        face = base.text_encoder.state_dict()[TABLE][1710]
        assert not torch.equal(rows[N_BASE], face)  # the instance token moved away from "face"
    info = read_model_info(prepared)
    assert info.subject == ("<sks> girl" if tokens_added else "sks girl")
    assert info.weights == ("lora" if recipe == "lora" else "full")
    assert sorted(info.files) == sorted(
        ({"unet"} if unet_trains else set())
        | ({"text_encoder"} if text_trains else set())
        | ({"unet_lora", "text_encoder_lora"} if recipe == "lora" else set())
    )
    # what load_trained rebuilds from model/ is what training left in memory
    loaded = load_trained(prepared)
    if recipe != "lora":
        for name, value in unet_after.items():
            assert torch.equal(loaded.unet.state_dict()[name], value), name
    assert torch.equal(loaded.text_encoder.get_input_embeddings().weight, rows)


def test_recipes_are_data():
    staged = get_recipe("staged")
    assert [sorted(s.learning_rates) for s in staged.stages] == [["text_encoder", "tokens", "unet"], ["unet"]]
    assert stage_steps(staged, 1000) == [400, 600]
    shipped = [dict(s.learning_rates) for s in staged.stages]
    tuned = get_recipe("staged", learning_rates={"unet": 1e-6})
    assert [s.learning_rates["unet"] for s in tuned.stages] == [1e-6, 1e-6]
    assert [s.learning_rates for s in get_recipe("staged").stages] == shipped  # tuning copies, never edits
    assert "text_encoder" in get_recipe("dreambooth", train_text_encoder=True).parts


def test_default_precision_on_this_cpu_saves_fp32_truth(prepared):
    """bf16 compute with fp32 master weights: frozen parts come back from the base untouched."""
    result = train(prepared, TrainConfig(base="tiny", recipe="textual-inversion", steps=2, flip=False))
    base = load_base("tiny")
    loaded = load_trained(prepared)
    assert all(torch.equal(v, base.unet.state_dict()[k]) for k, v in loaded.unet.state_dict().items())
    rows = loaded.text_encoder.get_input_embeddings().weight
    assert rows.dtype == torch.float32
    assert torch.equal(rows[:N_BASE], base.text_encoder.get_input_embeddings().weight)
    assert torch.equal(rows[N_BASE:], result.model.text_encoder.get_input_embeddings().weight[N_BASE:])


def test_your_own_stages_are_reported_as_such(prepared):
    stages = [
        Stage(name="tokens", share=0.5, learning_rates={"tokens": 1e-3}),
        Stage(name="unet", share=0.5, learning_rates={"unet": 1e-6}),
    ]
    assert get_recipe("staged").label == "staged"
    result = train(prepared, TrainConfig(base="tiny", stages=stages, steps=2, flip=False))
    assert result.recipe == "custom (2 stages, staged's prompts)"
    assert read_model_info(prepared).recipe == result.recipe  # what the report shows
