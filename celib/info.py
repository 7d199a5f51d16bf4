"""Entropy, cross-entropy and KL divergence of probability distributions.

Information theory's view of the loss (chapter 1: Entropy, book/01_entropy.ipynb): :math:`H(p)` is
the shortest average code length for symbols drawn from :math:`p`, :math:`H(p, q)` the average
length when the code was built for :math:`q`, and :math:`D_{KL}(p\\|q) = H(p, q) - H(p) \\ge 0` the
price of the wrong code. Natural logarithms (nats) by default; ``base=2`` gives bits.

Conventions: :math:`0 \\log 0 = 0` (an impossible symbol costs nothing), and :math:`q_c = 0`
where :math:`p_c > 0` gives ``inf`` (a symbol the code cannot express at all).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from numpy.typing import ArrayLike

from . import _checks

__all__ = ["entropy", "cross_entropy", "kl_divergence"]


def _numeric_dtype(a: np.ndarray, name: str) -> np.dtype:
    """The dtype computed in: floats as they are, integers as float64; anything else refused."""
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{name} must hold real probabilities, got dtype {a.dtype}")
    _checks.check_float_dtype(a, name)  # longdouble: a TypeError, as everywhere in celib
    if a.ndim == 0:
        raise ValueError(f"{name} must have an axis of outcomes, got a 0-d array")
    return a.dtype if a.dtype.kind == "f" else np.result_type(a.dtype, np.float64)


def _check_axis(axis: int, ndim: int) -> int:
    """``axis`` as an int in [-ndim, ndim) (an integer, not a bool or a float: ``axis=1.0`` is
    a TypeError, as in numpy), kept as given so that messages quote it."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"axis must be an integer (the axis of outcomes), got {axis!r} "
                        f"of type {type(axis).__name__}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for arrays of {ndim} dimensions: "
                         f"axis must be in [{-ndim}, {ndim})")
    return int(axis)


def _check_base(base: float | None) -> float | None:
    """The logarithm's base: None (nats), or a finite real number > 0 other than 1."""
    if base is None:
        return None
    if isinstance(base, (bool, np.bool_)) or not isinstance(base, numbers.Real):
        raise TypeError(f"base must be None or a real number (2 for bits), got {base!r} "
                        f"of type {type(base).__name__}")
    value = float(base)
    if not (math.isfinite(value) and value > 0 and value != 1):
        raise ValueError(f"base must be a finite number > 0 and not 1 (2 for bits), got {base!r}")
    return value


def _check_distribution(a: np.ndarray, axis: int, name: str) -> None:
    """Raise unless ``a`` holds probability distributions along ``axis``."""
    if np.any(np.isnan(a)) or np.any(a < 0):
        raise ValueError(f"{name} must be non-negative probabilities, got a negative or nan entry")
    sums = np.sum(a, axis=axis, dtype=np.float64)
    tolerance = max(1e-6, 10 * a.shape[axis] * float(np.finfo(a.dtype).eps))
    if np.any(np.abs(sums - 1) > tolerance):
        worst = float(np.asarray(sums).flat[np.argmax(np.abs(sums - 1))])
        raise ValueError(
            f"{name} must sum to 1 along axis {axis} (a probability distribution), but a sum is "
            f"{worst:.6g}; if these are logits, apply celib.functional.softmax first"
        )


def _distribution(p: ArrayLike, axis: int, name: str) -> tuple[np.ndarray, int]:
    """``p`` as floats holding probability distributions along ``axis``, and the axis."""
    a = _checks.as_array(p, name)
    a = a.astype(_numeric_dtype(a, name), copy=False)
    axis = _check_axis(axis, a.ndim)
    _check_distribution(a, axis, name)
    return a, axis


