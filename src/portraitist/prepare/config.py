"""Settings of the `prepare` stage (thesis 2.1-2.2): limits, person filter, crop, captions."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from portraitist.config import StageConfig
from portraitist.models.clip import DEFAULT_CLIP
from portraitist.models.face_id import SAME_PERSON_DISTANCE
from portraitist.workspace import TokenInit

Context = Literal["photo_of", "background_tokens", "templates", "captions"]


class PrepareConfig(StageConfig):
    """Everything `portraitist prepare` can be told; the defaults follow the thesis."""

    # reading photos
    max_pixels: int = Field(
        100_000_000,
        gt=0,
        description="Largest photo accepted, in pixels (width x height); bigger is too_large.",
    )
    max_file_bytes: int = Field(
        64 * 2**20, gt=0, description="Largest photo file accepted, in bytes; bigger is too_large."
    )
    # person filter (thesis 2.1.1; the rule is in docs/prepare.md)
    detect_max_side: int = Field(
        1280,
        ge=192,
        description="Photos are shrunk to this longest side for detection (speed); boxes map back.",
    )
    min_face_confidence: float = Field(
        0.5, gt=0, lt=1, description="Face detector score a face needs to count."
    )
    person_coverage: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of a face box the person segmentation must cover, "
        "else the face is a false detection.",
    )
    subject_face_ratio: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A face is a subject if its box side is at least this fraction of the largest face's; "
        "smaller faces are background people and are ignored.",
    )
    min_face_size: int = Field(
        64,
        ge=1,
        description="Smallest face box side, in source pixels, worth training on (else face_too_small).",
    )
    # one person in every photo (thesis 2.1; the rule is in docs/prepare.md)
    identity_check: bool = Field(
        True, description="Reject photos whose face (dlib descriptor) is not the person most photos show."
    )
    identity_distance: float = Field(
        SAME_PERSON_DISTANCE,
        gt=0,
        description="Largest mean dlib descriptor distance to the majority's faces "
        "that is still the same person (dlib's own threshold).",
    )
    # crop (thesis 2.1.1)
    resolution: int = Field(512, ge=64, description="Side of the square training crops, in pixels.")
    margin: float = Field(
        1.0,
        ge=0,
        description="Space left around the face on each side, in face-box sides: the crop is "
        "(1 + 2 * margin) face boxes wide.",
    )
    upscale_small_faces: bool = Field(
        False,
        description="Enlarge crops smaller than the resolution with Real-ESRGAN instead of Lanczos alone.",
    )
    upscaler: str | None = Field(
        None,
        description="Real-ESRGAN model for upscale_small_faces: realesrgan-x4plus (the default), "
        "realesr-animevideov3 (fast on CPU) or a .pth file.",
    )
    # quality
    duplicate_distance: int = Field(
        4, ge=0, description="Crops whose perceptual hashes differ in at most this many bits are duplicates."
    )
    blur_flag_below: float = Field(
        40.0, ge=0, description="Crops with a variance of Laplacian below this are kept but flagged blurry."
    )
    blur_reject_below: float = Field(
        8.0, ge=0, description="Crops with a variance of Laplacian below this are rejected as blurry."
    )
    min_photos: int = Field(3, ge=1, description="Fewest kept photos a training set may have.")
    # class word (thesis 2.2.1)
    class_words: list[str] = Field(
        ["girl", "man", "boy", "baby"],
        min_length=1,
        description="Candidate class words; CLIP picks the nearest.",
    )
    class_word: str | None = Field(
        None,
        description="Use this class word (e.g. girl, man) instead of letting CLIP choose among class_words.",
    )
    class_prompt: str = Field(
        "a photo of a {}", description="Text around each candidate word when CLIP embeds it."
    )
    clip_model: str = Field(
        DEFAULT_CLIP, description="CLIP that chooses the class word: hub id, folder, or `tiny` offline."
    )
    device: str = Field("cpu", description="Torch device for CLIP and BLIP.")
    # tokens and captions (thesis 2.2.2-2.2.3)
    instance_token: str = Field("<me>", description="The new word that will mean this person.")
    instance_init: str = Field(
        "face", description="How the instance token's embedding starts: a word to copy, `noise` or `rare`."
    )
    context: Context = Field(
        "background_tokens",
        description="Caption context: photo_of ('a photo of'), background_tokens (one new token per photo), "
        "templates (Textual Inversion prompt templates), captions (BLIP captions; the model comes from the "
        "hub).",
    )
    caption_model: str = Field(
        "Salesforce/blip-image-captioning-base",
        description="BLIP model for context=captions: hub id or folder.",
    )
    seed: int = Field(0, description="Seed for every random choice (templates), so reruns match.")

    @field_validator("instance_token")
    @classmethod
    def _one_word(cls, token: str) -> str:
        if not token or any(c.isspace() for c in token):
            raise ValueError("the instance token must be one word without spaces, e.g. <me>")
        return token

    @field_validator("class_prompt")
    @classmethod
    def _has_slot(cls, prompt: str) -> str:
        if prompt.count("{}") != 1:
            raise ValueError("the class prompt needs exactly one {} where the class word goes")
        return prompt

    def token_init(self) -> TokenInit:
        """The instance token's init as the manifest records it (thesis 2.2.2: 'face')."""
        if self.instance_init in ("noise", "rare"):
            return TokenInit(kind=self.instance_init, word=None)
        return TokenInit(kind="word", word=self.instance_init)
