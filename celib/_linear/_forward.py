"""The loss: per-row losses from the log-sum-exp, and their reduction.

This module owns :func:`forward`, the loss of :func:`linear_cross_entropy` for a checked
problem, and the public function itself. Only the per-row log-sum-exp needs the vocabulary
(:func:`celib._linear._tiles.row_lse`, or the lse a gradient pass computed already); the rest
of a row's loss comes from row-wise dot products: the target logit, and for label smoothing
``sum_c w_c z_ic = x_i . (W^T w) + w . b`` (:func:`smoothing_vector`). The target's rules
(which elements count and with what weight, the 'mean' denominator, a mean over nothing,
label smoothing) are :mod:`celib._core`'s, as for every other loss in celib.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .. import _core
from ._problem import IndexTarget, Problem, ProbabilityTarget, parse
from ._tiles import RowStats, row_lse


def weighted_target(problem: Problem, target: ProbabilityTarget, j: int) -> np.ndarray:
    """Position ``j``'s target distributions, smoothed and times the class weights (N, V),
    in the compute dtype: ``w_c ((1 - eps) p_ic + eps / V)``."""
    probabilities = target.probabilities[:, :, j].astype(problem.x.dtype, copy=False)
    smoothed = _core.smooth(probabilities, problem.label_smoothing)  # one position at a time
    return smoothed if problem.class_weight is None else smoothed * problem.class_weight


def smoothing_vector(weight: np.ndarray, bias: np.ndarray | None,
                     class_weight: np.ndarray | None) -> tuple[np.ndarray, float]:
    """``u = W^T w`` and ``beta = w . b`` (w = ones without class weights), in float64, so that
    ``sum_c w_c z_ic = x_i . u + beta``."""
    weight64 = weight.astype(np.float64, copy=False)
    with np.errstate(invalid="ignore", over="ignore"):  # an inf in W: the loss carries it
        return _smoothing_sums(weight64, bias, class_weight)


def _smoothing_sums(weight64: np.ndarray, bias: np.ndarray | None,
                    class_weight: np.ndarray | None) -> tuple[np.ndarray, float]:
    """:func:`smoothing_vector`'s sums, ``W`` already in float64."""
    if class_weight is None:
        u = weight64.sum(axis=0)
        beta = 0.0 if bias is None else float(np.sum(bias, dtype=np.float64))
    else:
        class_weight64 = class_weight.astype(np.float64)
        u = class_weight64 @ weight64
        beta = 0.0 if bias is None else float(class_weight64 @ bias.astype(np.float64))
    return u, beta


