"""Every chapter a docstring names can be found from ``help()``: by its title and its file.

The API pages link the chapters; ``help(celib.functional.cross_entropy)`` in a terminal cannot,
so each reference reads "chapter 4 (Cross-entropy, book/04_cross_entropy.ipynb)", and the file
must exist.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import celib

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["celib", *(f"celib.{m.name}" for m in pkgutil.iter_modules(celib.__path__)
                      if not m.name.startswith("_"))]
REFERENCE = re.compile(r"\b[Cc]hapter (\d+(?:\.1)?)\b(?P<rest>[^.;]*(?:\.ipynb)?)")


def _documented(module_name: str):
    module = importlib.import_module(module_name)
    yield module_name, inspect.getdoc(module) or ""
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        yield f"{module_name}.{name}", inspect.getdoc(obj) or ""


@pytest.mark.parametrize("module_name", MODULES)
def test_every_chapter_reference_names_its_file(module_name):
    problems = []
    for where, doc in _documented(module_name):
        text = " ".join(doc.split())
        for match in REFERENCE.finditer(text):
            files = re.findall(r"book/[\w.]+\.ipynb", match.group("rest"))
            if not files:
                problems.append(f"{where}: {match.group(0)[:70]!r}")
            problems += [f"{where}: {f} does not exist" for f in files
                         if not (ROOT / f).is_file()]
    assert not problems, "chapter references without the chapter's file:\n" + "\n".join(problems)


@pytest.mark.parametrize("module_name", MODULES[1:])
def test_every_public_function_names_its_chapter(module_name):
    """The API pages check the same in the browser; this fails in seconds, not after a build."""
    module = importlib.import_module(module_name)
    silent = [name for name in module.__all__
              if inspect.isfunction(getattr(module, name))
              and not REFERENCE.search(" ".join((inspect.getdoc(getattr(module, name))
                                                 or "").split()))]
    assert not silent, f"functions whose docstring names no chapter: {silent}"
