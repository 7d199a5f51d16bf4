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
  pool of threads (``CELIB_NUM_THREADS``, a positive integer, or the CPUs this process may
  use); an input smaller than ``_MIN_PARALLEL`` elements stays on the calling thread, where
  the hand-off would cost more than it saves. The block boundaries depend only on the shape,
  never on the thread count, so every result is bit-for-bit the same whatever the number of
  threads.
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
* **float64 log-sum-exp near 0.** Where ``m + log1p(s)`` is below 1 in magnitude, ``m < 0``
  and ``log1p(s)`` can nearly cancel, and one ulp of ``m`` is many ulp of the result: those
  rows are computed again in double-double arithmetic (:func:`_near_zero_again`), for both
  backends.

In code: each kernel call picks its way of computing ``s`` once, a :class:`_Summation`
(:func:`_summation`), from the dtype and from what the kernel needs. There are three ways,
one function each, applied to one column chunk of a block at a time:

* :func:`_fast_sums` — ``Σ e^{x_j}``, scaled by ``e^{-m}`` afterwards (float32, on the blocks
  whose row maxima allow it; the others fall back to the plain way);
* :func:`_plain_sums` — ``Σ e^{x_j - m}``, summed pairwise for float64 (softmax and its
  gradient, whose outputs carry the error of ``e^{d_j}`` anyway) and with einsum otherwise;
* :func:`_compensated_sums` — the same plus the TwoSum correction (float64, for the
  kernels whose result is a logarithm: log-sum-exp, log-softmax, cross-entropy).

:func:`_block_stats` adds the chunks up into a frozen :class:`_Stats`; the kernels read
``x - m`` and the terms back from the block's named :class:`_Scratch` buffers, or recompute
them chunk by chunk when the rows were too wide for one chunk.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import NamedTuple

import numpy as np

from ._core import IndexTargets, smoothing_coefficients

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

_THREADS_ENV = "CELIB_NUM_THREADS"

# --------------------------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------------------------

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_pid = -1
_num_threads: int | None = None

_Work = Callable[[Iterator[int]], None]  # called with a shared iterator over block starts


def _default_threads() -> int:
    """``CELIB_NUM_THREADS`` if it is set and not blank, else the CPUs this process may use.

    Read when a thread count is first needed, never at import time, so that a bad value
    cannot break ``import celib``; a value that is not a positive integer raises ValueError.
    """
    raw = os.environ.get(_THREADS_ENV, "")
    if raw.strip():
        return _parse_threads(raw)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _parse_threads(raw: str) -> int:
    """The positive integer in ``raw`` (the value of ``CELIB_NUM_THREADS``), or ValueError."""
    try:
        n = int(raw.strip())
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{_THREADS_ENV} must be a positive integer, got {raw!r}")
    return n


def get_num_threads() -> int:
    """The number of threads the kernels use (``CELIB_NUM_THREADS``, else the usable CPUs).

    Raises ValueError if ``CELIB_NUM_THREADS`` is set to anything but a positive integer.
    """
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_threads()
    return _num_threads


def set_num_threads(n: int | None) -> int:
    """Use ``n`` threads from now on (``None``: back to the default); returns the previous value.

    Raises ValueError if ``n < 1``, or if the default is needed (``n`` None, or no count known
    yet to return) and ``CELIB_NUM_THREADS`` is not a positive integer.
    """
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


def _run(num_rows: int, num_classes: int, work: _Work) -> None:
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
    errors: list[BaseException] = []
    try:
        work(starts)
    finally:
        for future in futures:
            try:
                future.result()
            except BaseException as exc:  # pragma: no cover - re-raised below
                errors.append(exc)
    if errors:  # pragma: no cover - numpy ufuncs do not raise here
        raise errors[0]


# --------------------------------------------------------------------------------------------
# Backends: these numpy kernels, or the compiled ones of celib._fast
# --------------------------------------------------------------------------------------------

_BACKEND_ENV = "CELIB_BACKEND"
_BACKENDS = ("numpy", "numba", "auto")
_DEFAULT_BACKEND = "numpy"  # what an unset or blank CELIB_BACKEND means
_fast_modules: list[ModuleType | None] = []  # celib._fast once imported, or None without numba


def _fast_module() -> ModuleType | None:
    """celib._fast (which imports numba), imported on first use; None if numba is missing."""
    if not _fast_modules:
        try:
            from . import _fast
        except ImportError:
            _fast_modules.append(None)
        else:
            _fast_modules.append(_fast)
    return _fast_modules[0]


