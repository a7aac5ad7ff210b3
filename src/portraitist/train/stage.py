"""`train`: the stage function that the CLI, the service worker and the tests call (DESIGN.md).

Reads WS/dataset/ (from `prepare`), fine-tunes the base with a recipe, writes WS/model/:
model.json, tokens.json, the weights, train_log.jsonl, checkpoints/ and samples/.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from portraitist.config import RESUME, compared_settings
from portraitist.errors import MachineError, PortraitistError
from portraitist.models.loading import StableDiffusion, load_base
from portraitist.progress import ProgressCallback, ProgressEvent, no_progress
from portraitist.train import attention_loss, checkpoint
from portraitist.train.artifacts import ModelInfo, write_model
from portraitist.train.config import TrainConfig
from portraitist.train.data import TrainingSet, encode, load_class_images, load_photos
from portraitist.train.loop import Hooks, Loop, LoopSettings, StepRecord
from portraitist.train.optimizer import StageOptimizer
from portraitist.train.precision import choose_precision
from portraitist.train.recipes import Recipe
from portraitist.train.tokens import RARE_TOKEN, AddedToken, add_model_tokens, token_rows
from portraitist.train.trainee import Trainee
from portraitist.train.validation import write_samples
from portraitist.workspace import DatasetManifest, Workspace, write_bytes_atomic

STAGE = "train"


@dataclass
class TrainResult:
    model_dir: Path
    recipe: str
    steps_done: int
    resumed_from: int | None  # the checkpoint's step, when this run continued one
    final_loss: float | None
    seconds: float  # training time (without loading and checkpoint writing), over all runs
    peak_gpu_mb: float | None  # torch's peak allocated GPU memory in this run (None on the CPU)
    model: StableDiffusion  # the trained model in memory; load_trained(workspace) rebuilds it from model/


@dataclass(frozen=True)
class TrainingState:
    """What a validation hook sees at a validation step: the model under training, in its training precision."""

    step: int
    model: StableDiffusion
    subject: str  # what `{me}` stands for in this run's prompts
    seconds: float  # training time so far (without loading, checkpoints and validation)


def resolve_device(wanted: str) -> torch.device:
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise PortraitistError(f"--device {wanted} asked for a GPU, and torch sees none; use --device cpu.")
    return torch.device(wanted)


def _prompts(manifest: DatasetManifest, recipe: Recipe) -> tuple[list[str], str]:
    """Each kept photo's prompt, and the subject phrase `{me}` stands for."""
    if recipe.prompt == "rare_token":
        subject = f"{RARE_TOKEN} {manifest.class_token}"
        return [f"a photo of {subject}"] * len(manifest.kept), subject
    subject = f"{manifest.instance_token} {manifest.class_token}"
    return [p.caption or f"a photo of {subject}" for p in manifest.kept], subject


def _fingerprint(config: TrainConfig, recipe: Recipe, total: int, base: str, precision: str) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed (not: checkpoint/validation cadence, device);
    `total` stands for the steps, and the recipe is recorded as planned."""
    fields = compared_settings(config, RESUME)
    return dict(fields, base=base, total_steps=total, precision=precision, recipe=recipe.model_dump(mode="json"))


class TrainLog:
    """model/train_log.jsonl: one JSON line per step, cut back to the checkpoint on resume."""

    def __init__(self, path: Path, keep_until: int):
        self.path = path
        lines = path.read_text().splitlines() if path.exists() and keep_until else []
        kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= keep_until]
        write_bytes_atomic(path, "".join(line + "\n" for line in kept).encode())
        self.file = path.open("a")

    def write(self, record: StepRecord) -> None:
        self.file.write(json.dumps(record.__dict__) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


SAVE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _weight_files(values: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, dict[str, torch.Tensor]]:
    """Trained tensors by model/ file: 'unet.x' -> unet.safetensors['x'], LoRA without peft's adapter name."""
    files: dict[str, dict[str, torch.Tensor]] = {}
    for name, value in values.items():
        if name.split(".")[0] == "tokens":  # kept as token_embeddings files
            continue
        part, key = name.split(".", 1)
        files.setdefault(part, {})[key.replace(".default.", ".")] = value.detach().to(dtype)
    return files


