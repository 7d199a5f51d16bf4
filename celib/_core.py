"""torch's cross-entropy rules, written once: which targets count, how much, and what a mean over
nothing is.

Every loss in celib with the semantics of ``torch.nn.functional.cross_entropy`` (``cross_entropy``,
``nll_loss``, ``cross_entropy_grad``, ``linear_cross_entropy`` and its gradient, ``focal_loss``
and its gradient) is *parse, kernel, reduce*: the arguments become one frozen target object
here (:func:`index_targets`, :func:`probability_targets`), a kernel computes per-element losses
or gradient rows from it, and :func:`reduce` (or :func:`gradient_scale` and
:func:`nan_rows`) turns them into the result. The rules, each with its one home:

1. An ignored target (``ignore_index``) contributes +0.0, never -0.0, and leaves the 'mean'
   (:class:`IndexTargets`: ``classes``, ``ignored``, ``weights``).
2. With class indices, 'mean' divides by :math:`\\sum_i w_{y_i}` over the kept elements (their
   count without class weights), summed in float64; with class probabilities, by the number of
   elements, whatever the weights (``denominator``).
3. A 'mean' whose denominator is 0 (every target ignored, every kept one weighing 0, class
   weights that cancel, an empty batch) is the IEEE quotient: 0/0 = nan, ±x/0 = ±inf
   (:func:`reduce`). Its gradient is what torch's autograd gives: 0 through the elements that
   do not count, and the chain rule with :math:`1/0 = \\infty` through the others
   (:func:`zero_denominator_gradient`, :func:`nan_rows`).
4. Label smoothing ε replaces the target :math:`p` by :math:`(1-\\varepsilon)\\,p +
   \\varepsilon/C` (:func:`probability_targets`; for class indices :math:`p = e_y`, which the
   kernels apply as the mix of the target term and a uniform term).
6. No classes (C = 0): torch's arithmetic as it falls. With class indices (all ignored) and
   ε > 0 the smoothing term is :math:`(\\varepsilon/0) \\cdot 0` = nan, for every element and
   every reduction (:func:`no_class_losses`); class probabilities of shape (M, 0) give -0.0
   each, and their 'mean' divides by :math:`M \\cdot 0 / 0` = nan (``denominator``).
5. Sums over elements are accumulated in float64 and rounded once to the input's dtype; a total
   beyond float32's range becomes inf (:func:`reduce`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _checks

_U = 2.0**-53  # the unit roundoff of float64

# The dataclasses hold arrays, which do not compare as values: eq=False (identity).


@dataclass(frozen=True, eq=False)
class IndexTargets:
    """Class-index targets, flattened in the order of the input's rows, checked once."""

    classes: np.ndarray
    """(M,) intp: :math:`y_i`, and 0 where ignored, so that it can always index."""
    ignored: np.ndarray
    """(M,) bool: the elements whose target is ``ignore_index``."""
    weights: np.ndarray | None
    """(M,) float64: :math:`w_{y_i}`, 0 where ignored; None without class weights (all 1)."""
    denominator: float
    """'mean' divides by this: :math:`\\sum_i w_{y_i}` over the kept elements, in float64."""
    shape: tuple[int, ...]
    """The target's shape: the shape of ``reduction='none'``."""


@dataclass(frozen=True, eq=False)
class ProbabilityTargets:
    """Class-probability targets as rows, label smoothing applied."""

    probabilities: np.ndarray
    """(M, C): the target :math:`p`, smoothed to :math:`(1-\\varepsilon)p + \\varepsilon/C`."""
    denominator: float
    """'mean' divides by this: M, the number of elements."""
    shape: tuple[int, ...]
    """The shape of ``reduction='none'``: the input's without its class axis."""


