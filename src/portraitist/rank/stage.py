"""The `rank` stage: score every generated image with every scorer, keep the k best (thesis 2.4.2).

Reads outputs/generations.jsonl (what `generate` made) and the kept crops of
dataset/manifest.json (the user's face); writes outputs/scores.json, best first, and copies the
k best into outputs/selected/ as `NN-<name>.png` (NN = rank), replacing an earlier selection.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from portraitist.errors import PortraitistError
from portraitist.progress import ProgressCallback, ProgressEvent, no_progress
from portraitist.rank.config import RankConfig
from portraitist.rank.scorers import (
    Scores,
    compute_references,
    load_scoring_models,
    prompt_without_subject,
    score_batch,
    stand_ins,
)
from portraitist.rank.select import GATE, passes_gate, rank_order
from portraitist.workspace import DatasetManifest, Workspace, write_json_atomic

STAGE = "rank"


@dataclass
class RankedImage:
    file: str
    scores: Scores
    rank: int
    passes_identity: bool
    selected: str | None = None


@dataclass
class RankResult:
    workspace: Workspace
    order: list[str]
    images: list[RankedImage]  # best first
    references: int  # crops compared with
    reference_faces: int  # crops in which the identity scorer found a face
    seconds: dict[str, float] = field(default_factory=dict)  # per scorer, all images together

    @property
    def selected(self) -> list[RankedImage]:
        return [image for image in self.images if image.selected]

    @property
    def passed_gate(self) -> int:
        return sum(image.passes_identity for image in self.images)


def selected_dir(workspace: Workspace) -> Path:
    return workspace.outputs_dir / "selected"


def scores_path(workspace: Workspace) -> Path:
    return workspace.outputs_dir / "scores.json"


def read_generations(workspace: Workspace) -> list[dict]:
    log = workspace.outputs_dir / "generations.jsonl"
    if not log.exists():
        raise PortraitistError(
            f"{workspace.root} has no generated images ({log} is missing). "
            f"Run `portraitist generate --workspace {workspace.root}` first."
        )
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    if not records:
        raise PortraitistError(f"{log} lists no images; run `portraitist generate` first.")
    for record in records:
        if not workspace.path(record["file"]).exists():
            raise PortraitistError(
                f"{record['file']} is listed in {log} but missing; "
                "re-run `portraitist generate` or remove its line."
            )
    return records


def user_tokens(manifest: DatasetManifest) -> list[str]:
    """The new words prepare invented for the user, which CLIP's vocabulary does not know."""
    return [manifest.instance_token] + [p.background_token for p in manifest.kept if p.background_token]


def rank(
    workspace: Workspace, config: RankConfig | None = None, progress: ProgressCallback = no_progress
) -> RankResult:
    """Score, order, select (thesis 2.4.2); see docs/rank.md for the scorers and the default order."""
    config = config or RankConfig()
    manifest = workspace.read_manifest()
    crops = workspace.kept_crops(manifest)
    records = read_generations(workspace)
    tokens = user_tokens(manifest)

    progress(ProgressEvent(STAGE, 0, len(records), "loading scorers"))
    models = load_scoring_models(config)
    refs = compute_references(models, crops)
    scores: list[Scores] = []
    seconds: dict[str, float] = {}
    for start in range(0, len(records), config.batch_size):
        batch = records[start : start + config.batch_size]
        images = [Image.open(workspace.path(r["file"])).convert("RGB") for r in batch]
        prompts = [prompt_without_subject(r.get("prompt", ""), tokens) for r in batch]
        scores.extend(score_batch(models, refs, images, prompts, seconds))
        progress(ProgressEvent(STAGE, len(scores), len(records), "scoring"))

    max_distance = config.identity_max_distance
    if max_distance is None:
        max_distance = models.faces.max_distance  # the face model's own threshold
    order = rank_order(scores, config.by, max_distance)
    ranked = [
        RankedImage(
            file=records[i]["file"],
            scores=scores[i],
            rank=position + 1,
            passes_identity=passes_gate(scores[i][GATE], max_distance),
        )
        for position, i in enumerate(order)
    ]
    copy_selection(workspace, ranked[: config.k])
    write_scores(workspace, config, max_distance, ranked)
    result = RankResult(workspace, list(config.by), ranked, refs.count, len(refs.faces), seconds)
    progress(ProgressEvent(STAGE, len(records), len(records), f"{len(result.selected)} selected"))
    return result


def copy_selection(workspace: Workspace, best: list[RankedImage]) -> None:
    """outputs/selected/ holds exactly this selection (an earlier one, upscaled or not, goes)."""
    folder = selected_dir(workspace)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for image in best:
        target = folder / f"{image.rank:02d}-{Path(image.file).stem}.png"
        shutil.copyfile(workspace.path(image.file), target)
        image.selected = workspace.relative(target)


def write_scores(
    workspace: Workspace, config: RankConfig, max_distance: float, ranked: list[RankedImage]
) -> None:
    write_json_atomic(
        scores_path(workspace),
        {
            "order": list(config.by),
            "identity_model": config.identity_model,
            "identity_max_distance": max_distance,
            "stand_ins": stand_ins(config),
            "images": [
                {
                    "file": image.file,
                    "scores": image.scores,
                    "rank": image.rank,
                    "passes_identity": image.passes_identity,
                    "selected": image.selected,
                }
                for image in ranked
            ],
        },
    )
