"""No function in src/portraitist is longer than 80 lines, decorators, signature and docstring
included: a longer one does several jobs, and each deserves a name (docs/code.md)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "portraitist"
MAX_LINES = 80


def function_lengths(source: str) -> dict[str, int]:
    """Each function's (and method's) name and its length in lines, from its first decorator."""
    lengths = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            lengths[f"{node.name}:{node.lineno}"] = node.end_lineno - first + 1
    return lengths


def test_the_count_starts_at_the_decorator_and_ends_at_the_last_line() -> None:
    source = "@decorator\ndef f(\n    x: int,\n) -> int:\n    '''Doc.'''\n    return x\n"
    assert function_lengths(source) == {"f:2": 6}


def test_no_function_is_longer_than_80_lines() -> None:
    long = {
        f"{path.relative_to(SRC)}:{name} ({length} lines)"
        for path in SRC.rglob("*.py")
        for name, length in function_lengths(path.read_text()).items()
        if length > MAX_LINES
    }
    assert long == set()