@dataclass(frozen=True, eq=False)
class Elements:
    """Losses where every element counts 1 in the 'mean' (binary cross-entropy, focal loss)."""

    denominator: float
    """The number of elements."""
    shape: tuple[int, ...]
    """The shape of ``reduction='none'``."""
    probabilities: bool = False
    """Class-probability targets (linear_cross_entropy's): their empty 'sum' is -0.0."""

    @classmethod
    def of_shape(cls, shape: tuple[int, ...], num_classes: int | None = None) -> Elements:
        """Every element of ``shape`` counts 1. Given ``num_classes``, the elements are those
        of class-probability targets, whose 'mean' over no classes is nan (torch divides by
        ``input.numel() / C`` = 0/0)."""
        count = float(np.prod(shape, dtype=np.int64))
        if num_classes is None:
            return cls(count, shape)
        return cls(count if num_classes > 0 else np.nan, shape, probabilities=True)


Targets = IndexTargets | ProbabilityTargets
Reducible = IndexTargets | ProbabilityTargets | Elements


def is_probability_target(target: np.ndarray, input_shape: tuple[int, ...]) -> bool:
    """torch's rule: a target with the input's shape holds class probabilities (and must then be
    floating point)."""
    if target.shape != input_shape:
        return False
    if target.dtype.kind != "f":
        raise ValueError(
            f"a target of the input's shape {input_shape} is read as class probabilities and must "
            f"be floating point, got dtype {target.dtype}. If it is one-hot, either pass the class "
            "indices (target.argmax(axis=1)) or convert it: target.astype(np.float32)."
        )
    return True


def index_targets(target: np.ndarray, num_classes: int, ignore_index: int | None,
                  class_weight: np.ndarray | None,
                  shape: tuple[int, ...] | None = None) -> IndexTargets:
    """The :class:`IndexTargets` of a flat array of class indices (checked against
    ``[0, num_classes)`` here: an out-of-range index that is not ``ignore_index`` raises
    IndexError). ``class_weight`` is the checked (C,) weight vector or None; ``shape`` defaults
    to the target's."""
    flat = target.reshape(-1)
    ignored = _checks.check_bounds(flat, num_classes, ignore_index)
    # no copy of the targets unless one is ignored (an (N,) array beside an (N, C) input counts
    # in the memory the losses promise: chapter 9 and the performance appendix measure it)
    ignored_count = np.count_nonzero(ignored)
    classes = (np.where(ignored, 0, flat) if ignored_count else flat).astype(np.intp, copy=False)
    weights = None
    if class_weight is None:
        denominator = float(flat.size - ignored_count)
    else:
        if num_classes == 0:  # every target is ignored (check_bounds saw to it)
            weights = np.zeros(flat.size)
        else:
            weights = np.where(ignored, 0.0, class_weight.astype(np.float64)[classes])
        denominator = float(np.sum(weights))
    return IndexTargets(classes, ignored, weights, denominator,
                        target.shape if shape is None else shape)


def smoothing_coefficients(label_smoothing: float, num_classes: int) -> tuple[float, float]:
    """Label smoothing of a class index y: the target :math:`(1-\\varepsilon)\\,e_y +
    (\\varepsilon/C)\\,\\mathbf{1}` as the two coefficients ``(1 - ε, ε / C)`` with which the
    kernels mix the target class's term and the uniform term (0 for C = 0)."""
    return 1 - label_smoothing, label_smoothing / num_classes if num_classes else 0.0


def smooth(p: np.ndarray, label_smoothing: float) -> np.ndarray:
    """Label smoothing of (M, C) target rows: :math:`(1-\\varepsilon)\\,p + \\varepsilon/C`
    (``p`` itself when ε is 0)."""
    if label_smoothing > 0 and p.shape[1] > 0:  # no classes: nothing to smooth
        return p * (1 - label_smoothing) + label_smoothing / p.shape[1]
    return p


def probability_targets(rows: np.ndarray, label_smoothing: float,
                        shape: tuple[int, ...]) -> ProbabilityTargets:
    """The :class:`ProbabilityTargets` of (M, C) target rows (in the compute dtype); over no
    classes the 'mean' is nan (torch divides by ``input.numel() / C`` = 0/0)."""
    denominator = float(rows.shape[0]) if rows.shape[1] > 0 else np.nan
    return ProbabilityTargets(smooth(rows, label_smoothing), denominator, shape)


