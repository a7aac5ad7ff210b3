"""Captions "<context> <instance> <class>" with each context strategy (thesis 2.1.2, 2.2.3)."""

from __future__ import annotations

import pytest
from PIL import Image

from portraitist.errors import PortraitistError
from portraitist.prepare.captions import TEMPLATES, insert_subject, make_captions
from portraitist.prepare.config import PrepareConfig

SUBJECT = "<me> girl"
CROPS = [Image.new("RGB", (8, 8))] * 5


@pytest.mark.parametrize(
    "blip, caption",
    [
        ("a woman sitting on a bench", "a <me> girl sitting on a bench"),
        ("there is a young man in a suit", "there is a young <me> girl in a suit"),
        ("Woman with long hair", "<me> girl with long hair"),
        ("a lady wearing a shirt with a man on it", "a <me> girl wearing a shirt with a man on it"),
        ("a person's face in close-up", "a <me> girl's face in close-up"),
        ("a red wall with a window", "<me> girl, a red wall with a window"),
        ("  a human figure near a mannequin ", "<me> girl, a human figure near a mannequin"),
    ],
)
def test_the_person_word_of_a_caption_becomes_the_subject(blip: str, caption: str) -> None:
    assert insert_subject(blip, SUBJECT) == caption


def test_photo_of_context() -> None:
    assert [c.text for c in make_captions("photo_of", CROPS[:2], SUBJECT, 0, "", "cpu")] == [
        "a photo of <me> girl"
    ] * 2


def test_background_tokens_give_each_photo_its_own_token() -> None:
    captions = make_captions("background_tokens", CROPS, SUBJECT, 0, "", "cpu")
    assert [c.text for c in captions] == [f"<bg{i}> <me> girl" for i in range(5)]
    assert [c.background_token for c in captions] == [f"<bg{i}>" for i in range(5)]


def test_templates_are_chosen_per_photo_and_repeat_with_the_seed() -> None:
    first = [c.text for c in make_captions("templates", CROPS, SUBJECT, 7, "", "cpu")]
    assert first == [c.text for c in make_captions("templates", CROPS, SUBJECT, 7, "", "cpu")]
    assert first != [c.text for c in make_captions("templates", CROPS, SUBJECT, 8, "", "cpu")]
    assert all(text in {t.format(SUBJECT) for t in TEMPLATES} for text in first)


def test_blip_captions_without_the_model_say_how_to_get_it() -> None:
    # tests run with HF_HUB_OFFLINE=1 and no cached BLIP: what a user without internet sees
    with pytest.raises(PortraitistError, match="background_tokens"):
        make_captions("captions", CROPS[:1], SUBJECT, 0, PrepareConfig().caption_model, "cpu")


def test_the_instance_token_must_be_one_word() -> None:
    with pytest.raises(ValueError, match="one word"):
        PrepareConfig(instance_token="my face")
    assert PrepareConfig(instance_init="noise").token_init().kind == "noise"
    assert PrepareConfig().token_init().word == "face"