def _target_logits(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                   classes: np.ndarray) -> np.ndarray:
    """``z_{i, y_i} = x_i . W_{y_i} + b_{y_i}`` for every row, in float64, block by block."""
    out = np.empty(x.shape[0])
    step = 4096
    for a in range(0, x.shape[0], step):
        block_classes = classes[a:a + step]
        out[a:a + step] = np.einsum("ij,ij->i", x[a:a + step], weight[block_classes],
                                    dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if bias is not None:
            out += bias[classes]
        # a logit beyond the compute dtype's range is ±inf in the tiles (and in torch's
        # logits): the target logit too, so that lse - z_y is what torch computes
        rounded = out.astype(x.dtype)
    return np.where(np.isinf(rounded) & np.isfinite(out), rounded, out)


def _position_loss(problem: Problem, j: int, done: RowStats | None = None) -> np.ndarray:
    """Per-row losses (float64, N) of output position ``j``.

    ``done``: the ``(lse, dots)`` of this position if a gradient pass computed them already."""
    class_weight = problem.class_weight
    # sum_c w_c, for smoothing; computed whatever the target, as it always was (a float64 sum
    # of huge class weights warns of overflow)
    weight_sum = (float(problem.num_classes) if class_weight is None
                  else float(np.sum(class_weight, dtype=np.float64)))
    target = problem.target
    if isinstance(target, ProbabilityTarget):
        return _probability_loss(problem, target, j, done)
    return _index_loss(problem, target, j, done, weight_sum)


def _probability_loss(problem: Problem, target: ProbabilityTarget, j: int,
                      done: RowStats | None) -> np.ndarray:
    """``sum_c t_ic (lse_i - z_ic) = (sum_c t_ic) lse_i - sum_c t_ic z_ic`` with ``t`` the
    smoothed, weighted target."""
    position = problem.position(j)
    dense_target = weighted_target(problem, target, j)
    lse, dots = done if done is not None else row_lse(position.x, position.weight,
                                                      position.bias, problem.chunk, dense_target)
    assert dots is not None  # a dense target always has its dots
    mass = np.sum(dense_target, axis=1, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return mass * lse - dots


def _index_loss(problem: Problem, target: IndexTarget, j: int, done: RowStats | None,
                weight_sum: float) -> np.ndarray:
    """``(1 - eps) w_y (lse - z_y) + eps / V (sum_c w_c lse - sum_c w_c z_c)``, +0.0 where
    ignored (``w_y`` and the ignored mask come from :mod:`celib._core`)."""
    position = problem.position(j)
    x, weight, bias = position.x, position.weight, position.bias
    num_classes, eps, class_weight = (problem.num_classes, problem.label_smoothing,
                                      problem.class_weight)
    classes, ignored = target.classes[:, j], target.ignored[:, j]
    lse = done[0] if done is not None else row_lse(x, weight, bias, problem.chunk)[0]
    target_weight = target.target_weight(j)
    with np.errstate(invalid="ignore"):
        loss = target_weight * (lse - _target_logits(x, weight, bias, classes))
        if eps > 0:
            u, beta = smoothing_vector(weight, bias, class_weight)
            with np.errstate(over="ignore"):  # ±inf logits: the loss carries them
                uniform = weight_sum * lse - (x @ u.astype(x.dtype) + beta)
            keep, spread = _core.smoothing_coefficients(eps, num_classes)
            loss = keep * loss + spread * uniform
    return np.where(ignored, 0.0, loss)


def forward(problem: Problem,
            done: dict[int, RowStats] | None = None) -> np.ndarray | np.floating[Any]:
    """The loss of :func:`celib.functional.linear_cross_entropy` for checked arguments
    (``done`` maps positions to the ``(lse, dots)`` a gradient pass computed already)."""
    target, eps = problem.target, problem.label_smoothing
    if problem.num_classes == 0:  # torch's arithmetic over no classes (see celib._core)
        if isinstance(target, IndexTarget):
            return _core.no_class_losses(target.counted, eps, problem.reduction, problem.dtype)
        no_class = np.full((problem.num_rows, problem.num_positions), -0.0)  # -(empty sum)
        return _core.reduce(no_class, target.counted, problem.reduction, problem.dtype)
    if (eps > 0 and problem.reduction == "mean" and target.counted.denominator == 0
            and isinstance(target, IndexTarget)):  # rare: torch divides each term by 0
        return _core.smoothed_mean_over_zero(
            _per_element(replace(problem, label_smoothing=0.0), done),
            _per_element(replace(problem, label_smoothing=1.0), done), eps,
            target.counted.denominator, problem.dtype)
    return _core.reduce(_per_element(problem, done), target.counted, problem.reduction,
                        problem.dtype)


def _per_element(problem: Problem, done: dict[int, RowStats] | None) -> np.ndarray:
    """The (N, P) float64 per-element losses, +0.0 where ignored."""
    losses = [_position_loss(problem, j, None if done is None else done.get(j))
              for j in range(problem.num_positions)]
    return np.stack(losses, axis=1) if losses else np.zeros((problem.num_rows, 0))


def linear_cross_entropy(input: ArrayLike, linear_weight: ArrayLike, target: ArrayLike, *,
                         linear_bias: ArrayLike | None = None, weight: ArrayLike | None = None,
                         reduction: str = "mean", ignore_index: int | None = None,
                         label_smoothing: float = 0.0, chunk_size: int | None = None
                         ) -> np.ndarray | np.floating[Any]:
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

    Explained in chapter 9 (Cross-entropy at LLM scale, book/09_llm_scale.ipynb). ``python -m
    benchmarks.speed`` (in the book's repository) measures its time and memory against torch.

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
    return forward(parse(input, linear_weight, target, linear_bias, weight, reduction,
                         ignore_index, label_smoothing, chunk_size))
