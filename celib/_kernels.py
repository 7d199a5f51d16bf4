"""Blocked, multi-threaded row kernels behind :mod:`celib.functional` and :mod:`celib.grad`.

Private: the public functions check their arguments, bring the class axis last (an array of
shape ``(rows, C)`` whose rows are contiguous) and call the kernels here, which return
float64 row statistics or write the result into an array the caller allocated.

How it is fast
--------------
* **Row blocks.** The rows are cut into blocks of about ``_BLOCK`` elements (a 2 MiB float64
  scratch buffer), so the temporaries of one block stay in cache between the passes over it
  and never grow with the input: the extra memory is a few blocks, not a copy of the input.
  Rows wider than ``_MAX_COLS`` are cut into column chunks as well. (Smaller blocks fit the
  L2 cache better, but every numpy call costs about a microsecond and several of them hold
  the GIL, so two threads only scale on large blocks.)
* **Threads.** numpy's ufuncs release the GIL, so the blocks are shared out among a small
  pool of threads (``CELIB_NUM_THREADS`` or the CPUs this process may use); an input smaller
  than ``_MIN_PARALLEL`` elements stays on the calling thread, where the hand-off would cost
  more than it saves. The block boundaries depend only on the shape, never on the thread
  count, so every result is bit-for-bit the same whatever the number of threads.
* **No full intermediate.** The cross-entropy needs, per row, only
  :math:`\\mathrm{lse}_i = m_i + \\operatorname{log1p}(s_i)` and the target logit, so it never
  materialises the ``(N, C)`` log-softmax that ``torch`` allocates.

How it is accurate
------------------
With :math:`m = \\max_j x_j` at index :math:`k` and :math:`s = \\sum_{j \\ne k} e^{x_j - m}`
(the max term, exactly 1, left out of the sum so that ``log1p`` sees a small ``s`` exactly),
the only delicate quantity is ``s``, and only its relative error matters.

* **float32 input is computed in float64** block by block: ``x - m`` of two float32 numbers
  is exact in float64 (or off by 2**-53 relative, which no float32 result can see), ``exp`` in
  float64 is accurate to about 2**-52, so the one rounding that matters is the final one to
  float32 (numpy's float32 ``exp`` alone is off by up to 2.5 float32 ulp). When every row
  max of a block lies in [-600, 707 - log C], ``e^{x_j - m}`` is computed as
  ``e^{x_j} * e^{-m}`` (one pass fewer, still accurate to a few float64 ulp, far below a
  float32 ulp), and row sums use einsum's running sums, also far more accurate than needed.
* **float64 input carries the rounding error of x − m into exp.** ``d = fl(x - m)`` is off by
  up to half an ulp of ``d``, i.e. ``exp(d)`` by a relative :math:`|d|\\,2^{-53}` (hundreds of
  ulp for ``d ≈ -700``). The error ``err = (x - m) - d`` is recovered exactly with Knuth's
  TwoSum and :math:`s = \\sum_j e^{d_j}(1 + \\mathrm{err}_j)`; ``s`` is summed pairwise.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_F64 = np.dtype(np.float64)
_F32 = np.dtype(np.float32)

_BLOCK = 1 << 18  # elements per block: a 2 MiB float64 scratch buffer per pass ...
_MIN_BLOCK = 4096  # ... but at most max(_MIN_BLOCK, N·C / 16) elements, so that the scratch
# buffers of all threads together stay well below the size of a smaller input
_MAX_COLS = 131072  # wider rows are processed in column chunks of this width
_MIN_PARALLEL = 1 << 17  # below this many elements the caller's thread does all the work
# The float32 fast path takes e^{x_j} * e^{-m} when every row max m lies in
# [_FAST_LO, _EXP_HI - log C]: then e^{-m} is finite, a sum of C terms e^{x_j} <= e^m cannot
# overflow, and every term a float32 result can see (x_j - m > -104) is a normal float64.
_FAST_LO, _EXP_HI = -600.0, 707.0

# --------------------------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------------------------

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_pid = -1
_num_threads: int | None = None


def _default_threads() -> int:
    env = os.environ.get("CELIB_NUM_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def get_num_threads() -> int:
    """The number of threads the kernels use (``CELIB_NUM_THREADS``, else the usable CPUs)."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_threads()
    return _num_threads


def set_num_threads(n: int | None) -> int:
    """Use ``n`` threads from now on (``None``: back to the default); returns the previous value."""
    global _num_threads
    previous = get_num_threads()
    if n is None:
        _num_threads = _default_threads()
    else:
        n = int(n)
        if n < 1:
            raise ValueError(f"the number of threads must be at least 1, got {n}")
        _num_threads = n
    return previous


