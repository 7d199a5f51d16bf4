"""Measuring numerics: errors in ulps against exact references, and the memory of a call.

``celib.testing`` is to the book what ``numpy.testing`` is to numpy: the helpers behind its
accuracy and memory claims, each defined once, with one meaning.

- :func:`ulp` and :func:`ulp_error`: the unit in the last place of an *exact* value in a float
  dtype, and the error of a computed result in that unit (0.5 is a correctly rounded result);
- :func:`exact_logsumexp`, :func:`exact_log_softmax` and :func:`exact_cross_entropy`: exact
  references for one row of logits, computed in mpmath with 60 significant digits by default;
- :func:`traced_peak`: the peak memory a call allocates beyond what existed before it, as
  ``tracemalloc`` sees it, and the call's result.

Chapter 5 (Numerical stability, book/05_numerical_stability.ipynb) explains the ulp and the exact
references, chapter 9 (Cross-entropy at LLM scale, book/09_llm_scale.ipynb) the memory peak; the
accuracy benchmark (``python -m benchmarks.accuracy``) and the performance appendix use all of them.

Only numpy is imported with this module. The exact references, and :func:`ulp` and
:func:`ulp_error` when they are given mpmath numbers, need `mpmath <https://mpmath.org>`_, which
is **not** a dependency of celib (the book's ``requirements.txt`` installs it): they import it
when called and raise an :class:`ImportError` that says so if it is missing.
"""

from __future__ import annotations

import gc
import math
import tracemalloc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

if TYPE_CHECKING:
    import mpmath

__all__ = [
    "ulp",
    "ulp_error",
    "exact_logsumexp",
    "exact_log_softmax",
    "exact_cross_entropy",
    "traced_peak",
]

DIGITS = 60  # default working precision of the exact references (significant decimal digits)
_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_WORK_BITS = 113  # precision of the one subtraction ulp_error does in mpmath
_EXPONENT_CLAMP = 1 << 20  # binary exponents beyond every float format, kept as int64

P = ParamSpec("P")
T = TypeVar("T")


def _mpmath() -> Any:
    """The mpmath module, or an ImportError that says why it is needed and how to get it."""
    try:
        import mpmath
    except ImportError as error:  # pragma: no cover - mpmath is in the book's requirements
        raise ImportError(
            "celib.testing computes exact values with mpmath, which celib does not depend on: "
            "install it with `pip install mpmath` (the book's requirements.txt has it)"
        ) from error
    return mpmath


def _float_info(dtype: DTypeLike) -> np.finfo:
    dt = np.dtype(dtype)
    if dt not in _FLOATS:
        raise ValueError(f"dtype must be float16, float32 or float64, got {dt}")
    return np.finfo(dt)


def _half_ulp_of_max(info: np.finfo) -> float:
    """Half the ulp of the largest finite float: a real number of magnitude at least
    ``max + _half_ulp_of_max`` rounds to infinity (a tie goes to the even side, infinity)."""
    return math.ldexp(1.0, int(info.maxexp) - int(info.nmant) - 2)


# --------------------------------------------------------------------------------------------
# ulp
# --------------------------------------------------------------------------------------------

