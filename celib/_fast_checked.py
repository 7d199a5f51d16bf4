"""A rough float32 cross-entropy with a proven error bound: the numba backend's fast path.

Private, and used only through :mod:`celib._proven`, which tests each bound and computes the
rows it leaves open again: for the loss, and without targets (each row's log-sum-exp,
:func:`rough_logsumexp_rows`).

Why
---
celib's float32 loss is computed in float64 and rounded once, so it is the correctly rounded
value. :mod:`celib._fast` gets there with a float64 exp accurate to 1/30 ulp (a degree-11
polynomial), and that polynomial, run in float64 lanes (half as many as float32 lanes), is
most of its time: more than torch takes for its whole float32 loss. But a float32 result
does not need 53 correct bits, only enough to know which way the exact value rounds.

How
---
This module computes each row's loss roughly and says how rough: a value ``v`` and a bound
``b`` with the exact loss in ``[v - b, v + b]``. Where ``v - b`` and ``v + b`` round to the
same float32 (or float16), the exact loss rounds there too, and that float32 is the result:
the same bits as the accurate kernel's. The rows it cannot decide, those within ``b`` of a
rounding boundary and every row holding a nan or an infinity, are computed again by the
accurate kernel. This is Ziv's strategy for correctly rounded functions [1]_. A row's bound
is about 6e-9 (3e-9 for a row of fewer than 64 classes), so the share left open is about
``2b / ulp(loss)``: 10 % of the losses in [1, 2), 5 % in [2, 4), 2.5 % in [4, 8), 1.3 % in
[8, 16), half as many for narrow rows (``tests/test_fast.py`` counts them at 2, the appendix
at 8). A tiny loss (far below 1) has a bound wider than its ulp and always goes to the
accurate kernel.

* **exp**: :func:`_exp_rough`, :func:`celib._fast._exp`'s ``k = rint(x log2 e)`` and ``2^k``
  from bits, ``r = x - k ln 2`` in one fused multiply-add with ln 2 rounded to float64 (off by
  less than 1022 · 2.4e-17, where the accurate exp needs Cody–Waite's two steps), and a
  degree-6 polynomial fitted to :math:`e^r` on :math:`|r| \\le \\ln 2 / 2` (Chebyshev nodes,
  mpmath), whose relative error is below :data:`EXP_ERROR` = 3e-9 (measured 2.8e-9 by
  ``tests/test_fast.py`` against mpmath).
* **log**: :func:`_log_rough`, from the exponent's bits and :math:`2\\,\\mathrm{atanh}`, within
  :data:`LOG_ERROR` (libm's log is a scalar call; this one vectorises).
* **sums** may be reassociated (``reassoc``: LLVM vectorises them as it likes, so the rough
  value's last bits depend on the vector width; the rounded result does not, since it is
  proven). A row is cut into chunks of :data:`_CHUNK` entries, each summed against its own max
  and then scaled once to the row's max: one read of the row from memory, the second from L1.
  Rows narrower than :data:`_NARROW` classes are taken :data:`_NARROW_BLOCK` entries at a
  time as one flat run, every term against the block's max (:func:`_narrow_rows`). An input
  too small to share out runs on the calling thread, in a kernel without ``prange``.

The bound
---------
With :math:`u = 2^{-53}`, a row of ``n`` entries: each term carries a relative error below
``EXP_ERROR`` (polynomial, reduction and Horner's roundings) and the rounding of ``x - m``
(:math:`e^d |d| u \\le u/e`, absolute, against :math:`s \\ge 1`); the chunk rescaling one more
rough exp; the sum's roundings :math:`(n-1)u` relative. So :math:`s` is within a relative
:math:`\\delta = 2\\,\\mathrm{EXP\\_ERROR} + (3n + 16)u`, and :math:`\\log s` within
:math:`1.01\\,\\delta` (:math:`\\delta < 10^{-3}`). The loss :math:`(m - x_y) + \\log s` adds
the log's error and two roundings (the difference and the sum):
:math:`b = 1.01\\,\\delta + \\mathrm{LOG\\_ERROR} + 4u\\,(|m - x_y| + |\\log s| + |\\ell|)`,
times the target's class weight, plus one rounding for that product.

A narrow row's terms are taken against its block's max :math:`G \\ge m`, with no rescaling,
but its :math:`s` may be far below 1: the rounding of ``x - G`` then counts relatively,
:math:`|d| u \\le 709u` for each term above :math:`e^{-708}` (the others, at most
:math:`1.01\\,e^{-708}` each, are nothing against an :math:`s \\ge 2^{-900}`, below which the
row is left open). So :math:`\\delta = \\mathrm{EXP\\_ERROR} + (n + 720)u`, half the wide
rows' bound, and the loss is :math:`(G - x_y) + \\log s`, with the same ``b``.

References
----------
.. [1] A. Ziv, "Fast evaluation of elementary mathematical functions with correctly rounded
   last bit", ACM Transactions on Mathematical Software 17(3), 410–423, 1991.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numba import njit, prange

from celib._fast import (_BIASED, _LN2_HI, _LN2_LO, _LOG2E, SAFE_FLAGS, _as_float64,
                         _as_int64, _fma, _maximum, _rint, _row_max, elementwise, run)

_JIT: dict[str, Any] = {"cache": True, "error_model": "numpy",  # x / 0 is inf, not an exception
                        "fastmath": set(SAFE_FLAGS | {"reassoc"})}
_CHUNK = 2048  # float32 entries (8 KiB) summed against their own max, read twice from L1
_U = 2.0**-53
_LN2 = 0.6931471805599453  # ln 2 rounded to float64
_NARROW = 64  # rows narrower than this go to _narrow_rows
_NARROW_BLOCK = 2048  # entries per block of _narrow_rows (a whole number of rows)
_TINY = 2.0**-900  # a narrow row's s below this (e^-624) is left open: see _narrow_rows
_BLOCK = 8192  # entries per block of wide rows (at least one row)

EXP_ERROR = 3e-9
"""A bound on :func:`_exp_rough`'s relative error (tested against mpmath)."""
LOG_ERROR = 1e-13
"""With 4u·|log s|, a bound on :func:`_log_rough`'s absolute error (tested against mpmath)."""

