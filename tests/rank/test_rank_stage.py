"""`rank` on a workspace of real photos: the user's face first, someone else after, no face last."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from portraitist.errors import PortraitistError
from portraitist.rank.config import RankConfig
from portraitist.rank.scorers import stand_ins
from portraitist.rank.select import SCORERS
from portraitist.rank.stage import RankResult, rank
from portraitist.report import write_report
from portraitist.workspace import Workspace

USER = {"user-a", "user-b"}
NO_FACE = {"other-cameraman", "no-face-coffee", "no-face-noise"}


def stems(files: list[str]) -> list[str]:
    return [Path(f).stem for f in files]


def test_default_order_puts_the_user_first_someone_else_next_and_no_face_last(ranked: RankResult):
    order = stems([image.file for image in ranked.images])
    assert set(order[:2]) == USER
    assert order[2] == "other-hopper"  # a real face, of someone else: below the user, above no face
    assert set(order[3:]) == NO_FACE
    assert ranked.references == 4 and ranked.reference_faces == 4
    assert ranked.passed_gate == 2

    by_name = {Path(image.file).stem: image for image in ranked.images}
    # dlib's descriptor: the user within its 0.6 distance of their own crops, Grace Hopper beyond it
    assert all(by_name[name].scores["identity"] > 0.6 for name in USER)
    assert by_name["other-hopper"].scores["identity"] < 0.4
    assert all(by_name[name].scores["identity"] is None for name in NO_FACE)


def test_every_scorer_scores_every_image(ranked: RankResult):
    assert len(ranked.images) == 6
    for image in ranked.images:
        assert set(image.scores) == set(SCORERS)
        assert all(value is not None for name, value in image.scores.items() if name != "identity")
    assert set(ranked.seconds) >= set(SCORERS)


def test_writes_scores_json_best_first_and_copies_the_k_best(ranked: RankResult):
    outputs = ranked.workspace.outputs_dir
    scores = json.loads((outputs / "scores.json").read_text())
    assert scores["order"] == ["identity", "aesthetic"]
    assert [entry["rank"] for entry in scores["images"]] == [1, 2, 3, 4, 5, 6]
    assert [entry["file"] for entry in scores["images"]] == [image.file for image in ranked.images]
    assert all(set(entry["scores"]) == set(SCORERS) for entry in scores["images"])

    selected = sorted(p.name for p in (outputs / "selected").iterdir())
    assert selected == [Path(image.selected).name for image in ranked.selected]
    assert [name[:3] for name in selected] == ["01-", "02-"]
    assert {Path(name[3:]).stem for name in selected} == USER
    assert [entry["selected"] for entry in scores["images"][:2]] == [
        f"outputs/selected/{n}" for n in selected
    ]


def test_a_new_ranking_replaces_the_selection(rank_workspace: Workspace, offline: dict):
    (rank_workspace.outputs_dir / "selected" / "original").mkdir(parents=True)
    (rank_workspace.outputs_dir / "selected" / "stale.png").write_bytes(b"an earlier selection")

    result = rank(rank_workspace, RankConfig(by="clip-image", k=1, **offline))

    assert [p.name for p in (rank_workspace.outputs_dir / "selected").iterdir()] == [
        Path(result.selected[0].selected).name
    ]


def test_missing_inputs_say_what_to_run(tmp_path: Path, rank_workspace: Workspace, offline: dict):
    (rank_workspace.outputs_dir / "generations.jsonl").unlink()
    with pytest.raises(PortraitistError, match="portraitist generate"):
        rank(rank_workspace, RankConfig(**offline))
    with pytest.raises(PortraitistError, match="portraitist prepare"):
        rank(Workspace(tmp_path / "empty"), RankConfig(**offline))


def test_scores_of_offline_stand_ins_are_marked_as_such(ranked: RankResult):
    scores = json.loads((ranked.workspace.outputs_dir / "scores.json").read_text())
    assert scores["stand_ins"] == {
        "clip-image": "random CLIP 'tiny'",
        "clip-text": "random CLIP 'tiny'",
        "aesthetic": "random CLIP 'tiny' and random aesthetic head",
        "lpips": "random LPIPS backbone",
    }  # identity is dlib's real model: not a stand-in
    html = write_report(ranked.workspace).read_text()
    marked = re.findall(r'class="stand-in"[^>]*>(\S+) ', html)
    assert len(marked) == 6 * 4 and set(marked) == {"clip-image", "clip-text", "aesthetic", "lpips"}
    assert "random stand-ins" in html and "lpips (random LPIPS backbone)" in html
    assert stand_ins(RankConfig()) == {}  # the real models: nothing to mark
