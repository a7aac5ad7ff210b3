"""The masked cross-attention loss (thesis 2.3): what it reads, and where its gradient goes."""

from __future__ import annotations

import json

import pytest
import torch

from portraitist.errors import PortraitistError
from portraitist.models import random_sd
from portraitist.train.attention_loss import (
    attention_loss,
    choose_resolution,
    cross_attention_resolutions,
    install,
)
from portraitist.train.config import TrainConfig
from portraitist.train.stage import train

INSTANCE = 2  # position of the instance token in the prompt below


def tiny_unet_inputs(seed: int = 0):
    torch.manual_seed(seed)
    unet = random_sd.build_unet("tiny", seed)
    noisy = torch.randn(2, 4, 8, 8)
    hidden = torch.randn(2, 77, 32)
    return unet, noisy, torch.tensor([300, 700]), hidden


def test_map_resolutions():
    unet, *_ = tiny_unet_inputs()
    assert cross_attention_resolutions(unet) == [8, 4]
    assert choose_resolution(unet, None) == 8  # no 16x16 maps in the tiny model: its largest
    assert choose_resolution(unet, 4) == 4
    with pytest.raises(PortraitistError, match="not among"):
        choose_resolution(unet, 16)
    with torch.device("meta"):
        sd_layout = random_sd.build_unet("cpu-bench")
    assert cross_attention_resolutions(sd_layout) == [32, 16, 8, 4]
    assert choose_resolution(sd_layout, None) == 16  # the thesis's maps


def test_recording_does_not_change_the_prediction():
    unet, noisy, t, hidden = tiny_unet_inputs()
    with torch.no_grad():
        plain = unet(noisy, t, hidden).sample
        recorder = install(unet, 8)
        recorder.start(torch.tensor([INSTANCE, INSTANCE]))
        recorded = unet(noisy, t, hidden).sample
    assert len(recorder.maps) == 3  # down block 0 (one layer) and up block 1 (two layers)
    assert recorder.maps[0].shape == (2, 8, 64)  # batch, heads, 8x8 pixels
    torch.testing.assert_close(recorded, plain, rtol=1e-5, atol=1e-5)


def test_gradient_flows_only_through_the_instance_tokens_maps():
    unet, noisy, t, hidden = tiny_unet_inputs()
    recorder = install(unet, 8)
    full_maps = []
    record = recorder.record

    def keep_full(probs: torch.Tensor) -> None:
        probs.retain_grad()
        full_maps.append(probs)
        record(probs)

    recorder.record = keep_full  # type: ignore[method-assign]
    recorder.start(torch.tensor([INSTANCE, INSTANCE]))
    unet(noisy, t, hidden.requires_grad_())
    person = torch.zeros(2, 1, 64, 64)
    person[:, :, 16:, 16:48] = 1

    attention_loss(recorder, person).backward()

    for probs in full_maps:
        assert probs.grad[..., INSTANCE].abs().sum() > 0
        others = torch.cat([probs.grad[..., :INSTANCE], probs.grad[..., INSTANCE + 1 :]], dim=-1)
        assert others.abs().max() == 0
    # nothing after the last map, and not that layer's values or output, receives a gradient
    last = unet.up_blocks[1].attentions[1].transformer_blocks[0].attn2
    for module in (last.to_v, last.to_out[0], unet.conv_norm_out, unet.conv_out):
        assert all(p.grad is None for p in module.parameters())
    assert last.to_q.weight.grad.abs().sum() > 0


def test_loss_counts_only_background_and_only_examples_with_the_token():
    unet, noisy, t, hidden = tiny_unet_inputs()
    recorder = install(unet, 8)
    with torch.no_grad():
        recorder.start(torch.tensor([INSTANCE, -1]))
        unet(noisy, t, hidden)
    everywhere_person = torch.ones(2, 1, 64, 64)
    assert attention_loss(recorder, everywhere_person).item() == 0
    no_person = torch.zeros(2, 1, 64, 64)
    only_first = attention_loss(recorder, no_person)
    expected = -torch.log1p(-torch.stack([m[0].mean(0) for m in recorder.maps]).mean(0)).mean()
    torch.testing.assert_close(only_first, expected)
    recorder.positions = torch.tensor([-1, -1])
    assert attention_loss(recorder, no_person).item() == 0


def test_training_with_the_attention_loss(prepared):
    plain = train(prepared, TrainConfig(base="tiny", steps=2, precision="fp32", flip=False))
    log = [json.loads(line) for line in (prepared.model_dir / "train_log.jsonl").read_text().splitlines()]
    with_loss = train(
        prepared,
        TrainConfig(base="tiny", steps=2, precision="fp32", flip=False, attention_loss=10.0, restart=True),
    )
    log_with = [
        json.loads(line) for line in (prepared.model_dir / "train_log.jsonl").read_text().splitlines()
    ]
    assert plain.steps_done == with_loss.steps_done == 2
    # same data, noise and weights at step 1: the difference is the weighted attention term
    assert log_with[0]["loss"] > log[0]["loss"]
