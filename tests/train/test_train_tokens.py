"""New tokens (thesis 2.2.2-2.2.3): added as new words, the instance token starting as "face"."""

from __future__ import annotations

import pytest
import torch

from portraitist.errors import PortraitistError
from portraitist.models.loading import load_base
from portraitist.train.tokens import RARE_TOKEN, SplitTokenEmbedding, add_tokens, token_table, word_embedding
from portraitist.workspace import TokenInit


def _added_rows(model) -> torch.Tensor:
    split = model.text_encoder.get_input_embeddings()
    assert isinstance(split, SplitTokenEmbedding)
    return split.added.detach()


def test_instance_token_starts_as_face_and_existing_rows_stay(prepared):
    model = load_base("tiny")
    pretrained = token_table(model.text_encoder).weight
    before = pretrained.clone()

    added = add_tokens(model.tokenizer, model.text_encoder, prepared.read_manifest(), seed=0)

    split = model.text_encoder.get_input_embeddings()
    # the pretrained rows are the base's own tensor, not a copy in a grown table
    assert split.base.data_ptr() == pretrained.data_ptr()
    table = torch.cat([split.base, _added_rows(model)])
    assert [(t.text, t.id) for t in added] == [
        ("<sks>", 49408),
        ("<bg0>", 49409),
        ("<bg1>", 49410),
        ("<bg2>", 49411),
        ("<bg3>", 49412),
    ]
    assert [t.init for t in added] == ["word:face"] + ["random"] * 4
    face = model.tokenizer("face", add_special_tokens=False)["input_ids"]
    assert face == [1710]
    assert torch.equal(table[49408], before[1710])
    assert torch.equal(table[:49408], before)  # every existing token untouched
    backgrounds = table[49409:]
    assert not torch.equal(backgrounds[0], backgrounds[1])
    assert backgrounds.std().item() == pytest.approx(before.std().item(), rel=0.5)
    ids = model.tokenizer("<bg2> <sks> girl", add_special_tokens=False)["input_ids"]
    assert ids[:2] == [49411, 49408]


@pytest.mark.parametrize(
    ("init", "source"),
    [(TokenInit(kind="rare"), RARE_TOKEN), (TokenInit(kind="word", word="portrait"), "portrait")],
)
def test_other_initialisations(prepared, init, source):
    manifest = prepared.read_manifest().model_copy(update={"instance_init": init})
    model = load_base("tiny")
    expected = word_embedding(model.tokenizer, token_table(model.text_encoder).weight, source)
    add_tokens(model.tokenizer, model.text_encoder, manifest)
    assert torch.equal(_added_rows(model)[0], expected)


def test_noise_initialisation_is_seeded(prepared):
    manifest = prepared.read_manifest().model_copy(update={"instance_init": TokenInit(kind="noise")})
    rows = []
    for seed in (0, 0, 1):
        model = load_base("tiny")
        add_tokens(model.tokenizer, model.text_encoder, manifest, seed=seed)
        rows.append(_added_rows(model)[0].clone())
    assert torch.equal(rows[0], rows[1]) and not torch.equal(rows[0], rows[2])


def test_a_token_that_already_exists_is_refused(prepared):
    manifest = prepared.read_manifest().model_copy(update={"instance_token": "face"})
    model = load_base("tiny")
    with pytest.raises(PortraitistError, match="already exist"):
        add_tokens(model.tokenizer, model.text_encoder, manifest)


def test_split_table_trains_only_added_rows(prepared):
    model = load_base("tiny")
    add_tokens(model.tokenizer, model.text_encoder, prepared.read_manifest())
    split = model.text_encoder.get_input_embeddings()
    grown = torch.cat([split.base, split.added.detach()])  # the table a trained model loads with
    ids = torch.tensor([[49406, 320, 49408, 1710, 49412, 49407]])
    assert torch.equal(split(ids), grown[ids])
    split(ids).sum().backward()
    assert split.added.grad is not None
    assert split.added.grad[[0, 4]].abs().sum() > 0 and split.added.grad[1:4].abs().sum() == 0
    assert [name for name, _ in split.named_parameters()] == ["added"]
