"""`portraitist --help` and each command's: every setting a command takes is its config field, shown with
the field's description and default, and leaves the field to the TOML file when it is not given."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel
from typer.core import TyperCommand, TyperOption
from typer.testing import CliRunner

from portraitist.cli import app
from portraitist.cli.options import SettingOption
from portraitist.config import load_config
from portraitist.evaluate.config import EvaluateConfig
from portraitist.generate.config import GenerateConfig, SwapConfig
from portraitist.prepare.config import PrepareConfig
from portraitist.rank.config import RankConfig
from portraitist.run_config import RunConfig
from portraitist.service.settings import Settings
from portraitist.train.config import TrainConfig
from portraitist.upscale.config import UpscaleConfig
from portraitist.world.pretrain import PretrainConfig
from portraitist.world.settings import WorldSettings

# the settings each command reads: an option named like one of their fields must be that field
COMMANDS: dict[tuple[str, ...], list[type[BaseModel]]] = {
    ("prepare",): [PrepareConfig],
    ("train",): [TrainConfig],
    ("generate",): [GenerateConfig],
    ("swap",): [SwapConfig],
    ("rank",): [RankConfig],
    ("upscale",): [UpscaleConfig],
    ("run",): [RunConfig],
    ("evaluate",): [EvaluateConfig, WorldSettings, RankConfig],
    ("world", "pretrain"): [PretrainConfig],
    ("serve",): [Settings],
    ("worker",): [Settings],
}


def command(path: tuple[str, ...]) -> TyperCommand:
    found: Any = typer.main.get_command(app)
    for name in path:
        found = found.commands[name]
    return found


def settings_of(path: tuple[str, ...]) -> list[tuple[TyperOption, SettingOption]]:
    """The command's options that stand for a config field, with the field they stand for."""
    options = [p for p in command(path).params if isinstance(p, TyperOption)]
    found = [(p, p.type_descriptor.parameter_info) for p in options]
    return [(p, info) for p, info in found if isinstance(info, SettingOption)]


def flat(text: str) -> str:
    """Help text without the line breaks and boxes rich draws around it."""
    return re.sub(r"[\s│]+", "", text)


def test_help_lists_every_command_once_in_a_panel_of_its_own() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    panels = re.findall(r"╭─ ([A-Za-z ]+?) ─", result.output)
    assert panels[0] == "Options" and "Commands" not in panels  # no command left in typer's default panel
    listed = re.findall(r"^│ ([a-z]+) {2,}", result.output, flags=re.MULTILINE)
    assert sorted(listed) == sorted(typer.main.get_command(app).commands)


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_an_option_named_like_a_setting_is_that_setting(path: tuple[str, ...]) -> None:
    fields = {  # a nested config (evaluate's `world`) is a table, no one option: `--world` is a mode
        name
        for model in COMMANDS[path]
        for name, field in model.model_fields.items()
        if not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel))
    }
    mirrored = {p.name for p, _ in settings_of(path)}
    for option in command(path).params:
        flag = max(getattr(option, "opts", []), key=len, default="").lstrip("-").replace("-", "_")
        if flag in fields:
            assert option.name in mirrored, f"{' '.join(path)} {flag}: write it as setting(Model, {flag!r})"


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_shows_each_settings_description_and_its_real_default(path: tuple[str, ...]) -> None:
    shown = flat(CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"}).output)
    ctx = command(path).context_class(command(path))
    for option, setting in settings_of(path):
        field = setting.model.model_fields[setting.field_name]
        assert option.default is None  # not given, the TOML file's value or the field's default stands
        assert flat(field.description or "") in shown
        default = re.search(r"\\\[default: (.*)]$", option.help or "")
        if default is None:  # no default to show: the description says what leaving it out does
            assert field.get_default(call_default_factory=True) in (None, [], {}, False)
            continue
        assert flat(f"[default: {default[1]}]") in shown
        # what the help calls the default, given as the flag, is the setting's default
        value = default[1] if option.is_bool_flag else option.process_value(ctx, default[1])
        if typing.get_origin(field.annotation) is list and isinstance(value, str):
            value = value.split(",")  # a list shows as its items separated by commas
        given = setting.model.model_validate({setting.field_name: value})
        assert getattr(given, setting.field_name) == field.get_default(call_default_factory=True)


def test_a_setting_not_given_leaves_the_toml_files_value(tmp_path: Path) -> None:
    toml = tmp_path / "train.toml"
    toml.write_text("[train]\nbatch_size = 3\nflip = false\n")
    ctx = command(("train",)).make_context("train", ["-w", str(tmp_path), "--seed", "5", "--no-flip"])
    parsed = {info.field_name: ctx.params[p.name] for p, info in settings_of(("train",))}
    given = {name: value for name, value in parsed.items() if value not in (None, ())}
    assert given == {"seed": 5, "flip": False}
    settings = load_config(TrainConfig, toml, "train", **given)
    assert (settings.batch_size, settings.flip, settings.seed) == (3, False, 5)


def test_the_scheduler_help_names_every_scheduler_generate_takes() -> None:
    from portraitist.generate.sampling import SCHEDULERS

    named = set(re.findall(r"[\w+-]+", GenerateConfig.model_fields["scheduler"].description or ""))
    assert set(SCHEDULERS) <= named
