"""Pretraining the world's base model: from random weights to a 32 px portrait model.

The data is a pool of renders made once (`pool/`, dataset.py's `render_dataset`: pretraining
people only, never the held-out ones), so the renderer does not take the training's cores. Each
step draws its images, mirror flips, caption phrases, noise and timesteps from generators seeded by
(seed, step), as the fine-tuning loop does (train/loop.py), so the data order needs no state and
an interrupted run resumed from its checkpoint reaches the same weights as one never stopped.

Out folder:
    pool/             the rendered images and labels (deterministic by --seed)
    checkpoint.pt     weights, EMA weights, optimizer, step: written atomically every few minutes
    base/             the EMA weights as an ordinary base model folder (fp16), what --base loads,
                      with pretrain.json (steps, images, the commands that made it), so that
                      --init-from can carry on from it once the checkpoint is gone
    samples/          step-NNNNNNN.png: fixed prompts of held-out people, fixed seeds
    log.jsonl         training speed and loss; the judges' scores of each sample grid
"""

from __future__ import annotations

import copy
import json
import math
import os
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.training_utils import EMAModel
from pydantic import Field

from portraitist.config import RESUME, Role, StageConfig, compared_settings
from portraitist.devices import cpu_has_bf16, resolve_device
from portraitist.errors import PortraitistError
from portraitist.generate.txt2img import txt2img
from portraitist.models.cpu_attention import CpuAttnProcessor
from portraitist.models.loading import StableDiffusion, load_base
from portraitist.progress import ProgressCallback, ProgressEvent, no_progress
from portraitist.train.loop import batch_indices, step_generator
from portraitist.train.precision import AUTOCAST_BF16, FP32, TrainingPrecision
from portraitist.workspace import atomic_dir, atomic_path
from portraitist.world import model as world_model
from portraitist.world.dataset import load_dataset, preview_grid, render_dataset
from portraitist.world.family import WORLD, WORLD_FAMILY, world_base_dir
from portraitist.world.judges import Judges, load_judges
from portraitist.world.render import (
    IDENTITY_ATTRIBUTES,
    SCENE_ATTRIBUTES,
    caption,
    describe,
    held_out_person,
    random_scene,
    render_filtered,
    visible_labels,
)

STAGE = "world pretrain"
CHECKPOINT = "checkpoint.pt"
BASE_RECORD = "pretrain.json"  # in base/: what --init-from carries on from
SAMPLE_PROMPTS = 16  # held-out people 0..15, each in one fixed scene
SAMPLE_SEEDS = 2
REPORT_EVERY = 20  # steps between log.jsonl rows (speed and mean loss over those steps)


