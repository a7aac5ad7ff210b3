"""WS/eval/metrics.jsonl: one line per recipe x checkpoint, the record of what is done.

A resumed evaluation skips every (recipe, step) found here. The file is rewritten whole and
atomically for each new line, so a crash leaves it as it was before that checkpoint or after.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from portraitist.errors import PortraitistError
from portraitist.workspace import Workspace, write_bytes_atomic

METRICS_FILE = "metrics.jsonl"


class CheckpointRecord(BaseModel):
    """One recipe measured at one step of its run."""

    recipe: str
    step: int
    steps: int = Field(description="The run's total training steps.")
    seed: int
    metrics: dict[str, float | None] = Field(
        description="evaluate/metrics.py's METRICS; None where undefined."
    )
    train_seconds: float = Field(description="Training time up to this step (train_log.jsonl's clock).")
    generate_seconds: float = Field(description="Sampling this checkpoint's evaluation images.")
    metric_seconds: float = Field(description="Computing this checkpoint's metrics.")
    wall_seconds: float = Field(
        description="Since this recipe's evaluation began: loading, training, checkpoints, "
        "evaluation; summed over resumed runs."
    )
    images: list[str] = Field(
        description="The evaluation images, relative to the workspace, in evaluation-set order."
    )

    @property
    def eval_seconds(self) -> float:
        return self.generate_seconds + self.metric_seconds


def eval_dir(workspace: Workspace) -> Path:
    return workspace.root / "eval"


def read_records(path: Path) -> list[CheckpointRecord]:
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(CheckpointRecord.model_validate_json(line))
        except ValidationError as exc:
            raise PortraitistError(
                f"{path}, line {number}, is not an evaluation record ({exc.errors()[0]['msg']}); "
                "delete that line (its checkpoint is measured again) or run with --restart."
            ) from exc
    return records


def write_records(path: Path, records: list[CheckpointRecord]) -> None:
    write_bytes_atomic(path, "".join(r.model_dump_json() + "\n" for r in records).encode())


def evaluation_overhead(records: list[CheckpointRecord]) -> float | None:
    """Evaluation seconds (sampling + metrics) per training second over the records' runs: the
    last record of each recipe holds its training time so far."""
    last: dict[str, CheckpointRecord] = {}
    for record in records:
        if record.recipe not in last or record.step > last[record.recipe].step:
            last[record.recipe] = record
    training = sum(r.train_seconds for r in last.values())
    return sum(r.eval_seconds for r in records) / training if training > 0 else None
