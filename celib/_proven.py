"""The numba backend's rough float32 pass, proven: which rough values stand, and the rest.

Private. :mod:`celib._fast_checked` computes each row's loss (or log-sum-exp) roughly, with a
bound on its error; here each bound is tested against the rounding the caller will do (to
float32, or float16), widened by the accurate kernels' own error so that a value that stands
has their bits, and the rows left open are computed again by :mod:`celib._kernels`. A 'sum'
or 'mean' is tested once, on its total (:func:`celib._core.reduce_proven`), and refined from
the roughest rows on. This is Ziv's strategy for correctly rounded functions (A. Ziv, ACM
TOMS 17(3), 1991); :mod:`celib._fast_checked` gives the bound and its proof.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import _core, _kernels
from ._core import IndexTargets


def cross_entropy_checked(x: np.ndarray, targets: IndexTargets, weight: np.ndarray | None,
                          epsilon: float, reduction: str,
                          dtype: np.dtype) -> np.ndarray | np.floating | None:
    """The reduced loss of a float32 ``x`` from the numba backend's rough pass
    (:mod:`celib._fast_checked`) wherever its error bound proves how the exact value rounds to
    ``dtype``, the rows it cannot decide from :func:`celib._kernels.cross_entropy_rows`: the
    same bits as ``reduce(cross_entropy_rows(...))``, faster. None where there is no rough
    pass (the numpy backend, float64, label smoothing)."""
    if x.dtype != np.float32 or epsilon != 0 or _kernels._compiled(x) is None:
        return None
    from . import _fast_checked

    values, bounds, (total, bound, size) = _fast_checked.rough_cross_entropy_rows(
        x, targets.classes, targets.ignored, targets.weights, _kernels._fast_threads(x))
    cols = x.shape[1]
    if reduction == "none":  # each row proven, or computed again
        again = _open_rows(values, bounds, cols, targets.ignored, dtype)
        _compute_again(x, targets, weight, values, bounds, again)
        return _core.reduce(values, targets, reduction, dtype)
    # the bound against the accurate kernels' bits: Σ of _own_error over the rows
    bound += values.size * _own_floor(cols) + _OWN_SLOPE * size
    proven = _core.reduce_proven((total, bound, size), values.size, targets, reduction, dtype)
    if proven is not None:
        return proven
    # Not proven: the total lies near a rounding boundary. Compute the roughest rows again,
    # an eighth, then a quarter, half and all of them, until the bound that is left proves it
    bounds += _own_error(np.nan_to_num(values), cols)  # (an open row's bound stays inf)
    order = np.argsort(-bounds, kind="stable")
    done = 0
    for share in (8, 4, 2, 1):
        upto = -(-values.size // share)
        _compute_again(x, targets, weight, values, bounds, order[done:upto])
        done = upto
        totals = (np.sum(values), np.sum(bounds), np.sum(np.abs(values)))
        proven = _core.reduce_proven(totals, values.size, targets, reduction, dtype)
        if proven is not None:
            return proven
    return _core.reduce(values, targets, reduction, dtype)  # every row accurate


def logsumexp_rows(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """:func:`celib._kernels.logsumexp_rows` for a result rounded to ``dtype``: each value a
    float64 that rounds to ``dtype`` as the accurate kernel's does. For a float32 ``x`` on the
    numba backend, the rough pass without targets wherever its bound proves that rounding,
    the other rows accurately; elsewhere the accurate kernels."""
    if x.dtype != np.float32 or _kernels._compiled(x) is None:
        return _kernels.logsumexp_rows(x)
    from . import _fast_checked

    values, bounds, _ = _fast_checked.rough_logsumexp_rows(x, _kernels._fast_threads(x))
    again = _open_rows(values, bounds, x.shape[1], None, dtype)
    if again.size:
        values[again] = _kernels.logsumexp_rows(np.ascontiguousarray(x[again]))
    return values


_OWN_SLOPE = 16 * 2.0**-53


def _own_floor(cols: int) -> float:
    """:func:`_own_error` at a value of 0."""
    return 2.0**-53 * (16 + 8 * math.log(max(cols, 1)) + 2 * cols)


def _own_error(values: np.ndarray, cols: int) -> np.ndarray:
    """A bound on the error of the accurate kernels' float64 losses and log-sum-exps of float32
    rows of ``cols`` entries: the sum ``s`` within a relative ``(cols - 1) u``, so ``log1p(s)``
    within that; ``log1p``'s own error on a value at most ``|v|`` (a loss) or ``ln C`` (a
    log-sum-exp), and the final roundings: ``_own_floor(cols) + _OWN_SLOPE·|v|``."""
    return _own_floor(cols) + _OWN_SLOPE * np.abs(values)


def _open_rows(values: np.ndarray, bounds: np.ndarray, cols: int, ignored: np.ndarray | None,
               dtype: np.dtype) -> np.ndarray:
    """The rows whose rounding to ``dtype`` the rough bounds leave open, against the accurate
    kernels' bits (their :func:`_own_error` added), ignored rows aside: compiled for float32
    (:func:`celib._fast_checked.open_rows`), else :func:`celib._core.rounds_alike`."""
    from . import _fast_checked

    skip = np.zeros(values.size, bool) if ignored is None else ignored
    if dtype == np.float32:
        return _fast_checked.open_rows(values, bounds, _own_floor(cols), _OWN_SLOPE, skip)
    return np.flatnonzero(~(skip | _core.rounds_alike(values, bounds + _own_error(values, cols),
                                                      dtype)))


def _compute_again(x: np.ndarray, targets: IndexTargets, weight: np.ndarray | None,
                   values: np.ndarray, bounds: np.ndarray, rows: np.ndarray) -> None:
    """``values[rows]`` by the accurate kernels, ``bounds[rows]`` their own error."""
    if rows.size == 0:
        return
    some = dataclasses.replace(
        targets, classes=targets.classes[rows], ignored=targets.ignored[rows],
        weights=None if targets.weights is None else targets.weights[rows])
    values[rows] = _kernels.cross_entropy_rows(np.ascontiguousarray(x[rows]), some, weight, 0.0)
    bounds[rows] = _own_error(values[rows], x.shape[1])
