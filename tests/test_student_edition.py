"""The student edition runs: blank answers are rejected, every other cell still works.

``python -m cebook.student`` (``make student``) replaces each solution by a blank answer cell.
Here each student notebook is executed as a student would first open it: every answer cell
must fail with ``WrongAnswer`` (the checker rejects the blank, and says which answer is blank),
no output may show a line of a checker's source (it would give the answer away), and no other
cell may fail, so no later cell depends on a removed solution.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from cebook.notebook_i18n import catalogue, translate_notebook
from cebook.student import ANSWER_COMMENT, ANSWER_TAG, answer_key, student_notebook

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]*_*.ipynb"))


def _checker_source_lines() -> set[str]:
    """Every line of the checkers' code that could give an answer away (stripped; the short
    and purely syntactic ones, such as ``return``, are left out)."""
    lines = set()
    for path in (ROOT / "cebook" / "exercises").glob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if len(line) > 12 and not line.startswith(("#", '"""', "def ", "@", "from ")):
                lines.add(line)
    return lines


CHECKER_LINES = _checker_source_lines()


def _errors(cell) -> list[str]:
    return [o.get("ename", "") for o in cell.get("outputs", []) if o["output_type"] == "error"]


def _messages(cell) -> str:
    return "; ".join(f"{o.get('ename')}: {o.get('evalue')}" for o in cell.get("outputs", [])
                     if o["output_type"] == "error")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_student_notebook(path, tmp_path):
    raw = student_notebook(json.loads(path.read_text(encoding="utf-8")))
    nb = nbformat.reads(json.dumps(raw), as_version=4)  # from_dict keeps list sources
    for cell in nb.cells:
        assert not cell.get("outputs"), "the student edition has no outputs"
        assert "{solution-" not in "".join(cell.source), "a solution was left in"
        assert "execution" not in cell.metadata, "the book's execution timestamps were left in"
    answers = [c for c in nb.cells if ANSWER_TAG in c.metadata.get("tags", [])]
    assert answers, f"{path.name} has no exercises"
    client = NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = _errors(cell)
        for output in cell.get("outputs", []):
            shown = "\n".join([*output.get("traceback", []), output.get("text", "")])
            leaked = [line for line in CHECKER_LINES if line in shown]
            assert not leaked, f"cell {index} shows the checker's source: {leaked[:3]}"
        if ANSWER_TAG in cell.metadata.get("tags", []):
            assert errors == ["WrongAnswer"], f"cell {index}: a blank answer must be rejected"
            assert "answer_1 is still blank: replace the `...`" in _messages(cell), (
                f"cell {index}: the hint must name the blank answer")
        else:
            assert not errors, f"cell {index} fails without the solutions: {_messages(cell)}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_answer_key_holds_every_exercise_and_its_solution(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    key = answer_key(nb)
    sources = ["".join(c["source"]) for c in key["cells"]]
    assert sources[0].startswith("# Answer key: ")
    exercises = [s for s in sources if "{exercise}" in s]
    assert len(exercises) == "".join("".join(c["source"]) for c in nb["cells"]).count(
        "{exercise}") >= 1
    checks = [s for c, s in zip(key["cells"], sources, strict=True)
              if c["cell_type"] == "code" and "check_" in s]
    assert len(checks) == len(exercises), "each solution ends by calling its checker"
    assert all(c.get("outputs") for c in key["cells"] if c["cell_type"] == "code"), (
        "the key shows what each solution prints")
    assert not any("{solution-" in s for s in sources)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_chinese_student_edition_is_the_english_one_translated(path):
    """Every block of prose has its translation, and the code is the English edition's."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    chinese, missing = translate_notebook(nb, catalogue(f"book/{path.stem}"))
    assert not missing, f"left in English (make po, then translate): {missing[:3]}"
    english, translated = student_notebook(nb), student_notebook(chinese, "zh_CN")
    code = [[c["source"] for c in notebook["cells"] if c["cell_type"] == "code"]
            for notebook in (english, translated)]
    assert [s.replace(ANSWER_COMMENT["zh_CN"], ANSWER_COMMENT["en"]) if isinstance(s, str)
            else s for s in code[1]] == code[0]
    prose = [c["source"] for c in translated["cells"] if c["cell_type"] == "markdown"]
    han = sum(len(re.findall(r"[\u4e00-\u9fff]", s)) for s in prose)
    assert han > 0.3 * sum(len(s) for s in prose), "the prose reads in Chinese"