def _pair(p: ArrayLike, q: ArrayLike, axis: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``p`` and ``q`` broadcast to one shape, each checked as distributions along ``axis``
    of that shape (so a ``q`` broadcast along the outcomes is refused: it no longer sums to 1)."""
    pa, qa = _checks.as_array(p, "p"), _checks.as_array(q, "q")
    p_dtype, q_dtype = _numeric_dtype(pa, "p"), _numeric_dtype(qa, "q")
    try:
        shape = np.broadcast_shapes(pa.shape, qa.shape)
    except ValueError:
        raise ValueError(
            f"p and q must have the same shape (or shapes that broadcast), got p of shape "
            f"{pa.shape} and q of shape {qa.shape}"
        ) from None
    axis = _check_axis(axis, len(shape))
    pa = np.broadcast_to(pa.astype(p_dtype, copy=False), shape)
    qa = np.broadcast_to(qa.astype(q_dtype, copy=False), shape)
    _check_distribution(pa, axis, "p")
    _check_distribution(qa, axis, "q")
    return pa, qa, axis


def _in_base(nats: np.ndarray, base: float | None) -> np.ndarray:
    return nats if base is None else nats / np.log(base)


def _output(value: np.ndarray, dtype: np.dtype) -> np.ndarray | np.floating:
    value = np.asarray(value, dtype=dtype)
    return value[()] if value.ndim == 0 else value


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    """float16 is computed in float32 (as torch does on the CPU): a ratio p/q overflows float16
    as soon as q < p / 65504."""
    return np.result_type(dtype, np.float32)


def _log_ratio(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """:math:`\\log(p/q)` for p > 0, q >= 0: one rounding where p/q is a normal float, and
    log p - log q where the ratio overflows or underflows (q or p subnormal), so that a finite
    term is never turned into inf or -inf."""
    with np.errstate(divide="ignore", over="ignore", under="ignore", invalid="ignore"):
        ratio = p / q
        fallback = (q > 0) & ((ratio == 0) | np.isinf(ratio))
        log_ratio = np.log(ratio)
        if np.any(fallback):
            log_ratio = np.where(fallback, np.log(p) - np.log(np.where(fallback, q, 1)),
                                 log_ratio)
    return log_ratio


def entropy(p: ArrayLike, axis: int = -1, base: float | None = None) -> np.ndarray | np.floating:
    """Shannon entropy :math:`H(p) = -\\sum_c p_c \\log p_c`.

    Parameters
    ----------
    p : array_like
        Probabilities, non-negative and summing to 1 along ``axis``.
    axis : int, default -1
        The axis of outcomes.
    base : float, optional
        Logarithm base: None for nats, 2 for bits (:math:`H_2 = H / \\ln 2`); a finite real
        number > 0 other than 1.

    Returns
    -------
    numpy scalar or numpy.ndarray
        ``p``'s shape without ``axis``; between 0 and :math:`\\log C`.

    Raises
    ------
    ValueError
        ``p`` not probability distributions along ``axis``: negative or nan entries, sums
        that are not 1 (logits passed by mistake), a 0-d or ragged array, a dtype that is
        not real. An ``axis`` out of range; a ``base`` that is not finite, not > 0,
        or is 1.
    TypeError
        An ``axis`` that is not an integer (``1.0``, a bool), a ``base`` that is not a real
        number (a string, a bool), or a longdouble array (celib computes in float16, float32
        or float64, as torch does on the CPU).

    Notes
    -----
    Terms with :math:`p_c = 0` contribute 0. float16 is computed in float32 and rounded
    back, as torch does on the CPU. Explained in chapter 1 (Entropy, book/01_entropy.ipynb).

    Examples
    --------
    >>> from celib.info import entropy
    >>> float(entropy([0.5, 0.25, 0.125, 0.125], base=2))
    1.75
    >>> print(f"{entropy([0.1] * 10):.4f}")  # ln 10: the loss of a guessing 10-class model
    2.3026
    """
    log_base = _check_base(base)
    a, axis = _distribution(p, axis, "p")
    x = a.astype(_compute_dtype(a.dtype), copy=False)
    terms = np.where(x > 0, x * np.log(np.where(x > 0, x, 1)), 0)
    # 0.0 - x turns the -0.0 of a one-hot distribution (minus a sum of zeros) into 0.0.
    return _output(_in_base(0.0 - np.sum(terms, axis=axis), log_base), a.dtype)


def cross_entropy(p: ArrayLike, q: ArrayLike, axis: int = -1,
                  base: float | None = None) -> np.ndarray | np.floating:
    """Cross-entropy :math:`H(p, q) = -\\sum_c p_c \\log q_c` of two distributions.

    Not to be confused with :func:`celib.functional.cross_entropy`, the loss, which takes
    logits and a target; this one takes two probability distributions.

    Parameters
    ----------
    p : array_like
        The true distribution (the target), summing to 1 along ``axis``.
    q : array_like
        The model's distribution, same shape as ``p``, or a shape that broadcasts with it;
        both must be distributions along ``axis`` of the broadcast shape (so a ``q`` of one
        outcome is not stretched over several).
    axis : int, default -1
        The axis of outcomes.
    base : float, optional
        None for nats, 2 for bits.

    Returns
    -------
    numpy scalar or numpy.ndarray
        :math:`\\ge H(p)`, with equality iff ``q == p``; ``inf`` where some :math:`q_c = 0`
        while :math:`p_c > 0`.

    Raises
    ------
    ValueError
        ``p`` or ``q`` not probability distributions along ``axis``: negative or nan entries, sums
        that are not 1 (logits passed by mistake), a 0-d or ragged array, a dtype that is
        not real; shapes that do not broadcast. An ``axis`` out of range; a ``base`` that
        is not finite, not > 0, or is 1.
    TypeError
        An ``axis`` that is not an integer (``1.0``, a bool), a ``base`` that is not a real
        number (a string, a bool), or a longdouble array (celib computes in float16, float32
        or float64, as torch does on the CPU).

    Notes
    -----
    The average code length when symbols drawn from :math:`p` are coded with the code that is
    optimal for :math:`q`. With a one-hot :math:`p = e_y` it is :math:`-\\log q_y`: the loss of
    chapter 4 (Cross-entropy, book/04_cross_entropy.ipynb). Explained in chapter 1 (Entropy,
    book/01_entropy.ipynb).

    Examples
    --------
    >>> from celib.info import cross_entropy
    >>> float(cross_entropy([0.5, 0.25, 0.125, 0.125], [0.25] * 4, base=2))
    2.0
    >>> float(cross_entropy([1.0, 0.0], [0.0, 1.0]))
    inf
    """
    log_base = _check_base(base)
    pa, qa, axis = _pair(p, q, axis)
    dtype = np.result_type(pa.dtype, qa.dtype)
    x, y = pa.astype(_compute_dtype(dtype)), qa.astype(_compute_dtype(dtype))
    with np.errstate(divide="ignore", invalid="ignore"):  # log 0 = -inf; 0 * -inf is masked
        terms = np.where(x > 0, x * np.log(y), 0)
    return _output(_in_base(-np.sum(terms, axis=axis), log_base), dtype)


def kl_divergence(p: ArrayLike, q: ArrayLike, axis: int = -1,
                  base: float | None = None) -> np.ndarray | np.floating:
    """Kullback-Leibler divergence :math:`D_{KL}(p\\|q) = \\sum_c p_c \\log(p_c / q_c)`.

    Parameters
    ----------
    p, q : array_like
        Distributions along ``axis``, as in :func:`cross_entropy`.
    axis : int, default -1
        The axis of outcomes.
    base : float, optional
        None for nats, 2 for bits.

    Returns
    -------
    numpy scalar or numpy.ndarray
        :math:`\\ge 0` (Gibbs' inequality), 0 iff ``p == q``; ``inf`` where some
        :math:`q_c = 0` while :math:`p_c > 0`. Not symmetric in ``p`` and ``q``.

    Raises
    ------
    ValueError
        ``p`` or ``q`` not probability distributions along ``axis``: negative or nan entries, sums
        that are not 1 (logits passed by mistake), a 0-d or ragged array, a dtype that is
        not real; shapes that do not broadcast. An ``axis`` out of range; a ``base`` that
        is not finite, not > 0, or is 1.
    TypeError
        An ``axis`` that is not an integer (``1.0``, a bool), a ``base`` that is not a real
        number (a string, a bool), or a longdouble array (celib computes in float16, float32
        or float64, as torch does on the CPU).

    Notes
    -----
    Equal to :math:`H(p, q) - H(p)`, but computed term by term as
    :math:`p_c \\log(p_c/q_c)` so that it does not lose its digits to cancellation when
    :math:`q` is close to :math:`p`. Where :math:`p_c / q_c` overflows or underflows
    (a subnormal :math:`q_c` or :math:`p_c`), the term is :math:`p_c (\\log p_c - \\log q_c)`
    instead, finite as it should be, not ``inf`` or ``-inf``. float16 is computed in float32
    and rounded back (in float16, :math:`0.5 / 10^{-7}` already overflows). Same as
    ``torch.nn.functional.kl_div(q.log(), p, reduction='sum')``, which takes logarithms first.
    Explained in chapter 1 (Entropy, book/01_entropy.ipynb).

    Examples
    --------
    >>> from celib.info import kl_divergence
    >>> print(f"{kl_divergence([0.5, 0.5], [0.9, 0.1]):.4f}")
    0.5108
    >>> print(f"{kl_divergence([0.9, 0.1], [0.5, 0.5]):.4f}")  # not symmetric
    0.3681
    """
    log_base = _check_base(base)
    pa, qa, axis = _pair(p, q, axis)
    dtype = np.result_type(pa.dtype, qa.dtype)
    x, y = pa.astype(_compute_dtype(dtype)), qa.astype(_compute_dtype(dtype))
    counted = x > 0  # 0 log(0/q) = 0, even for q = 0: log(1/1) stands in for it
    log_ratio = _log_ratio(np.where(counted, x, 1), np.where(counted, y, 1))
    terms = np.where(counted, x * log_ratio, 0)
    return _output(_in_base(np.sum(terms, axis=axis), log_base), dtype)
