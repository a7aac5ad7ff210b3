"""The API's contract: request and response bodies, as the OpenAPI page at /docs shows them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from portraitist.config import MAX_SEED
from portraitist.service.models import Job, JobEvent, Photo


class TokenOut(BaseModel):
    id: str = Field(description="The new user's id.")
    token: str = Field(description="Bearer token for `Authorization: Bearer ...`; shown once, stored hashed.")


class MeOut(BaseModel):
    id: str
    created_at: float = Field(description="Unix time.")
    photos: int = Field(description="Photos stored.")
    jobs: int = Field(description="Jobs, any status.")


class PhotoOut(BaseModel):
    """One uploaded file, kept (stored, usable for jobs) or rejected with prepare's reason."""

    id: str | None = Field(description="The stored photo's id; null when rejected (nothing is stored).")
    name: str = Field(description="The file name as uploaded (display only).")
    status: Literal["kept", "rejected"]
    reason: str | None = Field(
        None,
        description="Rejection code: too_large, not_an_image, no_person, "
        "multiple_people, face_too_small, too_many, ...",
    )
    message: str | None = Field(None, description="A sentence for the user.")
    width: int | None = None
    height: int | None = None

    @classmethod
    def of(cls, photo: Photo) -> PhotoOut:
        return cls(id=photo.id, name=photo.name, status="kept", width=photo.width, height=photo.height)


class PhotosOut(BaseModel):
    photos: list[PhotoOut]


class StyleOut(BaseModel):
    name: str
    description: str


class OptionsOut(BaseModel):
    bases: list[str] = Field(description="Base models a job may name.")
    styles: list[StyleOut]
    max_images: int = Field(description="Largest n.")
    max_steps: int = Field(description="Most training steps.")
    max_photos: int = Field(description="Most photos stored per user.")
    max_upload_files: int = Field(description="Most files per upload request.")
    max_photo_bytes: int = Field(description="Largest photo file.")


# a job's own prompts: a few sentences each, a few per job (each costs n / (styles + prompts) images)
MAX_PROMPTS = 8
MAX_PROMPT_CHARS = 300


class JobRequest(BaseModel):
    """What to make; a field left out takes the pipeline's default (see `portraitist run --help`).
    A field this server does not know is refused (422), not silently dropped."""

    model_config = ConfigDict(extra="forbid")

    base: str | None = Field(
        None,
        description="Base model: one of the server's allowed_bases; `tiny` for a "
        "quick random-weights try-out.",
    )
    recipe: str | None = Field(
        None, description="Training recipe: staged (the thesis's), dreambooth, textual_inversion, lora."
    )
    styles: list[str] | None = Field(
        None, description="Style names from GET /v1/options; [] with prompts for your own prompts only."
    )
    prompts: list[Annotated[str, StringConstraints(min_length=1, max_length=MAX_PROMPT_CHARS)]] | None = (
        Field(
            None,
            max_length=MAX_PROMPTS,
            description="Your own prompts, generated beside the styles; {me} marks you, "
            "e.g. 'a photo of {me} on a red background'.",
        )
    )
    n: int | None = Field(None, ge=1, description="Images to generate.")
    k: int | None = Field(None, ge=1, description="Best images to keep (k <= n).")
    scale: Literal[2, 4] | None = Field(None, description="Upscaling factor of the kept images: 2 or 4.")
    steps: int | None = Field(
        None,
        ge=1,
        description="Training steps: at least one per stage of the recipe (the staged recipe has 2).",
    )
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="Seed: the same photos and seed give the same portraits."
    )


class JobCreated(BaseModel):
    id: str


class JobOut(BaseModel):
    id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    stage: str | None = Field(description="The stage running: prepare, train, generate, rank, upscale.")
    step: int | None
    total: int | None
    eta_s: float | None = Field(description="Seconds left in the current stage, from its pace so far.")
    message: str | None
    error: str | None = Field(description="Why the job failed, for the user.")
    attempt: int = Field(description="1, or more after a worker was lost and the job resumed elsewhere.")
    config: dict[str, object]
    created_at: float
    started_at: float | None
    finished_at: float | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls.model_validate(job, from_attributes=True)


class JobsOut(BaseModel):
    jobs: list[JobOut]


class EventOut(BaseModel):
    """One Server-Sent Event's data (`event: progress`, `id:` this id)."""

    id: int
    status: str
    stage: str | None
    step: int | None
    total: int | None
    eta_s: float | None
    message: str | None
    attempt: int
    at: float

    @classmethod
    def of(cls, event: JobEvent) -> EventOut:
        return cls(
            id=event.id,
            status=event.status,
            stage=event.stage,
            step=event.step,
            total=event.total,
            eta_s=event.eta_s,
            message=event.message,
            attempt=event.attempt,
            at=event.created_at,
        )


class PortraitOut(BaseModel):
    name: str
    url: str = Field(description="Download link that works without the Authorization header (img src).")


class ResultsOut(BaseModel):
    portraits: list[PortraitOut] = Field(description="The k best, best first.")
    report_url: str | None = Field(description="The run's report page: every generation with its scores.")
