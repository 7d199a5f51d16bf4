"""House rules for the code that `make lint` cannot state: short functions.

A function of celib, cebook or the benchmarks has at most 60 lines of code (its docstring,
blank lines and comment lines not counted): past that, it holds more than one idea.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(p for folder in ("celib", "cebook", "benchmarks")
               for p in (ROOT / folder).rglob("*.py"))
MAX_CODE_LINES = 60


def code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef, source: list[str]) -> int:
    """Lines of code of ``node``'s body: no docstring, no blank or comment-only line."""
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    if not body:
        return 0
    lines = source[body[0].lineno - 1:node.end_lineno]
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_functions_are_short(path):
    text = path.read_text(encoding="utf-8")
    source = text.splitlines()
    long = {node.name: n for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and (n := code_lines(node, source)) > MAX_CODE_LINES}
    assert not long, f"functions over {MAX_CODE_LINES} lines of code: {long}"


def test_the_rule_counts_code_not_docstrings():
    text = 'def f():\n    """Doc.\n\n    More.\n    """\n    # why\n    x = 1\n\n    return x\n'
    [node] = ast.parse(text).body
    assert code_lines(node, text.splitlines()) == 2
