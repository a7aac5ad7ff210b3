"""The scorers one by one: LPIPS, the LAION aesthetic head, dlib identity, the prompt CLIP reads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from portraitist import samples
from portraitist.errors import PortraitistError
from portraitist.models.face_id import identity_score
from portraitist.rank.aesthetic import AestheticHead, load_aesthetic
from portraitist.rank.identity import FaceIdentity
from portraitist.rank.perceptual import load_lpips, lpips_features, lpips_to_references, to_lpips_input
from portraitist.rank.scorers import prompt_without_subject


def test_lpips_is_zero_for_identical_images_and_matches_the_lpips_package():
    model = load_lpips("alex", backbone="random")
    face = samples.astronaut().crop((96, 0, 416, 320))
    pixels = to_lpips_input([face, samples.cameraman(), samples.no_person()], 128, torch.device("cpu"))
    features = lpips_features(model, pixels)

    distances = lpips_to_references(model, [f[:1] for f in features], features)

    assert distances[0].item() == pytest.approx(0.0, abs=1e-6)
    assert (distances[1:] > 0).all()
    with torch.no_grad():
        reference = [model(pixels[:1], pixels[i : i + 1]).item() for i in range(3)]
    assert distances.tolist() == pytest.approx(reference, rel=1e-4, abs=1e-6)


def test_aesthetic_head_has_laions_layout_and_loads_its_state_dict(tmp_path: Path):
    head = AestheticHead(768)
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items() if k.endswith("weight")}
    # sac+logos+ava1-l14-linearMSE.pth holds exactly these tensors
    assert shapes == {
        "layers.0.weight": (1024, 768),
        "layers.2.weight": (128, 1024),
        "layers.4.weight": (64, 128),
        "layers.6.weight": (16, 64),
        "layers.7.weight": (1, 16),
    }
    path = tmp_path / "head.pth"
    torch.save(load_aesthetic("random", 32, seed=3).state_dict(), path)

    loaded = load_aesthetic(str(path), 32)

    embeddings = torch.nn.functional.normalize(torch.randn(5, 32), dim=-1)
    assert torch.equal(loaded(embeddings), load_aesthetic("random", 32, seed=3)(embeddings))
    assert loaded(embeddings).shape == (5,)
    with pytest.raises(PortraitistError, match="768"):
        load_aesthetic(str(path), 768)  # weights for another CLIP width
    with pytest.raises(PortraitistError, match="not found"):
        load_aesthetic(str(tmp_path / "missing.pth"), 32)
    with pytest.raises(PortraitistError, match="hub"):
        load_aesthetic("nobody/nothing:head.pth", 32)  # tests run with HF_HUB_OFFLINE=1


def test_identity_knows_the_user_and_finds_no_face_in_noise():
    faces = FaceIdentity()
    crops = [samples.astronaut().crop(box) for box in ((96, 0, 416, 320), (48, 8, 464, 424))]
    references = [faces.descriptor(crop) for crop in crops]

    assert all(d is not None and d.shape == (128,) for d in references)
    assert identity_score(references[0], references[:1]) == pytest.approx(1.0)
    assert identity_score(faces.descriptor(samples.astronaut()), references) > 0.6
    assert faces.descriptor(samples.noise_image(128)) is None
    assert identity_score(None, references) is None


def test_clip_text_reads_the_prompt_without_the_users_new_tokens():
    prompt = "a photo of <sks> woman, portrait in <bg2> , sharp"
    assert prompt_without_subject(prompt, ["<sks>", "<bg2>"]) == "a photo of woman, portrait in, sharp"