def _executor(workers: int) -> ThreadPoolExecutor:
    """The shared pool with at least ``workers`` threads, recreated after a fork."""
    global _pool, _pool_size, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid() or _pool_size < workers:
            # a smaller pool is dropped, not shut down (another thread may still be using it);
            # its idle threads exit once it is garbage-collected
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="celib")
            _pool_size = workers
            _pool_pid = os.getpid()
        return _pool


def _rows_per_block(num_rows: int, num_classes: int) -> int:
    """Rows per block: about min(_BLOCK, max(_MIN_BLOCK, N·C/16)) elements, at least one row.
    Depends on the shape only, never on the number of threads."""
    size = min(_BLOCK, max(_MIN_BLOCK, num_rows * num_classes // 16))
    return max(1, size // max(num_classes, 1))


def _run(num_rows: int, num_classes: int, work) -> None:
    """Call ``work(starts)`` on one or more threads; ``starts`` is a shared iterator over the
    first rows of the blocks, each thread taking the next block when it is done with one.

    Every block is computed the same way whichever thread takes it, so how the rows are shared
    out never changes what is computed; taking blocks as they come keeps both threads busy
    when the machine is busy with something else.
    """
    if num_rows == 0:
        return
    per_block = _rows_per_block(num_rows, num_classes)
    blocks = -(-num_rows // per_block)
    threads = min(get_num_threads(), blocks)
    starts = iter(range(0, num_rows, per_block))  # next() on it is atomic under the GIL
    if threads <= 1 or num_rows * num_classes < _MIN_PARALLEL:
        work(starts)
        return
    pool = _executor(threads - 1)
    futures = [pool.submit(work, starts) for _ in range(threads - 1)]
    try:
        work(starts)
    finally:
        errors = []
        for future in futures:
            try:
                future.result()
            except BaseException as exc:  # pragma: no cover - re-raised below
                errors.append(exc)
    if errors:  # pragma: no cover - numpy ufuncs do not raise here
        raise errors[0]


# --------------------------------------------------------------------------------------------
# The per-block statistics: m, k and s = sum_{j != k} exp(x_j - m)
# --------------------------------------------------------------------------------------------

def _chunks(num_classes: int) -> list[tuple[int, int]]:
    if num_classes <= _MAX_COLS:
        return [(0, num_classes)]
    return [(c, min(num_classes, c + _MAX_COLS)) for c in range(0, num_classes, _MAX_COLS)]


class _Scratch:
    """Float64 buffers of one block, allocated on first use and reused from block to block by
    one thread."""

    def __init__(self, rows: int, cols: int, count: int) -> None:
        self._size = rows * cols
        self._flat: list[np.ndarray | None] = [None] * count

    def get(self, i: int, rows: int, cols: int) -> np.ndarray:
        buf = self._flat[i]
        if buf is None:
            buf = self._flat[i] = np.empty(self._size, dtype=_F64)
        return buf[: rows * cols].reshape(rows, cols)


def _shift(xc: np.ndarray, m_col: np.ndarray, d: np.ndarray) -> None:
    """``d = x - m`` in float64 (for float32 ``x``: convert, then subtract, which is faster
    than numpy's mixed-type subtraction; both are exact)."""
    if xc.dtype == _F64:
        np.subtract(xc, m_col, out=d)
    else:
        np.copyto(d, xc, casting="safe")
        np.subtract(d, m_col, out=d)


def _pairwise_row_sum(a: np.ndarray) -> np.ndarray:
    return np.add.reduce(a, axis=1)


def _fast_row_sum(a: np.ndarray) -> np.ndarray:
    return np.einsum("ij->i", a)


def _twosum_error(xb: np.ndarray, m_col: np.ndarray, d: np.ndarray, err: np.ndarray,
                  tmp: np.ndarray) -> None:
    """``err = (x - m) - d`` exactly, where ``d = fl(x - m)`` (Knuth's TwoSum, branch-free)."""
    np.subtract(d, xb, out=err)  # bb = d - x
    np.subtract(d, err, out=tmp)  # d - bb
    np.subtract(xb, tmp, out=tmp)  # x - (d - bb)
    np.add(err, m_col, out=err)  # bb + m  (= -((-m) - bb))
    np.subtract(tmp, err, out=err)  # (x - (d - bb)) + ((-m) - bb)


class _Stats:
    """Row statistics of one block (float64, one entry per row)."""

    __slots__ = ("k", "m", "s", "wd", "fast", "scratch_d", "scratch_e", "e_index")


def _block_stats(xb: np.ndarray, scratch: _Scratch, r: np.ndarray, *, compensate: bool,
                 allow_fast: bool, weight: np.ndarray | None, want_wd: bool) -> _Stats:
    """m, k, s (and Σ_c w_c (x_c - m) if ``want_wd``) for the rows of ``xb``; ``r`` = arange(rows).

    ``fast``: s from e^{x}·e^{-m}, for float32 input whose row maxima all lie in
    [-600, 707 - log C] (every term that a float32 result can see is then a normal float64,
    and no sum overflows). Otherwise s from e^{x - m}, with the TwoSum correction if
    ``compensate``. When the rows fit in one chunk, ``scratch_d`` holds x - m (shift path
    only) and ``scratch_e`` the terms (e^{x_j - m}, or e^{x_j} on the fast path) with the max
    term set to 0.
    """
    rows, num_classes = xb.shape
    st = _Stats()
    st.k = k = np.argmax(xb, axis=1)
    st.m = m = xb[r, k].astype(_F64)
    st.scratch_d = st.scratch_e = None
    st.fast = fast = bool(allow_fast and m.min() >= _FAST_LO
                          and m.max() <= _EXP_HI - math.log(num_classes))
    st.e_index = 0 if fast else 1  # which scratch buffer holds the terms
    # float64 input: pairwise summation (numpy's add.reduce), whose error does not grow with C;
    # float32 input: einsum's faster running sums, in float64, are far more than accurate enough.
    row_sum = _pairwise_row_sum if xb.dtype == _F64 else _fast_row_sum
    chunks = _chunks(num_classes)
    single = len(chunks) == 1
    s = wd = correction = None
    m_col = m[:, None]
    for c0, c1 in chunks:
        width = c1 - c0
        xc = xb if single else xb[:, c0:c1]
        if single:
            kr, kc = r, k
        else:
            inside = (k >= c0) & (k < c1)
            kr, kc = r[inside], k[inside] - c0
        if fast:
            e = scratch.get(0, rows, width)
            np.copyto(e, xc, casting="safe")
            if want_wd:
                part_wd = (np.einsum("ij,j->i", e, weight[c0:c1]) if weight is not None
                           else _fast_row_sum(e))
            np.exp(e, out=e)
            e[kr, kc] = 0.0
            part_s = _fast_row_sum(e)
        else:
            d = scratch.get(0, rows, width)
            e = scratch.get(1, rows, width)
            _shift(xc, m_col, d)
            if want_wd:
                part_wd = (np.einsum("ij,j->i", d, weight[c0:c1]) if weight is not None
                           else row_sum(d))
            if compensate:
                err = scratch.get(2, rows, width)
                _twosum_error(xc, m_col, d, err, e)
            np.exp(d, out=e)
            e[kr, kc] = 0.0
            part_s = row_sum(e)
            if compensate:
                part_c = np.einsum("ij,ij->i", e, err)
                bad = np.isnan(part_c)
                if bad.any():  # -inf logits (or x - m overflowing): e = 0 there, err = nan
                    part_c[bad] = np.nansum(e[bad] * err[bad], axis=1)
                correction = part_c if correction is None else correction + part_c
            st.scratch_d = d
        st.scratch_e = e
        s = part_s if s is None else s + part_s
        if want_wd:
            wd = part_wd if wd is None else wd + part_wd
    if fast:
        s *= np.exp(-m)
        if want_wd:
            wd -= m * (weight.sum() if weight is not None else num_classes)
    elif correction is not None:
        s += correction
    st.s, st.wd = s, wd
    if not single:
        st.scratch_d = st.scratch_e = None
    return st


def _scratch_count(dtype: np.dtype, compensate: bool) -> int:
    return 3 if (compensate and dtype == _F64) else 2


def _blocks(x: np.ndarray, starts, buffers: int):
    """Yield ``(a, b, xb, scratch, r)`` for the blocks of ``x`` starting at ``starts``."""
    num_rows = x.shape[0]
    per_block = _rows_per_block(num_rows, x.shape[1])
    rows = min(per_block, num_rows)
    scratch = _Scratch(rows, min(x.shape[1], _MAX_COLS), buffers)
    r_all = np.arange(rows)
    for a in starts:
        b = min(num_rows, a + per_block)
        yield a, b, x[a:b], scratch, (r_all if b - a == rows else r_all[: b - a])


def _where_finite(st: _Stats, value: np.ndarray, other) -> np.ndarray:
    """``value`` on rows whose max is finite, ``other`` elsewhere (fast blocks are all finite)."""
    if st.fast:
        return value
    return np.where(np.isfinite(st.m), value, other)


# --------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------

def logsumexp_rows(x: np.ndarray) -> np.ndarray:
    """``m + log1p(s)`` per row of a (rows, C) float32/float64 array, in float64.

    Rows whose max is +inf, -inf or nan give that max (+inf, -inf, nan), as in torch.
    """
    out = np.empty(x.shape[0], dtype=_F64)
    compensate = x.dtype == _F64
    allow_fast = x.dtype == _F32

    def work(starts) -> None:
        with np.errstate(all="ignore"):
            for a, b, xb, scratch, r in _blocks(x, starts, _scratch_count(x.dtype, compensate)):
                st = _block_stats(xb, scratch, r, compensate=compensate, allow_fast=allow_fast,
                                  weight=None, want_wd=False)
                out[a:b] = _where_finite(st, st.m + np.log1p(st.s), st.m)

    _run(x.shape[0], x.shape[1], work)
    return out


def log_softmax_rows(x: np.ndarray, out: np.ndarray) -> None:
    """Write ``(x - m) - log1p(s)`` row by row into ``out`` (rows, C), any float dtype.

    Rows whose max is +inf or nan, or which hold only -inf, become nan, as in torch.
    """
    num_classes = x.shape[1]
    compensate = x.dtype == _F64

    def work(starts) -> None:
        with np.errstate(all="ignore"):
            for a, b, xb, scratch, r in _blocks(x, starts, _scratch_count(x.dtype, compensate)):
                st = _block_stats(xb, scratch, r, compensate=compensate, allow_fast=False,
                                  weight=None, want_wd=False)
                col = _where_finite(st, np.log1p(st.s), np.nan)[:, None]
                if st.scratch_d is not None:
                    np.subtract(st.scratch_d, col, out=out[a:b], casting="same_kind")
                    continue
                m_col = st.m[:, None]
                for c0, c1 in _chunks(num_classes):
                    d = scratch.get(0, b - a, c1 - c0)
                    _shift(xb[:, c0:c1], m_col, d)
                    np.subtract(d, col, out=out[a:b, c0:c1], casting="same_kind")

    _run(x.shape[0], num_classes, work)


def softmax_rows(x: np.ndarray, out: np.ndarray) -> None:
    """Write ``e^{x - m} / (1 + s)`` row by row into ``out`` (rows, C), any float dtype.

    Rows whose max is +inf or nan, or which hold only -inf, become nan, as in torch.
    """

    def work(starts) -> None:
        with np.errstate(all="ignore"):
            for a, b, xb, scratch, r in _blocks(x, starts, 2):
                _write_probabilities(xb, scratch, r, out[a:b])

    _run(x.shape[0], x.shape[1], work)


def _write_probabilities(xb: np.ndarray, scratch: _Scratch, r: np.ndarray, ob: np.ndarray,
                         coef: np.ndarray | None = None, shift: np.ndarray | None = None,
                         weight: np.ndarray | None = None) -> _Stats:
    """``ob = coef·q - shift·w``, q the softmax of the rows of ``xb`` (``coef`` = 1, ``shift`` = 0
    if None).

    Returns the block's statistics; non-finite rows (max +inf, nan or only -inf) get nan.
    The max entry is written as ``coef/(1+s) - shift·w_k`` exactly (no e^m·e^-m round-trip).
    """
    num_classes = xb.shape[1]
    st = _block_stats(xb, scratch, r, compensate=False, allow_fast=xb.dtype == _F32,
                      weight=None, want_wd=False)
    inv = 1.0 / (1.0 + st.s)
    scale = _where_finite(st, inv if coef is None else coef * inv, np.nan)
    row_scale = (scale * np.exp(-st.m) if st.fast else scale)[:, None]
    with_shift = shift is not None and weight is not None
    for c0, c1 in _chunks(num_classes):
        width = c1 - c0
        if st.scratch_e is not None:
            e, free = st.scratch_e, 1 - st.e_index
        else:  # column chunks: recompute this chunk's terms
            e, free = scratch.get(1, len(r), width), 0
            if st.fast:
                np.copyto(e, xb[:, c0:c1], casting="safe")
            else:
                _shift(xb[:, c0:c1], st.m[:, None], e)
            np.exp(e, out=e)
        if with_shift:
            np.multiply(e, row_scale, out=e)
            tmp = scratch.get(free, len(r), width)
            np.multiply(shift[:, None], weight[c0:c1], out=tmp)
            np.subtract(e, tmp, out=ob[:, c0:c1], casting="same_kind")
        else:
            np.multiply(e, row_scale, out=ob[:, c0:c1], casting="same_kind")
    # the max entry: exactly coef/(1+s) (minus its shift)
    ob[r, st.k] = scale - shift * weight[st.k] if with_shift else scale
    return st


def cross_entropy_rows(x: np.ndarray, target: np.ndarray, ignored: np.ndarray,
                       weight: np.ndarray | None, epsilon: float) -> tuple[np.ndarray, float]:
    """Per-element losses (float64) and the 'mean' denominator, for class-index targets.

    Element i's loss is ``w_y (lse_i - x_{i,y})`` (``y = target[i]``, ``w_y`` = 1 without
    weights), mixed with ``Σ_c w_c (lse_i - x_{i,c})`` by label smoothing ``epsilon``; it is
    exactly 0 where ``ignored``, nan where the row's max is not finite. ``target`` holds valid
    class indices wherever it is not ignored; ``weight`` is float64 or None. The denominator is
    ``Σ_i w_{y_i}`` over the elements kept, summed block by block in a fixed order.
    """
    num_rows, num_classes = x.shape
    per_element = np.empty(num_rows, dtype=_F64)
    compensate = x.dtype == _F64
    allow_fast = x.dtype == _F32
    weight_sum = float(np.sum(weight)) if weight is not None else float(num_classes)
    want_uniform = epsilon > 0
    partial: dict[int, float] = {}

    def work(starts) -> None:
        with np.errstate(all="ignore"):
            for a, b, xb, scratch, r in _blocks(x, starts, _scratch_count(x.dtype, compensate)):
                skip = ignored[a:b]
                y = np.where(skip, 0, target[a:b])
                st = _block_stats(xb, scratch, r, compensate=compensate, allow_fast=allow_fast,
                                  weight=weight, want_wd=want_uniform)
                log_norm = np.log1p(st.s)
                loss = _where_finite(st, (st.m - xb[r, y]) + log_norm, np.nan)
                if weight is not None:
                    target_weight = np.where(skip, 0.0, weight[y])
                    partial[a] = float(np.sum(target_weight))
                    loss *= target_weight
                if want_uniform:
                    uniform = _where_finite(st, weight_sum * log_norm - st.wd, np.nan)
                    loss = (1 - epsilon) * loss + (epsilon / num_classes) * uniform
                per_element[a:b] = np.where(skip, 0.0, loss)

    _run(num_rows, num_classes, work)
    if weight is None:
        denominator = float(num_rows - np.count_nonzero(ignored))
    else:
        denominator = float(sum(partial[a] for a in sorted(partial)))
    return per_element, denominator


def cross_entropy_grad_rows(x: np.ndarray, target: np.ndarray, ignored: np.ndarray,
                            weight: np.ndarray | None, scale: float, smooth: float,
                            out: np.ndarray) -> None:
    """Write the gradient rows ``c_i·(q - e_y) + s_i·(Σw·q - w)`` into ``out`` (q = softmax).

    ``c_i = scale·w_{y_i}`` and ``s_i = smooth`` on kept rows; rows where ``ignored`` is True
    get exactly 0 whatever their logits. ``target`` holds valid class indices wherever it is not
    ignored; ``weight`` is float64 or None (all ones).
    """
    weight_sum = float(np.sum(weight)) if weight is not None else float(x.shape[1])
    w = weight if weight is not None or smooth == 0 else np.ones(x.shape[1])

    def work(starts) -> None:
        with np.errstate(all="ignore"):
            for a, b, xb, scratch, r in _blocks(x, starts, 2):
                ob = out[a:b]
                skip = ignored[a:b]
                y = np.where(skip, 0, target[a:b])
                c = np.where(skip, 0.0, scale if weight is None else scale * weight[y])
                sm = np.where(skip, 0.0, smooth) if smooth != 0 else None
                full = c if sm is None else c + sm * weight_sum
                st = _write_probabilities(xb, scratch, r, ob, coef=full, shift=sm, weight=w)
                # the target entry, without the cancellation of p_y - 1 when p_y ≈ 1
                inv = 1.0 / (1.0 + st.s)
                p_y = np.exp(xb[r, y] - st.m) * inv
                at_max = y == st.k
                g_y = c * np.where(at_max, -st.s * inv, p_y - 1.0)
                if sm is not None:
                    g_y += sm * (weight_sum * np.where(at_max, inv, p_y) - w[y])
                ob[r, y] = _where_finite(st, g_y, np.nan)
                if skip.any():
                    ob[skip] = 0

    _run(x.shape[0], x.shape[1], work)
