"""Portrait formats: the short side at the model's resolution, the long side at the ratio, multiples of 8."""

from __future__ import annotations

from pathlib import Path

import pytest

from portraitist.config import load_config
from portraitist.errors import PortraitistError
from portraitist.generate.config import GenerateConfig
from portraitist.generate.sizes import image_size
from portraitist.pipeline import RunConfig


@pytest.mark.parametrize(
    ("aspect", "expected"),
    [("1:1", (512, 512)), ("4:5", (512, 640)), ("9:16", (512, 912)), ("16:9", (912, 512))],
)
def test_sd15_formats(aspect: str, expected: tuple[int, int]) -> None:
    assert image_size(aspect, 512) == expected


@pytest.mark.parametrize("aspect", ["4:5", "9:16", "16:9", "2:3", "3:2"])
@pytest.mark.parametrize("short_side", [64, 256, 512, 768])
def test_sizes_are_multiples_of_8_at_the_requested_ratio(aspect: str, short_side: int) -> None:
    width, height = image_size(aspect, short_side)
    w, h = (int(v) for v in aspect.split(":"))
    assert width % 8 == 0 and height % 8 == 0
    assert min(width, height) == short_side
    # rounding the long side to 8 px moves the ratio by at most 4 px of it
    assert abs(width / height - w / h) <= 4 / min(width, height) * max(w / h, h / w)
    assert (width < height) == (w < h)


def test_size_not_divisible_by_8_is_refused_with_the_nearest_good_sizes() -> None:
    with pytest.raises(PortraitistError, match=r"500 px is not a positive multiple of 8.*496 or 504"):
        image_size("9:16", 500)


@pytest.mark.parametrize("aspect", ["square", "9/16", "0:1", "9:16:2", "-4:5"])
def test_unknown_aspect_is_refused(aspect: str) -> None:
    with pytest.raises(PortraitistError, match="aspect ratio"):
        image_size(aspect, 512)


@pytest.mark.parametrize("aspect", ["7:3", "100:1", "1:3"])
def test_ratios_past_2_to_1_are_refused_by_every_way_in_with_the_allowed_ones(
    aspect: str, tmp_path: Path
) -> None:
    allowed = r"Use one of 1:1, 4:5, 9:16, 16:9, or another width:height from 1:2 to 2:1"
    with pytest.raises(PortraitistError, match=allowed):
        GenerateConfig(aspect=aspect)
    with pytest.raises(PortraitistError, match=allowed):  # `run`'s file and the service's jobs
        RunConfig.model_validate({"generate": {"aspect": aspect}})
    toml = tmp_path / "generate.toml"
    toml.write_text(f'[generate]\naspect = "{aspect}"\n')
    with pytest.raises(PortraitistError, match=allowed):
        load_config(GenerateConfig, toml, "generate")


@pytest.mark.parametrize(
    ("aspect", "expected"), [("2:3", (64, 96)), ("2:1", (128, 64)), (" 9:16 ", (64, 112))]
)
def test_other_ratios_within_2_to_1_are_accepted(aspect: str, expected: tuple[int, int]) -> None:
    config = GenerateConfig(aspect=aspect)
    assert image_size(config.aspect, 64) == expected
