"""The world's base model: SD 1.x's classes, sized for 32 px images on a 2-core CPU.

- Codec: `PixelCodec`, the 32x32x3 image rearranged into a latent by space-to-depth (no
  autoencoder to train): 16x16x12 (patch 2, the default) or 8x8x48 (patch 4; docs/world.md,
  "Why patch 2", compares them).
- UNet: `UNet2DConditionModel`, ~5M parameters, residual blocks only at the large levels and
  self- and cross-attention at 4x4 (and in the middle block): attention over 64 or 256
  positions costs more than it gives at this size.
- Text encoder: a 3-layer `CLIPTextModel` of width 128 over the real 49408-token vocabulary
  (portraitist.models.tokenizer), so prompts and added tokens behave as in SD 1.x.
- Scheduler: DDPM's own linear schedule (Ho et al. 2020, beta 1e-4..0.02, the schedule made for
  32x32 pixel images, which these latents losslessly are), not SD's scaled_linear (made for VAE
  latents), whose last step keeps sqrt(0.0047) = 7% of the image: there, starting from pure
  noise leaves the mean colour unset, and background and shirt colours are what the world's
  prompts ask for (Lin et al. 2024, "Common diffusion noise schedules and sample steps are
  flawed"). The linear schedule keeps 0.6%. v-prediction (Salimans & Ho 2022), which our train
  loop and Euler sampler support, keeps the target well scaled at that near-zero SNR, where
  eps-prediction's image estimate x - sigma * eps multiplies the error by sigma (up to 158).
  "trailing" spacing starts every sampler at the last training step, whatever the step count.

Why patch 2 by default (docs/world.md has the numbers): with 8x8x48 latents the UNet's first
level carries 48 noisy values per position in 96 channels, and it learns to denoise at low and
middle noise levels slowly: after 0.16 M images a linear 3x3 filter still removed more noise than
it did (error of its x0 estimate at sigma 0.6: 0.13 against the filter's 0.06), and its samples
kept a layer of pixel noise. With 16x16x12 latents (12 values in 64 channels) a step costs 1.7x
as much, and yet in 15 minutes on one core it reached lower errors at sigma 0.3-2 (0.12 at 0.6)
than the 8x8x48 model in 15 (0.18) or in 40 minutes; the 8x8x48 model learns the noisiest levels
(layout, colours) faster. Faces are drawn at the middle levels. (Li & He 2025, "Back to Basics:
Let Denoising Generative Models Denoise", report the same effect for patches that are wide for
the network: predicting the noise, or v, degrades.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from portraitist.models.loading import cast
from portraitist.models.tokenizer import VOCAB_SIZE, clip_tokenizer
from portraitist.world.codec import PixelCodec

# The committed base (`--base world`), written by `portraitist world pretrain`.
BASE_DIR = Path(__file__).parent / "base"

RESOLUTION = 32

SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 1e-4,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "prediction_type": "v_prediction",
    "timestep_spacing": "trailing",
    "steps_offset": 1,  # unused by "trailing"; 1 keeps diffusers pipelines from rewriting the config
    "clip_sample": False,
}

_TEXT = {"hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 2}
TEXT_LAYERS = 3  # the text encoder's depth unless pretraining is told otherwise (`--text-layers`)


def _unet_levels(channels: tuple[int, ...], head_dim: int, groups: int) -> dict[str, Any]:
    """A UNet of len(channels) levels with residual blocks only, but self- and cross-attention at the
    smallest level (and in the middle block): at the larger ones it costs more than it gives."""
    plain = len(channels) - 1
    return {
        "block_out_channels": channels,
        "down_block_types": ("DownBlock2D",) * plain + ("CrossAttnDownBlock2D",),
        "up_block_types": ("CrossAttnUpBlock2D",) + ("UpBlock2D",) * plain,
        "attention_head_dim": head_dim,
        "norm_num_groups": groups,
    }


# patch2: the default base; patch4: 8x8x48 (docs/world.md, "Why patch 2");
# tiny: tests (patch 2, ~30x fewer weights)
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "patch2": {"patch": 2, "unet": _unet_levels((64, 96, 128), head_dim=4, groups=32), "text": _TEXT},
    "patch4": {"patch": 4, "unet": _unet_levels((96, 128), head_dim=4, groups=32), "text": _TEXT},
    "tiny": {
        "patch": 2,
        "unet": _unet_levels((16, 16, 32), head_dim=2, groups=8),
        "text": {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2},
    },
}


def build_codec(architecture: str = "patch2") -> PixelCodec:
    """Patch p: p*p*3 latent channels; p = 2 ** (len(block_out_channels) - 1), as our code derives it."""
    patch = ARCHITECTURES[architecture]["patch"]
    channels = 3 * patch * patch
    levels = patch.bit_length()  # 2 -> 2 entries, 4 -> 3
    return PixelCodec(in_channels=3, latent_channels=channels, block_out_channels=(channels,) * levels,
                      sample_size=RESOLUTION)  # fmt: skip


def build_unet(architecture: str = "patch2", seed: int = 0) -> UNet2DConditionModel:
    spec = ARCHITECTURES[architecture]
    channels = 3 * spec["patch"] ** 2
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=RESOLUTION // spec["patch"],
        in_channels=channels,
        out_channels=channels,
        layers_per_block=1,
        cross_attention_dim=spec["text"]["hidden_size"],
        **spec["unet"],
    )


def build_text_encoder(
    architecture: str = "patch2", seed: int = 0, layers: int = TEXT_LAYERS
) -> CLIPTextModel:
    torch.manual_seed(seed + 1)
    text = ARCHITECTURES[architecture]["text"]
    config = CLIPTextConfig(
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=77,
        hidden_act="quick_gelu",  # SD 1.x's (OpenAI CLIP's) activation
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
        num_hidden_layers=layers,
        projection_dim=text["hidden_size"],
        **text,
    )
    return CLIPTextModel(config)


def load_deeper(encoder: CLIPTextModel, trained: CLIPTextModel) -> None:
    """Load a shallower trained text encoder into `encoder`, whose extra last layers start as the identity.

    Each extra layer's attention output and MLP output projections are zeroed, so every residual
    branch adds nothing and `encoder` encodes exactly as `trained` did; training then grows them
    (the zero-initialised residual branches of Goyal et al. 2017 and ControlNet's zero convolutions).
    """
    have, want = trained.config.num_hidden_layers, encoder.config.num_hidden_layers
    if have > want:
        raise ValueError(f"cannot load a {have}-layer text encoder into a {want}-layer one")
    missing, unexpected = encoder.load_state_dict(trained.state_dict(), strict=False)
    new = encoder.encoder.layers[have:]
    if unexpected or len(missing) != sum(len(layer.state_dict()) for layer in new):
        raise ValueError(f"text encoders differ beyond depth: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        for layer in new:
            for linear in (layer.self_attn.out_proj, layer.mlp.fc2):
                linear.weight.zero_()
                linear.bias.zero_()


def build_components(
    architecture: str = "patch2", seed: int = 0, text_layers: int = TEXT_LAYERS
) -> dict[str, Any]:
    """tokenizer, text_encoder, unet, vae (the codec) and scheduler of a freshly initialised world base."""
    return {
        "tokenizer": clip_tokenizer(),
        "text_encoder": build_text_encoder(architecture, seed, text_layers),
        "unet": build_unet(architecture, seed),
        "vae": build_codec(architecture),
        "scheduler": DDPMScheduler(**SCHEDULER),
    }


def save_base(parts: dict[str, Any], out: Path, dtype: torch.dtype = torch.float16) -> Path:
    """Write an ordinary diffusers SD folder (model_index.json, one subfolder per part).

    Weights are stored in `dtype` (fp16 keeps the committed base small; the loader upcasts).
    The modules are cast on copies, so a training run's own weights stay as they are.
    """
    from diffusers import StableDiffusionPipeline  # heavy import, needed only here

    unet = UNet2DConditionModel.from_config(parts["unet"].config)
    unet.load_state_dict(parts["unet"].state_dict())
    text_encoder = CLIPTextModel(parts["text_encoder"].config)
    text_encoder.load_state_dict(parts["text_encoder"].state_dict())
    for module in (unet, text_encoder):
        cast(module, dtype=dtype)
    pipe = StableDiffusionPipeline(
        vae=parts["vae"],
        text_encoder=text_encoder,
        tokenizer=parts["tokenizer"],
        unet=unet,
        scheduler=parts["scheduler"],
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out, safe_serialization=True)
    return out


def build_world_base(out: Path, architecture: str = "tiny", seed: int = 0) -> Path:
    """A randomly initialised world base folder (tests: "tiny"; pretraining starts from "patch2")."""
    return save_base(build_components(architecture, seed), Path(out))