def get_backend() -> str:
    """The backend the row kernels use now, ``'numpy'`` or ``'numba'``, from ``CELIB_BACKEND``:
    ``numpy``, ``numba`` (ImportError without numba) or ``auto`` (numba if it can be imported);
    unset or blank means ``{default}``. Read at every call, so a change takes effect at once.

    Both give the same float32 results bit for bit; in float64 both stay within celib's
    documented error bound (``python -m benchmarks.accuracy``).
    """
    raw = os.environ.get(_BACKEND_ENV, "").strip().lower() or _DEFAULT_BACKEND
    if raw not in _BACKENDS:
        raise ValueError(f"{_BACKEND_ENV} must be one of {', '.join(_BACKENDS)}, got {raw!r}")
    if raw == "numpy":
        return "numpy"
    if _fast_module() is None:
        if raw == "numba":
            raise ImportError(f"{_BACKEND_ENV}=numba needs numba: pip install 'celib[fast]'")
        return "numpy"
    return "numba"


get_backend.__doc__ = (get_backend.__doc__ or "").replace("{default}", _DEFAULT_BACKEND)


def _compiled(*arrays: np.ndarray) -> ModuleType | None:
    """celib._fast if the backend is numba and every array is float32 or float64 (numba has no
    float16 arithmetic: those stay on numpy), else None."""
    if get_backend() != "numba" or any(a.dtype not in (_F32, _F64) for a in arrays):
        return None
    return _fast_module()


def _fast_threads(x: np.ndarray) -> int:
    """Threads for a compiled kernel: one below ``celib._fast.MIN_PARALLEL`` elements (lower
    than ``_MIN_PARALLEL``: numba's TBB layer hands work to its threads in µs, not tens)."""
    fast = _fast_module()
    return 1 if fast is None or x.size < fast.MIN_PARALLEL else get_num_threads()


# --------------------------------------------------------------------------------------------
# Blocks, column chunks and their scratch buffers
# --------------------------------------------------------------------------------------------

def _chunks(num_classes: int) -> list[tuple[int, int]]:
    """The column ranges ``[c0, c1)`` of a row: one, unless it is wider than ``_MAX_COLS``."""
    if num_classes <= _MAX_COLS:
        return [(0, num_classes)]
    return [(c, min(num_classes, c + _MAX_COLS)) for c in range(0, num_classes, _MAX_COLS)]


class _Scratch:
    """Float64 buffers of one block, each allocated on first use and reused from block to block
    by one thread. Each method returns its buffer's first ``rows × cols`` entries as a
    ``(rows, cols)`` array:

    * ``shifted`` — ``x - m`` (free for other uses once the terms are computed);
    * ``terms`` — the terms summed into ``s``: ``e^{x - m}``, or ``e^x`` on the fast path;
    * ``errors`` — the TwoSum errors ``(x - m) - fl(x - m)`` (compensated float64 only).
    """

    def __init__(self, rows: int, cols: int) -> None:
        self._size = rows * cols
        self._buffers: dict[str, np.ndarray] = {}

    def _view(self, name: str, rows: int, cols: int) -> np.ndarray:
        buf = self._buffers.get(name)
        if buf is None:
            buf = self._buffers[name] = np.empty(self._size, dtype=_F64)
        return buf[: rows * cols].reshape(rows, cols)

    def shifted(self, rows: int, cols: int) -> np.ndarray:
        return self._view("shifted", rows, cols)

    def terms(self, rows: int, cols: int) -> np.ndarray:
        return self._view("terms", rows, cols)

    def errors(self, rows: int, cols: int) -> np.ndarray:
        return self._view("errors", rows, cols)


_Block = tuple[int, int, np.ndarray, _Scratch, np.ndarray]


def _blocks(x: np.ndarray, starts: Iterator[int]) -> Iterator[_Block]:
    """Yield ``(a, b, xb, scratch, r)`` for the blocks ``xb = x[a:b]`` of ``x`` starting at
    ``starts``; ``r`` = arange(b - a), ``scratch`` is this thread's, shared by its blocks."""
    num_rows, num_classes = x.shape
    per_block = _rows_per_block(num_rows, num_classes)
    rows = min(per_block, num_rows)
    scratch = _Scratch(rows, min(num_classes, _MAX_COLS))
    r_all = np.arange(rows)
    for a in starts:
        b = min(num_rows, a + per_block)
        yield a, b, x[a:b], scratch, (r_all if b - a == rows else r_all[: b - a])


class _Chunk(NamedTuple):
    """Columns ``[c0, c1)`` of a block, and where the row maxima that fall inside them are."""

    x: np.ndarray  # xb[:, c0:c1] (xb itself when the rows fit in one chunk)
    c0: int
    c1: int
    m_col: np.ndarray  # the row maxima in float64, as a column
    max_rows: np.ndarray  # the rows whose max lies in this chunk ...
    max_cols: np.ndarray  # ... and its column within the chunk

    @property
    def shape(self) -> tuple[int, int]:
        return self.x.shape[0], self.c1 - self.c0