class PretrainConfig(StageConfig):
    """How to pretrain the world's base (`portraitist world pretrain`)."""

    architecture: Literal["patch2", "patch4", "tiny"] = Field(
        "patch2",
        description="patch2: 16x16x12 latents; patch4: 8x8x48 (compared in docs/world.md); tiny: tests.",
    )
    text_layers: int = Field(
        world_model.TEXT_LAYERS,
        ge=1,
        description="Transformer layers of the text encoder. With init_from, layers past the base's own "
        "are added as the identity and trained from there: a deeper encoder without starting over.",
    )
    seed: int = Field(
        0, description="World seed (the pool's people and photos), weight init, data order, noise."
    )
    identities: int = Field(10_000, ge=1, description="Pretraining people in the rendered pool.")
    photos: int = Field(16, ge=1, description="Photos (scenes) per person in the pool.")
    batch: int = Field(128, ge=1, description="Images per step.")
    lr: float = Field(
        5e-4,
        gt=0,
        description="AdamW learning rate of the UNet after warm-up (the default is the committed base's).",
    )
    text_lr: float | None = Field(
        None,
        gt=0,
        description="The text encoder's learning rate (default: lr), on the same warm-up and decay; higher "
        "lets the layers text_layers adds grow from their zero start within a short cycle.",
    )
    warmup: int = Field(
        500, ge=0, description="Steps of linear learning-rate warm-up at the start of this run's optimizer."
    )
    decay_to: int | None = Field(
        None,
        ge=1,
        description="Cosine-decay the learning rate from the end of warm-up to 0 at this total step count "
        "(default: constant after warm-up); with steps at the same count, a run that ends on a low rate.",
    )
    ema_decay: float = Field(
        0.999,
        ge=0,
        lt=1,
        description="EMA decay of the weights; the saved base is the EMA. After 700 steps at 0.999 the EMA "
        "is still half the weights a cycle started from, so a short init_from cycle wants a lower one, "
        "e.g. 0.998.",
    )
    empty_captions: float = Field(
        0.1, ge=0, le=1, description="Share of empty captions (classifier-free guidance)."
    )
    person_captions: float = Field(
        0.1, ge=0, le=1, description="Share of captions that say 'a person' instead of describing them."
    )
    phrase_drop: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Probability of leaving out each optional caption phrase; lower makes full captions, the "
        "kind a long prompt is, more common in the data.",
    )
    budget_minutes: Annotated[float | None, Role.LENGTH] = Field(
        None,
        gt=0,
        description="Stop cleanly (checkpoint, base, samples) after this many minutes of this run.",
    )
    steps: Annotated[int | None, Role.LENGTH] = Field(
        None, ge=1, description="Stop at this total step count (default: only the budget)."
    )
    checkpoint_minutes: Annotated[float, Role.RUNTIME] = Field(
        5.0, gt=0, description="Write checkpoint.pt and base/ this often."
    )
    sample_minutes: Annotated[float, Role.RUNTIME] = Field(
        10.0, gt=0, description="Draw the sample grid (and judge it) this often."
    )
    sample_steps: Annotated[int, Role.RUNTIME] = Field(
        20, ge=1, description="Euler steps of the sample grid."
    )
    guidance: Annotated[float, Role.RUNTIME] = Field(
        4.0, ge=1, description="Classifier-free guidance of the sample grid."
    )
    threads: Annotated[int | None, Role.RUNTIME] = Field(
        None, ge=1, description="Torch CPU threads (default: torch's, all cores; 1 on a busy machine)."
    )
    init_from: Annotated[str | None, Role.START] = Field(
        None,
        description="Start from a pretrained base folder's weights (`world`: the committed base) instead of "
        "random ones, carrying on its step count and data order; the optimizer starts afresh with a new "
        "warm-up: how a run goes on when its checkpoint is gone (another machine, a cleaned folder).",
    )
    device: Annotated[str, Role.RUNTIME] = Field(
        "auto", description="auto (CUDA if available, else CPU), cpu, cuda, ..."
    )

    def fingerprint(self) -> dict[str, Any]:
        """What must match for a checkpoint to be resumed: everything that shapes the trajectory."""
        return compared_settings(self, RESUME)


@dataclass
class PretrainResult:
    step: int
    images: int  # images trained on, in all runs together
    seconds: float  # training time, in all runs together
    images_per_second: float  # in this run's training steps (not counting checkpoints and samples)
    base: Path


# ---- data -------------------------------------------------------------------------------------


class Pool:
    """The rendered images (N, 32, 32, 3 uint8) and each one's attribute words, as small arrays."""

    def __init__(self, folder: Path):
        images, labels = load_dataset(folder)
        self.images = torch.from_numpy(np.array(images))  # into memory: a random batch a step
        self.identity = [{name: row[name] for name in IDENTITY_ATTRIBUTES} for row in labels]
        self.scene = [{name: row[name] for name in SCENE_ATTRIBUTES} for row in labels]

    def __len__(self) -> int:
        return len(self.images)


def ensure_pool(config: PretrainConfig, out: Path, progress: ProgressCallback) -> Path:
    """Render the pool once; a pool made with other arguments is an error (it would change the run)."""
    folder = out / "pool"
    wanted = {
        "identities": config.identities,
        "photos": config.photos,
        "seed": config.seed,
        "size": world_model.RESOLUTION,
        "held_out": False,
    }
    if (folder / "world.json").is_file():
        made = json.loads((folder / "world.json").read_text())
        if made != wanted:
            raise PortraitistError(
                f"{folder} was rendered with {made}, not {wanted}; use the settings it was made with, "
                "or a new --out."
            )
        return folder
    render_dataset(
        folder, config.identities, config.photos, config.seed, size=world_model.RESOLUTION, progress=progress
    )
    return folder


