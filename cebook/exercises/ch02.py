"""Checkers for the exercises of chapter 2, Softmax.

Each checker recomputes what it needs and depends on nothing the page defines. The checkers
that take a function run it on inputs chosen to expose the usual mistakes: no shift at all (also
in ``np.longdouble``, whose range ends near 11356 on x86), one shift for the whole batch instead
of one per row, a shift along the wrong axis, a shift by the mean instead of the maximum (which
overflows once the logits of a row spread by more than about 1420), ``log(softmax(z))``, and a
computation in float32, right to about 7 digits only.
"""

from __future__ import annotations


import numpy as np

from . import as_array, as_number, call_reader, checker, correct, require, WrongAnswer

__all__ = ["check_ex1", "check_ex2", "check_ex3", "check_ex4"]



def _log_softmax(z: np.ndarray, axis: int) -> np.ndarray:
    """Reference, float64, one max-shift per slice along ``axis``."""
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=axis, keepdims=True)
    return (z - m) - np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))


_MEAN_HINT = ("any shift leaves the softmax unchanged, but only the maximum makes every exponent "
              "<= 0: with the mean, e^(z - mean) overflows once a row spreads by about 1420")
_FLOAT32_HINT = ("right to about 7 digits only: is it computed in float32? Keep the float64 input "
                 "in float64")

# (logits, axis, what a wrong answer there usually means)
_CASES = [
    (np.random.default_rng(123).normal(0.0, 5.0, size=(5,)), -1, ""),
    (np.random.default_rng(124).normal(0.0, 5.0, size=(4, 3)), 1, ""),
    (np.random.default_rng(125).normal(0.0, 5.0, size=(4, 3)), 0, "is the axis argument used?"),
    (np.random.default_rng(126).normal(0.0, 5.0, size=(2, 3, 4)), 1, "is the axis argument used?"),
    (np.array([1000.0, 999.0]), -1, "large logits overflow: shift them"),
    (np.array([[1000.0, 999.0], [0.0, -1.0]]), 1,
     "each row needs its own shift: one maximum for the whole batch empties the other rows"),
    (np.array([[1000.0, 0.0, 3.0], [999.0, -1.0, 5.0], [0.0, -900.0, 4.0]]), 0,
     "the shift must be taken along the axis you normalize (keepdims=True)"),
    (np.array([[1000.0, 999.0, 998.0], [-1.0, 0.0, 1.0], [5.0, 2.0, 900.0]]), 1,
     "the shift must broadcast back along the right axis (keepdims=True)"),
    (np.array([[20000.0, 19999.0], [-20000.0, -20001.0]]), 1,
     "a wider float type only moves the overflow: shift the logits"),
    # spreads of 2000: z minus the mean of a row still reaches 1000 or 1333 > 709.78
    (np.array([0.0, 2000.0]), -1, _MEAN_HINT),
    (np.array([[2000.0, 0.0, -1.0], [5.0, 4.0, 3.0]]), 1, _MEAN_HINT),
]


def _check_rows(got, expected, what: str, hint: str, rtol: float, atol: float = 1e-300,
                atol32: float = 1e-37) -> None:
    """``got`` must be finite and close to ``expected``. Where it is not, but is as close as a
    float32 computation gets (relative 1e-5, or ``atol32``), the hint says so rather than
    naming the mistake the case was built for."""
    try:
        got = np.asarray(got)
        low_precision = got.dtype in (np.float16, np.float32)
        got = got.astype(np.float64)
    except (TypeError, ValueError):
        raise WrongAnswer(f"{what} should return an array of numbers") from None
    require(got.shape == expected.shape, f"{what} should return shape {expected.shape}, "
            f"not {got.shape}")
    require(np.all(np.isfinite(got)), f"{what} returned inf or nan; {hint or 'look for it'}")
    if np.allclose(got, expected, rtol=rtol, atol=atol):
        return
    if low_precision or np.allclose(got, expected, rtol=1e-5, atol=atol32):
        raise WrongAnswer(f"{what} is {_FLOAT32_HINT}")
    raise WrongAnswer(f"{what} is wrong; {hint or 'compare with the definition'}")


@checker
def check_ex1(my_softmax) -> None:
    """Exercise 1: ``my_softmax(z, axis=-1)``, stable for any shape and axis."""
    for z, axis, hint in _CASES:
        got = call_reader(my_softmax, z.copy(), axis=axis, what="my_softmax")
        expected = np.exp(_log_softmax(z, axis))
        _check_rows(got, expected, f"my_softmax on shape {z.shape}, axis={axis}", hint, 1e-10)
    correct("right on every shape and axis, and no overflow or nan for large logits.")