def _column_chunks(xb: np.ndarray, r: np.ndarray, k: np.ndarray,
                   m_col: np.ndarray) -> Iterator[_Chunk]:
    """The column chunks of a block ``xb`` wider than ``_MAX_COLS`` whose row maxima are at
    columns ``k``; ``r`` = arange(rows)."""
    for c0, c1 in _chunks(xb.shape[1]):
        inside = (k >= c0) & (k < c1)
        yield _Chunk(xb[:, c0:c1], c0, c1, m_col, r[inside], k[inside] - c0)


def _shift(xc: np.ndarray, m_col: np.ndarray, d: np.ndarray) -> None:
    """``d = x - m`` in float64 (for float32 ``x``: convert, then subtract, which is faster
    than numpy's mixed-type subtraction; both are exact)."""
    if xc.dtype == _F64:
        np.subtract(xc, m_col, out=d)
    else:
        np.copyto(d, xc, casting="safe")
        np.subtract(d, m_col, out=d)


def _twosum_error(xb: np.ndarray, m_col: np.ndarray, d: np.ndarray, err: np.ndarray,
                  tmp: np.ndarray) -> None:
    """``err = (x - m) - d`` exactly, where ``d = fl(x - m)`` (Knuth's TwoSum, branch-free)."""
    np.subtract(d, xb, out=err)  # bb = d - x
    np.subtract(d, err, out=tmp)  # d - bb
    np.subtract(xb, tmp, out=tmp)  # x - (d - bb)
    np.add(err, m_col, out=err)  # bb + m  (= -((-m) - bb))
    np.subtract(tmp, err, out=err)  # (x - (d - bb)) + ((-m) - bb)


# --------------------------------------------------------------------------------------------
# The per-block statistics: m, k and s = sum_{j != k} exp(x_j - m), three ways
# --------------------------------------------------------------------------------------------

_RowSum = Callable[[np.ndarray], np.ndarray]


def _pairwise_row_sum(a: np.ndarray) -> np.ndarray:
    """Row sums by numpy's pairwise summation, whose error does not grow with C."""
    return np.add.reduce(a, axis=1)


def _fast_row_sum(a: np.ndarray) -> np.ndarray:
    """Row sums by einsum's running sums: faster, and in float64 far more than accurate enough
    for a float32 result."""
    return np.einsum("ij->i", a)


class _Sums(NamedTuple):
    """What one chunk adds to a block's row statistics (float64, one entry per row), and the
    scratch buffers that hold its x - m and its terms."""

    s: np.ndarray  # Σ_{j≠k} of the terms (e^{x_j - m}; e^{x_j} on the fast path)
    wd: np.ndarray | None  # Σ_c w_c (x_c - m) (Σ_c w_c x_c on the fast path), if asked for
    correction: np.ndarray | None  # Σ_{j≠k} e^{d_j} err_j, compensated float64 only
    shifted: np.ndarray | None  # x - m (None on the fast path)
    terms: np.ndarray | None  # the terms, max term 0


_ChunkSums = Callable[[_Chunk, "_Summation", _Scratch], _Sums]


@dataclass(frozen=True, eq=False)
class _Summation:
    """How one kernel call computes its row statistics; chosen once per call by
    :func:`_summation`, and the same for every block but for the fast path's per-block test."""

    chunk_sums: _ChunkSums  # the e^{x - m} way: _plain_sums or _compensated_sums
    row_sum: _RowSum  # pairwise for float64, einsum's running sums otherwise
    try_fast: bool  # float32: _fast_sums on every block whose row maxima allow it
    weight: np.ndarray | None = None  # the class weights w_c of wd (None: all 1)
    want_wd: bool = False  # also Σ_c w_c (x_c - m), for label smoothing


def _summation(dtype: np.dtype, *, compensate: bool, allow_fast: bool,
               weight: np.ndarray | None = None, want_wd: bool = False) -> _Summation:
    """The summation for rows of ``dtype``: compensated if ``compensate`` and float64 (the
    kernels whose result is a log), the fast path tried if ``allow_fast`` and float32 (the
    kernels that need the terms, not x - m), else plain."""
    if dtype == _F64:
        chunk_sums = _compensated_sums if compensate else _plain_sums
        return _Summation(chunk_sums, _pairwise_row_sum, False, weight, want_wd)
    return _Summation(_plain_sums, _fast_row_sum, allow_fast and dtype == _F32, weight, want_wd)


def _wd_part(a: np.ndarray, ch: _Chunk, how: _Summation, row_sum: _RowSum) -> np.ndarray | None:
    """Σ_c w_c a_c over the chunk's columns (Σ_c a_c without weights), if ``how`` wants it."""
    if not how.want_wd:
        return None
    if how.weight is not None:
        return np.einsum("ij,j->i", a, how.weight[ch.c0:ch.c1])
    return row_sum(a)


