"""Every public function and argument of celib.info, celib.targets and celib.calibration, fed a
bad value (issue 20): wrong type, wrong shape, out of range, non-finite, None, a bool where a
number is expected, a ragged list.

Each row asserts the exception's type and that its message names the argument (a class index
out of range is an IndexError naming the value and the range instead, as in torch); no row may
pass silently, crash with another exception, or show numpy's or Python's own message.
``test_every_public_argument_is_in_the_table`` compares the table with each module's
``__all__`` and each function's signature, so a new public function or argument cannot be
forgotten.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from celib import calibration, info, targets

MODULES = (info, targets, calibration)

# Names in __all__ that take no arguments of their own, with the reason they are not rows.
EXEMPT = {
    "celib.targets.TargetSummary": "a result, made by check_targets (its fields are not checked)",
    "celib.targets.TargetWarning": "a warning category",
    "celib.calibration.ReliabilityBins": "a result, made by reliability_bins; its one method "
                                         "with an argument, error(norm), is a row",
    "celib.calibration.MAX_BINS": "a constant",
    "celib.calibration.BrierDecomposition": "a result, made by brier_decomposition; its "
                                            "properties take no arguments",
    "celib.calibration.Recalibration": "a result, made by fit_histogram_binning and "
                                       "fit_isotonic; its one method, apply(probs), is a row",
}

# numpy's and Python's own messages: a user reading one does not learn which argument was wrong.
INTERNAL_MESSAGES = (
    "setting an array element with a sequence", "inhomogeneous", "cannot reshape",
    "Cannot cast", "could not be broadcast", "cannot be interpreted as an integer",
    "unsupported operand", "not supported between instances", "truth value of an array",
    "object of type", "could not convert", "is not subscriptable", "has no attribute",
)

P2 = [0.5, 0.5]
PROBS = np.array([[0.7, 0.3], [0.2, 0.8]])
LABELS = np.array([0, 1])
LOGITS = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
LOGIT_LABELS = np.array([0, 1, 1])
RAGGED = [[0.5, 0.5], [1.0]]

# One valid call per public callable, by keyword: each row replaces one argument.
VALID: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "celib.info.entropy": (info.entropy, {"p": P2, "axis": -1, "base": None}),
    "celib.info.cross_entropy": (info.cross_entropy, {"p": P2, "q": P2, "axis": -1,
                                                      "base": None}),
    "celib.info.kl_divergence": (info.kl_divergence, {"p": P2, "q": P2, "axis": -1,
                                                      "base": None}),
    "celib.targets.check_targets": (targets.check_targets, {
        "target": [0, 1, 2], "num_classes": 3, "input": np.zeros((3, 3)), "ignore_index": -100,
        "warn_missing": True}),
    "celib.calibration.reliability_bins": (calibration.reliability_bins, {
        "probs": PROBS, "labels": LABELS, "n_bins": 15, "strategy": "uniform"}),
    "celib.calibration.expected_calibration_error": (calibration.expected_calibration_error, {
        "probs": PROBS, "labels": LABELS, "n_bins": 15, "norm": "l1", "strategy": "uniform"}),
    "celib.calibration.brier_score": (calibration.brier_score, {"probs": PROBS,
                                                                "labels": LABELS}),
    "celib.calibration.fit_temperature": (calibration.fit_temperature, {
        "logits": LOGITS, "labels": LOGIT_LABELS, "rtol": 1e-10}),
    "celib.calibration.focal_loss": (calibration.focal_loss, {
        "input": np.zeros((2, 3)), "target": np.array([0, 1]), "gamma": 2.0, "alpha": None,
        "reduction": "mean"}),
    "celib.calibration.focal_loss_grad": (calibration.focal_loss_grad, {
        "input": np.zeros((2, 3)), "target": np.array([0, 1]), "gamma": 2.0, "alpha": None,
        "reduction": "mean"}),
    "celib.calibration.ReliabilityBins.error": (
        calibration.reliability_bins(PROBS, LABELS).error, {"norm": "l1"}),
    "celib.calibration.consistency_null_ece": (calibration.consistency_null_ece, {
        "probs": PROBS, "n_bins": 15, "reps": 5, "seed": 0, "strategy": "uniform"}),
    "celib.calibration.classwise_ece": (calibration.classwise_ece, {
        "probs": PROBS, "labels": LABELS, "n_bins": 15}),
    "celib.calibration.debiased_calibration_error": (calibration.debiased_calibration_error, {
        "probs": PROBS, "labels": LABELS, "n_bins": 15, "strategy": "quantile",
        "squared": False}),
    "celib.calibration.brier_decomposition": (calibration.brier_decomposition, {
        "probs": PROBS, "labels": LABELS, "n_bins": 15}),
    "celib.calibration.fit_histogram_binning": (calibration.fit_histogram_binning, {
        "probs": PROBS, "labels": LABELS, "n_bins": 15}),
    "celib.calibration.fit_isotonic": (calibration.fit_isotonic, {
        "probs": PROBS, "labels": LABELS}),
    "celib.calibration.Recalibration.apply": (
        calibration.fit_histogram_binning(PROBS, LABELS).apply, {"probs": PROBS}),
}


@dataclass(frozen=True)
class Bad:
    """One bad argument: the value, the exception it must raise, and the word the message must
    hold (the argument's name unless said otherwise)."""

    argument: str
    value: Any
    error: type[Exception]
    names: str | None = None
    why: str = ""


def _distribution_rows(arg: str) -> list[Bad]:
    return [
        Bad(arg, RAGGED, ValueError, why="ragged"),
        Bad(arg, None, ValueError, why="None"),
        Bad(arg, "ab", ValueError, why="string"),
        Bad(arg, True, ValueError, why="bool"),
        Bad(arg, [1 + 0j, 0j], ValueError, why="complex"),
        Bad(arg, 1.0, ValueError, why="0-d"),
        Bad(arg, [0.5, np.nan], ValueError, why="nan"),
        Bad(arg, [np.inf, 0.0], ValueError, why="inf"),
        Bad(arg, [1.5, -0.5], ValueError, why="negative"),
        Bad(arg, [0.5, 0.6], ValueError, why="sum is not 1"),
        Bad(arg, [2.0, 1.0], ValueError, why="logits"),
    ]


def _axis_and_base_rows() -> list[Bad]:
    return [
        Bad("axis", 1.0, TypeError, why="float"), Bad("axis", "0", TypeError, why="string"),
        Bad("axis", None, TypeError, why="None"), Bad("axis", True, TypeError, why="bool"),
        Bad("axis", 1, ValueError, why="out of range"),
        Bad("axis", -2, ValueError, why="out of range"),
        Bad("base", np.nan, ValueError), Bad("base", np.inf, ValueError),
        Bad("base", 1, ValueError), Bad("base", 1.0, ValueError), Bad("base", 0, ValueError),
        Bad("base", -2.0, ValueError), Bad("base", True, TypeError),
        Bad("base", "2", TypeError), Bad("base", 2j, TypeError), Bad("base", [2], TypeError),
    ]


def _pair_rows() -> list[Bad]:
    return (_distribution_rows("p") + _distribution_rows("q") + _axis_and_base_rows()
            + [Bad("q", [1 / 3] * 3, ValueError, names="p and q", why="shape mismatch")])


def _check_targets_rows() -> list[Bad]:
    target_rows = [
        Bad("target", [[0, 1], [2]], ValueError, why="ragged"),
        Bad("target", None, ValueError), Bad("target", ["a", "b", "c"], ValueError),
        Bad("target", [True, False, True], ValueError),
        Bad("target", [0.5, 1.0, 2.0], ValueError), Bad("target", [np.nan, 1.0, 2.0], ValueError),
        Bad("target", [np.inf, 1.0, 2.0], ValueError),
        Bad("target", [0, 1, 3], IndexError, names="out of bounds"),
        Bad("target", [0, 1, -1], IndexError, names="out of bounds"),
        Bad("target", [0, 1, 1e30], ValueError, names="out of bounds", why="float, too large"),
        Bad("target", np.array([0, 1, 2], np.int32), ValueError),
        Bad("target", np.array([0, 1, 2], np.uint64), ValueError),
        Bad("target", [0, 1], ValueError, why="shape"),
        Bad("target", [[0], [1], [2]], ValueError, why="trailing axis"),
        Bad("target", np.eye(3, dtype=np.int64), ValueError, why="one-hot"),
    ]
    return target_rows + [
        Bad("num_classes", 0, ValueError), Bad("num_classes", -1, ValueError),
        Bad("num_classes", 2**70, ValueError), Bad("num_classes", 2**63 - 1, ValueError),
        Bad("num_classes", 4, ValueError, why="not the input's C"),
        Bad("num_classes", True, TypeError), Bad("num_classes", 3.0, TypeError),
        Bad("num_classes", np.nan, TypeError), Bad("num_classes", "3", TypeError),
        Bad("num_classes", None, TypeError),
        Bad("input", 3.0, ValueError, why="0-d"), Bad("input", RAGGED, ValueError),
        Bad("input", np.zeros((3, 4)), ValueError, why="C"),
        Bad("input", np.zeros((2, 3)), ValueError, why="batch"),
        Bad("input", np.zeros((3, 3, 2)), ValueError, why="rank"),
        Bad("ignore_index", True, TypeError), Bad("ignore_index", 1.0, TypeError),
        Bad("ignore_index", np.nan, TypeError), Bad("ignore_index", "x", TypeError),
        Bad("ignore_index", None, TypeError),
        Bad("warn_missing", 1, TypeError), Bad("warn_missing", None, TypeError),
        Bad("warn_missing", "no", TypeError),
    ]


def _probs_rows() -> list[Bad]:
    return [
        Bad("probs", [[0.7, 0.3], [0.2]], ValueError), Bad("probs", None, ValueError),
        Bad("probs", "x", ValueError), Bad("probs", True, ValueError),
        Bad("probs", [0.7, 0.3], ValueError, why="1-D"),
        Bad("probs", np.zeros((0, 2)), ValueError, why="empty"),
        Bad("probs", [[np.nan, 0.5], [0.2, 0.8]], ValueError),
        Bad("probs", [[np.inf, 0.0], [0.2, 0.8]], ValueError),
        Bad("probs", [[2.0, -1.0], [0.2, 0.8]], ValueError, why="logits"),
        Bad("probs", [[0.5, 0.4], [0.2, 0.8]], ValueError, why="sum"),
        Bad("probs", PROBS.astype(complex), ValueError),
    ]


def _labels_rows(n: int, c: int) -> list[Bad]:
    return [
        Bad("labels", [[0], [1, 0]], ValueError, why="ragged"),
        Bad("labels", None, ValueError), Bad("labels", ["a"] * n, ValueError),
        Bad("labels", [True] * n, ValueError), Bad("labels", [0.0] * n, ValueError),
        Bad("labels", [0] * (n + 1), ValueError, why="shape"),
        Bad("labels", [c] + [0] * (n - 1), IndexError, names="out of bounds"),
        Bad("labels", [-1] + [0] * (n - 1), IndexError, names="out of bounds"),
        Bad("labels", np.array([2**64 - 1] + [0] * (n - 1), np.uint64), IndexError,
            names="out of bounds"),
    ]


def _bins_rows() -> list[Bad]:
    return [
        Bad("n_bins", 0, ValueError), Bad("n_bins", -1, ValueError),
        Bad("n_bins", 10**9, ValueError), Bad("n_bins", 2.5, TypeError),
        Bad("n_bins", 15.0, TypeError), Bad("n_bins", np.nan, TypeError),
        Bad("n_bins", True, TypeError), Bad("n_bins", "15", TypeError),
        Bad("n_bins", None, TypeError),
        Bad("strategy", "equal", ValueError), Bad("strategy", None, ValueError),
        Bad("strategy", ["uniform"], ValueError), Bad("strategy", 1, ValueError),
    ]


def _n_bins_rows() -> list[Bad]:
    """The n_bins rows alone, for the functions without a strategy argument."""
    return [bad for bad in _bins_rows() if bad.argument == "n_bins"]


def _null_rows() -> list[Bad]:
    return [
        Bad("reps", 0, ValueError), Bad("reps", 10**7, ValueError), Bad("reps", 2.0, TypeError),
        Bad("reps", True, TypeError), Bad("reps", "5", TypeError), Bad("reps", None, TypeError),
        Bad("seed", -1, ValueError), Bad("seed", 1.5, TypeError), Bad("seed", True, TypeError),
        Bad("seed", None, TypeError),
    ]


SQUARED_ROWS = [Bad("squared", 1, TypeError), Bad("squared", None, TypeError),
                Bad("squared", "yes", TypeError)]

NORM_ROWS = [Bad("norm", "L1", ValueError), Bad("norm", None, ValueError),
             Bad("norm", np.array(["l1", "l2"]), ValueError), Bad("norm", 1, ValueError)]


def _fit_temperature_rows() -> list[Bad]:
    return _labels_rows(3, 2) + [
        Bad("logits", [[1.0, 0.0], [0.0]], ValueError), Bad("logits", None, ValueError),
        Bad("logits", "x", ValueError), Bad("logits", [[True, False]] * 3, ValueError),
        Bad("logits", np.zeros(3), ValueError, why="1-D"),
        Bad("logits", np.zeros((3, 1)), ValueError, names="classes", why="C = 1"),
        Bad("logits", [[np.inf, 0.0], [0.0, 1.0], [1.0, 0.0]], ValueError),
        Bad("logits", [[np.nan, 0.0], [0.0, 1.0], [1.0, 0.0]], ValueError),
        Bad("rtol", 0.0, ValueError), Bad("rtol", -1.0, ValueError), Bad("rtol", 1.0, ValueError),
        Bad("rtol", np.nan, ValueError), Bad("rtol", np.inf, ValueError),
        Bad("rtol", True, TypeError), Bad("rtol", "1e-6", TypeError),
        Bad("rtol", None, TypeError),
    ]


def _focal_rows() -> list[Bad]:
    return [
        Bad("input", [[0.0, 0.0, 0.0], [0.0]], ValueError), Bad("input", None, ValueError),
        Bad("input", "x", ValueError), Bad("input", np.zeros((2, 3), bool), ValueError),
        Bad("input", np.zeros((2, 3), np.int64), ValueError),
        Bad("input", 0.0, ValueError, why="0-d"),
        Bad("input", np.zeros((3, 3)), ValueError, names="target", why="batch"),
        Bad("target", [[0, 1], [2]], ValueError), Bad("target", None, ValueError),
        Bad("target", [0.0, 1.0], ValueError), Bad("target", np.array([0, 1], np.int32),
                                                      ValueError),
        Bad("target", [True, False], ValueError), Bad("target", [0, 1, 2], ValueError),
        Bad("target", [0, 3], IndexError, names="out of bounds"),
        Bad("target", [0, -1], IndexError, names="out of bounds"),
        Bad("gamma", -1.0, ValueError), Bad("gamma", np.inf, ValueError),
        Bad("gamma", np.nan, ValueError), Bad("gamma", True, TypeError),
        Bad("gamma", "2", TypeError), Bad("gamma", None, TypeError),
        Bad("alpha", 0.25, ValueError), Bad("alpha", [1.0, 1.0], ValueError),
        Bad("alpha", [1.0, -1.0, 1.0], ValueError), Bad("alpha", [1.0, np.nan, 1.0], ValueError),
        Bad("alpha", [1.0, np.inf, 1.0], ValueError), Bad("alpha", [[1.0], [1.0, 1.0]],
                                                           ValueError),
        Bad("alpha", ["a", "b", "c"], ValueError), Bad("alpha", [True, False, True], ValueError),
        Bad("reduction", "avg", ValueError), Bad("reduction", None, ValueError),
        Bad("reduction", True, ValueError),
    ]


# longdouble (float128 on x86 Linux) is refused everywhere in celib with a TypeError; where it
# is float64 (Windows, some ARM) there is nothing to refuse.
WIDE = np.dtype(np.longdouble) != np.dtype(np.float64)


def _longdouble_rows(value: Any, *arguments: str) -> list[Bad]:
    return [Bad(a, np.asarray(value, np.longdouble), TypeError, why="longdouble")
            for a in arguments] if WIDE else []


TABLE: dict[str, list[Bad]] = {
    "celib.info.entropy": (_distribution_rows("p") + _axis_and_base_rows()
                           + _longdouble_rows(P2, "p")),
    "celib.info.cross_entropy": _pair_rows() + _longdouble_rows(P2, "p", "q"),
    "celib.info.kl_divergence": _pair_rows() + _longdouble_rows(P2, "p", "q"),
    "celib.targets.check_targets": _check_targets_rows(),
    "celib.calibration.reliability_bins": _probs_rows() + _labels_rows(2, 2) + _bins_rows(),
    "celib.calibration.expected_calibration_error": (_probs_rows() + _labels_rows(2, 2)
                                                     + _bins_rows() + NORM_ROWS),
    "celib.calibration.brier_score": (_probs_rows() + _labels_rows(2, 2)
                                      + _longdouble_rows(PROBS, "probs")),
    "celib.calibration.fit_temperature": (_fit_temperature_rows()
                                          + _longdouble_rows(LOGITS, "logits")),
    "celib.calibration.focal_loss": (_focal_rows() + _longdouble_rows(np.zeros((2, 3)), "input")
                                     + _longdouble_rows(np.ones(3), "alpha")),
    "celib.calibration.focal_loss_grad": (_focal_rows()
                                          + _longdouble_rows(np.zeros((2, 3)), "input")
                                          + _longdouble_rows(np.ones(3), "alpha")),
    "celib.calibration.ReliabilityBins.error": NORM_ROWS,
    "celib.calibration.consistency_null_ece": (_probs_rows() + _bins_rows() + _null_rows()
                                               + _longdouble_rows(PROBS, "probs")),
    "celib.calibration.classwise_ece": (_probs_rows() + _labels_rows(2, 2) + _n_bins_rows()
                                        + _longdouble_rows(PROBS, "probs")),
    "celib.calibration.debiased_calibration_error": (_probs_rows() + _labels_rows(2, 2)
                                                     + _bins_rows() + SQUARED_ROWS),
    "celib.calibration.brier_decomposition": (_probs_rows() + _labels_rows(2, 2)
                                              + _n_bins_rows()),
    "celib.calibration.fit_histogram_binning": (_probs_rows() + _labels_rows(2, 2)
                                                + _n_bins_rows()),
    "celib.calibration.fit_isotonic": (_probs_rows() + _labels_rows(2, 2)
                                       + _longdouble_rows(PROBS, "probs")),
    "celib.calibration.Recalibration.apply": (
        _probs_rows() + [Bad("probs", np.full((2, 3), 1 / 3), ValueError, why="C")]),
}

CASES = [(name, bad) for name, rows in TABLE.items() for bad in rows]


def _case_id(case: tuple[str, Bad]) -> str:
    name, bad = case
    why = f"-{bad.why}" if bad.why else ""
    return f"{name.split('.')[-1]}-{bad.argument}={bad.value!r:.30}{why}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_bad_argument_is_refused_clearly(case):
    name, bad = case
    fn, valid = VALID[name]
    with pytest.raises(Exception) as excinfo:
        fn(**{**valid, bad.argument: bad.value})
    error = excinfo.value
    assert type(error) is bad.error, f"{type(error).__name__}: {error}"
    message = str(error)
    word = bad.names or bad.argument
    assert re.search(rf"(?<![\w.]){re.escape(word)}", message, re.IGNORECASE), message
    for internal in INTERNAL_MESSAGES:
        assert internal not in message, message


@pytest.mark.parametrize("name", VALID)
def test_the_valid_calls_are_valid(name):
    # each row changes one argument of these calls: they must succeed as they are
    fn, valid = VALID[name]
    fn(**valid)


def _public_callables() -> dict[str, Any]:
    """Every public name of the modules, and every public method of their public classes."""
    found = {}
    for module in MODULES:
        for attribute in module.__all__:
            obj = getattr(module, attribute)
            found[f"{module.__name__}.{attribute}"] = obj
            if inspect.isclass(obj):
                for method, member in vars(obj).items():
                    if callable(member) and not method.startswith("_"):
                        found[f"{module.__name__}.{attribute}.{method}"] = member
    return found


def _arguments(obj: Any) -> set[str]:
    parameters = inspect.signature(obj).parameters
    return {a for a in parameters if a != "self"}


def test_every_public_argument_is_in_the_table():
    public = _public_callables()
    for name, obj in public.items():
        if name in EXEMPT:
            continue
        assert name in TABLE, f"{name} is public but has no rows in the bad-argument table"
        covered = {bad.argument for bad in TABLE[name]}
        missing = _arguments(obj) - covered
        assert not missing, f"{name}: no bad-argument row for {sorted(missing)}"
    stale = set(TABLE) - set(public)
    assert not stale, f"rows for names that are not public: {sorted(stale)}"
    assert set(EXEMPT) <= set(public), f"exempt but not public: {set(EXEMPT) - set(public)}"