# e^r on [-ln2/2, ln2/2] (widened by 1e-4 for the rounding of r): mpmath.chebyfit, degree 6
_Q0, _Q1, _Q2, _Q3, _Q4, _Q5, _Q6 = (
    1.0, 1.0000000377388714, 0.5000000047146057, 0.16666415414041177, 0.04166635277111221,
    0.008375134774624326, 0.0013941118895837)


@njit(inline="always", **_JIT)
def _exp_rough(d: float) -> float:
    """e^d for ``d <= 0``, within a relative :data:`EXP_ERROR` down to e^-708 (below: e^-708)."""
    d = max(d, -708.0)
    kf = _rint(d * _LOG2E)
    r = _fma(-kf, _LN2, d)  # off by |k| |ln 2 - _LN2| < 1022 · 2.4e-17: far below EXP_ERROR
    p = _fma(_Q6, r, _Q5)
    p = _fma(p, r, _Q4)
    p = _fma(p, r, _Q3)
    p = _fma(p, r, _Q2)
    p = _fma(p, r, _Q1)
    p = _fma(p, r, _Q0)
    return p * _as_float64(_as_int64(kf + _BIASED) << 52)


_SQRT2 = 1.4142135623730951
_MANTISSA = (1 << 52) - 1
_ONE_BITS = 1023 << 52
# 2 atanh(t) = 2t (1 + t²/3 + t⁴/5 + ...), t = (f - 1)/(f + 1), |t| <= 0.1716 for f in
# [√½, √2]: eight terms leave 2|t|^17/17 < 1.2e-14
_ATANH = tuple(2.0 / (2 * k + 1) for k in range(8))
_A0, _A1, _A2, _A3, _A4, _A5, _A6, _A7 = _ATANH