def _fast_sums(ch: _Chunk, how: _Summation, scratch: _Scratch) -> _Sums:
    """The fast way: the terms ``e^{x_j}`` (max term 0) in ``scratch.terms``, summed by einsum;
    :func:`_block_stats` multiplies by ``e^{-m}``. ``wd`` is Σ_c w_c x_c here."""
    e = scratch.terms(*ch.shape)
    np.copyto(e, ch.x, casting="safe")
    wd = _wd_part(e, ch, how, _fast_row_sum)
    np.exp(e, out=e)
    e[ch.max_rows, ch.max_cols] = 0.0
    return _Sums(_fast_row_sum(e), wd, None, None, e)


def _plain_sums(ch: _Chunk, how: _Summation, scratch: _Scratch) -> _Sums:
    """The plain way: ``x - m`` in ``scratch.shifted``, the terms ``e^{x_j - m}`` (max term 0)
    in ``scratch.terms``, summed by ``how.row_sum``."""
    rows, cols = ch.shape
    d = scratch.shifted(rows, cols)
    _shift(ch.x, ch.m_col, d)
    wd = _wd_part(d, ch, how, how.row_sum)
    e = scratch.terms(rows, cols)
    np.exp(d, out=e)
    e[ch.max_rows, ch.max_cols] = 0.0
    return _Sums(how.row_sum(e), wd, None, d, e)


def _compensated_sums(ch: _Chunk, how: _Summation, scratch: _Scratch) -> _Sums:
    """The plain way plus the TwoSum correction Σ_j e^{d_j} err_j (``scratch.errors``)."""
    rows, cols = ch.shape
    d = scratch.shifted(rows, cols)
    _shift(ch.x, ch.m_col, d)
    wd = _wd_part(d, ch, how, how.row_sum)
    e = scratch.terms(rows, cols)
    err = scratch.errors(rows, cols)
    _twosum_error(ch.x, ch.m_col, d, err, e)  # e is free until the exp below
    np.exp(d, out=e)
    e[ch.max_rows, ch.max_cols] = 0.0
    correction = np.einsum("ij,ij->i", e, err)
    bad = np.isnan(correction)
    if bad.any():  # -inf logits (or x - m overflowing): e = 0 there, err = nan
        correction[bad] = np.nansum(e[bad] * err[bad], axis=1)
    return _Sums(how.row_sum(e), wd, correction, d, e)


def _add(total: np.ndarray | None, part: np.ndarray | None) -> np.ndarray | None:
    return None if total is None or part is None else total + part


def _add_sums(total: _Sums, part: _Sums) -> _Sums:
    """Two chunks' sums added up, each quantity on its own (s and its correction too); the
    buffers, which hold only the last chunk, are not passed on."""
    return _Sums(total.s + part.s, _add(total.wd, part.wd),
                 _add(total.correction, part.correction), None, None)


@dataclass(frozen=True, eq=False)
class _Stats:
    """Row statistics of one block (float64, one entry per row), from :func:`_block_stats`."""

    k: np.ndarray  # the column of each row's max (its first occurrence)
    m: np.ndarray  # the row max
    s: np.ndarray  # Σ_{j≠k} e^{x_j - m}
    wd: np.ndarray | None  # Σ_c w_c (x_c - m), if asked for
    fast: bool  # s came from the fast path: every row max of the block is finite
    # When the rows fit in one chunk, views of the scratch buffers that still hold x - m (not
    # on the fast path) and the terms, max term 0 (valid until the scratch is used again);
    # None with column chunks, whose buffers held only the last chunk.
    shifted: np.ndarray | None
    terms: np.ndarray | None


def _fast_applies(m: np.ndarray, num_classes: int) -> bool:
    """Whether every row max lies in [_FAST_LO, _EXP_HI - log C] (see the constants)."""
    return bool(m.min() >= _FAST_LO and m.max() <= _EXP_HI - math.log(num_classes))


def _block_stats(xb: np.ndarray, scratch: _Scratch, r: np.ndarray, how: _Summation) -> _Stats:
    """m, k, s (and Σ_c w_c (x_c - m) if ``how.want_wd``) for the rows of ``xb``;
    ``r`` = arange(rows).

    The fast path is taken when ``how.try_fast`` and the block's row maxima allow it, else
    ``how.chunk_sums``. Chunks are added up left to right, the TwoSum correction kept apart
    from ``s`` until the end.
    """
    num_classes = xb.shape[1]
    k = np.argmax(xb, axis=1)
    m = xb[r, k].astype(_F64)
    fast = how.try_fast and _fast_applies(m, num_classes)
    chunk_sums = _fast_sums if fast else how.chunk_sums
    if num_classes <= _MAX_COLS:  # one chunk, the common case
        sums = chunk_sums(_Chunk(xb, 0, num_classes, m[:, None], r, k), how, scratch)
    else:
        chunks = _column_chunks(xb, r, k, m[:, None])
        sums = functools.reduce(_add_sums, (chunk_sums(ch, how, scratch) for ch in chunks))
    s, wd, correction, shifted, terms = sums
    if fast:
        s *= np.exp(-m)
        if wd is not None:
            wd -= m * (how.weight.sum() if how.weight is not None else num_classes)
    elif correction is not None:
        s += correction
    return _Stats(k, m, s, wd, fast, shifted, terms)


