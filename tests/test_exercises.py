"""Every exercise checker accepts its solution and rejects plausible wrong answers.

The cases live in ``tests/exercise_cases/chNN.py`` (see the README there), one file per
checker module ``cebook.exercises.chNN``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
from pathlib import Path

import pytest

import cebook.exercises
from cebook.exercises import WrongAnswer

CASES_DIR = Path(__file__).parent / "exercise_cases"
CHAPTERS = sorted(m.name for m in pkgutil.iter_modules(cebook.exercises.__path__))


def _cases(chapter: str) -> dict:
    path = CASES_DIR / f"{chapter}.py"
    assert path.exists(), f"cebook.exercises.{chapter} has no test cases in {path}"
    spec = importlib.util.spec_from_file_location(f"exercise_cases_{chapter}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CASES


def _checkers(chapter: str) -> dict:
    module = importlib.import_module(f"cebook.exercises.{chapter}")
    return {name: f for name, f in inspect.getmembers(module, inspect.isfunction)
            if name.startswith("check_") and f.__module__ == module.__name__}


def _all_cases():
    for chapter in CHAPTERS:
        checkers, cases = _checkers(chapter), _cases(chapter)
        for name in checkers:
            for kind in ("accept", "reject"):
                for i, args in enumerate(cases.get(name, {}).get(kind, [])):
                    yield pytest.param(checkers[name], kind, args, id=f"{chapter}.{name}-{kind}{i}")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_checker_has_cases(chapter):
    checkers, cases = _checkers(chapter), _cases(chapter)
    assert checkers, f"cebook.exercises.{chapter} defines no check_ functions"
    assert set(cases) == set(checkers), "cases and checkers must name the same functions"
    for name, case in cases.items():
        assert len(case.get("accept", [])) >= 1, f"{chapter}.{name}: no accepted answer"
        assert len(case.get("reject", [])) >= 2, f"{chapter}.{name}: fewer than 2 wrong answers"


@pytest.mark.parametrize(("checker", "kind", "args"), list(_all_cases()))
def test_checker(checker, kind, args, capsys):
    if kind == "accept":
        checker(*args)
        assert capsys.readouterr().out.startswith("Correct"), "a right answer is confirmed"
    else:
        with pytest.raises(WrongAnswer):
            checker(*args)
        # A blank answer (None everywhere) must be rejected with a hint too, not a crash.
        with pytest.raises(WrongAnswer):
            checker(*[None] * len(args))
