"""Write the student edition: every chapter with its solutions removed and outputs cleared.

Usage: ``python -m cebook.student [BOOK_DIR] [OUT_DIR]`` (``make student`` writes
``_build/student``). For each exercise, the cells from ``{solution-start}`` to
``{solution-end}`` are replaced by one answer cell, tagged ``exercise-answer``, that sets the
names the solution passed to its checker to ``...`` and calls the checker, so a student fills
in the blanks and runs it. The checkers stay importable from :mod:`cebook.exercises`. Outputs,
execution counts and the execution timestamps that nbconvert writes into cell metadata go.
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


# The answer cell's first line, by language.
ANSWER_COMMENT = {"en": "# Your answer: replace each `...`, then run this cell.",
                  "zh_CN": "# 你的答案：把每个 `...` 换成你的答案，然后运行本单元格。"}


def answer_cell(solution_code: list[dict], language: str = "en") -> dict:
    """The blank answer cell that replaces a solution."""
    call = _last_check_call(solution_code)
    names = [f"answer_{i + 1}" for i in range(len(call.args))]
    lines = [ANSWER_COMMENT[language]]
    lines += [f"{name} = ..." for name in names]
    args = names + [f"{kw.arg}=..." for kw in call.keywords]
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


def student_notebook(nb: dict, language: str = "en") -> dict:
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
                cells.append(answer_cell(solution, language))
                solution = None
            elif cell["cell_type"] == "code":
                solution.append(cell)
        else:
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
            cell.get("metadata", {}).pop("execution", None)  # when the book's copy last ran
            cells.append(cell)
    if solution is not None:
        raise ValueError("a {solution-start} has no matching {solution-end}")
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i}"
    out["cells"] = cells
    return out


# The answer key's heading and its note, by language.
KEY_HEADING = {
    "en": ("Answer key: {title}",
           "The exercises of the chapter with their worked solutions and what the solutions "
           "print, for the teacher. The solutions' code uses names the chapter defines before "
           "it, so run it inside the chapter (the book's own notebook), not here."),
    "zh_CN": ("答案：{title}",
              "本章的练习及其解答过程和输出，供教师使用。解答的代码用到本章前面定义的名称，"
              "所以请在本章（本书自己的笔记本）中运行，而不是在这里运行。"),
}


def answer_key(nb: dict, language: str = "en") -> dict:
    """The teacher's key: each exercise's statement followed by its solution, outputs kept."""
    out = copy.deepcopy(nb)
    cells = _split_directives(out["cells"])
    title = _source(cells[0]).split("\n")[0].lstrip("# ").strip()
    heading, note = KEY_HEADING[language]
    key = [_markdown(f"# {heading.format(title=title)}\n\n{note}")]
    solution = None
    for cell in cells:
        text = _source(cell).strip()
        cell.get("metadata", {}).pop("execution", None)
        if cell["cell_type"] == "markdown" and "{exercise}" in text:
            key.append(cell)
        elif cell["cell_type"] == "markdown" and _START.fullmatch(text):
            solution = []
        elif solution is not None and cell["cell_type"] == "markdown" and _END.fullmatch(text):
            key += solution
            solution = None
        elif solution is not None:
            solution.append(cell)
    for i, cell in enumerate(key):
        cell["id"] = f"key-{i}"
    out["cells"] = key
    return out


def _write(nb: dict, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {target}")


def main(book: str = "book", dest: str = "_build/student") -> None:
    """The student edition and the answer keys, in English (``dest``) and in Chinese
    (``dest/zh_CN``, the chapters translated with the site's catalogues)."""
    from .notebook_i18n import catalogue, translate_notebook

    out_dir = Path(dest)
    for path in sorted(Path(book).glob("[0-9][0-9]*_*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        chinese, missing = translate_notebook(nb, catalogue(f"book/{path.stem}"))
        if missing:
            print(f"{path.name}: {len(missing)} block(s) left in English (run make po and "
                  f"translate): {missing[0][:60]!r}", file=sys.stderr)
        _write(student_notebook(nb), out_dir / path.name)
        _write(answer_key(nb), out_dir / "answers" / path.name)
        _write(student_notebook(chinese, "zh_CN"), out_dir / "zh_CN" / path.name)
        _write(answer_key(chinese, "zh_CN"), out_dir / "zh_CN" / "answers" / path.name)


if __name__ == "__main__":
    main(*sys.argv[1:])
