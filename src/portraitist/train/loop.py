"""The training loop: one loop for every recipe, which is data (thesis 2.3; train/recipes.py).

Each step draws its examples, latent samples, noise and timesteps from a generator seeded by
(seed, step), so a resumed run sees exactly what an uninterrupted one would. Text embeddings
are computed once per stage when no text part trains in it (once per run, the encoders then freed,
when none ever does); otherwise the text encoder runs in the step with the gradient.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from portraitist.models.family import Conditioning
from portraitist.train.attention_loss import AttentionRecorder, attention_loss
from portraitist.train.data import TrainingSet
from portraitist.train.optimizer import StageOptimizer
from portraitist.train.recipes import Stage
from portraitist.train.trainee import Trainee


@dataclass(frozen=True)
class LoopSettings:
    """The parts of TrainConfig the loop reads (stage.py fills it)."""

    seed: int
    batch_size: int
    max_grad_norm: float | None
    prior_loss_weight: float
    attention_loss: float
    eight_bit: bool
    checkpoint_every: int
    validate_every: int


@dataclass(frozen=True)
class StepRecord:
    """One line of train_log.jsonl."""

    step: int
    stage: str
    loss: float
    lr: dict[str, float]
    seconds: float


@dataclass
class Hooks:
    """What the loop reports to: every step, every checkpoint, every validation."""

    on_step: Callable[[StepRecord], None]
    on_checkpoint: Callable[[int, int, StageOptimizer], None]  # step, stage index, optimizer
    on_validate: Callable[[int], None]


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of one step, independent of every other step's (so resume is exact)."""
    return torch.Generator().manual_seed(
        int(np.random.SeedSequence([seed, step]).generate_state(1, np.uint64)[0] >> 1)
    )


@functools.lru_cache(maxsize=8)
def _epoch_order(seed: int, epoch: int, n: int, tag: int) -> tuple[int, ...]:
    generator = torch.Generator().manual_seed(
        int(np.random.SeedSequence([seed, epoch, tag]).generate_state(1)[0])
    )
    return tuple(torch.randperm(n, generator=generator).tolist())


