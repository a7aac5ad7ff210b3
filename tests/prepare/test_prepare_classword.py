"""Class word (thesis 2.2.1) with a real (tiny, random) CLIP whose image embeddings we point at a
known word, and the real CLIP vocabulary behind every token id."""

from __future__ import annotations

import pytest
import torch

from portraitist.models.clip import Clip, tiny_clip
from portraitist.models.tokenizer import clip_tokenizer
from portraitist.prepare.classword import class_distances, nearest_word
from portraitist.prepare.config import PrepareConfig
from portraitist.samples import astronaut, cameraman, no_person

WORDS = PrepareConfig().class_words
PROMPT = PrepareConfig().class_prompt


def clip_that_sees(word: str) -> Clip:
    """A tiny CLIP whose image tower maps every image onto the text embedding of `word`.

    The vision tower's last LayerNorm is set to output a constant direction v (weight 0, bias v),
    and the image projection to map v onto that text embedding: the model then runs its real
    forward pass, and the nearest word is known in advance.
    """
    clip = tiny_clip(seed=1)
    target = clip.embed_texts([PROMPT.format(word)])[0]
    vision = clip.model.vision_model
    direction = torch.nn.functional.normalize(torch.randn(vision.post_layernorm.bias.shape[0]), dim=0)
    with torch.no_grad():
        vision.post_layernorm.weight.zero_()
        vision.post_layernorm.bias.copy_(direction)
        clip.model.visual_projection.weight.copy_(torch.outer(target, direction))
    return clip


@pytest.mark.parametrize("word", ["man", "baby"])
def test_the_word_nearest_to_the_photos_is_chosen(word: str) -> None:
    photos = [astronaut(), cameraman(), no_person()]
    distances = class_distances(clip_that_sees(word), photos, WORDS, PROMPT)
    assert list(distances) == WORDS
    assert distances[word] == pytest.approx(0.0, abs=1e-5)
    assert all(d > 1e-3 for w, d in distances.items() if w != word)
    assert nearest_word(distances) == word


def test_a_tie_goes_to_the_first_listed_word() -> None:
    assert nearest_word({"girl": 0.5, "man": 0.5, "boy": 0.7}) == "girl"


def test_token_ids_are_those_of_the_real_clip_vocabulary() -> None:
    tokenizer = clip_tokenizer()
    assert len(tokenizer) == 49408
    assert tokenizer("a photo of a face").input_ids == [49406, 320, 1125, 539, 320, 1710, 49407]
    ids = {
        word: tokenizer(word, add_special_tokens=False).input_ids
        for word in ["face", "girl", "man", "boy", "baby"]
    }
    assert ids == {"face": [1710], "girl": [1611], "man": [786], "boy": [1876], "baby": [1794]}
    assert tokenizer("sks", add_special_tokens=False).input_ids == [48136]  # DreamBooth's rare token
    # the default instance token is not a word CLIP knows: training adds it as a new token
    assert len(tokenizer.tokenize(PrepareConfig().instance_token)) > 1


def test_token_ids_agree_with_open_clips_own_tokenizer() -> None:
    from open_clip.tokenizer import SimpleTokenizer

    text = "a close-up photo of a smiling girl with curly hair, oil painting"
    assert clip_tokenizer()(text, add_special_tokens=False).input_ids == SimpleTokenizer().encode(text)
