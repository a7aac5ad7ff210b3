"""Single-file checkpoints from elsewhere (A1111, ComfyUI) load offline with their family's base configs;
SD 2.x files are refused at once when their configs would have to come from the hub.
(portraitist's own single files: tests/train/test_train_export.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from portraitist.errors import PortraitistError
from portraitist.models import random_sd
from portraitist.models.loading import load_base, load_vae
from portraitist.train.export import ldm_vae_state_dict


def test_an_sd15_vae_file_in_the_original_layout_loads_offline(tmp_path: Path) -> None:
    """A file like vae-ft-mse-840000-ema-pruned.safetensors: SD 1.5's VAE, LDM keys, no configs."""
    vae = random_sd.build_vae("sd15-random", seed=7)
    path = tmp_path / "vae-ft-mse.safetensors"
    save_file(
        {k.removeprefix("first_stage_model."): v.half() for k, v in ldm_vae_state_dict(vae).items()}, path
    )

    loaded = load_vae(str(path))

    assert list(loaded.config.block_out_channels) == list(vae.config.block_out_channels)
    theirs = loaded.state_dict()
    assert all(torch.equal(v.half(), theirs[k].half()) for k, v in vae.state_dict().items())


def test_an_sd2_file_offline_is_refused_at_once_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "v2-1_768-ema-pruned.safetensors"
    save_file(
        {
            "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2),
            "cond_stage_model.model.token_embedding.weight": torch.zeros(2, 2),
        },
        path,
    )
    with pytest.raises(
        PortraitistError, match="not an SD 1.x or SDXL checkpoint .*out of reach.*diffusers folder"
    ):
        load_base(str(path))


def test_a_file_that_is_no_checkpoint_says_which_files_load(tmp_path: Path) -> None:
    path = tmp_path / "notes.safetensors"
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(
        PortraitistError,
        match="could not be read as a Stable Diffusion checkpoint .*SD 1.5's / SDXL base 1.0's shapes",
    ):
        load_base(str(path))