def batch_indices(seed: int, step: int, batch: int, n: int, tag: int = 0) -> torch.Tensor:
    """Examples of a step: consecutive places in a fresh permutation of the set per epoch."""
    places = range(step * batch, (step + 1) * batch)
    return torch.tensor([_epoch_order(seed, p // n, n, tag)[p % n] for p in places])


def instance_positions(input_ids: torch.Tensor, token_id: int | None) -> torch.Tensor:
    """Where the instance token is in each prompt; -1 where it is absent."""
    if token_id is None:
        return torch.full(input_ids.shape[:1], -1, dtype=torch.long, device=input_ids.device)
    hits = input_ids == token_id
    return torch.where(hits.any(dim=-1), hits.int().argmax(dim=-1), -1)


class Denoiser:
    """Forward diffusion and the UNet's target for the model's scheduler (DDPM, epsilon or v)."""

    def __init__(self, scheduler: DDPMScheduler):
        self.scheduler = scheduler
        self.n_timesteps = int(self.scheduler.config.num_train_timesteps)
        self.prediction = str(self.scheduler.config.prediction_type)

    def noised(
        self, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        noisy = self.scheduler.add_noise(latents, noise, t)
        target = noise if self.prediction == "epsilon" else self.scheduler.get_velocity(latents, noise, t)
        return noisy, target


def encode_prompts(trainee: Trainee, input_ids: torch.Tensor, sizes: torch.Tensor) -> Conditioning:
    model = trainee.model
    with trainee.precision.context(trainee.device):
        return model.family.encode(model, input_ids, sizes)


class Loop:
    """Runs the stages of a recipe over cached training data."""

    def __init__(
        self,
        trainee: Trainee,
        data: TrainingSet,
        settings: LoopSettings,
        prior: TrainingSet | None = None,
        recorder: AttentionRecorder | None = None,
        instance_id: int | None = None,
        unet_forward: Callable[..., object] | None = None,
    ):
        self.trainee = trainee
        self.data = data
        self.settings = settings
        self.prior = prior
        self.recorder = recorder
        self.instance_id = instance_id
        self.unet_forward = trainee.model.unet if unet_forward is None else unet_forward
        self.denoiser = Denoiser(trainee.model.scheduler)
        self.cache: tuple[Conditioning, Conditioning | None] | None = None

    def _conditioning(self, data: TrainingSet, index: torch.Tensor, which: int) -> Conditioning:
        if self.cache is not None:
            cached = self.cache[which]
            assert cached is not None
            return cached[index]
        return encode_prompts(self.trainee, data.input_ids[index], data.sizes[index])

    def _draw(
        self, data: TrainingSet, step: int, generator: torch.Generator, tag: int
    ) -> tuple[torch.Tensor, ...]:
        index = batch_indices(self.settings.seed, step, self.settings.batch_size, len(data), tag)
        latents = data.sample_latents(index, generator)
        noise = torch.randn(latents.shape, generator=generator).to(latents.device)
        t = torch.randint(0, self.denoiser.n_timesteps, (len(index),), generator=generator).to(latents.device)
        return index.to(latents.device), latents, noise, t

    def loss(self, step: int) -> torch.Tensor:
        """The loss of one step (DreamBooth's prior term and the thesis's attention term when on)."""
        generator = step_generator(self.settings.seed, step)
        index, latents, noise, t = self._draw(self.data, step, generator, tag=0)
        cond = self._conditioning(self.data, index, 0)
        ids = self.data.input_ids[index]
        masks = self.data.masks[index]
        n_instance = len(index)
        if self.prior is not None:
            p_index, p_latents, p_noise, p_t = self._draw(self.prior, step, generator, tag=1)
            latents, noise, t = (
                torch.cat([latents, p_latents]),
                torch.cat([noise, p_noise]),
                torch.cat([t, p_t]),
            )
            cond = Conditioning.cat([cond, self._conditioning(self.prior, p_index, 1)])
            ids = torch.cat([ids, self.prior.input_ids[p_index]])
            masks = torch.cat([masks, self.prior.masks[p_index]])
        noisy, target = self.denoiser.noised(latents, noise, t)
        if self.recorder is not None:
            self.recorder.start(instance_positions(ids, self.instance_id))
        precision = self.trainee.precision
        with precision.context(self.trainee.device):
            prediction = self.unet_forward(
                noisy.to(precision.weights), t, **cond.to(dtype=precision.weights).unet_kwargs()
            ).sample
        errors = F.mse_loss(prediction.float(), target, reduction="none").mean(dim=(1, 2, 3))
        loss = errors[:n_instance].mean()
        if self.prior is not None:
            loss = loss + self.settings.prior_loss_weight * errors[n_instance:].mean()
        if self.recorder is not None and self.settings.attention_loss > 0:
            loss = loss + self.settings.attention_loss * attention_loss(self.recorder, masks)
        return loss

    def _cache_embeddings(self) -> None:
        """Text embeddings for the whole set, while no text part trains (once per stage; once per run,
        the text encoders then released, when the trainee encodes text only once)."""
        if self.trainee.text_released:
            return
        self.cache = None
        if self.trainee.trains_text:
            return
        with torch.no_grad():
            own = encode_prompts(self.trainee, self.data.input_ids, self.data.sizes)
            prior = None
            if self.prior is not None:
                prior = encode_prompts(self.trainee, self.prior.input_ids, self.prior.sizes)
        self.cache = (own, prior)
        if self.trainee.text_once:
            self.trainee.release_text()

    def run(
        self,
        plan: list[tuple[Stage, int]],
        hooks: Hooks,
        start: int = 0,
        resume_optimizer: tuple[int, dict[str, object]] | None = None,
        seconds: float = 0.0,
    ) -> int:
        """Train the stages of `plan` (stage, steps) from step `start`; return the final step."""
        step, end = start, 0
        for stage_index, (stage, count) in enumerate(plan):
            begin, end = end, end + count
            if step >= end:
                continue
            optimizer = StageOptimizer(
                self.trainee.begin_stage(stage),
                self.trainee.precision,
                self.trainee.device,
                self.settings.max_grad_norm,
                self.settings.eight_bit,
            )
            if resume_optimizer is not None and resume_optimizer[0] == stage_index and step > begin:
                optimizer.load_state_dict(resume_optimizer[1])
            self._cache_embeddings()
            rates = {part: float(rate) for part, rate in stage.learning_rates.items()}
            clock = time.perf_counter()
            while step < end:
                loss = self.loss(step)
                optimizer.backward(loss)
                optimizer.step()
                step += 1
                now = time.perf_counter()
                seconds += now - clock
                clock = now
                hooks.on_step(StepRecord(step, stage.name, float(loss.detach()), rates, round(seconds, 3)))
                if step % self.settings.checkpoint_every == 0 or step == end:
                    hooks.on_checkpoint(step, stage_index, optimizer)
                    clock = time.perf_counter()  # checkpoint writing is not training time
                if self.settings.validate_every and step % self.settings.validate_every == 0:
                    hooks.on_validate(step)
                    clock = time.perf_counter()
        return step
