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
import sys
from pathlib import Path

ANSWER_TAG = "exercise-answer"


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
    return {"cell_type": "code", "execution_count": None, "id": None,
            "metadata": {"tags": [ANSWER_TAG]}, "outputs": [], "source": "\n".join(lines)}


def student_notebook(nb: dict) -> dict:
    """A copy of ``nb`` with solutions replaced by answer cells and all outputs cleared."""
    out = copy.deepcopy(nb)
    cells, solution = [], None
    for cell in out["cells"]:
        text = _source(cell)
        if cell["cell_type"] == "markdown" and "{solution-start}" in text:
            solution = []
            continue
        if solution is not None:
            if cell["cell_type"] == "markdown" and "{solution-end}" in text:
                new = answer_cell(solution)
                new["id"] = f"answer-{len(cells)}"
                cells.append(new)
                solution = None
            elif cell["cell_type"] == "code":
                solution.append(cell)
            continue
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        cells.append(cell)
    if solution is not None:
        raise ValueError("a {solution-start} has no matching {solution-end}")
    out["cells"] = cells
    return out


def main(book: str = "book", dest: str = "_build/student") -> None:
    out_dir = Path(dest)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(book).glob("[0-9][0-9]_*.ipynb")):
        nb = student_notebook(json.loads(path.read_text(encoding="utf-8")))
        target = out_dir / path.name
        target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {target}")


if __name__ == "__main__":
    main(*sys.argv[1:])