def _where_finite(st: _Stats, value: np.ndarray, other: np.ndarray | float) -> np.ndarray:
    """``value`` on rows whose max is finite, ``other`` elsewhere (fast blocks are all finite)."""
    if st.fast:
        return value
    return np.where(np.isfinite(st.m), value, other)


def _chunk_shifted(xb: np.ndarray, st: _Stats, scratch: _Scratch, c0: int,
                   c1: int) -> np.ndarray:
    """``x - m`` on columns ``[c0, c1)``: the block's own, or recomputed into
    ``scratch.shifted`` (column chunks, or a fast block)."""
    if st.shifted is not None:
        return st.shifted
    d = scratch.shifted(xb.shape[0], c1 - c0)
    _shift(xb[:, c0:c1], st.m[:, None], d)
    return d


def _chunk_terms(xb: np.ndarray, st: _Stats, scratch: _Scratch, c0: int,
                 c1: int) -> np.ndarray:
    """The terms on columns ``[c0, c1)`` (e^{x - m}, or e^x on a fast block): the block's own
    (max term 0), or recomputed into ``scratch.terms`` (column chunks; max term not zeroed)."""
    if st.terms is not None:
        return st.terms
    e = scratch.terms(xb.shape[0], c1 - c0)
    if st.fast:
        np.copyto(e, xb[:, c0:c1], casting="safe")
    else:
        _shift(xb[:, c0:c1], st.m[:, None], e)
    np.exp(e, out=e)
    return e


# --------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------

def logsumexp_rows(x: np.ndarray) -> np.ndarray:
    """``m + log1p(s)`` per row of a (rows, C) float32/float64 array, in float64.

    Rows whose max is +inf, -inf or nan give that max (+inf, -inf, nan), as in torch.
    """
    fast = _compiled(x)
    if fast is not None:
        out = fast.logsumexp_rows(x, _fast_threads(x))
    else:
        out = np.empty(x.shape[0], dtype=_F64)
        how = _summation(x.dtype, compensate=True, allow_fast=True)

        def work(starts: Iterator[int]) -> None:
            with np.errstate(all="ignore"):
                for a, b, xb, scratch, r in _blocks(x, starts):
                    st = _block_stats(xb, scratch, r, how)
                    out[a:b] = _where_finite(st, st.m + np.log1p(st.s), st.m)

        _run(x.shape[0], x.shape[1], work)
    if x.dtype == _F64:
        _near_zero_again(x, out)
    return out


# --------------------------------------------------------------------------------------------
# float64 log-sum-exp near 0, in double-double
# --------------------------------------------------------------------------------------------
# Where lse = m + log1p(s) is near 0, m and log1p(s) nearly cancel: an error of one ulp of m
# in log1p(s) is many ulp of the result (185 ulp at lse = 8e-4). Those rows are computed again
# with every quantity a double-double hi + lo (about 106 bits): the terms e^{x_j - m}, their
# sum s, log1p(s) and m + log1p(s), rounded once at the end. Only rows with |lse| < 1 can
# cancel (lse >= m, so m < 0 < log1p(s) there), and they are rare in practice.

_DD = tuple[np.ndarray, np.ndarray]
_LN2_DD = (0.6931471805599453, 2.3190468138462996e-17)
_SPLIT = 134217729.0  # 2**27 + 1, Veltkamp's splitter


