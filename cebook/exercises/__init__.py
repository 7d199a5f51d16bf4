"""Exercise checkers, one module per chapter (``cebook.exercises.ch01`` ...).

Every checker is called with the reader's answer. A right answer prints a one-line
confirmation; any wrong answer, including one of the wrong type or shape (``None`` for an
exercise left blank), raises :class:`WrongAnswer` with a hint that does not give the answer
away. ``tests/test_exercises.py`` runs every checker against its solution and against at least
two plausible wrong answers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["WrongAnswer", "require", "as_number", "as_array", "call_reader", "correct"]


class WrongAnswer(AssertionError):
    """The answer passed to a checker is not right; the message says what to look at."""


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
    require(math.isfinite(number), f"{what} should be one finite number, not {value!r}")
    return number


def as_array(value: Any, what: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``value`` as a finite float64 array (of ``shape`` if given), or :class:`WrongAnswer`."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise WrongAnswer(f"{what} should be an array of numbers, not {value!r}") from None
    require(shape is None or array.shape == tuple(shape),
            f"{what} should have shape {tuple(shape or ())}, not {array.shape}")
    require(np.all(np.isfinite(array)), f"{what} should hold finite numbers")
    return array


def call_reader(f: Any, *args: Any, what: str, **kwargs: Any) -> Any:
    """Call a function the reader wrote; a crash is a wrong answer that names its cause.

    Floating-point warnings are silenced: an overflow the function handles (or not) shows in
    what it returns, which the checker then judges.
    """
    require(callable(f), f"pass the function {what} itself, not a value")
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
