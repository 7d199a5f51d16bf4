"""Checkers for the exercises of chapter 5, Numerical stability.

Each checker recomputes what it needs (with numpy, and mpmath references and errors in ulps from
:mod:`celib.testing`) and depends on nothing the page defines.
"""

from __future__ import annotations


import mpmath
import numpy as np

import celib.naive as naive
from celib.testing import exact_logsumexp, ulp_error

from . import as_number, call_reader, checker, correct, require, WrongAnswer

__all__ = ["check_ex1", "check_ex2", "check_ex3", "check_ex4"]



@checker
def check_ex1(d) -> None:
    """Exercise 1: the largest float64 d for which naive.log_softmax([0, -d])[1] is finite."""
    d = np.float64(as_number(d, "d"))
    require(d > 0, "d is the gap between the logits 0 and -d: a positive number")
    with np.errstate(divide="ignore", under="ignore"):
        at_d = naive.log_softmax(np.array([0.0, -d]))[1]
        beyond = naive.log_softmax(np.array([0.0, -np.nextafter(d, np.inf)]))[1]
    require(np.isfinite(at_d), f"log_softmax is already -inf at d = {float(d)!r}")
    require(np.isinf(beyond), f"d = {float(d)!r} is not the largest: the next float still "
            f"gives a finite log-probability; look past the subnormal numbers")
    correct(f"finite ({at_d:.4f}) at d = {d:.10g}, -inf just beyond.")


# The maximum is not always first: a shift by x[0] gives exp(1000) = inf for [0, 1000], and
# for [-40, 0] loses every digit to the cancellation -40 + 40.000...
_EX2_CASES = [[1000.0, 1000.0], [-1000.0, -1000.5], [0.0, -40.0], [0.0, 1000.0],
              [-40.0, 0.0], [3.0, 1.0, -2.0], [-5.0, -45.0, -50.0, -5.0],
              [0.3, -1.2, 0.8, 2.0, -0.5, 0.1, 1.1], [-50.0, -1.0, -45.0, -3.0]]


@checker
def check_ex2(my_logsumexp) -> None:
    """Exercise 2: a float64 log-sum-exp that is finite for huge inputs and accurate for tiny
    results (relative error below 4e-16 against mpmath)."""
    for case in _EX2_CASES:
        with np.errstate(all="ignore"):
            got = call_reader(my_logsumexp, np.array(case), what="my_logsumexp")
        require(not (isinstance(got, (float, np.floating)) and np.isinf(got)),
                f"my_logsumexp({case}) = {got}: check the shift; it must make every exponent "
                f"<= 0, wherever the maximum is in x")
        got = as_number(got, f"my_logsumexp({case})")
        exact = exact_logsumexp(case)
        with mpmath.workdps(50):
            rel = float(abs((mpmath.mpf(got) - exact) / exact))
        require(rel < 4e-16, f"for {case}: got {got!r}, relative error {rel:.1e}; "
                + ("is 1 + s rounded before the log?" if case == [0.0, -40.0] else
                   "check the shift: it must make every exponent <= 0, wherever the maximum "
                   "is in x"))
    correct(f"accurate to a few 1e-16 on all {len(_EX2_CASES)} cases.")


@checker
def check_ex3(log_sigmoid) -> None:
    """Exercise 3: log sigmoid(x) for a float64 array, within 2 ulps from x = -800 to 800."""
    xs = np.array([-800.0, -40.0, -1.0, 0.0, 0.5, 40.0, 800.0])
    with np.errstate(all="ignore"):
        got = call_reader(log_sigmoid, xs.copy(), what="log_sigmoid")
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        raise WrongAnswer("log_sigmoid should return an array of numbers") from None
    require(got.shape == xs.shape, f"log_sigmoid should return shape {xs.shape}, not {got.shape}")
    for x, g in zip(xs, got, strict=True):
        with mpmath.workdps(50):
            exact = -mpmath.log1p(mpmath.exp(-mpmath.mpf(x)))
        require(np.isfinite(g), f"log_sigmoid({x}) = {g}: not finite")
        require(ulp_error(g, exact, np.float64) <= 2,
                f"log_sigmoid({x}) = {float(g)!r}, but the exact value is "
                f"{mpmath.nstr(exact, 6)}")
    correct("within 2 ulps from x = -800 to 800.")


@checker
def check_ex4(S) -> None:
    """Exercise 4: the smallest power of two S for which float16(1e-8 * S) is normal."""
    S = as_number(S, "S")
    tiny = np.finfo(np.float16).smallest_normal
    require(S >= 1 and np.frexp(S)[0] == 0.5, f"{S} is not a power of two (1, 2, 4, ...)")
    require(np.float16(1e-8 * S) >= tiny,
            f"1e-8 * {S:g} = {float(np.float16(1e-8 * S)):.3e} in float16 is still subnormal")
    require(np.float16(1e-8 * S / 2) < tiny, f"{S / 2:g} already works: {S:g} is not the smallest")
    correct(f"S = 2^{np.frexp(S)[1] - 1} = {int(S)} maps 1e-8 to "
            f"{float(np.float16(1e-8 * S)):.4e}.")
