"""The checked problem: what the user passed, checked once and reshaped for the kernels.

This module owns :class:`Problem` (a frozen dataclass), its two kinds of target
(:class:`IndexTarget`, :class:`ProbabilityTarget`) and :func:`parse`, which builds a problem
from the arguments of :func:`celib.functional.linear_cross_entropy`, raising any error before
the work starts. The options shared with ``cross_entropy``
(reduction, label smoothing, ``ignore_index``, class weights) are checked and worded by
:mod:`celib._checks`; what is particular to a linear layer (floating arrays of one dtype, the
shapes of the input, weight and bias, a probability target's dtype, ``chunk_size``) is here.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .. import _checks, _core
from ._tiles import default_chunk_size

# The dataclasses hold arrays, which do not compare as values: eq=False (identity) throughout.


@dataclass(frozen=True, eq=False)
class IndexTarget:
    """Class-index targets, one column per output position, over the flat
    :class:`celib._core.IndexTargets` that applies torch's rules (``counted``)."""

    classes: np.ndarray
    """(N, P) intp: the class :math:`y` of each element, 0 where it is ignored (so that it can
    index an array all the same)."""
    ignored: np.ndarray
    """(N, P) bool: the elements whose target is ``ignore_index``."""
    counted: _core.IndexTargets
    """The same targets flat, with their float64 weights :math:`w_y` and the 'mean'
    denominator."""

    def target_weight(self, j: int) -> np.ndarray:
        """(N,) float64 :math:`w_y` of position ``j``: 0 where ignored, 1 without weights."""
        if self.counted.weights is None:
            return np.where(self.ignored[:, j], 0.0, 1.0)
        return self.counted.weights.reshape(self.classes.shape)[:, j]


@dataclass(frozen=True, eq=False)
class ProbabilityTarget:
    """Class-probability targets, the target distributions :math:`p`."""

    probabilities: np.ndarray
    """(N, V, P), as given: any floating dtype (each position is converted when used)."""
    counted: _core.Elements
    """Every element counts 1 in the 'mean', whatever the weights (torch's rule)."""


@dataclass(frozen=True, eq=False)
class Position:
    """One output position ``j`` of a problem: the layer that computes its logits."""

    x: np.ndarray
    """(N, D), the compute dtype (the same array for every position)."""
    weight: np.ndarray
    """(V, D): :math:`W` of this position, a view."""
    bias: np.ndarray | None
    """(V,): :math:`b` of this position, a view; None without a bias."""


@dataclass(frozen=True, eq=False)
class Problem:
    """The checked arguments of one call, reshaped for the kernels.

    There are P output positions (P = 1 unless the linear weight has out_features
    d1..dK, P = d1···dK), each a (V, D) weight and a (V,) bias over the same (N, D) input.
    """

    x: np.ndarray
    """(N, D) hidden states in the compute dtype (an unbatched input is one row)."""
    linear_weight: np.ndarray
    """(V, P, D): :math:`W` in the compute dtype."""
    linear_bias: np.ndarray | None
    """(V, P): :math:`b` in the compute dtype, or None."""
    target: IndexTarget | ProbabilityTarget
    class_weight: np.ndarray | None
    """(V,) per-class weights :math:`w_c` in the compute dtype, or None."""
    label_smoothing: float
    """ε, in [0, 1]."""
    reduction: str
    chunk: int
    """Vocabulary columns per chunk: the caller's ``chunk_size`` or the default."""
    dtype: np.dtype
    """The input's dtype, that of the results (float16 is computed in float32)."""
    input_shape: tuple[int, ...]
    weight_shape: tuple[int, ...]
    loss_shape: tuple[int, ...]
    """The shape of the per-element losses (``reduction='none'``)."""

    @property
    def bias_shape(self) -> tuple[int, ...]:
        """The linear bias's shape, ``(C, d1, ..., dK)`` (the one it was checked to have),
        whether there is a bias or not."""
        return self.weight_shape[:-1]

    @property
    def num_rows(self) -> int:
        """N, the number of tokens."""
        return self.x.shape[0]

    @property
    def num_classes(self) -> int:
        """V, the vocabulary size."""
        return self.linear_weight.shape[0]

    @property
    def num_positions(self) -> int:
        """P, the number of output positions."""
        return self.linear_weight.shape[1]

    def position(self, j: int) -> Position:
        """The input, weight and bias of output position ``j`` (views, no copy)."""
        bias = None if self.linear_bias is None else self.linear_bias[:, j]
        return Position(self.x, self.linear_weight[:, j, :], bias)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------

