"""`train`: the stage function that the CLI, the service worker and the tests call alike.

Reads WS/dataset/ (from `prepare`), fine-tunes the base with a recipe, writes WS/model/:
model.json, tokens.json, the weights, train_log.jsonl, checkpoints/ and samples/.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from portraitist.config import RESUME, compared_settings
from portraitist.devices import resolve_device
from portraitist.errors import MachineError
from portraitist.models.loading import StableDiffusion, load_base, release, resolved_base
from portraitist.models.trained import ModelInfo
from portraitist.progress import ProgressCallback, ProgressEvent, no_progress
from portraitist.train import attention_loss, checkpoint
from portraitist.train.artifacts import write_model
from portraitist.train.config import TrainConfig
from portraitist.train.data import TrainingSet, encode, load_class_images, load_photos
from portraitist.train.loop import Hooks, Loop, LoopSettings, StepRecord
from portraitist.train.optimizer import StageOptimizer
from portraitist.train.precision import TrainingPrecision, check_precision, training_precision
from portraitist.train.recipes import Recipe, Stage
from portraitist.train.tokens import RARE_TOKEN, AddedToken, add_model_tokens
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


@dataclass(frozen=True)
class TrainingState:
    """What a validation hook sees at a validation step: the model under training, in its training
    precision."""

    step: int
    model: StableDiffusion
    subject: str  # what `{me}` stands for in this run's prompts
    seconds: float  # training time so far (without loading, checkpoints and validation)


def _prompts(manifest: DatasetManifest, recipe: Recipe) -> tuple[list[str], str]:
    """Each kept photo's prompt, and the subject phrase `{me}` stands for."""
    if recipe.prompt == "rare_token":
        subject = f"{RARE_TOKEN} {manifest.class_token}"
        return [f"a photo of {subject}"] * len(manifest.kept), subject
    subject = f"{manifest.instance_token} {manifest.class_token}"
    return [p.caption or f"a photo of {subject}" for p in manifest.kept], subject


def _fingerprint(
    config: TrainConfig, recipe: Recipe, total: int, base: str, precision: str
) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed (not: checkpoint/validation cadence, device);
    `total` stands for the steps, and the recipe is recorded as planned."""
    fields = compared_settings(config, RESUME)
    return dict(
        fields, base=base, total_steps=total, precision=precision, recipe=recipe.model_dump(mode="json")
    )


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


@dataclass
class _Prepared:
    """The base model with this run's tokens, and the training data encoded for it."""

    model: StableDiffusion
    recipe: Recipe
    plan: list[tuple[Stage, int]]  # the recipe's stages and the steps of each
    added: list[AddedToken]
    subject: str  # what `{me}` stands for in this run's prompts
    instance_id: int  # the token that names the person, whose attention the attention loss reads
    data: TrainingSet
    prior: TrainingSet | None  # the class images of DreamBooth's prior preservation


def _lora_alpha(config: TrainConfig) -> float:
    return config.lora_alpha or float(config.lora_rank)


def _prepare(
    workspace: Workspace,
    manifest: DatasetManifest,
    config: TrainConfig,
    base: str,
    device: torch.device,
    total: int,
    progress: ProgressCallback,
) -> _Prepared:
    """Load the base, add the recipe's tokens, and encode the photos (and class images) once."""
    progress(ProgressEvent(STAGE, 0, total, f"loading {base}"))
    model = load_base(base, vae=config.vae)
    recipe, steps = config.plan(
        model.family.unet_lora_by_default if config.unet_lora is None else config.unet_lora
    )
    added = add_model_tokens(model, manifest, seed=config.seed) if recipe.prompt == "captions" else []
    prompts, subject = _prompts(manifest, recipe)
    instance_id = (
        model.tokenizer.convert_tokens_to_ids(subject.split()[0])
        if added
        else (model.tokenizer(RARE_TOKEN, add_special_tokens=False)["input_ids"][0])
    )

    progress(ProgressEvent(STAGE, 0, total, "encoding photos"))
    model.vae.to(device)
    data = encode(
        load_photos(workspace, prompts, model.resolution), model.vae, model.tokenizer, config.flip, device
    )
    prior: TrainingSet | None = None
    if config.prior_preservation:
        class_prompt = f"a photo of a {manifest.class_token}"
        images = load_class_images(config.class_images, class_prompt, model.resolution)  # type: ignore[arg-type]
        prior = encode(images, model.vae, model.tokenizer, config.flip, device)
    if not config.validate_every:
        release(model.vae)  # not needed again in this run
    plan = list(zip(recipe.stages, steps))
    return _Prepared(model, recipe, plan, added, subject, instance_id, data, prior)


