"""The fused schedule (Liger-Kernel's order): each block's logits once, over the whole vocabulary.

This module owns :func:`fused_grad` and the size of its blocks, :func:`fused_rows`. A block of
R tokens gets its R x V logits in one scratch array; the row maximum ``m``, the sum ``s`` of
``e^{z - m}`` and the lse follow, and the same exponentials, ``E = e^{z - m}`` in place, give
``G = diag(a_i / s_i) E`` with no second exponential. The row factor ``f = a / s`` is applied
to the R x D sides of the products (``G W = f * (E W)``, ``G^T X = E^T (f * X)``), which saves
a pass over the block: 3 GEMMs in all, for a scratch of up to ``_FUSED_BUDGET`` elements.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _linear as package
from ._coefficients import Coefficients, PositionGrads, exp_in_place
from ._problem import Position
from ._tiles import RowStats, run_on_threads


def fused_rows(num_rows: int, num_classes: int) -> int:
    """Tokens per block of the fused schedule: ``min(N, _FUSED_BUDGET // V)``, or 0 when that
    is below ``min(N, _MIN_FUSED_ROWS)`` (the 'auto' schedule then recomputes instead)."""
    rows = min(num_rows, package._FUSED_BUDGET // max(1, num_classes))
    return rows if rows >= min(num_rows, package._MIN_FUSED_ROWS) else 0


def fused_grad(position: Position, coefs: Coefficients, grads: PositionGrads, chunk: int,
               block: int) -> RowStats:
    """Add the position's gradient (but for its sparse parts) into ``grads``, ``block`` tokens
    at a time; return the ``(lse, dots)`` it computed on the way, from which the loss follows.
    """
    x, weight, bias = position.x, position.weight, position.bias
    grad_bias = grads.bias
    num_rows, num_classes = x.shape[0], weight.shape[0]
    lse = np.empty(num_rows)
    dots = np.empty(num_rows) if coefs.dense_target is not None else None
    scratch = np.empty(block * num_classes, dtype=x.dtype)
    factor = np.empty(block, dtype=x.dtype)
    # gW += E^T (f X) by vocabulary slices: the product's temporary is a slice, not V x D
    step = max(1, min(num_classes, chunk))
    for r0 in range(0, num_rows, block):
        r1 = min(num_rows, r0 + block)
        exps = scratch[: (r1 - r0) * num_classes].reshape(r1 - r0, num_classes)
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite logits: see _tiles
            np.matmul(x[r0:r1], weight.T, out=exps)
        row_factor = factor[: r1 - r0]
        run_on_threads(r1 - r0, num_classes,
                       _Block(exps, bias, coefs, r0, lse, dots, row_factor).work)
        with np.errstate(invalid="ignore", over="ignore"):  # nan in G: the results carry it
            grads.input[r0:r1] += row_factor[:, None] * (exps @ weight)
            scaled_x = row_factor[:, None] * x[r0:r1]
            for c0 in range(0, num_classes, step):
                grads.weight[c0:c0 + step] += exps[:, c0:c0 + step].T @ scaled_x
            if grad_bias is not None:
                grad_bias += row_factor @ exps
    return lse, dots


@dataclass(frozen=True, eq=False)
class _Block:
    """The row work of one fused block: turn the logits of rows ``first_row + [0, R)`` into
    ``E = e^{z - m}`` in place, with ``G = factor * E`` row by row (for probability targets,
    minus ``scale t`` is folded into ``E``, with factor 1), and store their lse and dots."""

    exps: np.ndarray
    """(R, V): the block's logits without the bias, turned into E in place."""
    bias: np.ndarray | None
    coefs: Coefficients
    first_row: int
    lse: np.ndarray
    """(N,) float64, every row of the position: written for the block's rows."""
    dots: np.ndarray | None
    """(N,) float64 with a dense target, else None: written for the block's rows."""
    factor: np.ndarray
    """(R,): the row factors f, written."""

    def work(self, a: int, e: int) -> None:
        """Rows ``[a, e)`` of the block (one thread's share)."""
        # a few rows at a time, so that the passes over them (max, exp, sum) stay in cache
        step = max(1, package._FUSED_GROUP // self.exps.shape[1])
        with np.errstate(all="ignore"):
            for g in range(a, e, step):
                self._rows(g, min(e, g + step))

    def _rows(self, a: int, e: int) -> None:
        z, rows = self.exps[a:e], slice(self.first_row + a, self.first_row + e)
        dense = self.coefs.dense_target
        if self.bias is not None:
            np.add(z, self.bias, out=z)
        if self.dots is not None and dense is not None:  # (both exist, or neither)
            self.dots[rows] = np.einsum("ij,ij->i", z, dense[rows], dtype=np.float64)
        row_max = z.max(axis=1)
        bad = np.flatnonzero(~np.isfinite(row_max))
        non_finite = self._non_finite_rows(z, row_max, bad, self.first_row + a) \
            if bad.size else None
        shift = np.where(np.isfinite(row_max), row_max, 0).astype(z.dtype)
        exp_in_place(z, shift, None)
        sum_exp = np.einsum("ij->i", z, dtype=np.float64)  # >= 1 on the finite rows
        self.lse[rows] = shift + np.log(sum_exp)
        # a softmax(z) = e^{z - m} a / s: the same exponentials, no second exp
        f = (self.coefs.softmax_coef[rows] / sum_exp).astype(z.dtype)
        if non_finite is not None:
            lse_bad, g_bad = non_finite
            z[bad], f[bad] = g_bad, 1
            self.lse[bad + self.first_row + a] = lse_bad
        if dense is not None:
            np.multiply(z, f[:, None], out=z)
            z -= self.coefs.scale * dense[rows]
            f[:] = 1
        self.factor[a:e] = f

    def _non_finite_rows(self, z: np.ndarray, row_max: np.ndarray, bad: np.ndarray,
                         first: int) -> tuple[np.ndarray, np.ndarray]:
        """``(lse, G)`` of the rows ``bad`` (of the problem's rows ``first`` onwards) whose max
        is not finite.

        Such a row (all -inf, or an inf or nan logit) has lse -inf or nan, as the recompute
        schedule finds; its G is formed that schedule's way, on a copy.
        """
        lse_bad = np.where(np.isneginf(row_max[bad]), -np.inf, np.nan)
        g_bad = z[bad]
        exp_in_place(g_bad, *self.coefs.exp_shift(lse_bad, bad + first, z.dtype))
        return lse_bad, g_bad
