"""What both gradient schedules share: the coefficients of ``G = dL/dZ`` and the sparse parts.

For one output position, ``G = dL/dZ = a_i softmax(z_i) - (the scaled target)``, row by row.
This module owns :class:`Coefficients` (the softmax coefficients ``a_i`` and the target's
part, dense for probability targets, sparse for class indices), the in-place exponential that
turns a row's logits into ``a_i softmax(z_i)`` with one exponential per entry,
:class:`PositionGrads` (where a position's gradient is accumulated), and
:func:`add_sparse_parts`: the one-hot and label-smoothing parts of the target, rank one or
sparse, added outside the schedules' loops. The target's rules (smoothing, class weights,
ignored elements) are the loss's, from :mod:`celib._linear._forward`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import DTypeLike

from .. import _core
from ._forward import smoothing_vector, weighted_target
from ._problem import IndexTarget, Position, Problem, ProbabilityTarget


@dataclass(frozen=True, eq=False)
class SparseTarget:
    """An index target's part of G: ``-onehot_i e_{y_i} - smooth_i w`` (w: the class weights,
    or ones), float64 coefficients, 0 on ignored rows."""

    classes: np.ndarray
    """(N,) intp: :math:`y_i`."""
    onehot: np.ndarray
    """(N,) float64: ``(1 - eps) scale w_{y_i}``."""
    smooth: np.ndarray | None
    """(N,) float64: ``eps / V scale``; None without label smoothing."""


@dataclass(frozen=True, eq=False)
class Coefficients:
    """What a position's gradient needs besides the logits, shared by both schedules.

    ``G = a_i softmax(z_i) - scale t_i`` for a probability target (``t = dense_target``), or
    ``G = a_i softmax(z_i) - onehot_i e_{y_i} - smooth_i w`` for class indices (the
    :class:`SparseTarget`). Exactly one of ``dense_target`` and ``sparse_target`` is set.
    """

    scale: float
    """The loss's scale: 1 / the 'mean' denominator, or 1."""
    softmax_coef: np.ndarray
    """(N,) float64: :math:`a_i`, the total weight of row i's target times ``scale``."""
    positive: bool
    """Every ``a_i >= 0``, so that ``a_i softmax(z_i) = exp(z_i - lse_i + log a_i)`` (one
    exponential, no product)."""
    dense_target: np.ndarray | None
    """(N, V), compute dtype: the smoothed, weighted target distributions (probability
    targets only)."""
    sparse_target: SparseTarget | None
    """Class-index targets only."""

    def exp_shift(self, lse: np.ndarray, rows: slice | np.ndarray,
                  dtype: DTypeLike) -> tuple[np.ndarray, np.ndarray | None]:
        """Per-row ``(shift, mult)`` with ``a softmax(z) = exp(z - shift) * mult`` given the
        rows' ``lse`` (``mult`` is None when every coefficient is >= 0).

        A row whose lse is not finite (a +inf or nan logit, or only -inf) has a nan softmax,
        and gets ``shift = nan``: its G is nan, even where it does not count, as torch's
        autograd gives ``0 * nan``. Otherwise a row that does not count (``a = 0``) gets
        ``shift = inf``, hence exact zeros."""
        coef = self.softmax_coef[rows]
        finite = np.isfinite(lse)
        if not self.positive:
            return np.where(finite, lse, np.nan).astype(dtype), coef.astype(dtype)
        with np.errstate(divide="ignore", invalid="ignore"):
            shift = np.where(coef == 0, np.inf, lse - np.log(coef))
        return np.where(finite, shift, np.nan).astype(dtype), None


