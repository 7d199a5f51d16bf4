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


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_checker_refuses_a_blank_and_names_it(chapter):
    for name, check in _checkers(chapter).items():
        assert hasattr(check, "__wrapped__"), f"{chapter}.{name} is not decorated with @checker"
        blanks = [...] * len(inspect.signature(check).parameters)
        with pytest.raises(WrongAnswer, match=r"is still blank: replace the `\.\.\.`"):
            check(*blanks)


def _run_cell(source: str) -> None:
    """Run ``source`` as Jupyter runs a cell: compiled under a file name whose lines linecache
    holds, so a checker can read how the cell wrote its arguments."""
    import linecache

    filename = f"<cell-{abs(hash(source))}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), {})


def test_hints_name_the_answer_as_the_cell_wrote_it():
    prelude = "from cebook.exercises.ch01 import check_ex1, check_ex4\n"
    with pytest.raises(WrongAnswer, match=r"^answer_2 is still blank"):
        _run_cell(prelude + "answer_1 = 2.58\nanswer_2 = ...\n"
                  "check_ex1(answer_1, answer_2, 3.27)\n")
    # a call over several lines, an expression as the argument
    with pytest.raises(WrongAnswer, match=r"^my_q\[0\] should have shape \(3,\), not \(\)"):
        _run_cell(prelude + "my_q = [0.5]\ncheck_ex4(\n    my_q[0],\n    1.0)\n")
    # Called from code whose source is unknown, the hint falls back to the checker's names.
    from cebook.exercises.ch01 import check_ex4
    with pytest.raises(WrongAnswer, match=r"^q_best should have shape"):
        exec(compile("check_ex4(0.5, 1.0)", "<unknown>", "exec"), {"check_ex4": check_ex4})


def test_jupyter_shows_the_hint_alone():
    """IPython renders an exception with ``_render_traceback_`` by that method: the hint, and
    no line of the checker's source."""
    from cebook.exercises.ch04 import check_ex2

    with pytest.raises(WrongAnswer) as caught:
        check_ex2(123.0)
    assert caught.value._render_traceback_() == [f"WrongAnswer: {caught.value}"]
