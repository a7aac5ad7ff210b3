"""LoRA adapters (Hu et al. 2021) on attention projections, through peft, and their weights.

Training injects peft LoRA layers; the saved file holds only the adapters (`<module>.lora_A.weight`,
`<module>.lora_B.weight`). Loading merges them into the base weights, W += (alpha / rank) B A,
so the model that `generate` gets is a plain SD model with no adapter overhead.
"""

from __future__ import annotations

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
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


def _lora_layers(module: nn.Module) -> dict[str, LoraLayer]:
    return {name: m for name, m in module.named_modules() if isinstance(m, LoraLayer)}


def lora_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters' weights, keyed `<module path>.lora_A.weight` / `.lora_B.weight`."""
    out = {}
    for name, layer in _lora_layers(module).items():
        out[f"{name}.lora_A.weight"] = layer.lora_A[ADAPTER].weight.detach()
        out[f"{name}.lora_B.weight"] = layer.lora_B[ADAPTER].weight.detach()
    return out


def load_lora_state_dict(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Set injected adapters from `lora_state_dict` output (resume)."""
    with torch.no_grad():
        for name, layer in _lora_layers(module).items():
            layer.lora_A[ADAPTER].weight.copy_(state[f"{name}.lora_A.weight"])
            layer.lora_B[ADAPTER].weight.copy_(state[f"{name}.lora_B.weight"])


def merge_lora(module: nn.Module, state: dict[str, torch.Tensor], scale: float) -> None:
    """Add scale * B @ A into the plain Linear layers of `module` that the adapters were trained on."""
    with torch.no_grad():
        for key, down in state.items():
            if not key.endswith(".lora_A.weight"):
                continue
            path = key.removesuffix(".lora_A.weight")
            up = state[f"{path}.lora_B.weight"]
            linear = module.get_submodule(path)
            delta = (up.float() @ down.float()) * scale
            linear.weight.add_(delta.to(linear.weight.dtype))