def coefficients(problem: Problem, j: int, scale: float) -> Coefficients:
    """The :class:`Coefficients` of output position ``j``, the loss scaled by ``scale``."""
    target = problem.target
    if isinstance(target, ProbabilityTarget):
        dense = weighted_target(problem, target, j)
        coef = cast(np.ndarray, scale * np.sum(dense, axis=1, dtype=np.float64))  # axis=1: (N,)
        return Coefficients(scale, coef, bool(np.all(coef >= 0)), dense, None)
    sparse, coef = _sparse_target(problem, target, j, scale)
    return Coefficients(scale, coef, bool(np.all(coef >= 0)), None, sparse)


def _sparse_target(problem: Problem, target: IndexTarget, j: int,
                   scale: float) -> tuple[SparseTarget, np.ndarray]:
    """The sparse part of an index target, and the softmax coefficients it implies:
    ``a_i = onehot_i + smooth_i sum_c w_c``."""
    num_classes, eps, class_weight = (problem.num_classes, problem.label_smoothing,
                                      problem.class_weight)
    classes, ignored = target.classes[:, j], target.ignored[:, j]
    keep, spread = _core.smoothing_coefficients(eps, num_classes)
    onehot = keep * scale * target.target_weight(j)  # c_i: the -c_i e_y part
    if eps > 0:
        smooth = np.where(ignored, 0.0, spread * scale)
        weight_sum = (num_classes if class_weight is None
                      else np.sum(class_weight, dtype=np.float64))
        return SparseTarget(classes, onehot, smooth), onehot + smooth * float(weight_sum)
    return SparseTarget(classes, onehot, None), onehot


def exp_in_place(z: np.ndarray, shift: np.ndarray, mult: np.ndarray | None) -> None:
    """``z <- exp(z - shift) * mult`` row by row (under the caller's errstate)."""
    np.subtract(z, shift[:, None], out=z)
    np.exp(z, out=z)
    if mult is not None:
        np.multiply(z, mult[:, None], out=z)


@dataclass(frozen=True, eq=False)
class PositionGrads:
    """Where one position's gradient is accumulated, in the compute dtype: views into the
    whole gradients (the input's is shared by every position)."""

    input: np.ndarray
    """(N, D): :math:`\\partial L/\\partial X`."""
    weight: np.ndarray
    """(V, D): this position's :math:`\\partial L/\\partial W`."""
    bias: np.ndarray | None
    """(V,): this position's :math:`\\partial L/\\partial b`; None without a bias."""


def add_sparse_parts(coefs: Coefficients, position: Position, grads: PositionGrads,
                     class_weight: np.ndarray | None) -> None:
    """Add the one-hot and label-smoothing parts of ``-target`` (sparse, rank one) to the
    gradients: a gather, a scatter-add and two outer products instead of dense (N, V) work."""
    sparse = coefs.sparse_target
    if sparse is None:  # a probability target: its part is dense, added in the loops
        return
    x, weight = position.x, position.weight
    grad_input, grad_weight, grad_bias = grads.input, grads.weight, grads.bias
    num_classes = weight.shape[0]
    classes, onehot = sparse.classes, sparse.onehot.astype(x.dtype)
    with np.errstate(invalid="ignore"):  # 0 * inf for an ignored row's non-finite input
        grad_input -= onehot[:, None] * weight[classes]
        np.add.at(grad_weight, classes, -(onehot[:, None] * x))
    if grad_bias is not None:
        grad_bias -= np.bincount(classes, weights=sparse.onehot,
                                 minlength=num_classes).astype(x.dtype)
    if sparse.smooth is not None:
        smooth = sparse.smooth
        class_weight64 = (np.ones(num_classes) if class_weight is None
                          else class_weight.astype(np.float64))
        u, _ = smoothing_vector(weight, None, class_weight)
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite input: nan, inf
            grad_input -= (smooth[:, None] * u[None, :]).astype(x.dtype)
            grad_weight -= np.outer(class_weight64,
                                    smooth @ x.astype(np.float64)).astype(x.dtype)
        if grad_bias is not None:
            grad_bias -= (class_weight64 * smooth.sum()).astype(x.dtype)