def _binary_exponents(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """floor(log2 |v|) of every entry (int64, 0 where v is 0 or not finite), and the masks of
    the entries that are 0 and that are finite. ``values`` holds floats or mpmath numbers."""
    if values.dtype != object:
        v = values.astype(np.float64)
        finite = np.isfinite(v)
        exponent = np.frexp(np.where(finite, v, 1.0))[1].astype(np.int64) - 1
        return exponent, v == 0, finite
    mp = _mpmath()
    exponent = np.zeros(values.shape, dtype=np.int64)
    zero = np.zeros(values.shape, dtype=bool)
    finite = np.zeros(values.shape, dtype=bool)
    for idx in np.ndindex(values.shape):
        v = _as_mpf(mp, values[idx])
        finite[idx] = bool(mp.isfinite(v))
        zero[idx] = v == 0
        if finite[idx] and not zero[idx]:
            e = int(mp.frexp(v)[1]) - 1  # |v| = mantissa * 2**(e + 1), mantissa in [0.5, 1)
            exponent[idx] = max(-_EXPONENT_CLAMP, min(_EXPONENT_CLAMP, e))
    return exponent, zero, finite


def _as_mpf(mp: Any, value: Any) -> Any:
    """An mpmath number as it is (mpf() would round it to the working precision), anything
    else converted (exact for floats)."""
    return value if isinstance(value, mp.mpf) else mp.mpf(value)


def ulp(x: ArrayLike, dtype: DTypeLike) -> np.ndarray:
    """The unit in the last place of the exact value ``x`` in the float type ``dtype``.

    Parameters
    ----------
    x : array_like
        Exact values: floats (float64 or narrower), or mpmath numbers (an object array or a
        list of them, or one number), which are used exactly.
    dtype : dtype
        The floating-point type the ulp is measured in: float16, float32 or float64.

    Returns
    -------
    numpy.ndarray
        float64, ``x``'s shape (0-d for a scalar): a power of two, exactly; nan where ``x`` is
        infinite or nan.

    Raises
    ------
    ValueError
        ``dtype`` is not float16, float32 or float64.
    ImportError
        ``x`` holds mpmath numbers and mpmath is not installed.

    Notes
    -----
    A float type with precision :math:`p` (11 bits for float16, 24 for float32, 53 for float64)
    and smallest normal exponent :math:`e_{min}` (-14, -126, -1022) holds, between two
    consecutive powers of two :math:`2^e \\le |v| < 2^{e+1}`, the numbers spaced
    :math:`2^{e - p + 1}` apart. That spacing is the ulp of the real number :math:`v`:

    .. math::

        \\operatorname{ulp}(v) = 2^{\\max(e,\\, e_{min}) - p + 1},
        \\qquad e = \\lfloor \\log_2 |v| \\rfloor ,

    and :math:`\\operatorname{ulp}(0) = 2^{e_{min} - p + 1}`, the smallest subnormal number.
    In the normal range it is a relative unit (between :math:`2^{-p}` and :math:`2^{1-p}` of
    :math:`|v|`); below it, where the floats are evenly spaced, an absolute one.

    It is the ulp of the exact value, not of its rounding, in Goldberg's sense [1]_ (see [2]_
    for the other definitions). They differ just below a power of two: a :math:`v` slightly
    below 1 rounds to 1.0, whose ``np.spacing`` is the gap *above* 1, twice the gap
    :math:`2^{-p}` below it in which :math:`v` lies. This function returns the gap below.

    Explained in chapter 5 (Numerical stability, book/05_numerical_stability.ipynb).

    References
    ----------
    .. [1] D. Goldberg, "What every computer scientist should know about floating-point
       arithmetic", ACM Computing Surveys 23(1), 1991.
    .. [2] J.-M. Muller et al., "Handbook of Floating-Point Arithmetic", 2nd ed., Birkhäuser,
       2018.

    Examples
    --------
    >>> import mpmath
    >>> import numpy as np
    >>> from celib.testing import ulp
    >>> float(ulp(1.0, np.float64)) == 2.0 ** -52
    True
    >>> float(ulp(3.0, np.float32)) == 2.0 ** -22
    True
    >>> with mpmath.workdps(40):
    ...     just_below_one = 1 - mpmath.mpf(2) ** -80  # rounds to 1.0 in float64
    >>> float(ulp(just_below_one, np.float64)) == 2.0 ** -53  # the gap below 1, not above
    True
    >>> float(ulp(0.0, np.float32)) == 2.0 ** -149  # the smallest subnormal float32
    True
    """
    info = _float_info(dtype)
    exponent, zero, finite = _binary_exponents(np.asarray(x))
    exponent = np.where(zero, info.minexp, np.maximum(exponent, info.minexp))
    with np.errstate(over="ignore"):
        unit = np.ldexp(1.0, exponent - info.nmant)
    return np.asarray(np.where(finite, unit, np.nan), dtype=np.float64)


def _ulp_error_floats(c: np.ndarray, exact: np.ndarray, info: np.finfo) -> np.ndarray:
    """ulp_error for an exact value given as floats: float64 arithmetic, vectorised."""
    c, v = np.broadcast_arrays(c, exact.astype(np.float64))
    with np.errstate(invalid="ignore", over="ignore"):
        # v rounds to ±inf in dtype (for float64 the limit itself rounds to inf, and no float64
        # but ±inf reaches it)
        overflows = np.abs(v) >= float(info.max) + _half_ulp_of_max(info)
        rounded = np.where(overflows, np.copysign(np.inf, v), v)
        unit = ulp(np.where(overflows, 0.0, v), info.dtype)
        diff = np.abs(c - v)
        err = diff / unit
        # c - v overflows float64 when c and v are finite near ±max: halving them is exact there
        too_big = np.isinf(diff) & np.isfinite(c) & ~overflows
        err = np.where(too_big, np.abs(c / 2 - v / 2) / (unit / 2), err)
        err = np.where(np.isfinite(c), err, np.inf)
        err = np.where(overflows, np.where(c == rounded, 0.0, np.inf), err)
        err = np.where(np.isnan(c), np.inf, err)
        return np.where(np.isnan(v), np.nan, err)


def _ulp_error_mpmath(c: np.ndarray, exact: np.ndarray, info: np.finfo) -> np.ndarray:
    """ulp_error for an exact value given as mpmath numbers: exact, element by element."""
    mp = _mpmath()
    c, exact = np.broadcast_arrays(c, exact)
    units = ulp(exact, info.dtype)
    out = np.empty(c.shape, dtype=np.float64)
    with mp.workprec(_WORK_BITS):
        limit = mp.mpf(float(info.max)) + _half_ulp_of_max(info)  # exact at 113 bits
        for idx in np.ndindex(c.shape):
            computed, v = float(c[idx]), _as_mpf(mp, exact[idx])
            if mp.isnan(v):
                out[idx] = np.nan
            elif v >= limit or v <= -limit:  # v rounds to ±inf in dtype (or is ±inf)
                out[idx] = 0.0 if computed == (math.inf if v > 0 else -math.inf) else np.inf
            elif not math.isfinite(computed):
                out[idx] = np.inf
            else:  # the unit is a power of two: the division is exact
                out[idx] = float(abs(mp.mpf(computed) - v) / units[idx])
    return out


def ulp_error(computed: ArrayLike, exact: ArrayLike,
              dtype: DTypeLike | None = None) -> np.ndarray:
    """The error of ``computed`` in ulps of the exact value: ``|computed - exact| / ulp(exact)``.

    Parameters
    ----------
    computed : array_like
        The results to measure, in any float dtype (they are compared exactly).
    exact : array_like
        The exact values, broadcastable with ``computed``: mpmath numbers (one, or an object
        array or list of them, as the ``exact_*`` functions return), used exactly; or floats,
        used as they are (see Notes).
    dtype : dtype, optional
        The float type whose ulp is the unit: float16, float32 or float64. By default
        ``computed``'s dtype (float64 for Python floats).

    Returns
    -------
    numpy.ndarray
        float64, the broadcast shape (0-d for scalars). 0 where ``computed`` equals
        ``exact``; at most 0.5 exactly where ``computed`` is a float of ``dtype`` nearest to
        ``exact``; ``inf`` where ``computed`` is nan or infinite while ``exact`` rounds to a
        finite float; nan where ``exact`` is nan.

    Raises
    ------
    ValueError
        ``dtype`` is not float16, float32 or float64.
    ImportError
        ``exact`` holds mpmath numbers and mpmath is not installed.

    Notes
    -----
    The unit is :func:`ulp` of the **exact** value :math:`v`, the spacing of the floats of
    ``dtype`` around :math:`v`:

    .. math::

        \\text{ulp error} = \\frac{|\\hat v - v|}{\\operatorname{ulp}(v)} .

    It is the right unit because rounding to nearest moves :math:`v` by at most half of it:
    an error of at most 0.5 means exactly that :math:`\\hat v` is correctly rounded, and
    :math:`k` ulps mean the last :math:`\\log_2 k` bits or so are wrong, whatever the
    magnitude of :math:`v` (below the normal range, where an ulp is the constant smallest
    subnormal, the unit is absolute). The spacing of the *rounded* value, ``np.spacing``, is
    twice as large when :math:`v` lies just below a power of two and rounds up to it, and would
    halve those errors: there a float one step below the correct one would measure under 0.5.

    An exact value that rounds to ±inf in ``dtype`` (:math:`|v|` at least the largest float
    plus half its ulp) counts as that infinity: the error is 0 if ``computed`` is it, ``inf``
    otherwise.

    mpmath numbers are used exactly: the one subtraction is done in mpmath with 113 bits, so
    the error itself is exact to about 34 digits, whatever ``mpmath.mp.dps`` is. Floats are
    subtracted in float64 (relative error :math:`2^{-53}` of the result), and a float64
    exact value is itself rounded: right for float32 or float16 results, where its rounding
    error is below :math:`2^{-29}` ulp, but not for float64 results, whose reference must
    carry more digits than float64 has (pass mpmath numbers).

    A double-double, the unevaluated sum :math:`hi + lo` of two float64 numbers (:math:`hi`
    the value rounded to float64, :math:`lo` the rest, rounded too), carries about 106 bits,
    enough for float64 results in most of their range. It is not accepted here: once the value
    is within :math:`2^{53}` smallest subnormals of 0, :math:`lo` underflows and the error of
    a float64 result near the subnormal range comes out wrong by up to half an ulp. mpmath
    numbers have no such limit.

    Explained in chapter 5 (Numerical stability, book/05_numerical_stability.ipynb).

    References
    ----------
    .. [1] D. Goldberg, "What every computer scientist should know about floating-point
       arithmetic", ACM Computing Surveys 23(1), 1991.
    .. [2] N. J. Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., SIAM, 2002.

    Examples
    --------
    >>> import numpy as np
    >>> from celib.testing import exact_cross_entropy, ulp_error
    >>> exact = exact_cross_entropy([0.0, -40.0], 0)  # log1p(e^-40), with 60 digits
    >>> s = np.exp(-40.0)
    >>> bool(ulp_error(np.log1p(s), exact) <= 1)  # log1p keeps the tiny loss
    True
    >>> print(f"{float(ulp_error(np.log(1 + s), exact)):.2e}")  # 1 + s rounds to 1: 0 is returned
    5.51e+15
    >>> print(f"{float(ulp_error(np.float32(1 / 3), 1 / 3)):.3f}")  # a float64 reference
    0.333
    >>> float(ulp_error(np.float32(1) + np.spacing(np.float32(1)), 1.0))  # one float too high
    1.0
    >>> float(ulp_error(np.inf, 1.0))
    inf
    """
    c = np.asarray(computed)
    if dtype is None:
        dtype = c.dtype if c.dtype.kind == "f" else np.float64
    info = _float_info(dtype)
    c = c.astype(np.float64)  # exact for every float16, float32 and float64
    e = np.asarray(exact)
    if e.dtype == object:
        return _ulp_error_mpmath(c, e, info)
    return _ulp_error_floats(c, e, info)


# --------------------------------------------------------------------------------------------
# Exact references
# --------------------------------------------------------------------------------------------

def _exact_parts(x: ArrayLike, digits: int) -> tuple[Any, Any, list, Any]:
    """mpmath, the largest logit m, the exact differences d_j = x_j - m, and log1p(s) with
    s = sum over j != argmax of e^{d_j}, computed with ``digits`` significant digits."""
    mp = _mpmath()
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 1:
        raise ValueError(f"digits must be a positive int, got {digits!r}")
    row = np.asarray(x)
    if row.ndim != 1 or row.size == 0 or row.dtype.kind not in "fiu" or row.dtype.itemsize > 8:
        raise ValueError("x must be one row of logits: a non-empty 1-D array of float16, "
                         f"float32 or float64 values, got shape {row.shape} and dtype {row.dtype}")
    values = row.astype(np.float64)
    if np.any(np.isnan(values)) or np.any(values == np.inf) or np.all(values == -np.inf):
        raise ValueError("x must be finite, except for -inf logits (classes of probability 0),"
                         " and not all -inf")
    k = int(np.argmax(values))
    with mp.workdps(digits):
        m = mp.mpf(float(values[k]))
        d = [mp.fsub(mp.mpf(float(v)), m, exact=True) for v in values]
        s = mp.fsum(mp.exp(dj) for j, dj in enumerate(d) if j != k)
        log_norm = mp.log1p(s)
    return mp, m, d, log_norm


def exact_logsumexp(x: ArrayLike, *, digits: int = DIGITS) -> mpmath.mpf:
    """The exact log-sum-exp of one row of logits, :math:`\\log \\sum_j e^{x_j}`, in mpmath.

    Parameters
    ----------
    x : array_like
        One row of logits, shape (C,), float16, float32 or float64 values; ``-inf`` entries
        (classes of probability 0) are allowed, nan and ``+inf`` are not.
    digits : int, default 60
        Significant decimal digits of the computation.

    Returns
    -------
    mpmath.mpf
        :math:`m + \\operatorname{log1p}(s)`, accurate to ``digits`` significant digits, or to
        ``digits`` digits of :math:`|m|` where the two terms nearly cancel (see Notes).

    Raises
    ------
    ValueError
        ``x`` is not a non-empty 1-D float array, holds nan or ``+inf`` or only ``-inf``, or
        ``digits`` is not a positive int.
    ImportError
        mpmath is not installed.

    Notes
    -----
    The row is converted exactly (mpmath holds every float16, float32 and float64 as it is);
    :math:`d_j = x_j - m`, with :math:`m` the largest logit, is computed exactly; the sum
    :math:`s = \\sum_{j \\ne k} e^{d_j}` over every class but one largest (:math:`k`), its
    :math:`\\operatorname{log1p}` and the last operation carry ``digits`` significant digits,
    whatever ``mpmath.mp.dps`` is. No term is left out, however small.
    The log-sum-exp is :math:`m + \\operatorname{log1p}(s)`: it cancels only when it is
    close to 0, and is then still exact to ``digits`` digits of :math:`|m|`.

    Explained in chapter 5 (Numerical stability, book/05_numerical_stability.ipynb); chapter 9
    (Cross-entropy at LLM scale, book/09_llm_scale.ipynb) measures the online log-sum-exp against
    it.

    References
    ----------
    .. [1] P. Blanchard, D. J. Higham, N. J. Higham, "Accurately computing the log-sum-exp and
       softmax functions", IMA Journal of Numerical Analysis 41(4), 2021.

    Examples
    --------
    >>> import mpmath
    >>> from celib.testing import exact_logsumexp
    >>> print(mpmath.nstr(exact_logsumexp([1000.0, 1000.0]), 20))  # 1000 + ln 2; e^1000 is inf
    1000.6931471805599453
    >>> float(exact_logsumexp([0.0, -40.0]))
    4.248354255291589e-18
    """
    mp, m, _, log_norm = _exact_parts(x, digits)
    with mp.workdps(digits):
        return m + log_norm


def exact_log_softmax(x: ArrayLike, *, digits: int = DIGITS) -> np.ndarray:
    """The exact log-softmax of one row of logits, :math:`x_i - \\log \\sum_j e^{x_j}`.

    Parameters
    ----------
    x : array_like
        One row of logits, shape (C,), float16, float32 or float64 values; ``-inf`` entries
        are allowed (their log-probability is ``-inf``), nan and ``+inf`` are not.
    digits : int, default 60
        Significant decimal digits of the computation.

    Returns
    -------
    numpy.ndarray
        Shape (C,), dtype object, of mpmath numbers, each accurate to ``digits`` digits.

    Raises
    ------
    ValueError
        ``x`` is not a non-empty 1-D float array, holds nan or ``+inf`` or only ``-inf``, or
        ``digits`` is not a positive int.
    ImportError
        mpmath is not installed.

    Notes
    -----
    The row is converted exactly (mpmath holds every float16, float32 and float64 as it is);
    :math:`d_j = x_j - m`, with :math:`m` the largest logit, is computed exactly; the sum
    :math:`s = \\sum_{j \\ne k} e^{d_j}` over every class but one largest (:math:`k`), its
    :math:`\\operatorname{log1p}` and the last operation carry ``digits`` significant digits,
    whatever ``mpmath.mp.dps`` is. No term is left out, however small.
    The log-softmax is :math:`d_i - \\operatorname{log1p}(s)`, two non-positive terms: nothing
    cancels.

    Explained in chapter 5 (Numerical stability, book/05_numerical_stability.ipynb).

    References
    ----------
    .. [1] P. Blanchard, D. J. Higham, N. J. Higham, "Accurately computing the log-sum-exp and
       softmax functions", IMA Journal of Numerical Analysis 41(4), 2021.

    Examples
    --------
    >>> from celib.testing import exact_log_softmax
    >>> [float(v) for v in exact_log_softmax([0.0, -40.0])]
    [-4.248354255291589e-18, -40.0]
    """
    mp, _, d, log_norm = _exact_parts(x, digits)
    out = np.empty(len(d), dtype=object)
    with mp.workdps(digits):
        for j, dj in enumerate(d):
            out[j] = dj - log_norm
    return out


def exact_cross_entropy(x: ArrayLike, target: int, *, digits: int = DIGITS) -> mpmath.mpf:
    """The exact cross-entropy loss of one row of logits and a class index,
    :math:`-\\log \\operatorname{softmax}(x)_y`.

    Parameters
    ----------
    x : array_like
        One row of logits, shape (C,), float16, float32 or float64 values; ``-inf`` entries
        are allowed, nan and ``+inf`` are not.
    target : int
        The class index :math:`y`, in [0, C).
    digits : int, default 60
        Significant decimal digits of the computation.

    Returns
    -------
    mpmath.mpf
        The loss, :math:`\\ge 0`, accurate to ``digits`` digits (``inf`` if
        :math:`x_y = -\\infty`).

    Raises
    ------
    IndexError
        ``target`` is not in [0, C).
    TypeError
        ``target`` is not an int.
    ValueError
        ``x`` is not a non-empty 1-D float array, holds nan or ``+inf`` or only ``-inf``, or
        ``digits`` is not a positive int.
    ImportError
        mpmath is not installed.

    Notes
    -----
    The row is converted exactly (mpmath holds every float16, float32 and float64 as it is);
    :math:`d_j = x_j - m`, with :math:`m` the largest logit, is computed exactly; the sum
    :math:`s = \\sum_{j \\ne k} e^{d_j}` over every class but one largest (:math:`k`), its
    :math:`\\operatorname{log1p}` and the last operation carry ``digits`` significant digits,
    whatever ``mpmath.mp.dps`` is. No term is left out, however small.
    The loss is :math:`\\operatorname{log1p}(s) - d_y`, two non-negative terms: nothing cancels,
    and the tiny loss of a confident correct prediction keeps every digit. The textbook
    :math:`\\log \\sum_j e^{x_j} - x_y` cancels it away: for :math:`x = (1000, 0)` and
    :math:`y = 0` the loss is about :math:`e^{-1000} \\approx 10^{-434}`, and 50 digits are not
    enough to see it (chapter 5: Numerical stability, book/05_numerical_stability.ipynb).

    Explained in chapter 5 (Numerical stability, book/05_numerical_stability.ipynb).

    References
    ----------
    .. [1] P. Blanchard, D. J. Higham, N. J. Higham, "Accurately computing the log-sum-exp and
       softmax functions", IMA Journal of Numerical Analysis 41(4), 2021.

    Examples
    --------
    >>> from celib.testing import exact_cross_entropy
    >>> float(exact_cross_entropy([0.0, -40.0], 0))  # the loss log(1 + s) rounds to 0
    4.248354255291589e-18
    >>> float(exact_cross_entropy([0.0, -40.0], 1))
    40.0
    """
    mp, _, d, log_norm = _exact_parts(x, digits)
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)):
        raise TypeError(f"target must be an int class index, got {target!r}")
    if not 0 <= int(target) < len(d):
        raise IndexError(f"target {int(target)} is out of bounds for {len(d)} classes")
    with mp.workdps(digits):
        return log_norm - d[int(target)]


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------