def _softmax_top(T: float) -> float:
    z = np.array([2.0, 1.0, 0.1]) / T
    return float(np.exp(_log_softmax(z, 0))[0])


def _check_temperature(T: float, what: str, scale: float) -> None:
    """``T`` must give the top class 0.9 for the logits ``scale * (2, 1, 0.1)``."""
    require(T > 0, f"a temperature is positive, not {what} = {T}")
    top = _softmax_top(T / scale)
    require(abs(top - 0.9) < 1e-6,
            f"at {what} = {T:.4f} the top probability is {top:.6f}, not 0.9 (the logits are "
            f"divided by T)")


@checker
def check_ex2(T, T_shifted, T_doubled) -> None:
    """Exercise 2: the temperature at which softmax(z / T) gives the top class 0.9, for
    z = (2, 1, 0.1), for z + 5 and for 2z."""
    T = as_number(T, "T")
    T_shifted = as_number(T_shifted, "T_shifted")
    T_doubled = as_number(T_doubled, "T_doubled")
    _check_temperature(T, "T", 1.0)
    require(abs(T_shifted - T) <= 1e-6 * T,
            f"T_shifted = {T_shifted:.4f}: adding 5 to every logit is a common shift; what does "
            "the softmax do with a common shift?")
    require(not abs(T_doubled - T / 2) <= 1e-6 * T,
            f"T_doubled = {T_doubled:.4f} sharpens the doubled logits further: 2z / T' equals "
            "z / T for which T'?")
    require(not abs(T_doubled - T) <= 1e-6 * T,
            f"T_doubled = {T_doubled:.4f} is the T of z: doubling the logits changes the "
            "distribution (scaling is not a shift)")
    _check_temperature(T_doubled, "T_doubled", 2.0)
    correct(f"T = {T:.4f}, the same for z + 5, and {T_doubled:.4f} = 2T for 2z: a temperature "
            "and the scale of the logits are one knob.")


@checker
def check_ex3(z_pair) -> None:
    """Exercise 3: a pair of logits whose softmax is (0.2, 0.8)."""
    z_pair = as_array(z_pair, "z_pair", shape=(2,))
    got = np.exp(_log_softmax(z_pair, 0))
    require(np.allclose(got, [0.2, 0.8], atol=1e-9),
            f"softmax({z_pair[0]:.4f}, {z_pair[1]:.4f}) = [{got[0]:.4f}, {got[1]:.4f}], "
            f"not [0.2, 0.8]")
    correct(f"softmax({z_pair[0]:.4f}, {z_pair[1]:.4f}) = [{got[0]:.4f}, {got[1]:.4f}]; "
            f"z1 - z0 = {z_pair[1] - z_pair[0]:.4f}.")


# (logits of shape (N, C), what a wrong answer there usually means)
_EX4_CASES = [
    (np.array([[1000.0, 999.0], [0.0, -1.0]]),
     "each row needs its own maximum: one maximum for the whole batch empties the other rows"),
    (np.array([[0.0, -1000.0, 3.0], [1000.0, 0.0, -5.0], [1e-3, 0.0, 2e-3],
               [-800.0, -800.0, -801.0]]),
     "a probability that underflows has log -inf: do not take the log of the softmax"),
    (np.array([[20000.0, 19999.0], [-20000.0, -20001.0]]),
     "a wider float type only moves the overflow: shift the logits"),
    (np.array([[1000.0, 999.0, 998.0], [-1.0, 0.0, 1.0], [5.0, 2.0, 900.0]]),
     "the maximum must be taken along axis 1 and broadcast back (keepdims=True)"),
    # spreads of 2000: z minus the mean of a row still reaches 1000 or 1000.5 > 709.78
    (np.array([[0.0, 2000.0], [2000.0, -1.0], [5.0, 4.0]]), _MEAN_HINT),
]


@checker
def check_ex4(my_log_softmax) -> None:
    """Exercise 4: ``my_log_softmax(z)`` for a batch (N, C), finite and accurate."""
    for z, hint in _EX4_CASES:
        got = call_reader(my_log_softmax, z.copy(), what="my_log_softmax")
        # z - (m + log s) may lose a few ulps of the largest logit: allowed
        atol = 8 * float(np.spacing(np.abs(z).max()))
        atol32 = 8 * float(np.spacing(np.float32(np.abs(z).max())))  # the same, in float32
        _check_rows(got, _log_softmax(z, 1), f"my_log_softmax on {z.shape[0]} rows", hint, 1e-12,
                    atol, atol32)
    correct("finite everywhere and equal to the log-softmax, row by row.")