def _loop(
    prepared: _Prepared, config: TrainConfig, precision: TrainingPrecision, device: torch.device
) -> tuple[Trainee, Loop]:
    """What trains (whole or as LoRA) in which precision, and the loop over it, with the memory,
    attention-loss and compile settings applied."""
    model = prepared.model
    trainee = Trainee(
        model,
        prepared.recipe,
        precision,
        device,
        config.lora_rank,
        _lora_alpha(config),
        config.seed,
        text_once=not prepared.recipe.trains_text and not config.validate_every,
    )
    if config.low_memory:
        model.unet.enable_gradient_checkpointing()
        for _, _, encoder in model.text_encoders:
            encoder.gradient_checkpointing_enable()
    recorder = None
    if config.attention_loss > 0:
        resolution = attention_loss.choose_resolution(model.unet, config.attention_resolution)
        recorder = attention_loss.install(model.unet, resolution)
    unet_forward = torch.compile(model.unet) if config.compile else model.unet
    loop = Loop(
        trainee,
        prepared.data,
        _loop_settings(config, device),
        prepared.prior,
        recorder,
        prepared.instance_id,
        unet_forward,
    )
    return trainee, loop


def _resume(
    workspace: Workspace, config: TrainConfig, fingerprint: dict[str, Any], trainee: Trainee
) -> checkpoint.Checkpoint | None:
    """The checkpoint this run continues, its trained values and RNG state restored; None: from step 0."""
    if config.restart:
        checkpoint.clear(workspace)
    resume = checkpoint.load_latest(workspace, fingerprint, trainee.device)
    if resume is not None:
        trainee.load_values(resume.values)
        torch.set_rng_state(resume.rng)
    return resume


class _StepReport:
    """Each step into train_log.jsonl and the progress callback; remembers the last loss and the
    training time so far (a resumed run's starts at its checkpoint's)."""

    def __init__(self, log: TrainLog, progress: ProgressCallback, total: int, start: int, seconds: float):
        self.log, self.progress, self.total = log, progress, total
        self.start, self.start_seconds = start, seconds
        self.loss: float | None = None
        self.seconds = seconds

    def __call__(self, record: StepRecord) -> None:
        self.log.write(record)
        rate = (record.step - self.start) / max(record.seconds - self.start_seconds, 1e-9)
        self.loss, self.seconds = record.loss, record.seconds
        self.progress(
            ProgressEvent(STAGE, record.step, self.total, record.stage, {"loss": record.loss, "it/s": rate})
        )


def _hooks(
    workspace: Workspace,
    config: TrainConfig,
    prepared: _Prepared,
    trainee: Trainee,
    fingerprint: dict[str, Any],
    report: _StepReport,
    validate: Callable[[TrainingState], None] | None,
) -> Hooks:
    """What the loop calls: the step report, checkpoint writing, and validation (the caller's hook,
    or sample images in model/samples/)."""

    def on_checkpoint(step: int, stage_index: int, optimizer: StageOptimizer) -> None:
        state = checkpoint.Checkpoint(
            step,
            trainee.trained_values(),
            optimizer.state_dict(),
            stage_index,
            fingerprint,
            report.seconds,
            torch.get_rng_state(),
        )
        checkpoint.save(workspace, state, config.keep_checkpoints)

    def on_validate(step: int) -> None:
        if validate is not None:
            validate(TrainingState(step, prepared.model, prepared.subject, report.seconds))
            return
        write_samples(
            prepared.model,
            config.validation_prompts,
            prepared.subject,
            workspace.model_dir / "samples",
            step,
            config.seed,
            config.validation_steps,
        )

    return Hooks(report, on_checkpoint, on_validate)