def traced_peak(call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> tuple[int, T]:
    """The peak memory ``call(*args, **kwargs)`` allocates beyond what existed before it.

    Parameters
    ----------
    call : callable
        The function to measure.
    *args, **kwargs
        Its arguments.

    Returns
    -------
    tuple of (int, object)
        ``(peak_bytes, result)``: the largest number of bytes allocated at any moment of the
        call beyond those allocated when it started, the result included (it is alive at the
        end), and the call's result.

    Notes
    -----
    The memory is what ``tracemalloc`` traces: Python's allocations and numpy's array
    buffers (numpy reports them to tracemalloc). It does not see memory that other libraries
    allocate themselves (torch's tensors, a BLAS's work buffers), and it counts the
    allocations of every thread. A garbage collection runs first, so that garbage freed during
    the call cannot hide part of its peak. If tracemalloc is already tracing, it goes on
    afterwards, but its peak is reset; otherwise tracing starts and stops around the call,
    which slows the call down: time it separately.

    Explained in chapter 9 (Cross-entropy at LLM scale, book/09_llm_scale.ipynb).

    References
    ----------
    .. [1] The Python Standard Library, "tracemalloc — Trace memory allocations",
       https://docs.python.org/3/library/tracemalloc.html.

    Examples
    --------
    >>> import numpy as np
    >>> from celib.testing import traced_peak
    >>> peak, ones = traced_peak(np.ones, 1_000_000)  # one float64 array of 8 MB
    >>> 8_000_000 <= peak < 8_100_000
    True
    >>> ones.shape
    (1000000,)
    """
    gc.collect()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = call(*args, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if started:
            tracemalloc.stop()
    return max(0, peak - before), result
