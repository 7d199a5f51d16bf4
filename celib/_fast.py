"""Compiled row kernels (numba) behind :mod:`celib._kernels`, the ``numba`` backend.

Private, and optional: this module imports numba, so :mod:`celib._kernels` imports it only
when the backend is ``numba`` (``CELIB_BACKEND``) and on the first kernel call. Each kernel
computes exactly what its numpy twin in :mod:`celib._kernels` computes, with the same
interface (rows of shape ``(rows, C)``, contiguous; float64 row statistics), so that
:mod:`celib.functional`, :mod:`celib.grad` and :mod:`celib._core` do not know which one ran.
A float32 cross-entropy first takes :mod:`celib._fast_checked`'s rough pass, whose error
bound proves most roundings; these kernels compute the rows it leaves open.

How it is fast
--------------
* **One row at a time, rows shared out by** ``prange``, in blocks of about ``_BLOCK``
  elements whose scratch rows (float64, one row wide) stay in cache. Passes over a row: its
  max, then the terms :math:`e^{x_j - m}` into the scratch row (and, for the log kernels in
  float64, their TwoSum corrections), then their sums; the output pass, if any, reads the
  scratch row back. Nothing of size ``(N, C)`` is allocated. Rows narrower than ``_NARROW``
  classes, too short for a vector loop, get their terms a block of rows at a time
  (:func:`_narrow_stats`), in one loop over the block, then the same sums row by row.
* **A float64 exp made of vectorisable operations only** (:func:`_exp`), because LLVM has no
  vector ``exp`` of its own and PyPI's llvmlite comes without Intel's SVML: ``math.exp`` in
  the loop stays a scalar call. Here ``k = rint(x log2 e)`` (the ``llvm.rint`` intrinsic, one
  instruction; never the magic-number trick ``(x·log2 e + 1.5·2**52) - 1.5·2**52``, which
  reassociation folds to ``x·log2 e``), ``r = x - k ln 2`` in two steps (Cody–Waite: the
  leading part of ln 2 has 32 significant bits, so ``k·ln2_hi`` is exact), ``e^r`` by the
  degree-11 Chebyshev fit in Horner form (relative error 7.4e-18, 1/30 ulp, on ``|r| <= ln2/2``),
  and :math:`2^k` by building its bits, ``(k + 1023) << 52``, and reinterpreting them as a
  float64 (:func:`_as_float64`, a bit cast). ``k`` passes through int32 because AVX2 has no
  float64 → int64 conversion. The scaling is split in two factors :math:`2^{k_1} 2^{k_2}` so
  that it neither overflows for ``x`` near 709.78 nor skips the subnormal results below
  ``e^{-708}``; arguments are clamped to [-746, 710] first (0 and inf beyond), nan is
  given back as it came. The terms of a float32 row take :func:`_exp_term`: the same ``k``
  and polynomial (the same bits down to ``e^{-708}``, 0 below), without the checks a term
  ``x - m <= 0`` of a finite row does not need, and ``2^k`` from the last bits of
  ``k + (1.5·2**52 + 1023)`` (one addition and one shift).

How it stays exact and the same everywhere
------------------------------------------
The accuracy design is :mod:`celib._kernels`'s: float32 rows are computed in float64 and
rounded once; float64 rows carry the TwoSum error of ``x - m`` into the sum, and add their
terms in blocks of 64 whose sums are added with TwoSum (:func:`_lane_sum_compensated`: a
long row's sum stays as accurate as numpy's pairwise one); the max term,
exactly 1, is left out of ``s`` so that ``log1p(s)`` keeps a tiny loss's digits (ties with
the max are counted, and all but one added back as integers).

The results do not depend on the vector width (AVX2, AVX-512) nor on the number of threads:

* each row is computed by one thread, whole, so the thread count only decides who does it;
* floating-point sums are written with **eight explicit accumulators** combined in a fixed
  order (:func:`_lane_sum`); the compiler may not reassociate
  them, because the fastmath flags (``SAFE_FLAGS``) leave out ``reassoc`` (which would let
  it split a sum into as many partial sums as the vector has lanes) and ``contract`` (which
  would fuse a multiply and an add on a machine with FMA only). The fused multiply-adds of
  the exp are explicit (``llvm.fma``), so they are the same on every machine. ``nnan`` and
  ``ninf`` are left out too: nan and inf keep their meaning (a nan logit gives a nan row, a
  +inf logit a +inf log-sum-exp).
* on a CPU without FMA (``make test-portable``'s baseline), float32 results are still the
  same; float64 results can differ in the last bit.
* the row max is ``llvm.maximum`` (:func:`_maximum`), which propagates nan and is exactly
  associative, so LLVM vectorises it without any flag and any order gives the same max.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from importlib import metadata
from typing import Any

import numba
import numpy as np
from llvmlite import ir  # type: ignore[import-untyped]
from numba import njit, prange, types
from numba.extending import intrinsic



def _load_tbb() -> bool:
    """Load TBB's runtime for numba's ``tbb`` layer; False if it is missing or too old.

    pip puts the ``tbb`` wheel's ``libtbb.so.12`` in the environment's ``lib/``, where the
    dynamic loader does not look (conda's layout puts it on the loader's path): load it by
    its full path, globally, so that numba's own ``CDLL("libtbb.so.12")`` finds it loaded.
    """
    name = {"linux": "libtbb.so.12", "darwin": "libtbb.12.dylib"}.get(sys.platform, "tbb12.dll")
    candidates = [name]
    try:
        candidates += [str(f.locate()) for f in metadata.files("tbb") or () if f.name == name]
    except metadata.PackageNotFoundError:
        pass
    for candidate in candidates:
        try:
            lib = ctypes.CDLL(candidate, mode=ctypes.RTLD_GLOBAL)
            version = lib.TBB_runtime_interface_version
        except (OSError, AttributeError):
            continue
        version.restype = ctypes.c_int
        return bool(version() >= 12060)  # numba's own minimum (TBB 2021.6)
    return False


# The threading layer. tbb (celib[fast] installs it): the calling thread starts at once (a
# call costs 1 to 3 µs more than its work), the pool's threads join as they wake, and it is
# safe with threads and with fork. workqueue, numba's own pool, without TBB: the caller waits
# for its threads to wake, 40 to 70 µs on a virtual machine, and it must not be entered by
# two threads at once (hence the lock in run()). Never GNU OpenMP: its pool is not fork-safe,
# and beside the libgomp that torch loads it would be a second OpenMP runtime. A layer chosen
# with NUMBA_THREADING_LAYER stands.
_HAVE_TBB = _load_tbb()  # also where NUMBA_THREADING_LAYER names tbb, or a list with it
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "tbb" if _HAVE_TBB else "workqueue"  # type: ignore[attr-defined]

_LAYER: str = numba.config.THREADING_LAYER  # type: ignore[attr-defined]
MIN_PARALLEL = 1 << 14 if _LAYER == "tbb" else 1 << 17
"""Below this many elements a kernel runs on one thread: the hand-off would cost more. With
TBB the calling thread starts at once and the others join when they wake; workqueue's caller
waits for them first."""

SAFE_FLAGS = frozenset({"nsz", "arcp"})
"""The fastmath flags of every kernel: neither nnan/ninf (nan and inf keep their meaning) nor
reassoc/contract (results would depend on the vector width and on FMA)."""

_JIT: dict[str, Any] = {"cache": True, "fastmath": set(SAFE_FLAGS)}
_BLOCK = 8192  # elements per block of rows: at least one row per block
_NARROW = 64  # rows narrower than this are computed a block at a time (_narrow_stats)
_SUM_BLOCK = 64  # entries per block of _lane_sum_compensated
_LOCK = threading.Lock()

# --------------------------------------------------------------------------------------------
# exp in float64, from vectorisable operations
# --------------------------------------------------------------------------------------------

_F64 = types.float64


def _fma_typer(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    """``a*b + c`` rounded once (llvm.fma: one instruction where the CPU has FMA)."""
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.fma(*args)
    return _F64(_F64, _F64, _F64), codegen


def _rint_typer(typingctx: Any, a: Any) -> Any:
    """Round to the nearest integer, ties to even (llvm.rint, which vectorises)."""
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        fn = builder.module.declare_intrinsic("llvm.rint", [args[0].type])
        return builder.call(fn, args)
    return _F64(_F64), codegen


def _binary_intrinsic(name: str, doc: str) -> Any:
    """A numba function of two same-typed floats calling the LLVM intrinsic ``name``."""
    def typer(typingctx: Any, a: Any, b: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            t = args[0].type
            fn = builder.module.declare_intrinsic(name, [t], ir.FunctionType(t, [t, t]))
            return builder.call(fn, args)
        return a(a, a), codegen
    typer.__doc__ = doc
    return intrinsic(typer)


_maximum = _binary_intrinsic(
    "llvm.maximum", """The larger of ``a`` and ``b``, nan if either is nan. Exactly associative and
    commutative (it orders -0 below +0), so LLVM may vectorise a max over a row freely: the
    result does not depend on the order.""")
_maxnum = _binary_intrinsic("llvm.maxnum", "The larger of ``a`` and ``b`` (one nan: the other).")
_minnum = _binary_intrinsic("llvm.minnum", "The smaller of ``a`` and ``b`` (one nan: the other).")


def _as_float64_typer(typingctx: Any, bits: Any) -> Any:
    """The float64 whose bits are the int64 ``bits`` (a bit cast, no conversion)."""
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], context.get_value_type(_F64))
    return _F64(types.int64), codegen


def _as_int64_typer(typingctx: Any, value: Any) -> Any:
    """The int64 whose bits are the float64 ``value`` (a bit cast, no conversion)."""
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], context.get_value_type(types.int64))
    return types.int64(_F64), codegen


_fma: Any = intrinsic(_fma_typer)
_rint: Any = intrinsic(_rint_typer)
_as_float64: Any = intrinsic(_as_float64_typer)
_as_int64: Any = intrinsic(_as_int64_typer)

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 to 32 bits: k * _LN2_HI is exact for |k| < 2**21
_LN2_LO = 1.90821492927058770002e-10  # ln 2 - _LN2_HI
# e^r on [-ln2/2, ln2/2]: the degree-11 Chebyshev fit (mpmath.chebyfit on [-0.3476, 0.3476],
# 50 digits), coefficients rounded to float64: relative error 7.4e-18 (1/30 ulp), where the
# degree-11 Taylor polynomial is off by 6e-15 (28 ulp) and degree 13 would be needed.
_P = (1.0, 1.0, 0.5000000000000019, 0.16666666666666682, 0.04166666666648393,
      0.00833333333331928, 0.0013888888953421457, 0.0001984126989089813,
      2.4801484301104542e-05, 2.755724001024349e-06, 2.763307546557511e-07,
      2.5110372746250102e-08)
_P2, _P3, _P4, _P5, _P6, _P7, _P8, _P9, _P10, _P11 = _P[2:]


@njit(inline="always", **_JIT)
def _reduced(c: float) -> tuple[float, float]:
    """``(k, p)`` with ``k = rint(c log2 e)`` and ``p = e^r``, ``r = c - k ln 2``: e^c = p 2^k."""
    kf = _rint(c * _LOG2E)
    r = _fma(-kf, _LN2_HI, c)  # exact
    r = _fma(-kf, _LN2_LO, r)
    p = _fma(_P11, r, _P10)
    p = _fma(p, r, _P9)
    p = _fma(p, r, _P8)
    p = _fma(p, r, _P7)
    p = _fma(p, r, _P6)
    p = _fma(p, r, _P5)
    p = _fma(p, r, _P4)
    p = _fma(p, r, _P3)
    p = _fma(p, r, _P2)
    p = _fma(p, r, 1.0)
    return kf, _fma(p, r, 1.0)


@njit(inline="always", **_JIT)
def _exp(x: float) -> float:
    """e^x in float64, within about 1 ulp (subnormal results included; inf, 0 and nan at the
    ends), from operations that vectorise."""
    c = _minnum(_maxnum(x, -746.0), 710.0)  # e^-746 = 0, e^710 = inf; nan becomes -746 ...
    kf, p = _reduced(c)
    k = np.int64(np.int32(kf))  # via int32: AVX2 converts float64 to int32, not to int64
    k1 = k >> 1  # 2^k = 2^k1 · 2^k2, each factor a normal number for k in [-1077, 1024]
    v = p * _as_float64((k1 + 1023) << 52) * _as_float64((k - k1 + 1023) << 52)
    return v if x == x else x  # ... and nan again here


# kf + _BIASED is exact for an integer kf in [-1022, 0], and its last 12 bits are kf + 1023,
# the biased exponent of 2^kf: shifted left by 52 they are the bits of 2^kf (one add, one shift,
# where _exp converts to int32, widens to int64, adds and shifts, twice)
_BIASED = 1.5 * 2.0**52 + 1023


@njit(inline="always", **_JIT)
def _exp_term(d: float) -> float:
    """e^d for a term ``d = x - m`` of a float32 row: bit for bit :func:`_exp` for d >= -708,
    0 below, with fewer operations. Only for ``d <= 0``, never nan (a row holding a nan has a
    nan max and is not summed); the results left out, below e^-708 (1e-308), are subnormal,
    far below anything a float32 result can show."""
    kf, p = _reduced(d)  # garbage below -708 (nan for -inf), replaced by 0 below
    v = p * _as_float64(_as_int64(kf + _BIASED) << 52)
    return v if d >= -708.0 else 0.0


# --------------------------------------------------------------------------------------------
# One row: its max, its terms, their sums
# --------------------------------------------------------------------------------------------

@njit(**_JIT)
def _row_max(row: np.ndarray) -> float:
    """The row's max in float64, nan if the row holds a nan (-inf for an empty row)."""
    a = row.dtype.type(-np.inf)
    for j in range(row.size):
        a = _maximum(a, row[j])
    return np.float64(a)