@njit(inline="always", **_JIT)
def _log_rough(s: float) -> float:
    """log s for a positive normal ``s``, within :data:`LOG_ERROR` + 4u·|log s| (libm's log
    is a scalar call; this one vectorises)."""
    bits = _as_int64(s)
    e = np.int32(bits >> 52) - 1023  # int32: AVX2 converts int32, not int64, to float64
    f = _as_float64((bits & _MANTISSA) | _ONE_BITS)  # s = f 2^e, f in [1, 2)
    big = f > _SQRT2
    f = f * 0.5 if big else f
    k = np.float64(e + 1 if big else e)
    t = (f - 1.0) / (f + 1.0)  # f - 1 is exact
    t2 = t * t
    p = _fma(_A7, t2, _A6)
    p = _fma(p, t2, _A5)
    p = _fma(p, t2, _A4)
    p = _fma(p, t2, _A3)
    p = _fma(p, t2, _A2)
    p = _fma(p, t2, _A1)
    p = _fma(p, t2, _A0)
    return _fma(k, _LN2_HI, _fma(k, _LN2_LO, t * p))


@njit(**_JIT)
def _chunk_sum(chunk: np.ndarray, m: float) -> float:
    s = 0.0
    for j in range(chunk.size):
        s += _exp_rough(np.float64(chunk[j]) - m)
    return s


@njit(**_JIT)
def _rough_stats(row: np.ndarray, chunk_m: np.ndarray,
                 chunk_s: np.ndarray) -> tuple[float, float]:
    """``(m, s)``: the row max and roughly :math:`s = \\sum_j e^{x_j - m}` (the max term
    included); nan for a row holding a nan or +inf, or only -inf. Each chunk is summed against
    its own max (``chunk_m``, ``chunk_s``: scratch, one entry per chunk), then scaled to the
    row's max by one rough exp: one factor each, whatever the order of the maxima."""
    n = row.size
    m = -np.inf
    chunks = 0
    for c0 in range(0, n, _CHUNK):
        chunk = row[c0:min(n, c0 + _CHUNK)]
        cm = _row_max(chunk)  # nan if the chunk holds one
        if cm == -np.inf:  # nothing to add
            continue
        if not np.isfinite(cm):  # nan or +inf: left to the accurate kernel
            return np.nan, np.nan
        chunk_m[chunks], chunk_s[chunks] = cm, _chunk_sum(chunk, cm)
        chunks += 1
        m = max(m, cm)
    if chunks == 0:
        return np.nan, np.nan
    s = 0.0
    for c in range(chunks):
        s += chunk_s[c] * _exp_rough(chunk_m[c] - m)
    return m, s


@njit(inline="always", **_JIT)
def _loss_and_bound(shift: float, log_s: float, relative: float, w: float,
                    weighted: bool) -> tuple[float, float]:
    """The loss ``w (shift + log s)`` and its bound, ``s`` within ``relative`` (module doc)."""
    loss = shift + log_s
    b = 1.01 * relative + LOG_ERROR + 4 * _U * (abs(shift) + abs(log_s) + abs(loss))
    if not weighted:
        return loss, b
    loss *= w
    return loss, abs(w) * b + 2 * _U * abs(loss)


@njit(inline="always", **_JIT)
def _relative_error(cols: int) -> float:
    """How far the rough ``s`` of a row of ``cols`` entries may be from the exact, relatively."""
    return 2 * EXP_ERROR + (3 * cols + 16) * _U