@contextmanager
def _machine_errors(workspace: Workspace) -> Iterator[None]:
    """A GPU out of memory or a full disk, said as what to do; the last checkpoint is kept either way."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as exc:
        raise MachineError(
            f"The GPU ran out of memory ({str(exc).splitlines()[0]}). "
            "Add --low-memory (gradient checkpointing, 8-bit AdamW), lower --batch-size, "
            "or use the lora recipe; the last checkpoint is kept, and the same command resumes from it."
        ) from exc
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise MachineError(
            f"The disk is full ({exc.filename or workspace.model_dir}). "
            "Free some space and run the same command again: it resumes from the last complete checkpoint, "
            "which is intact."
        ) from exc


def _save(
    workspace: Workspace, config: TrainConfig, base: str, prepared: _Prepared, trainee: Trainee, done: int
) -> None:
    """Write model/ from the trained values (fp32, whatever precision trained them)."""
    recipe = prepared.recipe
    info = ModelInfo(
        base=base,
        family=prepared.model.family.name,
        vae=config.vae,
        recipe=recipe.label,
        weights="lora" if recipe.uses_lora else "full",
        resolution=prepared.model.resolution,
        steps_done=done,
        seed=config.seed,
        subject=prepared.subject,
        lora={"rank": config.lora_rank, "alpha": _lora_alpha(config)} if recipe.uses_lora else None,
    )
    weights = _weight_files(trainee.trained_values(), SAVE_DTYPES[config.save_dtype])
    write_model(workspace, info, prepared.added, trainee.token_rows(), weights)


def train(
    workspace: Workspace,
    config: TrainConfig,
    progress: ProgressCallback = no_progress,
    validate: Callable[[TrainingState], None] | None = None,
) -> TrainResult:
    """Fine-tune config.base on the workspace's dataset with config.recipe (thesis 2.3); resumable.

    `validate`, when given, is called every config.validate_every steps instead of writing
    model/samples/ (`portraitist evaluate` measures one run at its checkpoints this way).
    """
    manifest = workspace.read_manifest()
    _, steps = config.plan(bool(config.unet_lora))  # bad settings are refused before the model loads
    total = sum(steps)
    device = resolve_device(config.device)
    check_precision(config.precision, device)
    base = resolved_base(config.base)
    prepared = _prepare(workspace, manifest, config, base, device, total, progress)
    precision = training_precision(config.precision, device, whole_unet="unet" in prepared.recipe.parts)
    trainee, loop = _loop(prepared, config, precision, device)

    fingerprint = _fingerprint(config, prepared.recipe, total, base, precision.name)
    resume = _resume(workspace, config, fingerprint, trainee)
    start, seconds = (resume.step, resume.seconds) if resume else (0, 0.0)
    resume_optimizer = (resume.stage, resume.optimizer) if resume and resume.optimizer is not None else None
    log = TrainLog(workspace.model_dir / "train_log.jsonl", keep_until=start)
    report = _StepReport(log, progress, total, start, seconds)
    hooks = _hooks(workspace, config, prepared, trainee, fingerprint, report, validate)
    try:
        with _machine_errors(workspace):
            done = loop.run(prepared.plan, hooks, start, resume_optimizer, seconds)
    finally:
        log.close()

    _save(workspace, config, base, prepared, trainee, done)
    progress(
        ProgressEvent(STAGE, done, total, "done", {"loss": report.loss} if report.loss is not None else {})
    )
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return TrainResult(
        workspace.model_dir,
        prepared.recipe.label,
        done,
        resume.step if resume else None,
        report.loss,
        report.seconds,
        peak,
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
