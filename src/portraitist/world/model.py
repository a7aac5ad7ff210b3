"""The world's base model: SD 1.x's classes, sized for 32 px images on a 2-core CPU (issue 9).

- Codec: `PixelCodec`, the 32x32x3 image rearranged to 8x8x48 (no autoencoder to train).
- UNet: `UNet2DConditionModel` with two levels, 8x8 (residual blocks only: attention over 64
  positions costs more than it gives at this size) and 4x4 (self- and cross-attention, also in
  the middle block); 4.8M parameters. The study behind issue 9 drew head-and-shoulders portraits
  with prompted colours after 25 minutes with a 4M UNet of this shape.
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
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from portraitist.models.tokenizer import VOCAB_SIZE, clip_tokenizer
from portraitist.world.codec import PixelCodec

# The committed base (`--base world`), written by `portraitist world pretrain`.
BASE_DIR = Path(__file__).parent / "base"

RESOLUTION = 32
CODEC = dict(in_channels=3, latent_channels=48, block_out_channels=(48, 48, 48), sample_size=RESOLUTION)

SCHEDULER: dict[str, Any] = dict(
    num_train_timesteps=1000,
    beta_start=1e-4,
    beta_end=0.02,
    beta_schedule="linear",
    prediction_type="v_prediction",
    timestep_spacing="trailing",
    steps_offset=1,  # unused by "trailing"; 1 keeps diffusers pipelines from rewriting the config
    clip_sample=False,
)

# full: the committed base; tiny: tests (same shapes of blocks, ~30x fewer weights)
SIZES: dict[str, dict[str, Any]] = {
    "full": dict(
        unet=dict(block_out_channels=(96, 128), attention_head_dim=4, norm_num_groups=32),
        text=dict(hidden_size=128, intermediate_size=256, num_attention_heads=2),
    ),
    "tiny": dict(
        unet=dict(block_out_channels=(16, 32), attention_head_dim=2, norm_num_groups=8),
        text=dict(hidden_size=16, intermediate_size=32, num_attention_heads=2),
    ),
}


def build_unet(size: str = "full", seed: int = 0) -> UNet2DConditionModel:
    spec = SIZES[size]
    torch.manual_seed(seed)
    latent = RESOLUTION // 2 ** (len(CODEC["block_out_channels"]) - 1)
    return UNet2DConditionModel(
        sample_size=latent,
        in_channels=CODEC["latent_channels"],
        out_channels=CODEC["latent_channels"],
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=spec["text"]["hidden_size"],
        **spec["unet"],
    )


def build_text_encoder(size: str = "full", seed: int = 0) -> CLIPTextModel:
    torch.manual_seed(seed + 1)
    text = SIZES[size]["text"]
    config = CLIPTextConfig(
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=77,
        hidden_act="quick_gelu",  # SD 1.x's (OpenAI CLIP's) activation
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
        num_hidden_layers=3,
        projection_dim=text["hidden_size"],
        **text,
    )
    return CLIPTextModel(config)


def build_components(size: str = "full", seed: int = 0) -> dict[str, Any]:
    """tokenizer, text_encoder, unet, vae (the codec) and scheduler of a freshly initialised world base."""
    return dict(
        tokenizer=clip_tokenizer(),
        text_encoder=build_text_encoder(size, seed),
        unet=build_unet(size, seed),
        vae=PixelCodec(**CODEC),
        scheduler=DDPMScheduler(**SCHEDULER),
    )


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
        torch.nn.Module.to(
            module, dtype
        )  # not ModelMixin.to, which warns about fp32-only modules it has none of
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


def build_world_base(out: Path, size: str = "tiny", seed: int = 0) -> Path:
    """A randomly initialised world base folder (tests: `size="tiny"`; pretraining starts from `full`)."""
    return save_base(build_components(size, seed), Path(out))