@njit(**_JIT)
def _wide_rows(x: np.ndarray, classes: np.ndarray, ignored: np.ndarray,
               target_weights: np.ndarray, out: np.ndarray, bound: np.ndarray, a: int,
               b: int) -> None:
    """Rows ``a <= i < b``, one by one, each chunk by chunk (:func:`_rough_stats`). Without
    ``classes`` (empty), each row's log-sum-exp ``m + log s`` instead of its loss."""
    weighted = target_weights.size > 0
    relative = _relative_error(x.shape[1])
    chunk_m = np.empty((x.shape[1] + _CHUNK - 1) // _CHUNK)
    chunk_s = np.empty_like(chunk_m)
    for i in range(a, b):
        if ignored[i]:
            out[i], bound[i] = 0.0, 0.0
            continue
        row = x[i]
        m, s = _rough_stats(row, chunk_m, chunk_s)  # nan: a nan or an infinity in the row
        w = target_weights[i] if weighted else 1.0
        shift = m - row[classes[i]] if classes.size else m  # no classes: the log-sum-exp
        out[i], bound[i] = _loss_and_bound(shift, _log_rough(s), relative, w, weighted)
        if np.isnan(m):  # open: an infinite bound puts it first among the rows to refine
            bound[i] = np.inf


@njit(inline="always", **_JIT)
def _narrow_relative_error(cols: int) -> float:
    """:func:`_relative_error` for :func:`_narrow_rows`: one rough exp per term, no rescaling,
    and the rounding of ``x - G``, :math:`|d| u \\le 709u` relatively for every term that
    counts (``d >= -708``); the others, each below 1.01 e^-708, are far below the ``s`` of a
    decided row."""
    return EXP_ERROR + (cols + 720) * _U


@njit(**_JIT)
def _narrow_rows(x: np.ndarray, classes: np.ndarray, ignored: np.ndarray,
                 target_weights: np.ndarray, out: np.ndarray, bound: np.ndarray, a: int,
                 b: int) -> None:
    """Rows ``a <= i < b`` of a narrow ``x`` (fewer than ``_NARROW`` columns), as one flat
    run of entries: a loop along a row of 10 would not vectorise, a loop along the block does.
    Every term is taken against the block's max ``G``, not its row's: no pass per row, and
    :math:`\\ell = (G - x_y) + \\log s` (without ``classes``, the log-sum-exp
    :math:`G + \\log s`). A row whose ``s`` is below ``_TINY`` (all its
    logits more than 620 below the block's max), or whose block holds a nan or an infinity,
    is left to the accurate kernel (nan)."""
    cols, n = x.shape[1], b - a
    weighted, targeted = target_weights.size > 0, classes.size > 0
    flat = x[a:b].reshape(-1)
    top = np.float32(-np.inf)
    for k in range(flat.size):
        top = _maximum(top, flat[k])  # nan if the block holds one
    g = np.float64(top)
    terms = np.empty(flat.size)
    for k in range(flat.size):
        terms[k] = _exp_rough(np.float64(flat[k]) - g)
    s, shift = np.empty(n), np.empty(n)
    for i in range(n):
        row_sum = 0.0
        for j in range(cols):
            row_sum += terms[i * cols + j]
        s[i] = row_sum
        shift[i] = g - flat[i * cols + classes[a + i]] if targeted else g
    relative = _narrow_relative_error(cols)
    loss, err = out[a:b], bound[a:b]
    if weighted:  # two loops, each of which vectorises
        for i in range(n):
            loss[i], err[i] = _loss_and_bound(shift[i], _log_rough(max(s[i], _TINY)), relative,
                                              target_weights[a + i], True)
    else:
        for i in range(n):
            loss[i], err[i] = _loss_and_bound(shift[i], _log_rough(max(s[i], _TINY)), relative,
                                              1.0, False)
    for i in range(n):
        decided = (s[i] >= _TINY) & (abs(loss[i]) < np.inf)
        kept = not ignored[a + i]
        loss[i] = (loss[i] if decided else np.nan) if kept else 0.0
        err[i] = (err[i] if decided else np.inf) if kept else 0.0


@njit(parallel=True, **_JIT)
def _rough_parallel(x: np.ndarray, classes: np.ndarray, ignored: np.ndarray,
                    target_weights: np.ndarray, out: np.ndarray, bound: np.ndarray) -> None:
    rows, cols = x.shape
    per = max(1, (_NARROW_BLOCK if cols < _NARROW else _BLOCK) // cols)
    for blk in prange((rows + per - 1) // per):
        a, b = blk * per, min(rows, (blk + 1) * per)
        if cols < _NARROW:
            _narrow_rows(x, classes, ignored, target_weights, out, bound, a, b)
        else:
            _wide_rows(x, classes, ignored, target_weights, out, bound, a, b)


@njit(**_JIT)
def _rough_serial(x: np.ndarray, classes: np.ndarray, ignored: np.ndarray,
                  target_weights: np.ndarray, out: np.ndarray, bound: np.ndarray) -> None:
    """:func:`_rough_parallel` on the calling thread (no pool to wake for a small input)."""
    rows, cols = x.shape
    if cols >= _NARROW:
        _wide_rows(x, classes, ignored, target_weights, out, bound, 0, rows)
        return
    per = _NARROW_BLOCK // cols
    for a in range(0, rows, per):
        _narrow_rows(x, classes, ignored, target_weights, out, bound, a, min(rows, a + per))


@njit(**_JIT)
def _totals(values: np.ndarray, bounds: np.ndarray) -> tuple[float, float, float]:
    """``(Σ values, Σ bounds, Σ |values|)``, in any order (a 'sum' or 'mean' bounds its own
    rounding: :func:`celib._core.reduce_proven`)."""
    total, bound, size = 0.0, 0.0, 0.0
    for i in range(values.size):
        total += values[i]
        bound += bounds[i]
        size += abs(values[i])
    return total, bound, size


class Rough(NamedTuple):
    """Per-row losses known roughly, float64: each exact loss lies within ``bounds`` of
    ``values``; nan, bound inf, where the rough pass cannot tell (a nan or an infinity in the
    row, or for a narrow row, in its block); +0.0, bound 0, where ignored."""

    values: np.ndarray
    bounds: np.ndarray
    totals: tuple[float, float, float]
    """:func:`_totals`: ``(Σ values, Σ bounds, Σ |values|)``."""


def rough_cross_entropy_rows(x: np.ndarray, classes: np.ndarray, ignored: np.ndarray,
                             target_weights: np.ndarray | None, threads: int) -> Rough:
    """The per-row losses of a float32 ``x`` without label smoothing, roughly, with bounds."""
    out, bound = np.empty(x.shape[0]), np.empty(x.shape[0])
    weights = np.empty(0) if target_weights is None else target_weights
    if threads == 1:
        _rough_serial(x, classes, ignored, weights, out, bound)
    else:
        run(_rough_parallel, threads, x, classes, ignored, weights, out, bound)
    return Rough(out, bound, _totals(out, bound))


@njit(**_JIT)
def open_rows(values: np.ndarray, bounds: np.ndarray, own_floor: float, own_slope: float,
              skip: np.ndarray) -> np.ndarray:
    """The indices of the rows (``skip`` aside) whose float32 rounding is left open:
    :func:`celib._core.rounds_alike`'s test, compiled for float32, on each bound widened by
    ``own_floor + own_slope·|value|`` (numpy takes a pass per operation, 20 µs on 4,096 rows)."""
    found = np.empty(values.size, np.intp)
    count = 0
    for i in range(values.size):
        v = values[i]
        e = bounds[i] + own_floor + own_slope * abs(v)
        lo, hi = v - e, v + e
        if not skip[i] and not (np.float32(lo) == np.float32(hi) and (lo > 0 or hi < 0)):
            found[count] = i
            count += 1
    return found[:count]


def rough_logsumexp_rows(x: np.ndarray, threads: int) -> Rough:
    """The log-sum-exp of each row of a float32 ``x``, roughly, with bounds: the rough pass
    without targets, :math:`m + \\log s` (the same terms, sums and bound as the loss)."""
    no_classes, none_ignored = np.empty(0, np.intp), np.zeros(x.shape[0], bool)
    return rough_cross_entropy_rows(x, no_classes, none_ignored, None, threads)


@njit(**_JIT)
def _exp_rough_array(x: np.ndarray, out: np.ndarray) -> None:
    for i in range(x.size):
        out[i] = _exp_rough(x[i])


@njit(**_JIT)
def _log_rough_array(x: np.ndarray, out: np.ndarray) -> None:
    for i in range(x.size):
        out[i] = _log_rough(x[i])


def log_rough(x: np.ndarray) -> np.ndarray:
    """:func:`_log_rough` of each element of ``x`` (float64, positive, normal): for the tests."""
    return elementwise(_log_rough_array, x)


def exp_rough(x: np.ndarray) -> np.ndarray:
    """:func:`_exp_rough` of each element of ``x`` (float64, ``<= 0``): for the tests."""
    return elementwise(_exp_rough_array, x)
