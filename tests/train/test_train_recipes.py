"""Each recipe trains exactly the parts it names; everything else stays bit for bit the base's."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from portraitist.models.loading import load_base
from portraitist.models.trained import load_trained, read_model_info
from portraitist.samples import portrait_variants
from portraitist.train.config import TrainConfig
from portraitist.train.recipes import Stage, get_recipe, stage_steps
from portraitist.train.stage import train
from portraitist.train.trainee import Trainee

N_BASE = 49408
TABLE = "embeddings.token_embedding.weight"


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    """Which of the base's tensors differ (the token table is compared on its own)."""
    return {k for k, v in before.items() if k != TABLE and not torch.equal(v, after[k])}


def _table(text_encoder) -> torch.Tensor:
    """The whole token table, whether training left it split into pretrained and added rows or not."""
    table = text_encoder.get_input_embeddings()
    return torch.cat([table.base, table.added.detach()]) if hasattr(table, "added") else table.weight


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
def test_recipe_changes_exactly_its_parts(
    prepared, train_in_memory, recipe, extra, unet_trains, text_trains, tokens_added
):
    base = load_base("tiny")
    config = TrainConfig(base="tiny", recipe=recipe, steps=2, precision="fp32", flip=False, **extra)

    _, trained = train_in_memory(prepared, config)

    unet_after = _lora_free(trained.unet.state_dict())
    text_after = _lora_free(trained.text_encoder.state_dict())
    unet_changed = _changed(base.unet.state_dict(), unet_after)
    text_changed = _changed(base.text_encoder.state_dict(), text_after)
    rows = _table(trained.text_encoder)
    # the pretrained vocabulary rows never move, whatever the recipe
    assert torch.equal(rows[:N_BASE], base.text_encoder.state_dict()[TABLE])
    if unet_trains:
        assert unet_changed == set(base.unet.state_dict())
    else:
        assert unet_changed == set()
    if text_trains:
        assert text_changed == set(base.text_encoder.state_dict()) - {TABLE}
    else:
        assert text_changed == set()
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
    """bf16 compute with fp32 master weights (where the CPU has bf16): model/ keeps the fp32 values the
    optimizer stepped, and frozen parts come back from the base untouched."""
    train(prepared, TrainConfig(base="tiny", recipe="textual-inversion", steps=2, flip=False))
    base = load_base("tiny")
    loaded = load_trained(prepared)
    assert all(torch.equal(v, base.unet.state_dict()[k]) for k, v in loaded.unet.state_dict().items())
    rows = loaded.text_encoder.get_input_embeddings().weight
    assert rows.dtype == torch.float32
    assert torch.equal(rows[:N_BASE], base.text_encoder.get_input_embeddings().weight)
    # the last checkpoint holds the optimizer's fp32 values (train/checkpoint.py)
    final = load_file(str(prepared.model_dir / "checkpoints" / "step-0000002" / "weights.safetensors"))
    assert torch.equal(rows[N_BASE:], final["tokens"])


@pytest.mark.parametrize(
    ("settings", "files"),
    [
        # the added token rows are not trained: saved as they started, from "face" and at random
        (
            {"stages": [Stage(name="unet lora", share=1.0, learning_rates={"unet_lora": 1e-3})]},
            {"unet_lora.safetensors", "token_embeddings.safetensors"},
        ),
        # DreamBooth's class prompt is cached beside the instance prompts
        ({"recipe": "dreambooth", "prior_preservation": True}, {"unet.safetensors"}),
    ],
)
def test_text_encoders_released_after_caching_change_nothing(
    prepared, train_in_memory, monkeypatch, tmp_path, settings, files
):
    """A recipe that trains no text part encodes the prompts once and drops the text encoders (as the
    reference scripts do): the model it saves is the one a run that keeps them saves."""
    released = []
    monkeypatch.setattr(Trainee, "release_text", _recording(Trainee.release_text, released))
    (tmp_path / "class").mkdir()
    for i, image in enumerate(portrait_variants(2)):
        image.save(tmp_path / "class" / f"{i}.png")
    config = TrainConfig(
        base="tiny", steps=3, precision="fp32", flip=False, class_images=tmp_path / "class", **settings
    )

    train_in_memory(prepared, config)  # validation needs the encoders: kept
    assert released == []
    kept = {f.name: load_file(str(f)) for f in prepared.model_dir.glob("*.safetensors")}
    train(prepared, config.model_copy(update={"restart": True}))
    assert len(released) == 1
    assert all(p.device.type == "meta" for p in released[0].model.text_encoder.parameters())
    again = {f.name: load_file(str(f)) for f in prepared.model_dir.glob("*.safetensors")}
    assert kept.keys() == again.keys() == files
    for name, tensors in kept.items():
        assert tensors.keys() == again[name].keys()
        assert all(torch.equal(v, again[name][k]) for k, v in tensors.items()), name


def _recording(method, calls: list):
    def wrapper(self, *args):
        calls.append(self)
        return method(self, *args)

    return wrapper


def test_your_own_stages_are_reported_as_such(prepared):
    stages = [
        Stage(name="tokens", share=0.5, learning_rates={"tokens": 1e-3}),
        Stage(name="unet", share=0.5, learning_rates={"unet": 1e-6}),
    ]
    assert get_recipe("staged").label == "staged"
    result = train(prepared, TrainConfig(base="tiny", stages=stages, steps=2, flip=False))
    assert result.recipe == "custom (2 stages, staged's prompts)"
    assert read_model_info(prepared).recipe == result.recipe  # what the report shows
