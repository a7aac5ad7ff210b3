"""Samplers: Euler (Karras et al. 2022, the thesis's choice, 2.4) and diffusers' others by name.

The Euler sampler is k-diffusion's shape: a plain function of a denoiser D(x, sigma) -> x0,
the starting noise and the sigma sequence. The sigmas come from the model's own training
schedule, spaced the way diffusers' EulerDiscreteScheduler spaces them for SD
("leading" + steps_offset for SD 1.5, "trailing", "linspace"), so the same seed gives the
same image as diffusers' StableDiffusionPipeline.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    HeunDiscreteScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)
from diffusers.configuration_utils import FrozenDict
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from portraitist.errors import PortraitistError

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ModelOutput = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StepCallback = Callable[[int, int], None]

# diffusers schedulers that `--scheduler` accepts beside our own `euler`; the extra keyword
# arguments turn on the variant the name stands for
DIFFUSERS_SCHEDULERS: dict[str, tuple[type, dict[str, Any]]] = {
    "euler-a": (EulerAncestralDiscreteScheduler, {}),
    "dpm++2m": (DPMSolverMultistepScheduler, {}),
    "dpm++2m-karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
    "ddim": (DDIMScheduler, {}),
    "pndm": (PNDMScheduler, {"skip_prk_steps": True}),
    "lms": (LMSDiscreteScheduler, {}),
    "heun": (HeunDiscreteScheduler, {}),
    "unipc": (UniPCMultistepScheduler, {}),
}
SCHEDULERS = ("euler", *DIFFUSERS_SCHEDULERS)


@dataclass(frozen=True)
class Schedule:
    """Sigmas (descending, ending at 0) and the UNet timestep each non-final sigma stands for."""

    sigmas: torch.Tensor
    timesteps: torch.Tensor
    init_noise_sigma: float

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """The training timestep of one of this schedule's sigmas."""
        index = int(torch.nonzero(self.sigmas == sigma)[0, 0])
        return self.timesteps[index]

    def tail(self, strength: float) -> Schedule:
        """The last `strength` of the steps (img2img starts part-way down, as diffusers does)."""
        steps = len(self.timesteps)
        start = steps - min(steps, max(1, int(steps * strength)))
        return Schedule(self.sigmas[start:], self.timesteps[start:], float(self.sigmas[start]))


def training_sigmas(alphas_cumprod: torch.Tensor) -> np.ndarray:
    """sigma(t) = sqrt((1 - alpha_bar_t) / alpha_bar_t): the VP schedule seen as noise levels."""
    # in float32, as diffusers computes it, so the sigmas agree to the bit
    return (((1 - alphas_cumprod) / alphas_cumprod) ** 0.5).numpy()


def euler_schedule(scheduler_config: FrozenDict, alphas_cumprod: torch.Tensor, steps: int) -> Schedule:
    """The sigmas EulerDiscreteScheduler uses for this training schedule, to the bit."""
    n_train = int(scheduler_config.num_train_timesteps)
    spacing = scheduler_config.get("timestep_spacing", "leading")
    if spacing == "leading":
        ratio = n_train // steps
        t = (np.arange(0, steps) * ratio).round()[::-1].astype(np.float32) + scheduler_config.get(
            "steps_offset", 0
        )
    elif spacing == "trailing":
        t = np.arange(n_train, 0, -n_train / steps).round().astype(np.float32) - 1
    elif spacing == "linspace":
        t = np.linspace(0, n_train - 1, steps, dtype=np.float32)[::-1].copy()
    else:
        raise PortraitistError(
            f"The model's scheduler uses timestep_spacing={spacing!r}, which Euler does not know."
        )
    train = training_sigmas(alphas_cumprod)
    sigmas = np.interp(t, np.arange(len(train)), train)
    sigmas = torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32))
    # diffusers starts "leading" schedules at the data+noise std, others at sigma_max
    sigma_max = float(sigmas.max())
    init = sigma_max if spacing in ("linspace", "trailing") else (sigma_max**2 + 1) ** 0.5
    return Schedule(sigmas, torch.from_numpy(t.copy()), init)


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """The ODE's derivative dx/dsigma at x, from the denoiser's estimate of x0."""
    return (x - denoised) / sigma


@torch.no_grad()
def sample_euler(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    callback: StepCallback | None = None,
    after_step: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Euler's method, Karras et al. 2022 (arXiv:2206.00364) Algorithm 2 without churn."""
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i])
        x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
        if after_step is not None:
            x = after_step(x, i + 1)
        if callback is not None:
            callback(i + 1, len(sigmas) - 1)
    return x


def karras_denoiser(model: ModelOutput, schedule: Schedule, prediction_type: str) -> Denoiser:
    """D(x, sigma) from an SD UNet: inputs scaled by 1/sqrt(sigma^2+1), eps or v turned into x0."""

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        c_in = 1 / (sigma**2 + 1) ** 0.5
        out = model(x * c_in, schedule.timestep(sigma))
        if prediction_type == "epsilon":
            return x - sigma * out
        if prediction_type == "v_prediction":
            return out * (-sigma * c_in) + x / (sigma**2 + 1)
        raise PortraitistError(f"Euler sampling does not support prediction_type={prediction_type!r}.")

    return denoise


def diffusers_scheduler(name: str, scheduler_config: FrozenDict) -> SchedulerMixin:
    """A diffusers scheduler by its `--scheduler` name, set up from the model's training config."""
    if name not in DIFFUSERS_SCHEDULERS:
        raise PortraitistError(f"Unknown scheduler {name!r}. Schedulers: {', '.join(SCHEDULERS)}.")
    cls, extra = DIFFUSERS_SCHEDULERS[name]
    return cls.from_config(scheduler_config, **extra)


@torch.no_grad()
def sample_with_scheduler(
    scheduler: SchedulerMixin,
    model: ModelOutput,
    noise: torch.Tensor,
    steps: int,
    generators: list[torch.Generator],
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """The classic diffusers loop (scale the input, predict, step) for any of its schedulers."""
    scheduler.set_timesteps(steps)
    x = noise * scheduler.init_noise_sigma
    timesteps = scheduler.timesteps
    # stochastic schedulers (euler-a) draw each image's fresh noise from its own seed
    kwargs = {"generator": generators} if "generator" in inspect.signature(scheduler.step).parameters else {}
    for i, t in enumerate(timesteps):
        out = model(scheduler.scale_model_input(x, t), t)
        x = scheduler.step(out, t, x, **kwargs).prev_sample
        if callback is not None:
            callback(i + 1, len(timesteps))
    return x
