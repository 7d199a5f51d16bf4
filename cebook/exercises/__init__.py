"""Exercise checkers, one module per chapter (``cebook.exercises.ch01`` ...).

Every checker is called with the reader's answer. A right answer prints a one-line
confirmation; any wrong answer, including one of the wrong type or shape, or ``...`` (the
blank of the student edition), raises :class:`WrongAnswer` with a hint that does not give the
answer away. The hint names the argument as the reader's cell wrote it (``answer_1``), and in
Jupyter the reader sees the hint alone, never the checker's source, which would show the
answer. ``tests/test_exercises.py`` runs every checker against its solution and against at
least two plausible wrong answers; ``tests/test_student_edition.py`` runs the student edition.
"""

from __future__ import annotations

import ast
import contextvars
import functools
import inspect
import linecache
import math
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

import numpy as np

__all__ = ["WrongAnswer", "checker", "require", "as_number", "as_array", "call_reader",
           "correct"]

Check = TypeVar("Check", bound=Callable[..., None])

# The running checker's arguments as the reader's cell wrote them: {parameter: source text}.
_WRITTEN: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("written",
                                                                                  default=None)


class WrongAnswer(AssertionError):
    """The answer passed to a checker is not right; the message says what to look at."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows for this exception: the hint alone. A traceback would show the
        checker's source around the failing line, and so the answer. nbval, nbclient and plain
        Python still see the exception (a failed cell)."""
        return [f"WrongAnswer: {self}"]


def checker(check: Check) -> Check:
    """Make ``check`` a checker: a blank (``...``) argument is refused with a hint to fill it
    in, and the hints of :func:`as_number`, :func:`as_array` and :func:`call_reader` name each
    argument as the reader's cell wrote it."""
    parameters = inspect.signature(check)

    @functools.wraps(check)
    def run(*args: Any, **kwargs: Any) -> None:
        written = _written_arguments(sys._getframe(1), check.__name__, list(parameters.parameters))
        for name, value in parameters.bind(*args, **kwargs).arguments.items():
            require(value is not ...,
                    f"{written.get(name, name)} is still blank: replace the `...` with your "
                    "answer, then run the cell again")
        token = _WRITTEN.set(written)
        try:
            check(*args, **kwargs)
        finally:
            _WRITTEN.reset(token)

    return run  # type: ignore[return-value]


def _written_arguments(caller: FrameType, name: str, parameters: list[str]) -> dict[str, str]:
    """The source text of each argument of the call to ``name`` on the caller's current line
    (a notebook cell's source is in linecache); {} where it cannot be found."""
    source = "".join(linecache.getlines(caller.f_code.co_filename))
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == name
                and node.lineno <= caller.f_lineno <= (node.end_lineno or node.lineno)):
            nodes = dict(zip(parameters, node.args, strict=False))
            nodes.update({kw.arg: kw.value for kw in node.keywords if kw.arg})
            return {p: ast.get_source_segment(source, n) or p for p, n in nodes.items()}
    return {}


def _shown(what: str) -> str:
    """``what`` (a checker's parameter) as the reader's cell wrote it."""
    return (_WRITTEN.get() or {}).get(what, what)


def require(condition: Any, hint: str) -> None:
    """Raise :class:`WrongAnswer` with ``hint`` unless ``condition`` holds."""
    if not condition:
        raise WrongAnswer(hint)


def as_number(value: Any, what: str) -> float:
    """``value`` as a finite Python float, or :class:`WrongAnswer` naming ``what``."""
    try:
        number = float(np.asarray(value).item()) if np.ndim(value) == 0 else math.nan
    except (TypeError, ValueError):
        number = math.nan
    require(math.isfinite(number), f"{_shown(what)} should be one finite number, not {value!r}")
    return number


def as_array(value: Any, what: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``value`` as a finite float64 array (of ``shape`` if given), or :class:`WrongAnswer`."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise WrongAnswer(f"{_shown(what)} should be an array of numbers, not {value!r}") from None
    require(shape is None or array.shape == tuple(shape),
            f"{_shown(what)} should have shape {tuple(shape or ())}, not {array.shape}")
    require(np.all(np.isfinite(array)), f"{_shown(what)} should hold finite numbers")
    return array


def call_reader(f: Any, *args: Any, what: str, **kwargs: Any) -> Any:
    """Call a function the reader wrote; a crash is a wrong answer that names its cause.

    Floating-point warnings are silenced: an overflow the function handles (or not) shows in
    what it returns, which the checker then judges.
    """
    require(callable(f), f"pass the function {_shown(what)} itself, not a value")
    try:
        with np.errstate(all="ignore"):
            return f(*args, **kwargs)
    except WrongAnswer:
        raise
    except Exception as e:  # noqa: BLE001 - any error in the reader's code is reported
        raise WrongAnswer(f"{what} raised {type(e).__name__}: {e}") from None


def correct(message: str) -> None:
    """Print the confirmation a right answer gets."""
    print(f"Correct: {message}")