def reduce(per_element: np.ndarray, targets: Reducible, reduction: str,
           dtype: np.dtype) -> np.ndarray | np.floating[Any]:
    """The loss for ``reduction`` from the per-element losses (any float dtype, in the order of
    the targets; ignored elements must already be +0.0): 'none' has ``targets.shape``, 'sum'
    and 'mean' are accumulated in float64 and rounded once to ``dtype``; a 'mean' whose
    denominator is 0 is the IEEE quotient (nan for 0/0, ±inf for a non-zero total, as in
    torch)."""
    if reduction == "none":
        with np.errstate(over="ignore"):  # a float64 loss beyond float32's range is inf
            return per_element.reshape(targets.shape).astype(dtype, copy=False)
    total = _ieee_sum(per_element, targets)
    # beyond float32's range: inf; a zero denominator: IEEE's x/0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if reduction == "sum":
            return dtype.type(total)
        # + 0.0: a sum of -0.0 weights is +0.0 in torch, which accumulates from 0
        return dtype.type(np.divide(total, targets.denominator + 0.0))


def rounds_alike(values: np.ndarray, bounds: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Where every number within ``bounds`` of ``values`` rounds to the same ``dtype`` number,
    of the same sign (False where a value is nan): there, an exact value known only to lie
    within the bound is proven to round to ``values.astype(dtype)``."""
    with np.errstate(over="ignore", invalid="ignore"):  # inf ± inf is nan: open, silently
        lo, hi = values - bounds, values + bounds
        return (lo.astype(dtype) == hi.astype(dtype)) & ((lo > 0) | (hi < 0))


def reduce_proven(totals: tuple[float, float, float], count: int, targets: IndexTargets,
                  reduction: str, dtype: np.dtype) -> np.floating[Any] | None:
    """:func:`reduce`'s 'sum' or 'mean' of ``count`` per-element losses known roughly, from
    their ``totals``, ``(Σ values, Σ bounds, Σ |values|)`` (ignored elements: +0.0, bound 0),
    where the bound proves how the exact result rounds; None where it does not. The bound covers
    the roughness of the values, of this sum (in any order) and of the accurate kernels' sum,
    so a proven result is theirs, bit for bit."""
    total, bound, size = totals
    error = bound + (2 * count + 4) * _U * size
    if reduction == "mean":
        denominator = targets.denominator + 0.0
        if denominator == 0:
            return None
        total = total / denominator
        error = error / abs(denominator) + 2 * _U * abs(total)
    lo, hi = total - error, total + error
    if not (lo > 0 or hi < 0) or not abs(hi) + abs(lo) < float(np.finfo(dtype).max):  # or nan
        return None  # straddles 0, or lies near the end of dtype's range: not proven here
    return dtype.type(total) if dtype.type(lo) == dtype.type(hi) else None


def smoothed_mean_over_zero(target_terms: np.ndarray, uniform_terms: np.ndarray,
                            label_smoothing: float, denominator: float,
                            dtype: np.dtype) -> np.floating[Any]:
    """A smoothed 'mean' whose denominator is 0, as torch computes it: the target term and the
    uniform term are each divided by the denominator, then mixed,
    :math:`(1-\\varepsilon)\\,(\\sum_i w_{y_i}\\ell_i / 0) + \\varepsilon\\,(\\sum_i u_i / 0)`
    (so 0·inf = nan at ε = 1, and inf - inf = nan). ``target_terms`` are the per-element
    losses without smoothing, ``uniform_terms`` :math:`u_i = \\frac1C \\sum_c w_c
    (\\mathrm{lse}_i - z_{i,c})`, both +0.0 where ignored."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        zero = denominator + 0.0
        target_mean = np.divide(np.sum(target_terms, dtype=np.float64), zero)
        uniform_mean = np.divide(np.sum(uniform_terms, dtype=np.float64), zero)
        return dtype.type((1 - label_smoothing) * target_mean + label_smoothing * uniform_mean)


def _ieee_sum(per_element: np.ndarray, targets: Reducible) -> np.float64:
    """The float64 sum, with torch's sign of zero: a sum that is 0 is +0.0 (torch sums from
    +0.0, as numpy does), but torch computes the loss of probability targets as
    :math:`-\\sum p \\log q`, whose 0 is -0.0."""
    total = np.sum(per_element, dtype=np.float64)
    negated = isinstance(targets, ProbabilityTargets) or (
        isinstance(targets, Elements) and targets.probabilities)
    if total == 0 and negated:
        return np.float64(-0.0)
    return total


def gradient_scale(targets: Reducible, reduction: str) -> float:
    """What the gradient of each element's loss is multiplied by: 1 / denominator for 'mean'
    (where the denominator is not 0: see :func:`nan_rows`), 1 for 'sum' and 'none'."""
    if reduction == "mean" and targets.denominator != 0:
        return 1.0 / targets.denominator
    return 1.0


def reduce_gradient(g: np.ndarray, targets: Reducible, reduction: str) -> np.ndarray:
    """The gradient rows ``g`` (M, C) of the per-element losses, reduced: divided by the
    denominator for 'mean', or, for a 'mean' over nothing, nan on the rows that count and 0 on
    the others (:func:`nan_rows`)."""
    nan = nan_rows(targets, reduction)
    if nan is not None:
        return np.where(nan[:, None], np.nan, np.zeros_like(g))
    return g / targets.denominator if reduction == "mean" else g


def nan_rows(targets: Reducible, reduction: str) -> np.ndarray | None:
    """Where a 'mean' over nothing makes the gradient nan: the elements that count (not
    ignored), as torch's autograd gives :math:`0 \\cdot (1/0)`; None when the gradient is finite
    (the mean has something to divide by, or the reduction is not 'mean')."""
    if reduction != "mean" or targets.denominator != 0:
        return None
    if isinstance(targets, IndexTargets):
        return ~targets.ignored
    return np.ones(int(np.prod(targets.shape, dtype=np.int64)), dtype=bool)


def no_class_losses(targets: IndexTargets, label_smoothing: float, reduction: str,
                    dtype: np.dtype) -> np.ndarray | np.floating[Any]:
    """The loss over no classes (C = 0, so every target is ignored): +0.0 per element, or,
    with label smoothing, torch's :math:`(\\varepsilon/0) \\cdot 0` = nan for every element
    and every reduction (even a 'sum' over no element)."""
    if label_smoothing > 0:
        if reduction == "none":
            return np.full(targets.shape, np.nan, dtype=dtype)
        return dtype.type(np.nan)
    return reduce(np.zeros(len(targets.classes)), targets, reduction, dtype)


def zero_denominator_gradient(q: np.ndarray, targets: IndexTargets,
                              class_weight: np.ndarray | None,
                              label_smoothing: float) -> np.ndarray:
    """The (M, C) float64 gradient of a 'mean' whose denominator is 0, from the model's
    rows ``q = softmax(z)``: torch's autograd with :math:`1/0 = \\infty`.

    The gradient reaching the log-probabilities of a kept element is
    :math:`h = -\\infty\\,\\big((1-\\varepsilon)\\,w_y e_y + (\\varepsilon/C)\\,w\\big)`
    (nan where a weight is 0, ±inf elsewhere), and through log-softmax
    :math:`h - q \\sum_c h_c`; the elements that do not count have :math:`h = 0`, hence 0
    (or nan where q is). With weights that cancel, this gives torch's pattern of ±inf and nan;
    with weights that are all 0, nan rows.
    """
    num_rows, num_classes = q.shape
    weights = (np.ones(num_classes) if class_weight is None
               else class_weight.astype(np.float64))
    keep, spread = smoothing_coefficients(label_smoothing, num_classes)
    kept = ~targets.ignored
    target_weight = (np.ones(num_rows) if targets.weights is None else targets.weights)
    h = np.zeros((num_rows, num_classes))
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.divide(1.0, 0.0 + targets.denominator)
        rows_kept = np.flatnonzero(kept)
        h[rows_kept, targets.classes[rows_kept]] = -(keep * target_weight[rows_kept]) * scale
        if label_smoothing > 0:
            h[rows_kept] -= (spread * weights) * scale
        # a row that does not count has h = 0: its gradient is 0, or nan where q is (0 · nan)
        return h - q * h.sum(axis=1, keepdims=True)
