"""LoRA adapters (Hu et al. 2021) on attention projections, through peft, and their weights.

Training injects peft LoRA layers; the saved file holds only the adapters (`<module>.lora_A.weight`,
`<module>.lora_B.weight`). Loading merges them into the base weights (models/trained.py), so the
model that `generate` gets is a plain SD model with no adapter overhead.
"""

from __future__ import annotations

import torch
from peft import LoraConfig, inject_adapter_in_model
from torch import nn

ADAPTER = "default"
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_ENCODER_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def add_lora(module: nn.Module, targets: list[str], rank: int, alpha: float, seed: int) -> list[nn.Parameter]:
    """Inject LoRA adapters (B = 0, so the model starts unchanged); return their parameters."""
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, init_lora_weights=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # A's random init is part of the run's seed
        inject_adapter_in_model(config, module, ADAPTER)
    return [p for name, p in module.named_parameters() if ".lora_" in name]
