"""The layering docs/code.md describes, checked on the source: nothing outside world/ and cli/
imports the synthetic world, a stage imports no other stage, and no two packages of src/portraitist
import each other in a cycle (imports inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx

SRC = Path(__file__).resolve().parents[1] / "src" / "portraitist"


def package_imports() -> dict[Path, set[str]]:
    """Each module and the portraitist packages (or top-level modules) it imports anywhere in it."""
    found: dict[Path, set[str]] = {}
    for path in SRC.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("portraitist."):
                names.add(node.module.split(".")[1])
            elif isinstance(node, ast.ImportFrom) and node.module == "portraitist":
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(a.name.split(".")[1] for a in node.names if a.name.startswith("portraitist."))
        found[path] = names
    return found


def package_of(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def test_only_the_cli_imports_the_world() -> None:
    importers = {
        str(path.relative_to(SRC))
        for path, names in package_imports().items()
        if "world" in names and package_of(path) not in ("world", "cli")
    }
    assert importers == set()


def test_a_stage_imports_no_other_stage() -> None:
    """What two stages share lives below them (models/, the top-level helpers); evaluate, which trains
    and measures recipes, and the pipeline are above the stages and call them."""
    stages = {"prepare", "train", "generate", "rank", "upscale"}
    sideways = {
        f"{path.relative_to(SRC)} -> {name}"
        for path, names in package_imports().items()
        if package_of(path) in stages
        for name in names & stages - {package_of(path)}
    }
    assert sideways == set()


def test_packages_import_each_other_in_no_cycle() -> None:
    graph = networkx.DiGraph()
    for path, names in package_imports().items():
        graph.add_edges_from((package_of(path), name) for name in names if name != package_of(path))
    assert list(networkx.simple_cycles(graph)) == []
