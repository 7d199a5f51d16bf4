"""The gradient: the choice of schedule, the loop over output positions, the public function.

This module owns :func:`gradient`, which for a checked problem allocates the three gradients,
scales the loss by the 'mean' denominator, and for each output position builds the
:class:`~celib._linear._coefficients.Coefficients`, runs one schedule (fused or recompute, as
``schedule`` and the fused budget decide) and adds the sparse parts; with ``return_loss`` it
hands the lse the schedules computed to :func:`celib._linear._forward.forward`. A 'mean' over
nothing, where torch's autograd gives nan, follows :func:`celib._core.nan_rows`. It also owns
:func:`linear_cross_entropy_grad`. The schedules are called through the package (see
:mod:`celib._linear`).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
from numpy.typing import ArrayLike

from .. import _core, _kernels
from .. import _linear as package
from ._coefficients import PositionGrads, add_sparse_parts, coefficients
from ._forward import forward
from ._fused import fused_rows
from ._problem import IndexTarget, Problem, parse
from ._tiles import RowStats

SCHEDULES = ("auto", "fused", "recompute")

Gradients: TypeAlias = tuple[np.ndarray, np.ndarray, np.ndarray | None]
"""``(grad_input, grad_weight, grad_bias)``."""
LossAndGradients: TypeAlias = tuple[np.ndarray | np.floating[Any], np.ndarray, np.ndarray,
                                    np.ndarray | None]
"""``(loss, grad_input, grad_weight, grad_bias)``."""


def _block_rows(problem: Problem, schedule: str) -> int:
    """Tokens per fused block for ``schedule``, 0 for the recompute schedule."""
    num_rows = problem.num_rows
    if schedule == "recompute":
        return 0
    rows = fused_rows(num_rows, problem.num_classes)
    if schedule == "fused":  # forced: at least min(N, _MIN_FUSED_ROWS) rows, even over budget
        return max(rows, min(num_rows, package._MIN_FUSED_ROWS), 1)
    return rows


def gradient(problem: Problem, return_loss: bool = False,
             schedule: str = "recompute") -> Gradients | LossAndGradients:
    """``(grad_input, grad_weight, grad_bias)`` for checked arguments, preceded by the loss if
    ``return_loss`` (computed from the gradient's own lse, at no extra cost)."""
    d_input = np.zeros_like(problem.x)
    d_weight = np.zeros_like(problem.linear_weight)
    d_bias = None if problem.linear_bias is None else np.zeros_like(problem.linear_bias)
    counted = problem.target.counted
    nan = _core.nan_rows(counted, problem.reduction)
    done: dict[int, RowStats] = {}
    if nan is not None:
        _zero_denominator_grad(problem, nan, d_input, d_weight, d_bias)
    elif problem.num_rows > 0 and problem.num_classes > 0:
        block = _block_rows(problem, schedule)
        scale = _core.gradient_scale(counted, problem.reduction)
        for j in range(problem.num_positions):
            grads = PositionGrads(d_input, d_weight[:, j, :],
                                  None if d_bias is None else d_bias[:, j])
            done[j] = _position_grad(problem, j, scale, grads, block)
    dtype = problem.dtype
    grad_input = d_input.reshape(problem.input_shape).astype(dtype, copy=False)
    grad_weight = d_weight.reshape(problem.weight_shape).astype(dtype, copy=False)
    grad_bias = (None if d_bias is None
                 else d_bias.reshape(problem.bias_shape).astype(dtype, copy=False))
    if return_loss:
        return forward(problem, done), grad_input, grad_weight, grad_bias
    return grad_input, grad_weight, grad_bias


def _position_grad(problem: Problem, j: int, scale: float, grads: PositionGrads,
                   block: int) -> RowStats:
    """Add position ``j``'s gradient (the loss scaled by ``scale``) into ``grads`` with the
    fused schedule (``block`` tokens at a time) or, if ``block`` is 0, the recompute one;
    return the ``(lse, dots)`` it computed, from which the loss follows."""
    position = problem.position(j)
    coefs = coefficients(problem, j, scale)
    if block:
        done = package._fused_grad(position, coefs, grads, problem.chunk, block)
    else:
        done = package._recompute_grad(position, coefs, grads, problem.chunk)
    add_sparse_parts(coefs, position, grads, problem.class_weight)
    return done


def _zero_denominator_grad(problem: Problem, nan: np.ndarray, d_input: np.ndarray,
                           d_weight: np.ndarray, d_bias: np.ndarray | None) -> None:
    """A 'mean' whose denominator is 0 (every target ignored, kept weights all 0 or
    cancelling): torch's autograd divides by 0.

    ``G = dL/dZ`` is :func:`celib._core.zero_denominator_gradient` of the softmax rows (0 for
    the elements that do not count, ``nan``; ±inf and nan for the others), and the chain rule
    through ``Z = X W^T + b`` spreads it, inf and nan included, as torch's matrix products do.
    This rare case forms the logits of the rows that count, one position at a time.
    """
    target = problem.target
    if not isinstance(target, IndexTarget) or problem.num_classes == 0:
        return  # no element, or no class (an empty dL/dZ): the gradients stay 0
    counted = target.counted
    for j in range(problem.num_positions):
        position = problem.position(j)
        rows_j = slice(j, None, problem.num_positions)  # position j's elements, flat
        targets_j = _core.IndexTargets(counted.classes[rows_j], counted.ignored[rows_j],
                                       None if counted.weights is None
                                       else counted.weights[rows_j],
                                       counted.denominator, (problem.num_rows,))
        with np.errstate(all="ignore"):  # inf and nan are the answer here
            z = position.x @ position.weight.T
            if position.bias is not None:
                z += position.bias
            q = np.empty_like(z)
            _kernels.softmax_rows(z, q)
            g = _core.zero_denominator_gradient(q, targets_j,
                                                problem.class_weight, problem.label_smoothing)
            g = g.astype(problem.x.dtype)
            d_input += g @ position.weight
            d_weight[:, j, :] += g.T @ position.x
            if d_bias is not None:
                d_bias[:, j] += g.sum(axis=0)


def linear_cross_entropy_grad(input: ArrayLike, linear_weight: ArrayLike, target: ArrayLike, *,
                              linear_bias: ArrayLike | None = None,
                              weight: ArrayLike | None = None, reduction: str = "mean",
                              ignore_index: int | None = None, label_smoothing: float = 0.0,
                              chunk_size: int | None = None, return_loss: bool = False,
                              schedule: str = "recompute"
                              ) -> Gradients | LossAndGradients:
    """Gradients of :func:`celib.functional.linear_cross_entropy` with respect to the input,
    the linear weight and the bias, computed chunk by chunk without forming the logits.

    Takes the same arguments, with the same checks and errors (and a ValueError for an unknown
    ``schedule``). For ``reduction='none'`` the gradients are those of the *sum* of the
    per-element losses (``loss.sum().backward()``).

    Parameters
    ----------
    input, linear_weight, target, linear_bias, weight, reduction, ignore_index
        As in :func:`celib.functional.linear_cross_entropy`.
    label_smoothing, chunk_size
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

    Explained in chapter 9 (Cross-entropy at LLM scale, book/09_llm_scale.ipynb).

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
    return gradient(parse(input, linear_weight, target, linear_bias, weight, reduction,
                          ignore_index, label_smoothing, chunk_size), return_loss, schedule)