def parse(input: ArrayLike, linear_weight: ArrayLike, target: ArrayLike,
          linear_bias: ArrayLike | None, weight: ArrayLike | None, reduction: str,
          ignore_index: int | None, label_smoothing: float,
          chunk_size: int | None) -> Problem:
    """Check the arguments of ``linear_cross_entropy`` and build the :class:`Problem`."""
    x = _floating(input, "input")
    lw = _floating(linear_weight, "linear_weight")
    chunk = _check_chunk_size(chunk_size)
    _check_layer(x, lw)
    bias = None if linear_bias is None else _checked_bias(linear_bias, x, lw)
    _check_batched(x, lw)
    num_classes, out_features, batch = lw.shape[0], tuple(lw.shape[1:-1]), x.shape[:-1]
    logits_shape = batch + (num_classes,) + out_features
    t = _checks.as_array(target, "target")
    probs = t.shape == logits_shape
    if probs:
        _check_probability_target(t, logits_shape, ignore_index)
    dtype = _checks.compute_dtype(x.dtype)
    # the options shared with cross_entropy, checked (and worded) in one place
    options = _checks.cross_entropy_options(
        num_classes, dtype, weight=weight, reduction=reduction, label_smoothing=label_smoothing,
        ignore_index=-100 if ignore_index is None else ignore_index, input_dtype=x.dtype)
    n = batch[0] if batch else 1
    positions = math.prod(out_features)
    # reshaped before an index target is checked, the order the errors have always come in
    x_2d = x.reshape(n, x.shape[-1]).astype(dtype, copy=False)
    if probs:
        loss_shape = batch + out_features
        parsed: IndexTarget | ProbabilityTarget = ProbabilityTarget(
            t.reshape(n, num_classes, positions), _core.Elements.of_shape(loss_shape, num_classes))
    else:
        parsed = _index_target(t, logits_shape, num_classes, options, n, positions)
        loss_shape = t.shape
    return Problem(
        x=x_2d,
        linear_weight=lw.astype(dtype, copy=False).reshape(num_classes, positions, lw.shape[-1]),
        linear_bias=None if bias is None else bias.astype(dtype, copy=False).reshape(
            num_classes, positions),
        target=parsed, class_weight=options.weight, label_smoothing=options.label_smoothing,
        reduction=reduction,
        chunk=chunk if chunk is not None else default_chunk_size(n, num_classes),
        dtype=x.dtype, input_shape=x.shape, weight_shape=lw.shape, loss_shape=loss_shape)


def _floating(a: ArrayLike, name: str) -> np.ndarray:
    """A real floating array; integers are refused, as torch refuses Long input here."""
    arr = _checks.as_array(a, name)
    _checks.check_float_dtype(arr, name)
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


def _check_chunk_size(chunk_size: object) -> int | None:
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


def _check_layer(x: np.ndarray, lw: np.ndarray) -> None:
    """The input's and the linear weight's shapes and dtypes."""
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


def _checked_bias(linear_bias: ArrayLike, x: np.ndarray, lw: np.ndarray) -> np.ndarray:
    """The bias: floating, of the weight's shape without in_features, and the input's dtype."""
    shape = (lw.shape[0],) + tuple(lw.shape[1:-1])
    bias = _floating(linear_bias, "linear_bias")
    if bias.shape != shape:
        raise ValueError(
            f"linear_bias must have shape {shape} to match "
            f"linear_weight of shape {lw.shape}, got shape {bias.shape}"
        )
    _check_same_dtype("linear_bias", bias, x)
    return bias


def _check_batched(x: np.ndarray, lw: np.ndarray) -> None:
    """A K-dimensional loss (out_features in the weight) needs a batched input."""
    if lw.ndim > 2 and x.ndim == 1:
        raise ValueError(
            f"a K-dimensional loss (linear_weight of shape {lw.shape}) needs a batched input of "
            f"shape (N, {x.shape[-1]}), got an unbatched input of shape {x.shape}"
        )


def _check_probability_target(t: np.ndarray, logits_shape: tuple[int, ...],
                              ignore_index: int | None) -> None:
    """A target of the logits' shape holds probabilities: floating, and no ignore_index."""
    if t.dtype.kind != "f":
        raise ValueError(
            f"a target of the logits' shape {logits_shape} is read as class probabilities and "
            f"must be floating point, got dtype {t.dtype}. If it is one-hot, pass the class "
            "indices instead (target.argmax(axis=1)) or convert it: target.astype(np.float32)."
        )
    if ignore_index is not None:
        raise ValueError(
            f"ignore_index={ignore_index} cannot be given when the target holds class "
            "probabilities (as in torch's linear_cross_entropy): leave it None and give ignored "
            "elements a zero target row"
        )


def _index_target(t: np.ndarray, logits_shape: tuple[int, ...], num_classes: int,
                  options: _checks.CrossEntropyOptions, num_rows: int,
                  positions: int) -> IndexTarget:
    """Class indices, their dtype, shape and bounds checked, as (N, P) columns."""
    _checks.check_index_target(t, logits_shape, options=options)
    counted = _core.index_targets(t, num_classes, options.ignore_index, options.weight)
    return IndexTarget(classes=counted.classes.reshape(num_rows, positions),
                       ignored=counted.ignored.reshape(num_rows, positions), counted=counted)
