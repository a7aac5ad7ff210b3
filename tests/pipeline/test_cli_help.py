"""`portraitist --help`: every command in a panel, in the order a new user meets them."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from portraitist.cli import PANELS, app


def test_help_lists_every_command_once_in_its_panel_in_order() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    panels = re.findall(r"╭─ ([A-Za-z ]+?) ─", result.output)
    assert panels == ["Options", *PANELS]
    listed = re.findall(r"^│ ([a-z]+) {2,}", result.output, flags=re.MULTILINE)
    assert listed == [name for names in PANELS.values() for name in names]
