"""Linear cross-entropy that never forms the logits: the loss and its gradients, chunk by chunk.

Private: :func:`celib.functional.linear_cross_entropy` and
:func:`celib.grad.linear_cross_entropy_grad` are the public names. Chapter 9 (Cross-entropy at
LLM scale) explains the method.

How it works
------------
The logits :math:`Z = X W^\\top + b` of ``N`` tokens over a vocabulary of ``V`` classes are
computed one *tile* at a time: a block of at most ``_MAX_ROWS`` (1024) tokens times a chunk of
``chunk_size`` classes. Each tile is reduced at once to per-row statistics and then dropped:

* **forward**: the row maximum :math:`m` and the sum :math:`s = \\sum_c e^{z_c - m}` of a tile
  are merged into the running pair with the online-softmax rule (Milakov & Gimelshein, 2018)

  .. math:: m' = \\max(m_1, m_2), \\qquad s' = s_1 e^{m_1 - m'} + s_2 e^{m_2 - m'},

  which is exact, so :math:`\\mathrm{lse} = m + \\log s` comes out of one pass over the
  vocabulary. The target logit is a row-wise dot product :math:`x_i \\cdot W_{y_i} + b_{y_i}`,
  and label smoothing's :math:`\\sum_c w_c z_c = x_i \\cdot (W^\\top w) + w \\cdot b` needs no
  logits at all.
* **gradient**, two schedules. *Fused* (``schedule='fused'``, Liger-Kernel's order): a
  block of R tokens gets its logits over the whole vocabulary at once (an R x V scratch, with
  R = min(N, 2**25 // V)), from which m, s, lse and, in place, :math:`E = e^{z - m}` follow,
  with :math:`G = \\operatorname{diag}(a_i / s_i)\\,E` (the row factor is applied to the R x D
  sides of the products), and :math:`\\partial L/\\partial X_b = G W`,
  :math:`\\partial L/\\partial W \\mathrel{+}= G^\\top X_b`: 3 matrix products of size N·D·V in
  all. *Recompute* (the default, Cut Cross-Entropy's order): a first
  pass over the tiles gives the per-row log-sum-exp, a second computes each tile's logits
  again and turns them into
  :math:`a_i\\,\\operatorname{softmax}(z_i) = e^{z_i - \\mathrm{lse}_i + \\log a_i}` in place (one
  exponential per entry), then multiplied into
  :math:`\\partial L/\\partial X \\mathrel{+}= G W_c`, :math:`\\partial L/\\partial W_c
  \\mathrel{+}= G^\\top X_b` and :math:`\\partial L/\\partial b_c \\mathrel{+}= 1^\\top G`: 4 matrix
  products. In both, the one-hot and smoothing parts of ``softmax - target`` are rank-one or
  sparse and are added outside the loop (a gather, a scatter-add and two outer products).

The default ``chunk_size`` is ``min(V, max(256, 2**22 // min(N, 1024)))``: token blocks of at
most 1024 rows, and tiles of about 2**22 elements (16 MiB in float32, 32 MiB in float64)
whatever N and V, so the extra memory does not grow with the vocabulary. The fused gradient's
block is bigger, at most 2**25 elements (128 MiB in float32), because its update of the
V x D weight gradient is a rank-R product, memory-bound when R is small; it too is bounded
whatever N and V. The elementwise work of a tile or block is shared out among celib's threads
by rows; the matrix products use numpy's BLAS.
float16 is computed in float32 (as the other losses do), float32 in float32 with the running
statistics and the per-row losses in float64, float64 in float64.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from numpy.typing import ArrayLike

from . import _checks, _kernels

_TILE = 1 << 22  # elements of one tile (token block x vocabulary chunk)
_MAX_ROWS = 1024  # tokens per block
_MIN_CHUNK = 256  # the default chunk is never narrower than this (nor wider than V)
_MIN_PARALLEL = 1 << 16  # tiles smaller than this are done on the calling thread
_FUSED_BUDGET = 1 << 25  # elements of a fused block (R tokens x whole vocabulary), 128 MiB f32
_MIN_FUSED_ROWS = 64  # fewer tokens per block than this: 'auto' recomputes instead
_FUSED_GROUP = 1 << 17  # elements of the rows a thread turns into G in one go (in cache)


def default_chunk_size(num_rows: int, num_classes: int) -> int:
    """The default vocabulary chunk: ``min(V, max(256, 2**22 // min(N, 1024)))`` (at least 1)."""
    rows = max(1, min(num_rows, _MAX_ROWS))
    return max(1, min(num_classes, max(_MIN_CHUNK, _TILE // rows)))


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------

class _Problem:
    """The checked arguments, reshaped for the kernels.

    ``x`` is (N, D) in the compute dtype; ``positions`` lists, for each of the P output
    positions (P = 1 unless the weight has out_features d1..dK), the (V, D) weight and the (V,)
    bias (or None). Index targets are ``y`` (N, P) with ``ignored`` (N, P); probability targets
    are ``q`` (N, V, P).
    """

    __slots__ = ("x", "w3", "b2", "positions", "num_classes", "probs", "y", "ignored", "q",
                 "weight", "epsilon", "reduction", "chunk", "dtype", "loss_shape", "input_shape",
                 "weight_shape", "bias_shape", "batched")


def _floating(a: ArrayLike, name: str) -> np.ndarray:
    """A real floating array; integers are refused, as torch refuses Long input here."""
    arr = np.asarray(a)
    if arr.dtype.kind == "f":
        return arr
    hint = f", which torch refuses too: convert with {name}.astype(np.float32)" \
        if arr.dtype.kind in "iub" else ""
    raise ValueError(f"{name} must be a real floating array, got dtype {arr.dtype}{hint}")


def _check_same_dtype(name: str, a: np.ndarray, x: np.ndarray) -> None:
    if a.dtype != x.dtype:
        raise ValueError(
            f"{name} must have the input's dtype {x.dtype} (as in torch, which does not mix "
            f"dtypes in a matrix product), got {a.dtype}: convert with .astype(np.{x.dtype})"
        )


def _check_chunk_size(chunk_size) -> int | None:
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    if chunk_size <= 0:
        raise ValueError(
            f"chunk_size must be a positive integer (vocabulary columns per chunk) or None for "
            f"the default, got {chunk_size}"
        )
    return int(chunk_size)


def _parse(input, linear_weight, target, linear_bias, weight, reduction, ignore_index,
           label_smoothing, chunk_size) -> _Problem:
    x = _floating(input, "input")
    lw = _floating(linear_weight, "linear_weight")
    chunk = _check_chunk_size(chunk_size)
    if x.ndim not in (1, 2):
        raise ValueError(
            f"input must have shape (D,) or (N, D), in_features last, got shape {x.shape}"
        )
    if lw.ndim < 2:
        raise ValueError(
            "linear_weight must have shape (C, D) (or (C, d1, ..., dK, D) for a K-dimensional "
            f"loss), got shape {lw.shape}"
        )
    if x.shape[-1] != lw.shape[-1]:
        raise ValueError(
            f"input of shape {x.shape} and linear_weight of shape {lw.shape} must have the same "
            f"last dimension (in_features), got {x.shape[-1]} and {lw.shape[-1]}"
        )
    _check_same_dtype("linear_weight", lw, x)
    num_classes = lw.shape[0]
    out_features = tuple(lw.shape[1:-1])
    bias = None
    if linear_bias is not None:
        bias = _floating(linear_bias, "linear_bias")
        if bias.shape != (num_classes,) + out_features:
            raise ValueError(
                f"linear_bias must have shape {(num_classes,) + out_features} to match "
                f"linear_weight of shape {lw.shape}, got shape {bias.shape}"
            )
        _check_same_dtype("linear_bias", bias, x)
    if out_features and x.ndim == 1:
        raise ValueError(
            f"a K-dimensional loss (linear_weight of shape {lw.shape}) needs a batched input of "
            f"shape (N, {x.shape[-1]}), got an unbatched input of shape {x.shape}"
        )
    batch = x.shape[:-1]
    logits_shape = batch + (num_classes,) + out_features
    t = np.asarray(target)
    probs = t.shape == logits_shape
    if probs and t.dtype.kind != "f":
        raise ValueError(
            f"a target of the logits' shape {logits_shape} is read as class probabilities and "
            f"must be floating point, got dtype {t.dtype}. If it is one-hot, pass the class "
            "indices instead (target.argmax(axis=1)) or convert it: target.astype(np.float32)."
        )
    if probs and ignore_index is not None:
        raise ValueError(
            f"ignore_index={ignore_index} cannot be given when the target holds class "
            "probabilities (as in torch's linear_cross_entropy): leave it None and give ignored "
            "elements a zero target row"
        )
    dtype = _checks.compute_dtype(x.dtype)
    # the options shared with cross_entropy, checked (and worded) in one place
    options = _checks.cross_entropy_options(
        num_classes, dtype, weight=weight, reduction=reduction, label_smoothing=label_smoothing,
        ignore_index=-100 if ignore_index is None else ignore_index)
    ignore, epsilon = options.ignore_index, options.label_smoothing
    p = _Problem()
    p.input_shape, p.weight_shape = x.shape, lw.shape
    p.bias_shape = None if bias is None else bias.shape
    p.batched = x.ndim == 2
    n = batch[0] if batch else 1
    positions = math.prod(out_features)
    p.x = x.reshape(n, -1).astype(dtype, copy=False)
    p.w3 = lw.astype(dtype, copy=False).reshape(num_classes, positions, lw.shape[-1])
    p.b2 = None if bias is None else bias.astype(dtype, copy=False).reshape(num_classes, positions)
    p.positions = positions
    p.num_classes = num_classes
    p.probs = probs
    p.weight = options.weight
    p.epsilon = epsilon
    p.reduction = reduction
    p.chunk = chunk if chunk is not None else default_chunk_size(n, num_classes)
    p.dtype = x.dtype
    p.q = p.y = p.ignored = None
    if probs:
        p.q = t.reshape(n, num_classes, positions)
        p.loss_shape = batch + out_features
    else:
        _checks.check_index_target(t, logits_shape)
        flat = t.reshape(-1)
        ignored = _checks.check_bounds(flat, num_classes, ignore)
        p.y = np.where(ignored, 0, flat).astype(np.intp).reshape(n, positions)
        p.ignored = ignored.reshape(n, positions)
        p.loss_shape = t.shape
    return p


# --------------------------------------------------------------------------------------------
# Tiles
# --------------------------------------------------------------------------------------------

def _split_rows(num_rows: int, width: int) -> list[tuple[int, int]]:
    """Row ranges of one tile for the threads (a single range for a small tile)."""
    threads = _kernels.get_num_threads()
    if threads <= 1 or num_rows * width < _MIN_PARALLEL or num_rows < 2:
        return [(0, num_rows)]
    threads = min(threads, num_rows)
    step = -(-num_rows // threads)
    return [(a, min(num_rows, a + step)) for a in range(0, num_rows, step)]


def _parallel(num_rows: int, width: int, work) -> None:
    """Call ``work(a, b)`` on row ranges covering ``[0, num_rows)``, on celib's threads."""
    ranges = _split_rows(num_rows, width)
    if len(ranges) == 1:
        work(0, num_rows)
        return
    pool = _kernels._executor(len(ranges) - 1)
    futures = [pool.submit(work, a, b) for a, b in ranges[1:]]
    try:
        work(*ranges[0])
    finally:
        for future in futures:
            future.result()


def _tiles(num_rows: int, num_classes: int, chunk: int):
    """Yield ``(r0, r1, c0, c1)`` for every tile, token blocks outside, chunks inside."""
    block = max(1, min(num_rows, _MAX_ROWS))
    for r0 in range(0, num_rows, block):
        r1 = min(num_rows, r0 + block)
        for c0 in range(0, num_classes, chunk):
            yield r0, r1, c0, min(num_classes, c0 + chunk)


class _Buffer:
    """One flat scratch array reused by every tile (a tile is a contiguous view into it)."""

    def __init__(self, num_rows: int, num_classes: int, chunk: int, dtype) -> None:
        size = max(1, min(num_rows, _MAX_ROWS)) * max(1, min(num_classes, chunk))
        self.flat = np.empty(size, dtype=dtype)

    def logits(self, xb: np.ndarray, wc: np.ndarray) -> np.ndarray:
        z = self.flat[: xb.shape[0] * wc.shape[0]].reshape(xb.shape[0], wc.shape[0])
        np.matmul(xb, wc.T, out=z)
        return z


def _row_lse(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, chunk: int,
             wq: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-row log-sum-exp of ``x @ w.T + b`` (float64), by online softmax over the chunks.

    If ``wq`` (N, V) is given, also return the per-row ``sum_c wq[i, c] * z[i, c]`` (float64).
    """
    num_rows, num_classes = x.shape[0], w.shape[0]
    m = np.full(num_rows, -np.inf)
    s = np.zeros(num_rows)
    dots = np.zeros(num_rows) if wq is not None else None
    buf = _Buffer(num_rows, num_classes, chunk, x.dtype)
    for r0, r1, c0, c1 in _tiles(num_rows, num_classes, chunk):
        z = buf.logits(x[r0:r1], w[c0:c1])
        bc = None if b is None else b[c0:c1]

        def work(a: int, e: int, z=z, bc=bc, r0=r0, c0=c0, c1=c1) -> None:
            zt = z[a:e]
            with np.errstate(all="ignore"):
                if bc is not None:
                    np.add(zt, bc, out=zt)
                if dots is not None:
                    dots[r0 + a:r0 + e] += np.einsum("ij,ij->i", zt, wq[r0 + a:r0 + e, c0:c1],
                                                     dtype=np.float64)
                mc = zt.max(axis=1)
                shift = np.where(np.isneginf(mc), 0, mc).astype(zt.dtype)
                np.subtract(zt, shift[:, None], out=zt)
                np.exp(zt, out=zt)
                sc = np.einsum("ij->i", zt, dtype=np.float64)
                # the online-softmax merge of (m, s) with (mc, sc), in float64
                mr, sr = m[r0 + a:r0 + e], s[r0 + a:r0 + e]
                mc64 = mc.astype(np.float64)
                top = np.maximum(mr, mc64)
                keep = np.where(np.isneginf(mr), 0.0, np.exp(mr - top))
                new = np.where(np.isneginf(mc64), 0.0, np.exp(mc64 - top))
                s[r0 + a:r0 + e] = sr * keep + sc * new
                m[r0 + a:r0 + e] = top

        _parallel(r1 - r0, c1 - c0, work)
    with np.errstate(all="ignore"):
        lse = np.where(np.isneginf(m), -np.inf, m + np.log(s))
    return lse, dots


# --------------------------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------------------------

def _smoothing_vector(w: np.ndarray, b: np.ndarray | None, weight: np.ndarray | None):
    """``u = W^T w`` and ``beta = w . b`` (w = ones without class weights), in float64, so that
    ``sum_c w_c z_ic = x_i . u + beta``."""
    w64 = w.astype(np.float64, copy=False)
    if weight is None:
        u = w64.sum(axis=0)
        beta = 0.0 if b is None else float(np.sum(b, dtype=np.float64))
    else:
        cw = weight.astype(np.float64)
        u = cw @ w64
        beta = 0.0 if b is None else float(cw @ b.astype(np.float64))
    return u, beta


def _target_logits(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, y: np.ndarray):
    """``z_{i, y_i} = x_i . W_{y_i} + b_{y_i}`` for every row, in float64, block by block."""
    out = np.empty(x.shape[0])
    step = 4096
    for a in range(0, x.shape[0], step):
        yb = y[a:a + step]
        out[a:a + step] = np.einsum("ij,ij->i", x[a:a + step], w[yb], dtype=np.float64)
    if b is not None:
        out += b[y]
    return out


def _position_loss(p: _Problem, j: int, done=None) -> tuple[np.ndarray, float]:
    """Per-row losses (float64, N) of output position ``j`` and their 'mean' denominator.

    ``done``: the ``(lse, dots)`` of this position if a gradient pass computed them already."""
    x, w = p.x, p.w3[:, j, :]
    b = None if p.b2 is None else p.b2[:, j]
    num_classes, eps, cw = p.num_classes, p.epsilon, p.weight
    weight_sum = float(num_classes) if cw is None else float(np.sum(cw, dtype=np.float64))
    if p.probs:
        q = p.q[:, :, j].astype(x.dtype, copy=False)
        qs = q * (1 - eps) + eps / num_classes if eps > 0 else q
        wq = qs if cw is None else qs * cw
        lse, dots = done if done is not None else _row_lse(x, w, b, p.chunk, wq=wq)
        mass = np.sum(wq, axis=1, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            loss = mass * lse - dots
        return loss, float(x.shape[0])
    y, ignored = p.y[:, j], p.ignored[:, j]
    lse = done[0] if done is not None else _row_lse(x, w, b, p.chunk)[0]
    target_weight = np.where(ignored, 0.0, 1.0 if cw is None else cw[y].astype(np.float64))
    with np.errstate(invalid="ignore"):
        loss = target_weight * (lse - _target_logits(x, w, b, y))
        if eps > 0:
            u, beta = _smoothing_vector(w, b, cw)
            uniform = weight_sum * lse - (x @ u.astype(x.dtype) + beta)
            loss = (1 - eps) * loss + (eps / num_classes) * uniform
    loss = np.where(ignored, 0.0, loss)
    return loss, float(np.sum(target_weight))


def forward(p: _Problem, done: dict | None = None):
    """The loss of :func:`celib.functional.linear_cross_entropy` for checked arguments
    (``done`` maps positions to the ``(lse, dots)`` a gradient pass computed already)."""
    losses, total_den = [], 0.0
    for j in range(p.positions):
        loss, den = _position_loss(p, j, None if done is None else done.get(j))
        losses.append(loss)
        total_den += den
    per_element = np.stack(losses, axis=1) if losses else np.zeros((p.x.shape[0], 0))
    if p.reduction == "none":
        with np.errstate(over="ignore"):
            return per_element.reshape(p.loss_shape).astype(p.dtype)
    total = float(np.sum(per_element, dtype=np.float64))
    with np.errstate(over="ignore", invalid="ignore"):
        if p.reduction == "sum":
            return p.dtype.type(total)
        if total_den == 0:
            return p.dtype.type(np.nan)  # 0/0, as torch's 'mean' with nothing to count
        return p.dtype.type(total / total_den)


# --------------------------------------------------------------------------------------------
# Gradient
# --------------------------------------------------------------------------------------------

def _mean_denominator(p: _Problem) -> float:
    if p.probs:
        return float(p.x.shape[0] * p.positions)
    if p.weight is None:
        return float(p.ignored.size - np.count_nonzero(p.ignored))
    tw = np.where(p.ignored, 0.0, p.weight.astype(np.float64)[p.y])
    return float(np.sum(tw))


class _Coefs:
    """What a position's gradient needs besides the logits, shared by both schedules.

    ``G = dL/dZ = coef_i softmax(z_i) - scale wq_i - onehot_i e_{y_i} - smooth_i w`` with
    ``wq`` (N, V) only for probability targets, ``onehot`` and ``smooth`` (N,) only for index
    targets (``smooth`` only with label smoothing). ``positive``: every ``coef_i >= 0``, so that
    ``coef_i softmax(z_i) = exp(z_i - lse_i + log coef_i)`` (one exponential, no product).
    """

    __slots__ = ("scale", "wq", "coef", "onehot", "smooth", "positive", "y")

    def __init__(self, p: _Problem, j: int, scale: float, dtype) -> None:
        num_classes, eps, cw = p.num_classes, p.epsilon, p.weight
        self.scale = scale
        self.wq = self.onehot = self.smooth = self.y = None
        if p.probs:
            q = p.q[:, :, j].astype(dtype, copy=False)
            qs = q * (1 - eps) + eps / num_classes if eps > 0 else q
            self.wq = qs if cw is None else qs * cw
            self.coef = scale * np.sum(self.wq, axis=1, dtype=np.float64)
        else:
            self.y, ignored = p.y[:, j], p.ignored[:, j]
            tw = np.where(ignored, 0.0, 1.0 if cw is None else cw.astype(np.float64)[self.y])
            self.onehot = (1 - eps) * scale * tw  # c_i: the -c_i e_y part
            if eps > 0:
                self.smooth = np.where(ignored, 0.0, eps / num_classes * scale)
                weight_sum = num_classes if cw is None else np.sum(cw, dtype=np.float64)
                self.coef = self.onehot + self.smooth * float(weight_sum)
            else:
                self.coef = self.onehot
        self.positive = bool(np.all(self.coef >= 0))

    def exp_shift(self, lse: np.ndarray, rows: slice | np.ndarray, dtype):
        """Per-row ``(shift, mult)`` with ``coef softmax(z) = exp(z - shift) * mult`` given the
        rows' ``lse`` (``mult`` is None when every coefficient is >= 0). An ignored row
        (``coef = 0``) gets ``shift = inf``, hence exact zeros, even where lse is -inf or nan."""
        coef = self.coef[rows]
        if not self.positive:
            return lse.astype(dtype), coef.astype(dtype)
        with np.errstate(divide="ignore", invalid="ignore"):
            shift = lse - np.log(coef)
        return np.where(np.isnan(shift), np.inf, shift).astype(dtype), None


def _exp_in_place(zt: np.ndarray, shift: np.ndarray, mult: np.ndarray | None) -> None:
    """``zt <- exp(zt - shift) * mult`` row by row (under the caller's errstate)."""
    np.subtract(zt, shift[:, None], out=zt)
    np.exp(zt, out=zt)
    if mult is not None:
        np.multiply(zt, mult[:, None], out=zt)


def _add_sparse_parts(co: _Coefs, x: np.ndarray, w: np.ndarray, gx: np.ndarray,
                      gwj: np.ndarray, gbj: np.ndarray | None, cw: np.ndarray | None) -> None:
    """Add the one-hot and label-smoothing parts of ``-target`` (sparse, rank one) to the
    gradients: a gather, a scatter-add and two outer products instead of dense (N, V) work."""
    num_classes = w.shape[0]
    if co.onehot is not None:
        y, c = co.y, co.onehot.astype(x.dtype)
        gx -= c[:, None] * w[y]
        np.add.at(gwj, y, -(c[:, None] * x))
        if gbj is not None:
            gbj -= np.bincount(y, weights=co.onehot, minlength=num_classes).astype(x.dtype)
    if co.smooth is not None:
        smooth = co.smooth
        cwv = np.ones(num_classes) if cw is None else cw.astype(np.float64)
        u, _ = _smoothing_vector(w, None, cw)
        gx -= (smooth[:, None] * u[None, :]).astype(x.dtype)
        gwj -= np.outer(cwv, smooth @ x.astype(np.float64)).astype(x.dtype)
        if gbj is not None:
            gbj -= (cwv * smooth.sum()).astype(x.dtype)


def _recompute_grad(p: _Problem, co: _Coefs, x, w, b, gx, gwj, gbj):
    """Cut Cross-Entropy's schedule: a first pass over the tiles gives lse; a second computes
    each tile's logits again and forms ``coef softmax - scale wq`` in place. 4 GEMMs."""
    num_rows, num_classes = x.shape[0], p.num_classes
    lse, dots = _row_lse(x, w, b, p.chunk, wq=co.wq)
    shift, mult = co.exp_shift(lse, slice(None), x.dtype)
    buf = _Buffer(num_rows, num_classes, p.chunk, x.dtype)
    for r0, r1, c0, c1 in _tiles(num_rows, num_classes, p.chunk):
        z = buf.logits(x[r0:r1], w[c0:c1])
        bc = None if b is None else b[c0:c1]

        def work(a: int, e: int, z=z, bc=bc, r0=r0, c0=c0, c1=c1) -> None:
            zt, rows = z[a:e], slice(r0 + a, r0 + e)
            with np.errstate(all="ignore"):
                if bc is not None:
                    np.add(zt, bc, out=zt)
                _exp_in_place(zt, shift[rows], None if mult is None else mult[rows])
                if co.wq is not None:
                    zt -= co.scale * co.wq[rows, c0:c1]

        _parallel(r1 - r0, c1 - c0, work)
        gx[r0:r1] += z @ w[c0:c1]
        gwj[c0:c1] += z.T @ x[r0:r1]
        if gbj is not None:
            gbj[c0:c1] += z.sum(axis=0)
    return lse, dots


def fused_rows(num_rows: int, num_classes: int) -> int:
    """Tokens per block of the fused schedule: ``min(N, _FUSED_BUDGET // V)``, or 0 when that
    is below ``min(N, _MIN_FUSED_ROWS)`` (the 'auto' schedule then recomputes instead)."""
    rows = min(num_rows, _FUSED_BUDGET // max(1, num_classes))
    return rows if rows >= min(num_rows, _MIN_FUSED_ROWS) else 0


def _fused_block(z: np.ndarray, bias, co: _Coefs, r0: int, lse, dots, factor):
    """The row work of one fused block: turn the logits ``z`` of rows ``r0 + [0, R)`` into
    ``E = e^{z - m}`` in place with ``G = factor * E`` (row by row; minus ``scale wq`` folded
    into ``E`` for probability targets, with factor 1), and store their ``lse`` and ``dots``."""

    def rows_work(a: int, e: int) -> None:
        zt, rows = z[a:e], slice(r0 + a, r0 + e)
        if bias is not None:
            np.add(zt, bias, out=zt)
        if dots is not None:
            dots[rows] = np.einsum("ij,ij->i", zt, co.wq[rows], dtype=np.float64)
        m = zt.max(axis=1)
        # a row whose max is not finite (all -inf, or an inf or nan logit) has lse -inf or
        # nan, as the recompute schedule finds; its G is formed that schedule's way, on a copy
        bad = np.flatnonzero(~np.isfinite(m))
        if bad.size:
            lse_bad = np.where(np.isneginf(m[bad]), -np.inf, np.nan)
            g_bad = zt[bad]
            _exp_in_place(g_bad, *co.exp_shift(lse_bad, bad + r0 + a, zt.dtype))
        m = np.where(np.isfinite(m), m, 0).astype(zt.dtype)
        _exp_in_place(zt, m, None)
        s = np.einsum("ij->i", zt, dtype=np.float64)  # >= 1 on the finite rows
        lse[rows] = m + np.log(s)
        # coef softmax(z) = e^{z - m} coef / s: the same exponentials, no second exp
        f = (co.coef[rows] / s).astype(zt.dtype)
        if bad.size:
            zt[bad], f[bad] = g_bad, 1
            lse[bad + r0 + a] = lse_bad
        if co.wq is not None:
            np.multiply(zt, f[:, None], out=zt)
            zt -= co.scale * co.wq[rows]
            f[:] = 1
        factor[a:e] = f

    def work(a: int, e: int) -> None:
        # a few rows at a time, so that the passes over them (max, exp, sum) stay in cache
        step = max(1, _FUSED_GROUP // z.shape[1])
        with np.errstate(all="ignore"):
            for g in range(a, e, step):
                rows_work(g, min(e, g + step))

    return work


def _fused_grad(p: _Problem, co: _Coefs, x, w, b, gx, gwj, gbj, block: int):
    """Liger-Kernel's schedule: for ``block`` tokens at a time, the logits over the whole
    vocabulary once, turned into G in place, then ``gx += G W``, ``gW += G^T X``. 3 GEMMs.

    G is kept as ``diag(f) E``; the row factor f goes onto the (R, D) sides of the products
    (``G W = f * (E W)``, ``G^T X = E^T (f * X)``), which saves a pass over the (R, V) block."""
    num_rows, num_classes = x.shape[0], p.num_classes
    lse = np.empty(num_rows)
    dots = np.empty(num_rows) if co.wq is not None else None
    scratch = np.empty(block * num_classes, dtype=x.dtype)
    factor = np.empty(block, dtype=x.dtype)
    # gW += E^T (f X) by vocabulary slices: the product's temporary is a slice, not V x D
    step = max(1, min(num_classes, p.chunk))
    for r0 in range(0, num_rows, block):
        r1 = min(num_rows, r0 + block)
        e = scratch[: (r1 - r0) * num_classes].reshape(r1 - r0, num_classes)
        np.matmul(x[r0:r1], w.T, out=e)
        f = factor[: r1 - r0]
        _parallel(r1 - r0, num_classes, _fused_block(e, b, co, r0, lse, dots, f))
        with np.errstate(invalid="ignore", over="ignore"):
            gx[r0:r1] += f[:, None] * (e @ w)
            fx = f[:, None] * x[r0:r1]
        for c0 in range(0, num_classes, step):
            gwj[c0:c0 + step] += e[:, c0:c0 + step].T @ fx
        if gbj is not None:
            gbj += f @ e
    return lse, dots


def _position_grad(p: _Problem, j: int, scale: float, gx: np.ndarray, gw: np.ndarray,
                   gb: np.ndarray | None, block: int):
    """Add position ``j``'s gradient (the loss scaled by ``scale``) into gx, gw[:, j], gb[:, j]
    with the fused schedule (``block`` tokens at a time) or, if ``block`` is 0, the recompute
    one; return the ``(lse, dots)`` it computed, from which the loss follows."""
    x, w = p.x, p.w3[:, j, :]
    b = None if p.b2 is None else p.b2[:, j]
    gwj = gw[:, j, :]
    gbj = None if gb is None else gb[:, j]
    co = _Coefs(p, j, scale, x.dtype)
    if block:
        done = _fused_grad(p, co, x, w, b, gx, gwj, gbj, block)
    else:
        done = _recompute_grad(p, co, x, w, b, gx, gwj, gbj)
    _add_sparse_parts(co, x, w, gx, gwj, gbj, p.weight)
    return done


SCHEDULES = ("auto", "fused", "recompute")


def _block_rows(p: _Problem, schedule: str) -> int:
    """Tokens per fused block for ``schedule``, 0 for the recompute schedule."""
    num_rows = p.x.shape[0]
    if schedule == "recompute":
        return 0
    rows = fused_rows(num_rows, p.num_classes)
    if schedule == "fused":  # forced: at least min(N, _MIN_FUSED_ROWS) rows, even over budget
        return max(rows, min(num_rows, _MIN_FUSED_ROWS), 1)
    return rows


def gradient(p: _Problem, return_loss: bool = False, schedule: str = "recompute"):
    """``(grad_input, grad_weight, grad_bias)`` for checked arguments, preceded by the loss if
    ``return_loss`` (computed from the gradient's own lse, at no extra cost)."""
    x = p.x
    gx = np.zeros_like(x)
    gw = np.zeros_like(p.w3)
    gb = None if p.b2 is None else np.zeros_like(p.b2)
    den = _mean_denominator(p) if p.reduction == "mean" else 1.0
    done: dict = {}
    if p.reduction == "mean" and den == 0:
        _zero_denominator_grad(p, gx, gw, gb)
    elif x.shape[0] > 0 and p.num_classes > 0:
        block = _block_rows(p, schedule)
        for j in range(p.positions):
            done[j] = _position_grad(p, j, 1.0 / den, gx, gw, gb, block)
    grad_input = gx.reshape(p.input_shape).astype(p.dtype, copy=False)
    grad_weight = gw.reshape(p.weight_shape).astype(p.dtype, copy=False)
    grad_bias = None if gb is None else gb.reshape(p.bias_shape).astype(p.dtype, copy=False)
    if return_loss:
        return forward(p, done), grad_input, grad_weight, grad_bias
    return grad_input, grad_weight, grad_bias


def _zero_denominator_grad(p: _Problem, gx, gw, gb) -> None:
    """'mean' over nothing (every target ignored, or every kept one weighs 0): the loss is 0/0.

    torch's autograd gives 0 through ignored elements and ``0 * inf = nan`` through the others,
    so the rows of kept elements and everything they touch (all of W and b) are nan.
    """
    if p.probs:  # only an empty batch has a zero denominator
        return
    kept = ~p.ignored
    if kept.any():
        gx[kept.any(axis=1)] = np.nan
        gw[:, kept.any(axis=0)] = np.nan
        if gb is not None:
            gb[:, kept.any(axis=0)] = np.nan


# --------------------------------------------------------------------------------------------
# The public functions (re-exported by celib.functional and celib.grad)
# --------------------------------------------------------------------------------------------

def linear_cross_entropy(input: ArrayLike, linear_weight: ArrayLike, target: ArrayLike, *,
                         linear_bias: ArrayLike | None = None, weight: ArrayLike | None = None,
                         reduction: str = "mean", ignore_index: int | None = None,
                         label_smoothing: float = 0.0, chunk_size: int | None = None):
    """Cross-entropy of a linear layer's output, ``cross_entropy(input @ W.T + b, target)``,
    computed without ever forming the logits; like ``torch.nn.functional.linear_cross_entropy``.

    At language-model scale the logits of N tokens over a vocabulary of V classes are the
    largest array of the step (8192 × 256000 float32 logits take 8.4 GB). This function loops
    over tiles of at most 1024 tokens × ``chunk_size`` classes, keeps per token only a running
    (max, sum-exp) pair merged by the online-softmax rule, and reads the target logit off a
    row-wise dot product, so its extra memory is one tile, whatever V.

    Parameters
    ----------
    input : array_like
        The hidden states :math:`X`, shape ``(D,)`` or ``(N, D)``.
    linear_weight : array_like
        :math:`W`, shape ``(C, D)``, or ``(C, d1, ..., dK, D)`` for a K-dimensional loss
        (which needs a batched input). Must have the input's dtype.
    target : array_like
        Class indices, int64 (or uint8), of shape ``()``, ``(N,)`` or ``(N, d1, ..., dK)``;
        or class probabilities, floating, of the logits' shape ``(C,)``, ``(N, C)`` or
        ``(N, C, d1, ..., dK)``.
    linear_bias : array_like, optional
        :math:`b`, shape ``(C,)`` (or ``(C, d1, ..., dK)``), the input's dtype.
    weight : array_like, optional
        Per-class weights :math:`w_c`, shape ``(C,)``.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        As in :func:`celib.functional.cross_entropy`.
    ignore_index : int or None, default None
        For class-index targets, the value to ignore; ``None`` means -100 (torch's default).
        Must stay ``None`` with probability targets (torch refuses any value there).
    label_smoothing : float in [0, 1], default 0
        As in :func:`celib.functional.cross_entropy`.
    chunk_size : int, optional
        Vocabulary columns per chunk (a positive integer). The default is
        ``min(C, max(256, 2**22 // min(N, 1024)))``: tiles of about 4 Mi elements (16 MiB in
        float32). The result does not depend on it beyond rounding.

    Returns
    -------
    numpy scalar or numpy.ndarray
        As :func:`celib.functional.cross_entropy` on the logits: a scalar of the input's dtype,
        or for ``'none'`` one loss per element.

    Raises
    ------
    IndexError
        A class index outside ``[0, C)`` that is not ``ignore_index``.
    ValueError
        The errors of :func:`celib.functional.cross_entropy`; an input that is not 1-D or 2-D;
        integer input, weight or bias (torch refuses them too);
        input, linear_weight or linear_bias whose shapes do not match (the message names both
        shapes) or whose dtypes differ; an ``ignore_index`` given with probability targets;
        a ``chunk_size`` that is not a positive integer.

    Notes
    -----
    With :math:`z_i = W x_i + b` and the per-row log-sum-exp
    :math:`\\mathrm{lse}_i = \\log\\sum_c e^{z_{i,c}}`, the loss of element :math:`i` is

    .. math::

        \\ell_i = (1-\\varepsilon)\\,w_{y_i}\\,(\\mathrm{lse}_i - z_{i,y_i})
                 + \\frac{\\varepsilon}{C}\\Big(\\textstyle\\sum_c w_c\\,\\mathrm{lse}_i
                 - \\sum_c w_c z_{i,c}\\Big),

    with :math:`z_{i,y_i} = x_i\\cdot W_{y_i} + b_{y_i}` and
    :math:`\\sum_c w_c z_{i,c} = x_i\\cdot(W^\\top w) + w\\cdot b`: only
    :math:`\\mathrm{lse}_i` needs the whole vocabulary, and it is accumulated chunk by chunk,
    merging :math:`(m, s)` pairs exactly:
    :math:`m' = \\max(m_1, m_2)`, :math:`s' = s_1 e^{m_1-m'} + s_2 e^{m_2-m'}`. Reductions,
    ``ignore_index`` and weights are those of :func:`celib.functional.cross_entropy` on the
    logits ('mean' over a zero total weight is ``nan``). float32 tiles are computed in float32
    (as torch does) and the per-row statistics in float64.

    Explained in chapter 9 (Cross-entropy at LLM scale). ``python -m celib.bench`` measures
    its time and memory against torch.

    References
    ----------
    .. [1] M. Milakov, N. Gimelshein, "Online normalizer calculation for softmax",
       arXiv:1805.02867, 2018.
    .. [2] E. Wijmans, B. Huval, A. Hertzberg, V. Koltun, P. Krähenbühl, "Cut Your Losses in
       Large-Vocabulary Language Models", arXiv:2411.09009, 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from celib.functional import cross_entropy, linear_cross_entropy
    >>> rng = np.random.default_rng(0)
    >>> x, W = rng.standard_normal((4, 3)), rng.standard_normal((10, 3))
    >>> y = np.array([1, 5, 9, 0])
    >>> loss = linear_cross_entropy(x, W, y, chunk_size=4)  # 3 chunks: 4 + 4 + 2 classes
    >>> bool(np.isclose(loss, cross_entropy(x @ W.T, y), rtol=1e-12))
    True
    """
    return forward(_parse(input, linear_weight, target, linear_bias, weight, reduction,
                          ignore_index, label_smoothing, chunk_size))


def linear_cross_entropy_grad(input: ArrayLike, linear_weight: ArrayLike, target: ArrayLike, *,
                              linear_bias: ArrayLike | None = None,
                              weight: ArrayLike | None = None, reduction: str = "mean",
                              ignore_index: int | None = None, label_smoothing: float = 0.0,
                              chunk_size: int | None = None, return_loss: bool = False,
                              schedule: str = "recompute"):
    """Gradients of :func:`celib.functional.linear_cross_entropy` with respect to the input,
    the linear weight and the bias, computed chunk by chunk without forming the logits.

    Takes the same arguments, with the same checks and errors (and a ValueError for an unknown
    ``schedule``). For ``reduction='none'`` the gradients are those of the *sum* of the
    per-element losses (``loss.sum().backward()``).

    Parameters
    ----------
    input, linear_weight, target, linear_bias, weight, reduction, ignore_index, label_smoothing, chunk_size
        As in :func:`celib.functional.linear_cross_entropy`.
    return_loss : bool, default False
        Also return the loss, as :func:`celib.functional.linear_cross_entropy` would. It costs
        nothing extra: both schedules compute the per-row log-sum-exp anyway, so one call
        gives what torch's forward plus backward give.
    schedule : {'recompute', 'fused', 'auto'}, default 'recompute'
        The order of the work (see Notes); the results agree up to rounding. 'recompute'
        keeps the extra memory at one tile whatever the vocabulary; 'fused' does one matrix
        product fewer for a bigger scratch (blocks of at least ``min(N, 64)`` tokens, over
        its budget if need be); 'auto' is 'fused' when a block of ``min(N, 64)`` tokens over
        the whole vocabulary fits in 2**25 elements, else 'recompute'.

    Returns
    -------
    tuple of (numpy.ndarray, numpy.ndarray, numpy.ndarray or None)
        :math:`\\partial L/\\partial X` (the input's shape), :math:`\\partial L/\\partial W`
        (the linear weight's shape) and :math:`\\partial L/\\partial b` (the bias's shape, or
        None without a bias), in the input's dtype; with ``return_loss``, the loss first:
        ``(loss, grad_input, grad_weight, grad_bias)``.

    Notes
    -----
    With :math:`G = \\partial L/\\partial Z` (one row per token:
    :math:`a_i\\,\\operatorname{softmax}(z_i)` minus the scaled target, see
    :func:`celib.grad.cross_entropy_grad`), the chain rule through :math:`Z = X W^\\top + b` gives

    .. math::

        \\frac{\\partial L}{\\partial X} = G W, \\qquad
        \\frac{\\partial L}{\\partial W} = G^\\top X, \\qquad
        \\frac{\\partial L}{\\partial b} = \\mathbf 1^\\top G .

    Two schedules give the same gradients:

    * **fused** (Liger-Kernel's order, which forms the gradient during the forward, one token
      chunk at a time with that chunk's logits over the whole vocabulary [2]_): a block of R
      tokens gets its logits :math:`Z_b` (R × C) once; the row maximum :math:`m_i`,
      :math:`s_i = \\sum_c e^{z_{i,c} - m_i}` (accumulated in float64) and
      :math:`\\mathrm{lse}_i = m_i + \\log s_i` follow, and the same exponentials give
      :math:`a_i e^{z_{i,c} - m_i} / s_i` (no second exponential), then
      :math:`\\partial L/\\partial X_b = G W` and
      :math:`\\partial L/\\partial W \\mathrel{+}= G^\\top X_b`.
      Three matrix products of size N·D·C in all. Extra memory: the R × C block, with
      :math:`R = \\min(N, \\lfloor 2^{25} / C \\rfloor)` (128 MiB in float32, 256 MiB in
      float64, at most), plus ``chunk_size`` × D for each slice of the weight gradient's
      product.
    * **recompute** (Cut Cross-Entropy's backward [1]_, which recomputes the logits): a first
      pass computes :math:`\\mathrm{lse}_i` as the forward does; a second computes each tile's
      logits again and forms :math:`a_i e^{z_{i,c} - \\mathrm{lse}_i}` in place. Four matrix
      products; extra memory one tile of 1024 tokens × ``chunk_size`` classes (about 2**22
      elements), whatever N and C. The default; 'auto' also falls back to it when fewer
      than 64 tokens would fit in the fused schedule's budget.

    In both, the one-hot and label-smoothing parts of the target, being sparse or rank one,
    are added outside the loop. 'mean' over a zero total weight gives ``nan`` where torch's
    autograd does.

    Explained in chapter 9 (Cross-entropy at LLM scale).

    References
    ----------
    .. [1] E. Wijmans, B. Huval, A. Hertzberg, V. Koltun, P. Krähenbühl, "Cut Your Losses in
       Large-Vocabulary Language Models", arXiv:2411.09009, 2024.
    .. [2] P.-L. Hsu et al., "Liger Kernel: Efficient Triton Kernels for LLM Training",
       arXiv:2410.10989, 2024.

    Examples
    --------
    >>> import numpy as np
    >>> import celib.functional as cf
    >>> from celib.grad import cross_entropy_grad, linear_cross_entropy_grad
    >>> rng = np.random.default_rng(0)
    >>> x, W = rng.standard_normal((4, 3)), rng.standard_normal((10, 3))
    >>> y = np.array([1, 5, 9, 0])
    >>> gx, gW, gb = linear_cross_entropy_grad(x, W, y, chunk_size=4)
    >>> G = cross_entropy_grad(x @ W.T, y)  # dL/dZ, from the full logits
    >>> bool(np.allclose(gx, G @ W) and np.allclose(gW, G.T @ x)), gb is None
    (True, True)
    >>> loss, gx2, gW2, gb2 = linear_cross_entropy_grad(x, W, y, return_loss=True)
    >>> bool(np.isclose(loss, cf.cross_entropy(x @ W.T, y)))
    True
    """
    if not isinstance(return_loss, bool):
        raise ValueError(f"return_loss must be True or False, got {return_loss!r}")
    if not isinstance(schedule, str) or schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(map(repr, SCHEDULES))}, "
                         f"got {schedule!r}")
    return gradient(_parse(input, linear_weight, target, linear_bias, weight, reduction,
                           ignore_index, label_smoothing, chunk_size), return_loss, schedule)