@njit(**_JIT)
def _lane_sum(a: np.ndarray, n: int) -> float:
    """``a[0] + ... + a[n-1]`` by eight accumulators, combined pairwise in a fixed order."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    j = 0
    while j + 8 <= n:
        a0 += a[j]
        a1 += a[j + 1]
        a2 += a[j + 2]
        a3 += a[j + 3]
        a4 += a[j + 4]
        a5 += a[j + 5]
        a6 += a[j + 6]
        a7 += a[j + 7]
        j += 8
    tail = 0.0
    while j < n:
        tail += a[j]
        j += 1
    return (((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))) + tail


@njit(inline="always", **_JIT)
def _two_sum(a: float, b: float) -> tuple[float, float]:
    """``(a + b, its rounding error)``, exactly (Knuth's TwoSum: no branch, any order)."""
    total = a + b
    b_part = total - a
    return total, (a - (total - b_part)) + (b - b_part)


@njit(**_JIT)
def _lane_sum_compensated(a: np.ndarray, n: int) -> float:
    """:func:`_lane_sum` in blocks of ``_SUM_BLOCK`` entries whose sums are added with their
    rounding errors carried (TwoSum), for the float64 log kernels: a plain lane's error grows
    with its length (about 35u on 10,000 terms, which ``log_softmax`` shows at its largest
    entry, ``-log1p(s)``); here it stays that of a block, at most ``(_SUM_BLOCK/8 + 3) u``."""
    if n <= _SUM_BLOCK:  # one block: the plain sum, the same bits
        return _lane_sum(a, n)
    total, error = 0.0, 0.0
    for start in range(0, n, _SUM_BLOCK):
        block = _lane_sum(a[start:], min(_SUM_BLOCK, n - start))
        total, r = _two_sum(total, block)
        error += r
    return total + error


@njit(**_JIT)
def _plain_terms(row: np.ndarray, m: float, e: np.ndarray) -> int:
    """``e_j = e^{x_j - m}``, 0 where ``x_j = m``; returns how many entries equal ``m``."""
    ties = 0
    if row.itemsize == 4:  # float32 rows: the cheaper exp
        for j in range(row.size):
            d = row[j] - m
            t = _exp_term(d)
            e[j] = 0.0 if d == 0.0 else t
            ties += 1 if d == 0.0 else 0
        return ties
    for j in range(row.size):
        d = row[j] - m
        t = _exp(d)
        e[j] = 0.0 if d == 0.0 else t
        ties += 1 if d == 0.0 else 0
    return ties


@njit(**_JIT)
def _compensated_terms(row: np.ndarray, m: float, e: np.ndarray, corr: np.ndarray) -> int:
    """As :func:`_plain_terms` for float64 rows, and ``corr_j = e_j · err_j``, ``err_j`` the
    rounding error of ``d_j = fl(x_j - m)`` recovered by TwoSum (0 where ``e_j`` is 0)."""
    ties = 0
    for j in range(row.size):
        d, err = _two_sum(row[j], -m)
        t = _exp(d)
        e[j] = 0.0 if d == 0.0 else t
        corr[j] = t * err if t != 0.0 else 0.0
        ties += 1 if d == 0.0 else 0
    return ties


@njit(**_JIT)
def _row_stats(row: np.ndarray, e: np.ndarray, corr: np.ndarray,
               compensate: bool) -> tuple[float, float]:
    """``(m, s)``: the row max and :math:`s = \\sum_{j \\ne k} e^{x_j - m}` (nan if ``m`` is
    not finite). Leaves the terms (0 at the max) in ``e``."""
    m = _row_max(row)
    if not np.isfinite(m):
        return m, np.nan
    n = row.size
    if compensate:
        ties = _compensated_terms(row, m, e, corr)
        return m, (_lane_sum_compensated(e, n) + (ties - 1)) + _lane_sum(corr, n)
    ties = _plain_terms(row, m, e)
    return m, _lane_sum(e, n) + (ties - 1)


@njit(**_JIT)
def _narrow_stats(x: np.ndarray, a: int, b: int, e: np.ndarray, m: np.ndarray,
                  s: np.ndarray) -> None:
    """:func:`_block_stats` for rows narrower than ``_NARROW`` (not compensated): the terms of
    the whole block in one loop, which vectorises across rows (the vector loop over one row of
    10 would leave at once, and each term would take the scalar tail), then the same sums as
    :func:`_row_stats`'s, row by row. ``e`` holds ``2 (b - a) C`` entries."""
    cols = x.shape[1]
    n = (b - a) * cols
    flat = x.reshape(x.size)[a * cols:b * cols]
    m_each = e[n:2 * n]  # each entry's row max
    for i in range(b - a):
        m[i] = _row_max(x[a + i])
        m_each[i * cols:(i + 1) * cols] = m[i]
    if x.itemsize == 4:  # as _plain_terms
        for j in range(n):
            d = flat[j] - m_each[j]  # nan or -inf in a row whose max is not finite: ignored
            t = _exp_term(d)
            e[j] = 0.0 if d == 0.0 else t
    else:
        for j in range(n):
            d = flat[j] - m_each[j]
            t = _exp(d)
            e[j] = 0.0 if d == 0.0 else t
    for i in range(b - a):
        if not np.isfinite(m[i]):
            s[i] = np.nan
            continue
        row = flat[i * cols:(i + 1) * cols]
        ties = 0
        for j in range(cols):
            ties += 1 if row[j] == m[i] else 0
        s[i] = _lane_sum(e[i * cols:(i + 1) * cols], cols) + (ties - 1)


@njit(**_JIT)
def _block_stats(x: np.ndarray, a: int, b: int, e: np.ndarray, corr: np.ndarray,
                 compensate: bool, m: np.ndarray, s: np.ndarray) -> None:
    """``m[i - a], s[i - a]`` = :func:`_row_stats` of the rows ``a <= i < b`` of ``x`` (the
    terms in ``e`` are not kept: ``e`` is scratch, of :func:`_scratch`'s size)."""
    if x.shape[1] < _NARROW and not compensate:
        _narrow_stats(x, a, b, e, m, s)
        return
    for i in range(a, b):
        m[i - a], s[i - a] = _row_stats(x[i], e, corr, compensate)


@njit(inline="always", **_JIT)
def _scratch(per: int, cols: int) -> np.ndarray:
    """The scratch ``e`` of :func:`_block_stats` for blocks of ``per`` rows."""
    return np.empty(2 * per * cols if cols < _NARROW else cols)


@njit(**_JIT)
def _weighted_shift_sum(row: np.ndarray, m: float, w: np.ndarray, weighted: bool,
                        buf: np.ndarray) -> float:
    """:math:`\\sum_c w_c (x_c - m)` (:math:`w_c = 1` unless ``weighted``)."""
    n = row.size
    if weighted:
        for j in range(n):
            buf[j] = (row[j] - m) * w[j]
    else:
        for j in range(n):
            buf[j] = row[j] - m
    return _lane_sum(buf, n)


@njit(inline="always", **_JIT)
def _blocks(rows: int, cols: int) -> tuple[int, int]:
    """(rows per block, number of blocks): blocks of about ``_BLOCK`` elements."""
    per = max(1, _BLOCK // max(cols, 1))
    return per, (rows + per - 1) // per


# --------------------------------------------------------------------------------------------
# Kernels (see their numpy twins in celib._kernels for the semantics)
# --------------------------------------------------------------------------------------------

@njit(parallel=True, **_JIT)
def _logsumexp(x: np.ndarray, compensate: bool, out: np.ndarray) -> None:
    rows, cols = x.shape
    per, blocks = _blocks(rows, cols)
    for b in prange(blocks):
        e = _scratch(per, cols)
        corr = np.empty(cols if compensate else 0)
        m, s = np.empty(per), np.empty(per)
        a = b * per
        _block_stats(x, a, min(rows, a + per), e, corr, compensate, m, s)
        for i in range(a, min(rows, a + per)):
            out[i] = m[i - a] + np.log1p(s[i - a]) if np.isfinite(m[i - a]) else m[i - a]


@njit(parallel=True, **_JIT)
def _log_softmax(x: np.ndarray, compensate: bool, out: np.ndarray) -> None:
    rows, cols = x.shape
    per, blocks = _blocks(rows, cols)
    for b in prange(blocks):
        e = _scratch(per, cols)
        corr = np.empty(cols if compensate else 0)
        m, s = np.empty(per), np.empty(per)
        a = b * per
        _block_stats(x, a, min(rows, a + per), e, corr, compensate, m, s)
        for i in range(a, min(rows, a + per)):
            row = x[i]
            log_norm = np.log1p(s[i - a]) if np.isfinite(m[i - a]) else np.nan
            for j in range(cols):
                out[i, j] = (row[j] - m[i - a]) - log_norm


@njit(parallel=True, **_JIT)
def _softmax(x: np.ndarray, out: np.ndarray) -> None:
    rows, cols = x.shape
    per, blocks = _blocks(rows, cols)
    for b in prange(blocks):
        e = np.empty(cols)
        corr = np.empty(0)
        for i in range(b * per, min(rows, (b + 1) * per)):
            row = x[i]
            m, s = _row_stats(row, e, corr, False)
            inv = 1.0 / (1.0 + s) if np.isfinite(m) else np.nan
            for j in range(cols):  # the max entries: exactly 1/(1 + s)
                out[i, j] = (1.0 if row[j] == m else e[j]) * inv


@njit(parallel=True, **_JIT)
def _cross_entropy(x: np.ndarray, classes: np.ndarray, ignored: np.ndarray,
                   target_weights: np.ndarray, weight: np.ndarray, epsilon: float,
                   weight_sum: float, keep: float, spread: float, compensate: bool,
                   out: np.ndarray) -> None:
    rows, cols = x.shape
    weighted_targets = target_weights.size > 0
    weighted = weight.size > 0
    per, blocks = _blocks(rows, cols)
    for b in prange(blocks):
        e = _scratch(per, cols)
        corr = np.empty(cols if compensate else 0)
        ms, ss = np.empty(per), np.empty(per)
        a = b * per
        _block_stats(x, a, min(rows, a + per), e, corr, compensate, ms, ss)
        for i in range(a, min(rows, a + per)):
            m = ms[i - a]
            if ignored[i]:
                out[i] = 0.0
                continue
            if not np.isfinite(m):
                out[i] = np.nan
                continue
            row = x[i]
            log_norm = np.log1p(ss[i - a])
            loss = (m - row[classes[i]]) + log_norm
            if weighted_targets:
                loss *= target_weights[i]
            if epsilon > 0:  # label smoothing: mixed with Σ_c w_c (lse - x_c)
                wd = _weighted_shift_sum(row, m, weight, weighted, e)
                loss = keep * loss + spread * (weight_sum * log_norm - wd)
            out[i] = loss


@njit(**_JIT)
def _gradient_row(row: np.ndarray, y: int, c: float, sm: float, w: np.ndarray, weighted: bool,
                  weight_sum: float, e: np.ndarray, o: np.ndarray) -> None:
    """One kept row of the gradient: ``o = c·(q - e_y) + sm·(Σw·q - w)``, q = softmax(row)."""
    cols = row.size
    m, s = _row_stats(row, e, e, False)
    if not np.isfinite(m):
        o[:] = np.nan
        return
    inv = 1.0 / (1.0 + s)
    scale = (c + sm * weight_sum) * inv
    for j in range(cols):
        o[j] = (1.0 if row[j] == m else e[j]) * scale - sm * (w[j] if weighted else 1.0)
    # the target entry, without the cancellation of q_y - 1 when q_y ≈ 1
    at_max = row[y] == m
    q_y = inv if at_max else _exp(row[y] - m) * inv
    g_y = c * (-s * inv if at_max else q_y - 1.0)
    if sm != 0.0:
        g_y += sm * (weight_sum * q_y - (w[y] if weighted else 1.0))
    o[y] = g_y


@njit(parallel=True, **_JIT)
def _cross_entropy_grad(x: np.ndarray, classes: np.ndarray, ignored: np.ndarray,
                        target_weights: np.ndarray, weight: np.ndarray, scale: float,
                        smooth: float, weight_sum: float, out: np.ndarray) -> None:
    rows, cols = x.shape
    weighted_targets = target_weights.size > 0
    weighted = weight.size > 0
    per, blocks = _blocks(rows, cols)
    for b in prange(blocks):
        e = np.empty(cols)
        for i in range(b * per, min(rows, (b + 1) * per)):
            row = x[i]
            if ignored[i]:  # 0, or nan where the softmax is nan (torch: 0 · nan)
                out[i, :] = 0.0 if np.isfinite(_row_max(row)) else np.nan
                continue
            c = scale * target_weights[i] if weighted_targets else scale
            _gradient_row(row, classes[i], c, smooth, weight, weighted, weight_sum, e, out[i])


# --------------------------------------------------------------------------------------------
# Entry points, called by celib._kernels
# --------------------------------------------------------------------------------------------

_NONE = np.empty(0)  # stands for "no weights" (numba wants one type, not None)


def run(kernel: Any, threads: int, *args: Any) -> None:
    """Call ``kernel(*args)`` on ``threads`` threads (at most numba's pool), one call at a time
    (the workqueue layer must not be entered by two Python threads at once)."""
    with _LOCK:
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
        kernel(*args)


def logsumexp_rows(x: np.ndarray, threads: int) -> np.ndarray:
    out = np.empty(x.shape[0])
    run(_logsumexp, threads, x, x.dtype == np.float64, out)
    return out


def log_softmax_rows(x: np.ndarray, out: np.ndarray, threads: int) -> None:
    run(_log_softmax, threads, x, x.dtype == np.float64, out)


def softmax_rows(x: np.ndarray, out: np.ndarray, threads: int) -> None:
    run(_softmax, threads, x, out)


def cross_entropy_rows(x: np.ndarray, classes: np.ndarray, ignored: np.ndarray,
                       target_weights: np.ndarray | None, weight: np.ndarray | None,
                       epsilon: float, weight_sum: float, keep: float, spread: float,
                       threads: int) -> np.ndarray:
    out = np.empty(x.shape[0])
    run(_cross_entropy, threads, x, classes, ignored,
        _NONE if target_weights is None else target_weights, _NONE if weight is None else weight,
        float(epsilon), weight_sum, float(keep), float(spread), x.dtype == np.float64, out)
    return out


def cross_entropy_grad_rows(x: np.ndarray, classes: np.ndarray, ignored: np.ndarray,
                            target_weights: np.ndarray | None, weight: np.ndarray | None,
                            scale: float, smooth: float, weight_sum: float, out: np.ndarray,
                            threads: int) -> None:
    run(_cross_entropy_grad, threads, x, classes, ignored,
        _NONE if target_weights is None else target_weights, _NONE if weight is None else weight,
        float(scale), float(smooth), weight_sum, out)


@njit(**_JIT)
def _exp_array(x: np.ndarray, out: np.ndarray) -> None:
    for i in range(x.size):
        out[i] = _exp(x[i])


def elementwise(array_kernel: Any, x: np.ndarray) -> np.ndarray:
    """``array_kernel(a, out)``, a compiled loop over a flat float64 array, applied to ``x``."""
    a = np.ascontiguousarray(x, dtype=np.float64).ravel()
    out = np.empty_like(a)
    array_kernel(a, out)
    return out.reshape(np.shape(x))


def exp(x: np.ndarray) -> np.ndarray:
    """The kernels' float64 exp applied to each element of ``x`` (for tests and the book)."""
    return elementwise(_exp_array, x)
