"""House rules for the chapters' code cells: short cells, short lines, no checker in sight.

A visible code cell of more than 40 lines hides the idea in plumbing (move it into celib or
``cebook``, or tag the cell ``hide-input``); a line over 100 characters scrolls on the page; a
checker defined in a visible cell gives its answer away (checkers live in ``cebook.exercises``);
and a notebook is stored as ``python -m cebook.execute`` writes it, so that re-running it
changes only what changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cebook.execute import tidy, write

BOOK = Path(__file__).resolve().parents[1] / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
HIDDEN = {"hide-input", "remove-input", "remove-cell", "hide-cell"}
MAX_LINES, MAX_WIDTH = 40, 100


def code_cells(path: Path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            hidden = bool(HIDDEN & set(cell.get("metadata", {}).get("tags", [])))
            yield index, source, hidden


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_cells_are_short(path):
    too_long = [i for i, src, hidden in code_cells(path)
                if not hidden and len(src.splitlines()) > MAX_LINES]
    assert not too_long, f"{path.name}: cells {too_long} have more than {MAX_LINES} lines"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_lines_are_short(path):
    wide = [(i, n + 1) for i, src, _ in code_cells(path)
            for n, line in enumerate(src.splitlines()) if len(line) > MAX_WIDTH]
    assert not wide, f"{path.name}: (cell, line) pairs over {MAX_WIDTH} characters: {wide}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_checker_defined_on_the_page(path):
    defined = [i for i, src, _ in code_cells(path) if "def check_" in src]
    assert not defined, f"{path.name}: cells {defined} define a checker; import it from cebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_as_cebook_execute_writes_it(path):
    """No execution times and one stream per name in each cell: re-running a notebook with
    `make notebooks` (python -m cebook.execute) then changes only what really changed."""
    raw = path.read_text(encoding="utf-8")
    nb = json.loads(raw)
    assert not [i for i, c in enumerate(nb["cells"]) if "execution" in c.get("metadata", {})], (
        "execution times in the cells' metadata: run python -m cebook.execute on it")
    tidied = tidy(json.loads(raw))
    assert tidied == nb, "a cell has split stream outputs: run python -m cebook.execute on it"


def test_tidy_drops_execution_times_and_merges_streams(tmp_path):
    cell = {"cell_type": "code", "metadata": {"execution": {"iopub.status.idle": "2026"}},
            "outputs": [{"output_type": "stream", "name": "stdout", "text": ["a\n"]},
                        {"output_type": "stream", "name": "stderr", "text": "warn\n"},
                        {"output_type": "stream", "name": "stdout", "text": ["b\n", "c"]}],
            "source": "print('a')", "execution_count": 1}
    nb = tidy({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    assert nb["cells"][0]["metadata"] == {}
    assert nb["cells"][0]["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": ["a\n", "b\n", "c"]},
        {"output_type": "stream", "name": "stderr", "text": ["warn\n"]}]
    write(nb, tmp_path / "x.ipynb")
    assert json.loads((tmp_path / "x.ipynb").read_text(encoding="utf-8")) == nb
