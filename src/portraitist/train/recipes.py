"""Training recipes as data: ordered stages, each naming what trains, at which rate, for which share.

One loop (train/loop.py) runs any of them: a new recipe is a new list, never a new loop.
Defaults come from the thesis (2.3: staged training, no prior preservation) and the public
anchors: diffusers' DreamBooth guide trains faces for 800-1200 steps at lr 1e-6..5e-6 for a full
fine-tune; Textual Inversion and LoRA train far fewer weights and need rates 10-1000x higher.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, PrivateAttr

from portraitist.errors import PortraitistError

Part = Literal["tokens", "text_encoder", "unet", "unet_lora", "text_encoder_lora"]
LORA_PARTS: tuple[Part, ...] = ("unet_lora", "text_encoder_lora")
TEXT_PARTS: tuple[Part, ...] = ("tokens", "text_encoder", "text_encoder_lora")

PART_HELP: dict[Part, str] = {
    "tokens": "the embedding rows of the added tokens (instance, backgrounds)",
    "text_encoder": "every text-encoder weight except the pretrained vocabulary rows",
    "unet": "every UNet weight",
    "unet_lora": "LoRA adapters on the UNet's attention projections",
    "text_encoder_lora": "LoRA adapters on the text encoder's attention projections",
}


class Stage(BaseModel):
    """One phase of a recipe: what trains, at which learning rate, for which share of the steps."""

    name: str = Field(description="Shown in progress and train_log.jsonl.")
    share: float = Field(gt=0, le=1, description="Fraction of the run's steps this stage takes.")
    learning_rates: dict[Part, float] = Field(
        description="The parts that train in this stage and their rates."
    )


class Recipe(BaseModel):
    """A named list of stages over one loop."""

    name: str
    summary: str = Field(description="One line for --help and docs.")
    steps: int = Field(description="Default total steps.")
    prompt: Literal["captions", "rare_token"] = Field(
        description="captions: the dataset's captions with the new tokens; "
        "rare_token: 'a photo of sks <class>'."
    )
    stages: list[Stage]
    # the stages are the user's own ([[train.stages]]); private, so checkpoints' fingerprints stay as
    # they were
    _custom: bool = PrivateAttr(False)

    @property
    def label(self) -> str:
        """How reports name what was trained: the recipe's name, or the user's own stages on its prompts."""
        return f"custom ({len(self.stages)} stages, {self.name}'s prompts)" if self._custom else self.name

    @property
    def parts(self) -> set[Part]:
        return {part for stage in self.stages for part in stage.learning_rates}

    @property
    def uses_lora(self) -> bool:
        return any(part in LORA_PARTS for part in self.parts)

    @property
    def trains_text(self) -> bool:
        """Whether any stage trains a text-side part (otherwise the text encoders only encode prompts)."""
        return any(part in TEXT_PARTS for part in self.parts)


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            name="staged",
            summary="Thesis 2.3: text encoder + UNet, then the UNet alone (default).",
            steps=1000,
            prompt="captions",
            stages=[
                # the added rows start at "face"/noise and must travel further than pretrained
                # weights, hence a rate 25x the network's (as pivotal tuning does)
                Stage(
                    name="text encoder + unet",
                    share=0.4,
                    learning_rates={"tokens": 5e-5, "text_encoder": 2e-6, "unet": 2e-6},
                ),
                Stage(name="unet", share=0.6, learning_rates={"unet": 2e-6}),
            ],
        ),
        Recipe(
            name="dreambooth",
            summary="DreamBooth (Ruiz et al.): the UNet on 'a photo of sks <class>'; "
            "--train-text-encoder adds it.",
            steps=1000,
            prompt="rare_token",
            stages=[Stage(name="unet", share=1.0, learning_rates={"unet": 2e-6})],
        ),
        Recipe(
            name="textual-inversion",
            summary="Textual Inversion (Gal et al.): only the new token embeddings; the baseline of Fig. 11.",
            steps=2000,
            prompt="captions",
            stages=[Stage(name="tokens", share=1.0, learning_rates={"tokens": 5e-3})],
        ),
        Recipe(
            name="lora",
            summary="LoRA adapters on UNet and text-encoder attention, plus the new tokens: "
            "a model of tens of MB.",
            steps=1000,
            prompt="captions",
            stages=[
                Stage(
                    name="lora",
                    share=1.0,
                    learning_rates={"tokens": 1e-3, "unet_lora": 1e-4, "text_encoder_lora": 5e-5},
                )
            ],
        ),
    )
}


# A LoRA adapter needs a rate about this many times a full fine-tune's: the lora recipe trains the
# UNet's adapters at 1e-4 where staged trains the whole UNet at 2e-6 (as diffusers' DreamBooth LoRA
# and full fine-tuning guides do).
LORA_RATE_FACTOR = 50.0


def unet_as_lora(recipe: Recipe) -> Recipe:
    """The recipe with every whole-UNet part trained as LoRA adapters at LORA_RATE_FACTOR times its rate:
    the thesis's staged idea (text side with the UNet, then the UNet alone) where the whole UNet does
    not fit in memory (SDXL's 2.6B parameters and their AdamW state need over 24 GB)."""
    lora = recipe.model_copy(deep=True)
    for stage in lora.stages:
        if "unet" in stage.learning_rates:
            stage.learning_rates["unet_lora"] = stage.learning_rates.pop("unet") * LORA_RATE_FACTOR
    return lora


def get_recipe(
    name: str,
    *,
    learning_rates: dict[Part, float] | None = None,
    train_text_encoder: bool = False,
    stages: list[Stage] | None = None,
    unet_lora: bool = False,
) -> Recipe:
    """The named recipe with the user's overrides applied (a copy; RECIPES stays as shipped).

    `stages` replaces the recipe's own (its prompt style and defaults stay): a recipe is data.
    `unet_lora` trains its whole-UNet parts as adapters (unet_as_lora), before `learning_rates` apply.
    """
    if name not in RECIPES:
        raise PortraitistError(f"Unknown recipe {name!r}; choose one of {', '.join(RECIPES)}.")
    recipe = RECIPES[name].model_copy(deep=True)
    if stages:
        if abs(sum(stage.share for stage in stages) - 1) > 1e-6:
            raise PortraitistError(
                f"The shares of the stages must add up to 1, not {sum(s.share for s in stages):g}."
            )
        if (
            "tokens" in {part for stage in stages for part in stage.learning_rates}
            and recipe.prompt != "captions"
        ):
            raise PortraitistError(f"The {name} recipe adds no tokens, so its stages cannot train 'tokens'.")
        recipe.stages = [stage.model_copy(deep=True) for stage in stages]
        recipe._custom = True
    if train_text_encoder:
        if name != "dreambooth":
            raise PortraitistError("--train-text-encoder applies to the dreambooth recipe only.")
        for stage in recipe.stages:
            stage.learning_rates["text_encoder"] = stage.learning_rates["unet"]
    if unet_lora:
        recipe = unet_as_lora(recipe)
    for part, rate in (learning_rates or {}).items():
        stages = [stage for stage in recipe.stages if part in stage.learning_rates]
        if not stages:
            raise PortraitistError(
                f"The {name} recipe does not train {part!r}; it trains {', '.join(sorted(recipe.parts))}."
            )
        for stage in stages:
            stage.learning_rates[part] = rate
    return recipe


def stage_steps(recipe: Recipe, total: int) -> list[int]:
    """Steps per stage: each its share of `total`, rounded, the last taking what is left."""
    counts = [round(stage.share * total) for stage in recipe.stages[:-1]]
    counts.append(total - sum(counts))
    if any(count < 1 for count in counts):
        raise PortraitistError(
            f"{total} steps are too few for the {recipe.name} recipe's {len(recipe.stages)} stages; "
            "give more --steps."
        )
    return counts
