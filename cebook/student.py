"""Write the student edition: every chapter with its solutions removed and outputs cleared.

Usage: ``python -m cebook.student [BOOK_DIR] [OUT_DIR]`` (``make student`` writes
``_build/student``). For each exercise, the cells from ``{solution-start}`` to
``{solution-end}`` are replaced by one answer cell, tagged ``exercise-answer``, that sets the
names the solution passed to its checker to ``None`` and calls the checker, so a student fills
in the blanks and runs it. The checkers stay importable from :mod:`cebook.exercises`.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import sys
from pathlib import Path

ANSWER_TAG = "exercise-answer"
# The gated directives, as CONTRIBUTING.md writes them (options such as :class: dropdown).
_START = re.compile(r"(`{3,}|:{3,})\{solution-start\}[^\n]*\n(?:[ \t]*:[^\n]*\n)*[ \t]*\1")
_END = re.compile(r"(`{3,}|:{3,})\{solution-end\}[^\n]*\n?[ \t]*\1")


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _last_check_call(code_cells: list[dict]) -> ast.Call:
    """The last top-level ``check_...(...)`` call in a solution's code cells."""
    calls = []
    for cell in code_cells:
        for node in ast.walk(ast.parse(_source(cell))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id.startswith("check_")):
                calls.append(node)
    if not calls:
        raise ValueError("a solution must end by calling its check_... helper")
    return calls[-1]


def answer_cell(solution_code: list[dict]) -> dict:
    """The blank answer cell that replaces a solution."""
    call = _last_check_call(solution_code)
    names = [f"answer_{i + 1}" for i in range(len(call.args))]
    lines = ["# Your answer: replace each None, then run this cell."]
    lines += [f"{name} = None" for name in names]
    args = names + [f"{kw.arg}=None" for kw in call.keywords]
    lines.append(f"{call.func.id}({', '.join(args)})")
    return {"cell_type": "code", "execution_count": None,
            "metadata": {"tags": [ANSWER_TAG]}, "outputs": [], "source": "\n".join(lines)}


def _markdown(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text.strip("\n")}


def _split_directives(cells: list[dict]) -> list[dict]:
    """Give each solution directive a markdown cell of its own, keeping the text around it."""
    out = []
    for cell in cells:
        text = _source(cell)
        if cell["cell_type"] != "markdown" or not (_START.search(text) or _END.search(text)):
            out.append(cell)
            continue
        pieces, last = [], 0
        directives = sorted([*_START.finditer(text), *_END.finditer(text)], key=lambda m: m.start())
        for match in directives:
            pieces += [text[last:match.start()], match.group(0)]
            last = match.end()
        pieces.append(text[last:])
        out += [_markdown(piece) for piece in pieces if piece.strip()]
    return out


def student_notebook(nb: dict) -> dict:
    """A copy of ``nb`` with solutions replaced by answer cells and all outputs cleared.

    Text that shares a markdown cell with a directive (an exercise statement before
    ``{solution-start}``, or the next one after ``{solution-end}``) is kept; the solution's
    own text and code go.
    """
    out = copy.deepcopy(nb)
    cells: list[dict] = []
    solution = None
    for cell in _split_directives(out["cells"]):
        text = _source(cell)
        if cell["cell_type"] == "markdown" and _START.fullmatch(text.strip()):
            solution = []
        elif solution is not None:
            if cell["cell_type"] == "markdown" and _END.fullmatch(text.strip()):
                cells.append(answer_cell(solution))
                solution = None
            elif cell["cell_type"] == "code":
                solution.append(cell)
        else:
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
            cells.append(cell)
    if solution is not None:
        raise ValueError("a {solution-start} has no matching {solution-end}")
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i}"
    out["cells"] = cells
    return out


def main(book: str = "book", dest: str = "_build/student") -> None:
    out_dir = Path(dest)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(book).glob("[0-9][0-9]*_*.ipynb")):
        nb = student_notebook(json.loads(path.read_text(encoding="utf-8")))
        target = out_dir / path.name
        target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {target}")


if __name__ == "__main__":
    main(*sys.argv[1:])