def _two_sum(a: np.ndarray, b: np.ndarray) -> _DD:
    """``(s, e)`` with ``s = fl(a + b)`` and ``a + b = s + e`` exactly (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _split(a: np.ndarray) -> _DD:
    c = _SPLIT * a
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a: np.ndarray, b: np.ndarray) -> _DD:
    """``(p, e)`` with ``p = fl(a b)`` and ``a b = p + e`` exactly (Dekker, no FMA in numpy)."""
    p = a * b
    a1, a2 = _split(a)
    b1, b2 = _split(b)
    return p, ((a1 * b1 - p) + a1 * b2 + a2 * b1) + a2 * b2


def _dd_add(a: _DD, b: _DD) -> _DD:
    s, e = _two_sum(a[0], b[0])
    return _two_sum(s, e + (a[1] + b[1]))


def _dd_mul(a: _DD, b: _DD) -> _DD:
    p, e = _two_prod(a[0], b[0])
    return _two_sum(p, e + (a[0] * b[1] + a[1] * b[0]))


def _inverse_factorials(n: int) -> list[tuple[float, float]]:
    """1/k! for k = 0..n as double-doubles (hi, lo), from exact fractions."""
    from fractions import Fraction

    out = []
    for k in range(n + 1):
        f = Fraction(1, math.factorial(k))
        hi = float(f)
        out.append((hi, float(f - Fraction(hi))))
    return out


_INV_FACT = _inverse_factorials(10)


def _dd_exp(d: _DD) -> _DD:
    """e^d for a double-double ``d <= 0`` (hi >= -1000), to about 2**-100 relative.

    ``d = k ln 2 + r``; e^{r / 256} - 1 by its Taylor polynomial (degree 10, |r/256| < 1.4e-3),
    squared back 8 times as ``(1 + a)^2 - 1 = a (2 + a)``, then scaled by 2^k.
    """
    k = np.rint(d[0] / _LN2_DD[0])
    p, e = _two_prod(k, np.full_like(k, _LN2_DD[0]))
    r = _dd_add(d, (-p, -e - k * _LN2_DD[1]))
    r = (r[0] / 256, r[1] / 256)
    q: _DD = (np.full_like(k, _INV_FACT[10][0]), np.full_like(k, _INV_FACT[10][1]))
    for hi, lo in reversed(_INV_FACT[1:10]):
        q = _dd_add(_dd_mul(q, r), (np.full_like(k, hi), np.full_like(k, lo)))
    a = _dd_mul(q, r)  # e^{r/256} - 1
    for _ in range(8):
        a = _dd_mul(a, _dd_add(a, (np.full_like(k, 2.0), np.zeros_like(k))))
    one_plus = _dd_add(a, (np.ones_like(k), np.zeros_like(k)))
    return np.ldexp(one_plus[0], k.astype(int)), np.ldexp(one_plus[1], k.astype(int))


def _dd_row_sum(t: _DD) -> _DD:
    """Row sums of a (rows, C) double-double array, pairwise."""
    hi, lo = t
    while hi.shape[1] > 1:
        if hi.shape[1] % 2:
            hi = np.concatenate([hi, np.zeros_like(hi[:, :1])], axis=1)
            lo = np.concatenate([lo, np.zeros_like(lo[:, :1])], axis=1)
        hi, lo = _dd_add((hi[:, ::2], lo[:, ::2]), (hi[:, 1::2], lo[:, 1::2]))
    return hi[:, 0], lo[:, 0]


def _near_zero_again(x: np.ndarray, out: np.ndarray) -> None:
    """Compute again, in double-double, the rows of float64 ``x`` whose log-sum-exp ``out``
    is finite and below 1 in magnitude (where m and log1p(s) can cancel)."""
    redo = np.flatnonzero(np.abs(out) < 1)
    if redo.size == 0 or x.shape[1] < 2:
        return
    xs = x[redo]
    k = np.argmax(xs, axis=1)
    m = xs[np.arange(len(redo)), k][:, None]
    with np.errstate(all="ignore"):
        d = _two_sum(xs, -m)  # x - m exactly
        far = ~(d[0] >= -1000.0)  # e^{x - m} < 1e-434, or a -inf logit: 0
        hi, lo = np.where(far, -1000.0, d[0]), np.where(far, 0.0, d[1])
        terms = _dd_exp((hi, lo))
        keep = ~far
        keep[np.arange(len(redo)), k] = False  # the max term, 1, is left out of s
        s = _dd_row_sum((np.where(keep, terms[0], 0.0), np.where(keep, terms[1], 0.0)))
        # log1p(s) = L0 + log((1 + s) e^{-L0}), the last factor 1 + t with |t| ~ 1e-16
        log0 = np.log1p(s[0] + s[1])
        scaled = _dd_mul(_dd_add((np.ones_like(log0), np.zeros_like(log0)), s),
                         _dd_exp((-log0, np.zeros_like(log0))))
        t = _dd_add(scaled, (-np.ones_like(log0), np.zeros_like(log0)))
        log1p_s = _dd_add((log0, np.zeros_like(log0)), (t[0], t[1] - t[0] * t[0] / 2))
        total = _dd_add((m[:, 0], np.zeros_like(log0)), log1p_s)
    out[redo] = total[0] + total[1]


def log_softmax_rows(x: np.ndarray, out: np.ndarray) -> None:
    """Write ``(x - m) - log1p(s)`` row by row into ``out`` (rows, C), any float dtype.

    Rows whose max is +inf or nan, or which hold only -inf, become nan, as in torch.
    """
    fast = _compiled(x, out)
    if fast is not None:
        fast.log_softmax_rows(x, out, _fast_threads(x))
        return
    num_classes = x.shape[1]
    # the output needs x - m anyway, so the fast path (e^x, no x - m) would save nothing
    how = _summation(x.dtype, compensate=True, allow_fast=False)

    def work(starts: Iterator[int]) -> None:
        with np.errstate(all="ignore"):
            for a, b, xb, scratch, r in _blocks(x, starts):
                st = _block_stats(xb, scratch, r, how)
                col = _where_finite(st, np.log1p(st.s), np.nan)[:, None]
                for c0, c1 in _chunks(num_classes):
                    d = _chunk_shifted(xb, st, scratch, c0, c1)
                    np.subtract(d, col, out=out[a:b, c0:c1], casting="same_kind")

    _run(x.shape[0], num_classes, work)


def softmax_rows(x: np.ndarray, out: np.ndarray) -> None:
    """Write ``e^{x - m} / (1 + s)`` row by row into ``out`` (rows, C), any float dtype.

    Rows whose max is +inf or nan, or which hold only -inf, become nan, as in torch.
    """
    fast = _compiled(x, out)
    if fast is not None:
        fast.softmax_rows(x, out, _fast_threads(x))
        return
    how = _summation(x.dtype, compensate=False, allow_fast=True)

    def work(starts: Iterator[int]) -> None:
        with np.errstate(all="ignore"):
            for a, b, xb, scratch, r in _blocks(x, starts):
                _write_probabilities(xb, scratch, r, out[a:b], how)

    _run(x.shape[0], x.shape[1], work)


_Shift = tuple[np.ndarray, np.ndarray]  # (per-row amounts a_i, per-class weights w_c)


def _write_probabilities(xb: np.ndarray, scratch: _Scratch, r: np.ndarray, ob: np.ndarray,
                         how: _Summation, coef: np.ndarray | None = None,
                         shift: _Shift | None = None) -> _Stats:
    """``ob = coef·q - a ⊗ w``, q the softmax of the rows of ``xb`` (``coef`` = 1 if None;
    no shift if ``shift = (a, w)`` is None).

    Returns the block's statistics; non-finite rows (max +inf, nan or only -inf) get nan.
    The max entry is written as ``coef/(1+s) - a·w_k`` exactly (no e^m·e^-m round-trip).
    """
    st = _block_stats(xb, scratch, r, how)
    inv = 1.0 / (1.0 + st.s)
    scale = _where_finite(st, inv if coef is None else coef * inv, np.nan)
    row_scale = (scale * np.exp(-st.m) if st.fast else scale)[:, None]
    for c0, c1 in _chunks(xb.shape[1]):
        e = _chunk_terms(xb, st, scratch, c0, c1)
        if shift is None:
            np.multiply(e, row_scale, out=ob[:, c0:c1], casting="same_kind")
            continue
        amount, w = shift
        np.multiply(e, row_scale, out=e)
        tmp = scratch.shifted(xb.shape[0], c1 - c0)  # x - m is no longer needed
        np.multiply(amount[:, None], w[c0:c1], out=tmp)
        np.subtract(e, tmp, out=ob[:, c0:c1], casting="same_kind")
    # the max entry: exactly coef/(1+s) (minus its shift)
    ob[r, st.k] = scale if shift is None else scale - shift[0] * shift[1][st.k]
    return st


def cross_entropy_rows(x: np.ndarray, targets: IndexTargets, weight: np.ndarray | None,
                       epsilon: float) -> np.ndarray:
    """Per-element losses (float64) for class-index targets.

    Element i's loss is ``w_y (lse_i - x_{i,y})`` (``y = targets.classes[i]``, ``w_y`` from
    ``targets.weights``, 1 without class weights), mixed with ``Σ_c w_c (lse_i - x_{i,c})`` by
    label smoothing ``epsilon``; it is exactly +0.0 where ``targets.ignored``, nan where the
    row's max is not finite. ``weight`` is the float64 class-weight vector or None. The 'mean'
    denominator is ``targets.denominator`` (:mod:`celib._core`).
    """
    num_rows, num_classes = x.shape
    weight_sum = float(np.sum(weight)) if weight is not None else float(num_classes)
    keep, spread = smoothing_coefficients(epsilon, num_classes)
    fast = _compiled(x)
    if fast is not None:
        return fast.cross_entropy_rows(x, targets.classes, targets.ignored, targets.weights,
                                       weight, epsilon, weight_sum, keep, spread,
                                       _fast_threads(x))
    per_element = np.empty(num_rows, dtype=_F64)
    how = _summation(x.dtype, compensate=True, allow_fast=True, weight=weight,
                     want_wd=epsilon > 0)

    def work(starts: Iterator[int]) -> None:
        with np.errstate(all="ignore"):
            for a, b, xb, scratch, r in _blocks(x, starts):
                skip = targets.ignored[a:b]
                y = targets.classes[a:b]
                st = _block_stats(xb, scratch, r, how)
                log_norm = np.log1p(st.s)
                loss = _where_finite(st, (st.m - xb[r, y]) + log_norm, np.nan)
                if targets.weights is not None:
                    loss *= targets.weights[a:b]
                if st.wd is not None:  # label smoothing
                    uniform = _where_finite(st, weight_sum * log_norm - st.wd, np.nan)
                    loss = keep * loss + spread * uniform
                per_element[a:b] = np.where(skip, 0.0, loss)

    _run(num_rows, num_classes, work)
    return per_element


def _target_gradient(xb: np.ndarray, r: np.ndarray, y: np.ndarray, st: _Stats,
                     c: np.ndarray, smoothing: _Shift | None, weight_sum: float) -> np.ndarray:
    """The gradient at the target entries, without the cancellation of p_y - 1 when p_y ≈ 1."""
    inv = 1.0 / (1.0 + st.s)
    p_y = np.exp(xb[r, y] - st.m) * inv
    at_max = y == st.k
    g_y = c * np.where(at_max, -st.s * inv, p_y - 1.0)
    if smoothing is not None:
        sm, w = smoothing
        g_y += sm * (weight_sum * np.where(at_max, inv, p_y) - w[y])
    return g_y


def cross_entropy_grad_rows(x: np.ndarray, targets: IndexTargets, weight: np.ndarray | None,
                            scale: float, smooth: float, out: np.ndarray) -> None:
    """Write the gradient rows ``c_i·(q - e_y) + s_i·(Σw·q - w)`` into ``out`` (q = softmax).

    ``c_i = scale·w_{y_i}`` (``targets.weights``, 1 without class weights) and ``s_i = smooth``
    on kept rows; rows where ``targets.ignored`` is True get exactly 0, or nan where their
    softmax is nan (a +inf or nan logit, or only -inf), as torch's autograd gives 0 · nan.
    ``weight`` is the float64 class-weight vector or None (all ones).
    """
    weight_sum = float(np.sum(weight)) if weight is not None else float(x.shape[1])
    fast = _compiled(x, out)
    if fast is not None:
        fast.cross_entropy_grad_rows(x, targets.classes, targets.ignored, targets.weights,
                                     weight, scale, smooth, weight_sum, out, _fast_threads(x))
        return
    # the weights of the smoothing term, needed only when there is one
    w = None if smooth == 0 else weight if weight is not None else np.ones(x.shape[1])
    how = _summation(x.dtype, compensate=False, allow_fast=True)

    def work(starts: Iterator[int]) -> None:
        with np.errstate(all="ignore"):
            for a, b, xb, scratch, r in _blocks(x, starts):
                ob = out[a:b]
                skip = targets.ignored[a:b]
                y = targets.classes[a:b]
                c = np.where(skip, 0.0, scale if targets.weights is None
                             else scale * targets.weights[a:b])
                smoothing = None if w is None else (np.where(skip, 0.0, smooth), w)
                full = c if smoothing is None else c + smoothing[0] * weight_sum
                st = _write_probabilities(xb, scratch, r, ob, how, coef=full, shift=smoothing)
                g_y = _target_gradient(xb, r, y, st, c, smoothing, weight_sum)
                ob[r, y] = _where_finite(st, g_y, np.nan)
                if skip.any():  # 0, or nan where the softmax is (torch: 0 * nan)
                    ob[skip] = 0 if st.fast else np.where(np.isfinite(st.m[skip]), 0.0,
                                                          np.nan)[:, None]

    _run(x.shape[0], x.shape[1], work)


# --------------------------------------------------------------------------------------------
# Binary cross-entropy with logits, elementwise
# --------------------------------------------------------------------------------------------

def binary_cross_entropy_terms(x: np.ndarray, y: np.ndarray,
                               pos_weight: np.ndarray | None) -> np.ndarray:
    """Per-element binary cross-entropy with logits,
    :math:`(1-y)\\,\\operatorname{softplus}(x) + p\\,y\\,\\operatorname{softplus}(-x)`
    (``p`` = ``pos_weight``, 1 if None), broadcast, in ``x``'s dtype.

    softplus as :math:`\\max(x, 0) + \\operatorname{log1p}(e^{-|x|})` neither overflows nor
    cancels, so a tiny loss keeps its digits. Where a value is not finite, torch's own form
    :math:`(1-y)\\,x + (1 + (p-1)\\,y)\\,\\operatorname{softplus}(-x)` is what torch returns
    (``x = -inf, y = 1`` is nan there, not inf), so those elements take it, silently: the nan
    or inf in the result is the message.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        tail = np.log1p(np.exp(-np.abs(x)))  # shared by softplus(x) and softplus(-x)
        softplus_neg = np.maximum(-x, 0) + tail
        positive = y * softplus_neg if pos_weight is None else pos_weight * (y * softplus_neg)
        loss = (1 - y) * (np.maximum(x, 0) + tail) + positive
        finite = np.isfinite(x) & np.isfinite(y)
        if pos_weight is not None:
            finite &= np.isfinite(pos_weight)
        if finite.all():
            return loss
        log_weight = 1 if pos_weight is None else 1 + (pos_weight - 1) * y
        torch_form = (1 - y) * x + log_weight * softplus_neg
        return np.where(finite, loss, torch_form)
