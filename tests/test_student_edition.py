"""The student edition runs: blank answers are rejected, every other cell still works.

``python -m cebook.student`` (``make student``) replaces each solution by a blank answer cell.
Here each student notebook is executed as a student would first open it: every answer cell
must fail with ``WrongAnswer`` (the checker rejects the blank), and no other cell may fail,
so no later cell depends on a removed solution.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from cebook.student import ANSWER_TAG, student_notebook

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]*_*.ipynb"))


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
    answers = [c for c in nb.cells if ANSWER_TAG in c.metadata.get("tags", [])]
    assert answers, f"{path.name} has no exercises"
    client = NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = _errors(cell)
        if ANSWER_TAG in cell.metadata.get("tags", []):
            assert errors == ["WrongAnswer"], f"cell {index}: a blank answer must be rejected"
        else:
            assert not errors, f"cell {index} fails without the solutions: {_messages(cell)}"