def captions(pool: Pool, index: list[int], rng: np.random.Generator, config: PretrainConfig) -> list[str]:
    """A caption per image: empty (for guidance), 'a person ...', or the person's with phrases dropped."""
    out = []
    for i in index:
        kind = rng.random()
        if kind < config.empty_captions:
            out.append("")
            continue
        identity = None if kind < config.empty_captions + config.person_captions else pool.identity[i]
        out.append(
            describe(None, identity, pool.scene[i], lambda _: bool(rng.random() >= config.phrase_drop))
        )
    return out


# ---- model state ------------------------------------------------------------------------------


@dataclass
class Trainer:
    """The trained parts, their EMAs and the optimizer: what a checkpoint holds."""

    parts: dict[str, Any]  # build_components(): tokenizer, text_encoder, unet, vae, scheduler
    ema: dict[str, EMAModel]  # "unet", "text_encoder": diffusers' EMA of each one's parameters
    optimizer: torch.optim.Optimizer
    step: int = 0
    images: int = 0
    seconds: float = 0.0
    warmup_from: int = 0  # the step this run's optimizer started at (0, or the --init-from base's step)
    made_by: tuple[str, ...] = ()  # the commands that made the weights before this run (--init-from's)

    @property
    def trained(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.parts["unet"], "text_encoder": self.parts["text_encoder"]}

    def update_ema(self) -> None:
        for name, module in self.trained.items():
            self.ema[name].step(module.parameters())

    def ema_weights(self) -> dict[str, dict[str, torch.Tensor]]:
        """Each EMA by parameter name, as its part's state_dict names them: a checkpoint that says what
        it holds."""
        return {
            name: dict(
                zip([key for key, _ in module.named_parameters()], self.ema[name].shadow_params, strict=True)
            )
            for name, module in self.trained.items()
        }

    def load_ema(self, weights: dict[str, dict[str, torch.Tensor]]) -> None:
        """Set each EMA to `weights` (by parameter name), averaged over the trainer's steps so far."""
        for name, module in self.trained.items():
            shadow = [weights[name][key].to(p.device) for key, p in module.named_parameters()]
            self.ema[name].load_state_dict({"shadow_params": shadow, "optimization_step": self.step})

    def state(self, fingerprint: dict[str, Any]) -> dict[str, Any]:
        return {
            "step": self.step,
            "images": self.images,
            "seconds": self.seconds,
            "warmup_from": self.warmup_from,
            "made_by": list(self.made_by),
            "fingerprint": fingerprint,
            "weights": {name: module.state_dict() for name, module in self.trained.items()},
            "ema": self.ema_weights(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load(self, state: dict[str, Any]) -> None:
        for name, module in self.trained.items():
            module.load_state_dict(state["weights"][name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.images, self.seconds = state["step"], state["images"], state["seconds"]
        self.warmup_from, self.made_by = state["warmup_from"], tuple(state["made_by"])
        self.load_ema(state["ema"])

    def ema_model(self) -> StableDiffusion:
        """The EMA weights in copies of the trained parts, as a StableDiffusion: for sampling and saving."""
        averaged = {}
        for name, module in self.trained.items():
            averaged[name] = copy.deepcopy(module).requires_grad_(False).eval()
            self.ema[name].copy_to(averaged[name].parameters())
        return StableDiffusion(source=STAGE, family=WORLD_FAMILY, **dict(self.parts, **averaged))


def new_trainer(config: PretrainConfig, device: torch.device) -> Trainer:
    parts = world_model.build_components(config.architecture, config.seed, config.text_layers)
    for name in ("unet", "text_encoder"):
        parts[name].to(device).train()
    if device.type == "cpu":
        # small attention problems: one matmul + softmax beats the CPU flash kernels, most of all backward
        # (77 tokens: 0.91 instead of 1.13 CPU-seconds a step of 128); not saved with the weights
        parts["unet"].set_attn_processor(CpuAttnProcessor())
        parts["text_encoder"].set_attn_implementation("eager")
    # The decay ramps up as (1 + n) / (10 + n), so the EMA is not dominated by the random initial weights;
    # update_after_step=-1 makes n the updates made so far, the trainer's step (diffusers' default lags one).
    ema = {
        name: EMAModel(parts[name].parameters(), decay=config.ema_decay, update_after_step=-1, foreach=True)
        for name in ("unet", "text_encoder")
    }
    # "scale": each group's rate as a multiple of the schedule's (train_step sets the rates every step)
    groups = [
        {"params": list(parts["unet"].parameters()), "scale": 1.0},
        {
            "params": list(parts["text_encoder"].parameters()),
            "scale": (config.text_lr or config.lr) / config.lr,
        },
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=0.01, fused=True)
    return Trainer(parts, ema, optimizer)


def save_checkpoint(trainer: Trainer, config: PretrainConfig, out: Path) -> None:
    """checkpoint.pt, replaced whole: a crash never leaves half a checkpoint."""
    with atomic_path(out / CHECKPOINT) as tmp:
        torch.save(trainer.state(config.fingerprint()), tmp)


def load_checkpoint(trainer: Trainer, config: PretrainConfig, out: Path) -> None:
    state = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)
    now = config.fingerprint()
    # a setting the checkpoint predates had its default then
    saved = {key: state["fingerprint"].get(key, PretrainConfig.model_fields[key].default) for key in now}
    changed = {key: (saved[key], value) for key, value in now.items() if saved[key] != value}
    if changed:
        what = "; ".join(f"{key}: {old!r} then, {new!r} now" for key, (old, new) in changed.items())
        raise PortraitistError(
            f"{out / CHECKPOINT} was trained with other settings ({what}). Resume with the settings it was "
            "made with, or pretrain into a new --out."
        )
    trainer.load(state)


def save_base_folder(trainer: Trainer, config: PretrainConfig, out: Path) -> Path:
    """base/: the EMA weights as an ordinary model folder, replaced whole (never half-written)."""
    final = out / "base"
    with atomic_dir(final) as tmp:
        _write_base(trainer, config, tmp)
    return final


def _write_base(trainer: Trainer, config: PretrainConfig, tmp: Path) -> None:
    ema = trainer.ema_model()
    world_model.save_base(dict(trainer.parts, unet=ema.unet, text_encoder=ema.text_encoder), tmp)
    commands = [*trainer.made_by, run_command(trainer, config)]
    record = {
        "step": trainer.step,
        "images": trainer.images,
        "seconds": round(trainer.seconds, 1),
        "settings": config.fingerprint(),
        "made_by": commands,
    }
    (tmp / BASE_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    (tmp / "README.md").write_text(base_readme(trainer, config, commands))


def base_readme(trainer: Trainer, config: PretrainConfig, commands: list[str]) -> str:
    """base/README.md: what the weights are and the commands that make them."""
    steps = "The command that makes" if len(commands) == 1 else "The commands, in order, that make"
    return (
        "# The world's base model\n\n"
        "A 32 px text-to-image model of the synthetic world's people (docs/world.md), pretrained from random "
        f"weights: step {trainer.step}, {trainer.images} images, {trainer.seconds / 3600:.2f} h of training. "
        f"The weights are the EMA, stored in fp16. {steps} them:\n\n"
        + "".join(f"    {command}\n" for command in commands)
        + "\nIts settings (a [pretrain] table of a --config TOML file may set any of them):\n\n"
        f"    {json.dumps(config.fingerprint())}\n"
    )


def run_command(trainer: Trainer, config: PretrainConfig) -> str:
    """The command that makes this run's weights (from random ones, or from its --init-from base).

    --steps remakes them however many --resume runs made them: data order, noise and captions follow
    from (seed, step), bit for bit on the same CPU and thread count; other settings as in pretrain.json.
    """
    start = ["--init-from", "BASE"] if trainer.made_by else []  # BASE: the weights the previous command made
    return shlex.join(
        ["portraitist", "world", "pretrain", "--out", "RUN", *start, "--steps", str(trainer.step),
         "--architecture", config.architecture, "--text-layers", str(config.text_layers),
         "--seed", str(config.seed), "--batch", str(config.batch),
         "--lr", f"{config.lr:g}", "--warmup", str(config.warmup), "--identities", str(config.identities),
         "--photos", str(config.photos), "--phrase-drop", f"{config.phrase_drop:g}",
         "--ema-decay", f"{config.ema_decay:g}",
         *(["--decay-to", str(config.decay_to)] if config.decay_to else []),
         *(["--text-lr", f"{config.text_lr:g}"] if config.text_lr else [])]
    )  # fmt: skip


def init_from_base(trainer: Trainer, config: PretrainConfig, name: str) -> None:
    """Load a pretrained base's weights into the model and its EMA, and carry on its counts."""
    folder = world_base_dir() if name == WORLD else Path(name)
    record_path = folder / BASE_RECORD
    if not record_path.is_file():
        raise PortraitistError(
            f"--init-from {name}: {folder} is not a base made by `portraitist world pretrain` "
            f"(no {BASE_RECORD})."
        )
    record = json.loads(record_path.read_text())
    made = record["settings"]["architecture"]
    if made != config.architecture:
        raise PortraitistError(
            f"--init-from {name} is a {made} base; pretrain it on with --architecture {made}."
        )
    loaded = load_base(str(folder))  # at full precision, as every stage loads a base
    layers = loaded.text_encoder.config.num_hidden_layers
    if layers > config.text_layers:
        raise PortraitistError(
            f"--init-from {name} has a {layers}-layer text encoder; give --text-layers {layers} or more."
        )
    trainer.parts["unet"].load_state_dict(loaded.unet.state_dict())
    world_model.load_deeper(trainer.parts["text_encoder"], loaded.text_encoder)
    trainer.step, trainer.images, trainer.seconds = record["step"], record["images"], record["seconds"]
    trainer.warmup_from, trainer.made_by = trainer.step, tuple(record["made_by"])
    trainer.load_ema({name: module.state_dict() for name, module in trainer.trained.items()})


def start_trainer(out: Path, config: PretrainConfig, device: torch.device, resume: bool) -> Trainer:
    """The trainer at this run's first step: new, resumed from the checkpoint, or from --init-from's base."""
    trainer = new_trainer(config, device)
    if resume:
        load_checkpoint(trainer, config, out)
    elif config.init_from:
        init_from_base(trainer, config, config.init_from)
    if config.decay_to is not None and config.decay_to <= trainer.warmup_from + config.warmup:
        raise PortraitistError(
            f"--decay-to {config.decay_to} ends before this run's warm-up does (step "
            f"{trainer.warmup_from + config.warmup}); give a later step."
        )
    return trainer


# ---- samples and judges -----------------------------------------------------------------------


def sample_prompts(seed: int, count: int = SAMPLE_PROMPTS) -> tuple[list[str], list[dict[str, str]]]:
    """Full captions of held-out people 0..count-1, each in one fixed scene, and the labels a judge
    can check."""
    prompts, labels = [], []
    for k in range(count):
        who = held_out_person(k, seed)
        scene = random_scene(np.random.default_rng([seed, k, 0x5A3]))
        prompts.append(caption(who, scene))
        labels.append(visible_labels({**who.attributes, **scene.attributes}))
    return prompts, labels


def reference_images(seed: int, count: int = SAMPLE_PROMPTS) -> np.ndarray:
    """Real renders of the sample prompts: what the judges score on the truth, to compare samples with."""
    images = []
    for k in range(count):
        scene = random_scene(np.random.default_rng([seed, k, 0x5A3]))
        images.append(render_filtered(held_out_person(k, seed), scene, world_model.RESOLUTION).image)
    return np.stack(images)


def committed_judges() -> Judges | None:
    """The committed judges (world/judges/), or None where they are missing: pretraining runs without them."""
    try:
        return load_judges()
    except PortraitistError:
        return None


def judge_scores(judges: Judges, images: np.ndarray, labels: list[dict[str, str]]) -> dict[str, Any]:
    """Per attribute, the share of images whose judged word is the prompted one; the face gate's pass rate."""
    agreement = judges.agreement(images, labels)
    return {
        "attributes": {name: round(v, 4) for name, v in agreement.items()},
        "mean_attribute": round(float(np.mean(list(agreement.values()))), 4),
        "face_rate": round(float(np.mean(judges.is_face(images))), 4),
    }


def write_samples(
    trainer: Trainer, config: PretrainConfig, out: Path, judges: Judges | None
) -> dict[str, Any]:
    """The sample grid of the EMA model (SAMPLE_SEEDS rows of held-out prompts), judged when judges exist."""
    prompts, labels = sample_prompts(config.seed)
    model = trainer.ema_model()
    images = txt2img(
        model,
        [p for p in prompts for _ in range(SAMPLE_SEEDS)],  # type: ignore[arg-type]  (one prompt per image)
        "",
        [config.seed + s for _ in prompts for s in range(SAMPLE_SEEDS)],
        (world_model.RESOLUTION, world_model.RESOLUTION),
        config.sample_steps,
        config.guidance,
    )
    array = np.stack([np.asarray(image) for image in images])
    path = out / "samples" / f"step-{trainer.step:07d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    preview_grid(array, columns=SAMPLE_SEEDS * 4).save(path)
    record: dict[str, Any] = {
        "kind": "samples",
        "step": trainer.step,
        "images": trainer.images,
        "file": str(path.relative_to(out)),
    }
    if judges is not None:
        record["judges"] = judge_scores(judges, array, [row for row in labels for _ in range(SAMPLE_SEEDS)])
    return record


# ---- the loop ---------------------------------------------------------------------------------


class Log:
    """log.jsonl: one JSON object per line, appended and flushed (it survives a kill)."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def pretrain_precision(device: torch.device) -> TrainingPrecision:
    """bf16 autocast where the hardware computes in bf16 (CUDA, CPUs with AVX512-BF16 or AMX), else fp32:
    emulated bf16 on other CPUs is slower than fp32."""
    return AUTOCAST_BF16 if device.type == "cuda" or cpu_has_bf16() else FP32


def learning_rate(config: PretrainConfig, step: int, warmup_from: int) -> float:
    """Linear warm-up from `warmup_from` (where this optimizer started), then constant or cosine to 0."""
    rate = config.lr * min(1.0, (step - warmup_from + 1) / max(1, config.warmup))
    if config.decay_to is None:
        return rate
    decay_from = warmup_from + config.warmup
    done = min(1.0, max(0.0, (step - decay_from) / max(1, config.decay_to - decay_from)))
    return rate * 0.5 * (1 + math.cos(math.pi * done))


def train_step(trainer: Trainer, pool: Pool, config: PretrainConfig, device: torch.device) -> float:
    """One optimizer step on batch `trainer.step`, towards the v-prediction target (Salimans & Ho 2022);
    everything random comes from (seed, step)."""
    parts, step = trainer.parts, trainer.step
    index = batch_indices(config.seed, step, config.batch, len(pool))
    generator = step_generator(config.seed, step)
    rng = np.random.default_rng([config.seed, step, 0xCA9])
    pixels = pool.images[index].permute(0, 3, 1, 2).float() / 127.5 - 1
    flip = torch.rand(len(index), generator=generator) < 0.5
    pixels = torch.where(flip.view(-1, 1, 1, 1), pixels.flip(-1), pixels)
    codec, scheduler = parts["vae"], parts["scheduler"]
    latents = codec.encode(pixels).latent_dist.mean * codec.config.scaling_factor
    noise = torch.randn(latents.shape, generator=generator)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (len(index),), generator=generator)
    ids = parts["tokenizer"](
        captions(pool, index.tolist(), rng, config),
        padding="max_length",
        max_length=77,
        truncation=True,
        return_tensors="pt",
    )["input_ids"]
    noisy, target = scheduler.add_noise(latents, noise, t), scheduler.get_velocity(latents, noise, t)
    rate = learning_rate(config, step, trainer.warmup_from)
    for group in trainer.optimizer.param_groups:
        group["lr"] = rate * group["scale"]
    with pretrain_precision(device).context(device):
        hidden = parts["text_encoder"](ids.to(device))[0]
        prediction = parts["unet"](noisy.to(device), t.to(device), hidden).sample
    loss = F.mse_loss(prediction.float(), target.to(device))
    loss.backward()
    params = [p for module in trainer.trained.values() for p in module.parameters()]
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.step += 1
    trainer.images += len(index)
    trainer.update_ema()
    return float(loss.detach())


def every(minutes: float, start: float) -> Iterator[bool]:
    """True once each time `minutes` have passed since the last True."""
    last = start
    while True:
        now = time.monotonic()
        due = now - last >= minutes * 60
        if due:
            last = now
        yield due


@dataclass
class Meter:
    """This run's training steps, timed without its checkpoints and samples (they would lower the speed
    shown): every report writes their mean loss and speed to log.jsonl and the progress display."""

    log: Log
    progress: ProgressCallback
    batch: int
    total: int | None  # the step count the run stops at, if any
    losses: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    run_seconds: float = 0.0
    run_images: int = 0
    metrics: dict[str, float] = field(default_factory=dict)

    def add(self, loss: float, seconds: float) -> None:
        self.losses.append(loss)
        self.step_seconds.append(seconds)
        self.run_seconds += seconds
        self.run_images += self.batch

    def report(self, trainer: Trainer, final: bool = False) -> None:
        """The steps since the last report (the last metrics again when there were none)."""
        if self.losses:
            self.metrics = {
                "img/s": self.batch * len(self.losses) / sum(self.step_seconds),
                "loss": float(np.mean(self.losses)),
            }
            self.log.write(
                {
                    "kind": "train",
                    "step": trainer.step,
                    "images": trainer.images,
                    "loss": round(self.metrics["loss"], 5),
                    "images_per_second": round(self.metrics["img/s"], 1),
                    "seconds": round(trainer.seconds, 1),
                    "load_average": round(os.getloadavg()[0], 2),
                }
            )
            self.losses.clear()
            self.step_seconds.clear()
        self.progress(ProgressEvent(STAGE, trainer.step, self.total, "done" if final else "", self.metrics))

    @property
    def images_per_second(self) -> float:
        return self.run_images / self.run_seconds if self.run_seconds else 0.0


def finished(trainer: Trainer, config: PretrainConfig, start: float) -> bool:
    """The budget (counted from `start`, when `pretrain` was called) is spent or `steps` reached."""
    over_budget = config.budget_minutes is not None and time.monotonic() - start >= config.budget_minutes * 60
    return over_budget or (config.steps is not None and trainer.step >= config.steps)


def train_until_finished(
    trainer: Trainer,
    pool: Pool,
    config: PretrainConfig,
    device: torch.device,
    out: Path,
    judges: Judges | None,
    meter: Meter,
    start: float,
) -> None:
    """Train step by step, writing the checkpoint, base/ and the sample grid as often as config asks."""
    checkpoint_due, sample_due = every(config.checkpoint_minutes, start), every(config.sample_minutes, start)
    while not finished(trainer, config, start):
        clock = time.perf_counter()
        loss = train_step(trainer, pool, config, device)
        seconds = time.perf_counter() - clock
        trainer.seconds += seconds
        meter.add(loss, seconds)
        if trainer.step % REPORT_EVERY == 0:
            meter.report(trainer)
        if next(checkpoint_due):
            save_checkpoint(trainer, config, out)
            save_base_folder(trainer, config, out)
        if next(sample_due):
            meter.log.write(write_samples(trainer, config, out, judges))
    meter.report(trainer, final=True)


def check_start(out: Path, config: PretrainConfig, resume: bool) -> None:
    """Refuse a run that would never end, or would overwrite or mix with the run in `out`."""
    if config.budget_minutes is None and config.steps is None:
        raise PortraitistError("Give --budget-minutes (or --steps): pretraining otherwise never ends.")
    has_checkpoint = (out / CHECKPOINT).is_file()
    if resume and not has_checkpoint:
        raise PortraitistError(
            f"Nothing to resume: {out / CHECKPOINT} does not exist. Leave out --resume to start."
        )
    if has_checkpoint and not resume:
        raise PortraitistError(
            f"{out} holds a pretraining run; add --resume to continue it, or choose a new --out."
        )
    if resume and config.init_from:
        raise PortraitistError("--init-from starts a run and --resume continues one: give one of them.")


def pretrain(
    out: Path, config: PretrainConfig, resume: bool = False, progress: ProgressCallback | None = None
) -> PretrainResult:
    """Pretrain (or go on pretraining) the world's base in `out` until the budget or `steps` is reached."""
    start = time.monotonic()
    out = Path(out)
    check_start(out, config, resume)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    out.mkdir(parents=True, exist_ok=True)
    trainer = start_trainer(out, config, device, resume)
    progress = progress or no_progress
    pool = Pool(ensure_pool(config, out, progress))  # after every check: rendering takes minutes
    meter = Meter(Log(out / "log.jsonl"), progress, config.batch, config.steps)
    judges = committed_judges()
    if judges is not None:  # the judges' scores on real renders of the sample prompts: the mark to reach
        references = judge_scores(judges, reference_images(config.seed), sample_prompts(config.seed)[1])
        meter.log.write({"kind": "reference", "step": trainer.step, "judges": references})
    train_until_finished(trainer, pool, config, device, out, judges, meter, start)
    save_checkpoint(trainer, config, out)
    base = save_base_folder(trainer, config, out)
    meter.log.write(write_samples(trainer, config, out, judges))
    return PretrainResult(trainer.step, trainer.images, trainer.seconds, meter.images_per_second, base)
