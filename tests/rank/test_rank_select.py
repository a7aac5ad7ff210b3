"""`--by`: parsing, and how each order sorts (identity as a gate, None last)."""

from __future__ import annotations

import pytest

from portraitist.config import load_config
from portraitist.errors import PortraitistError
from portraitist.rank.config import RankConfig
from portraitist.rank.select import SCORERS, parse_order, rank_order
from portraitist.rank.stage import RankResult


def test_by_takes_one_name_or_a_comma_separated_order():
    assert parse_order("aesthetic") == ["aesthetic"]
    assert parse_order(" Identity, clip-text ,lpips") == ["identity", "clip-text", "lpips"]
    assert load_config(RankConfig, None, "rank", by="lpips,clip-image").by == ["lpips", "clip-image"]


@pytest.mark.parametrize("bad", ["beauty", "identity,,sharpness", "", " , ", "aesthetic,aesthetic"])
def test_bad_orders_are_user_errors_that_list_the_scorers(bad: str):
    with pytest.raises(PortraitistError) as error:
        load_config(RankConfig, None, "rank", by=bad)
    assert "scorer" in str(error.value)


def test_identity_gates_three_ways_then_the_next_scorer_decides():
    scores = [
        {"identity": None, "aesthetic": 9.0},  # no face, most beautiful
        {"identity": 0.3, "aesthetic": 8.0},  # someone else (distance 0.7 > 0.6)
        {"identity": 0.5, "aesthetic": 5.0},  # the user, plainer
        {"identity": 0.9, "aesthetic": 4.0},  # the user, most alike
        {"identity": 0.6, "aesthetic": 6.0},  # the user
    ]
    assert rank_order(scores, ["identity", "aesthetic"], max_distance=0.6) == [4, 2, 3, 1, 0]
    assert rank_order(scores, ["identity"], max_distance=0.6) == [3, 4, 2, 1, 0]
    assert rank_order(scores, ["aesthetic"], max_distance=0.6) == [0, 1, 4, 2, 3]
    # a stricter threshold moves the plainer image out of the user's group
    assert rank_order(scores, ["identity", "aesthetic"], max_distance=0.45) == [4, 3, 1, 2, 0]


def test_missing_values_sort_last_and_ties_keep_generation_order():
    scores = [{"lpips": None}, {"lpips": 0.4}, {"lpips": 0.2}, {"lpips": 0.4}]
    assert rank_order(scores, ["lpips"], max_distance=0.6) == [2, 1, 3, 0]  # lower LPIPS is closer


@pytest.mark.parametrize("by", [name for name in SCORERS if name != "identity"])
def test_every_single_scorer_order_sorts_by_that_score(ranked: RankResult, by: str):
    all_scores = [image.scores for image in ranked.images]
    order = rank_order(all_scores, [by], max_distance=0.6)
    values = [all_scores[i][by] for i in order]
    assert values == sorted(values, reverse=SCORERS[by].higher_is_better)