def train(
    workspace: Workspace,
    config: TrainConfig,
    base: str,
    progress: ProgressCallback = no_progress,
    validate: Callable[[TrainingState], None] | None = None,
) -> TrainResult:
    """Fine-tune `base` on the workspace's dataset with config.recipe (thesis 2.3); resumable.

    `validate`, when given, is called every config.validate_every steps instead of writing
    model/samples/ (`portraitist evaluate` measures one run at its checkpoints this way).
    """
    manifest = workspace.read_manifest()
    recipe, steps = config.plan(bool(config.unet_lora))  # bad settings are refused before the model loads
    total = sum(steps)
    device = resolve_device(config.device)
    precision = choose_precision(config.precision, device)
    if base.strip() and Path(base).expanduser().exists():
        base = str(Path(base).expanduser().resolve())
    progress(ProgressEvent(STAGE, 0, total, f"loading {base}"))
    model = load_base(base, vae=config.vae)
    recipe, steps = config.plan(model.family.unet_lora_by_default if config.unet_lora is None else config.unet_lora)
    plan = list(zip(recipe.stages, steps))

    n_base_tokens = len(model.tokenizer)
    added: list[AddedToken] = []
    if recipe.prompt == "captions":
        added = add_model_tokens(model, manifest, seed=config.seed)
    prompts, subject = _prompts(manifest, recipe)
    instance_id = model.tokenizer.convert_tokens_to_ids(subject.split()[0]) if added else (
        model.tokenizer(RARE_TOKEN, add_special_tokens=False)["input_ids"][0]
    )

    progress(ProgressEvent(STAGE, 0, total, "encoding photos"))
    model.vae.to(device)
    data = encode(load_photos(workspace, prompts, model.resolution), model.vae, model.tokenizer, config.flip, device)
    prior: TrainingSet | None = None
    if config.prior_preservation:
        class_prompt = f"a photo of a {manifest.class_token}"
        images = load_class_images(config.class_images, class_prompt, model.resolution)  # type: ignore[arg-type]
        prior = encode(images, model.vae, model.tokenizer, config.flip, device)
    if not config.validate_every:
        model.vae.to("cpu")  # not needed again in this run: free the accelerator's memory

    lora_alpha = config.lora_alpha or float(config.lora_rank)
    trainee = Trainee(model, recipe, precision, device, n_base_tokens, config.lora_rank, lora_alpha, config.seed)
    if config.low_memory:
        model.unet.enable_gradient_checkpointing()
        for _, _, encoder in model.text_encoders:
            encoder.gradient_checkpointing_enable()
    recorder = None
    if config.attention_loss > 0:
        recorder = attention_loss.install(model.unet, attention_loss.choose_resolution(model.unet, config.attention_resolution))
    unet_forward = torch.compile(model.unet) if config.compile else model.unet

    fingerprint = _fingerprint(config, recipe, total, base, precision.name)
    if config.restart:
        checkpoint.clear(workspace)
    resume = checkpoint.load_latest(workspace, fingerprint, device)
    start, seconds = 0, 0.0
    resume_optimizer = None
    if resume is not None:
        trainee.load_values(resume.values)
        torch.set_rng_state(resume.rng)
        start, seconds = resume.step, resume.seconds
        if resume.optimizer is not None:
            resume_optimizer = (resume.stage, resume.optimizer)
    log = TrainLog(workspace.model_dir / "train_log.jsonl", keep_until=start)
    last: dict[str, Any] = {"loss": None, "seconds": seconds}

    def on_step(record: StepRecord) -> None:
        log.write(record)
        rate = (record.step - start) / max(record.seconds - seconds, 1e-9)
        last.update(loss=record.loss, seconds=record.seconds)
        progress(ProgressEvent(STAGE, record.step, total, record.stage, {"loss": record.loss, "it/s": rate}))

    def on_checkpoint(step: int, stage_index: int, optimizer: StageOptimizer) -> None:
        state = checkpoint.Checkpoint(
            step, trainee.trained_values(), optimizer.state_dict(), stage_index, fingerprint, last["seconds"],
            torch.get_rng_state(),
        )
        checkpoint.save(workspace, state, config.keep_checkpoints)

    def on_validate(step: int) -> None:
        if validate is not None:
            validate(TrainingState(step, model, subject, last["seconds"]))
            return
        write_samples(
            model, config.validation_prompts, subject, workspace.model_dir / "samples", step, config.seed,
            config.validation_steps,
        )

    loop = Loop(trainee, data, _loop_settings(config, device), prior, recorder, instance_id, unet_forward)
    try:
        done = loop.run(plan, Hooks(on_step, on_checkpoint, on_validate), start, resume_optimizer, seconds)
    except torch.cuda.OutOfMemoryError as exc:
        raise MachineError(
            f"The GPU ran out of memory ({str(exc).splitlines()[0]}). Add --low-memory (gradient checkpointing, "
            "8-bit AdamW), lower --batch-size, or use the lora recipe; the last checkpoint is kept, and the same "
            "command resumes from it."
        ) from exc
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise MachineError(
            f"The disk is full ({exc.filename or workspace.model_dir}). Free some space and run the same command "
            "again: it resumes from the last complete checkpoint, which is intact."
        ) from exc
    finally:
        log.close()

    trained = trainee.finish()
    values = trainee.trained_values()
    info = ModelInfo(
        base=base,
        family=model.family.name,
        vae=config.vae,
        recipe=recipe.label,
        weights="lora" if recipe.uses_lora else "full",
        resolution=model.resolution,
        steps_done=done,
        seed=config.seed,
        subject=subject,
        lora={"rank": config.lora_rank, "alpha": lora_alpha} if recipe.uses_lora else None,
    )
    write_model(workspace, info, added, token_rows(trained, added), _weight_files(values, SAVE_DTYPES[config.save_dtype]))
    progress(ProgressEvent(STAGE, done, total, "done", {"loss": last["loss"]} if last["loss"] is not None else {}))
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return TrainResult(
        workspace.model_dir, recipe.label, done, resume.step if resume else None, last["loss"], last["seconds"], peak,
        trained,
    )


def _loop_settings(config: TrainConfig, device: torch.device) -> LoopSettings:
    return LoopSettings(
        seed=config.seed,
        batch_size=config.batch_size,
        max_grad_norm=config.max_grad_norm,
        prior_loss_weight=config.prior_loss_weight,
        attention_loss=config.attention_loss,
        eight_bit=config.low_memory and device.type == "cuda",
        checkpoint_every=config.checkpoint_every,
        validate_every=config.validate_every,
    )
