"""Argument checks shared by the losses.

Every public function of celib validates its arguments here, so that the same mistake gets the
same message everywhere: a wrong option or shape raises ``ValueError`` saying what was expected,
and a class index outside ``[0, C)`` raises ``IndexError`` naming the value and the range, as in
PyTorch. A silent wrong number is the one outcome we never allow.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

REDUCTIONS = ("none", "mean", "sum")

# Class-index targets: PyTorch accepts Long (int64) and Byte (uint8) and refuses every other
# dtype ("expected target dtype to be Long or Byte"); celib refuses the same ones.
INDEX_DTYPES = (np.dtype(np.int64), np.dtype(np.uint8))


def float_array(x: ArrayLike, name: str = "input") -> np.ndarray:
    """Return ``x`` as a floating array, keeping float16/32/64 and turning integers into float64.

    numpy users pass lists such as ``[1, 2, 3]``; treating them as float64 is what they mean.
    Booleans, complex numbers and objects have no meaning as logits and are refused.
    """
    a = np.asarray(x)
    if a.dtype.kind == "f":
        return a
    if a.dtype.kind in "iu":
        return a.astype(np.float64)
    raise ValueError(f"{name} must be a real floating array (logits), got dtype {a.dtype}")


def logits_array(x: ArrayLike, name: str = "input") -> np.ndarray:
    """Return the input of a loss as it is: a real floating array (float16, float32, float64).

    Integer input is refused, as torch refuses Long input to ``log_softmax`` and the losses: a
    loss's input is a model's output, and integers there are usually the targets passed in the
    input's place. (The softmax family reads integers as float64 instead; see
    :func:`float_array`.)
    """
    a = np.asarray(x)
    if a.dtype.kind == "f":
        return a
    if a.dtype.kind in "iu":
        raise ValueError(
            f"{name} must be floating point (logits), got dtype {a.dtype}, which torch refuses "
            f"too; if these really are logits, convert them: {name}.astype(np.float32)"
        )
    raise ValueError(f"{name} must be a real floating array (logits), got dtype {a.dtype}")


def float_dtype(dtype: DTypeLike) -> np.dtype:
    """The ``dtype=`` argument of softmax and log_softmax: a numpy floating dtype."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(
            f"dtype must be a numpy floating dtype such as np.float64, got {dtype!r}"
        ) from None
    if dt.kind != "f":
        raise ValueError(
            f"dtype must be a floating dtype (np.float16, np.float32 or np.float64), got {dt}"
        )
    return dt


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype used for arithmetic: float16 (and smaller) is computed in float32, as torch does on
    the CPU, then rounded back; float32 and float64 are computed as they are."""
    return np.result_type(dtype, np.float32)


def check_reduction(reduction: str) -> None:
    if not (isinstance(reduction, str) and reduction in REDUCTIONS):
        raise ValueError(
            f"reduction must be one of 'none', 'mean' or 'sum', got {reduction!r}"
        )


def check_label_smoothing(label_smoothing: float) -> float:
    """ε as a float in [0, 1]. A real number only: ``"0.1"`` or ``True`` is refused (torch
    refuses a string with a TypeError; it reads ``True`` as 1.0, almost surely not what was
    meant)."""
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real):
        raise ValueError(
            f"label_smoothing must be a number between 0.0 and 1.0, got {label_smoothing!r} "
            f"of type {type(label_smoothing).__name__}"
        )
    ls = float(label_smoothing)
    if not 0.0 <= ls <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    return ls


def check_ignore_index(ignore_index: int) -> int:
    """The ``ignore_index`` as a Python int. An integer only, as in torch: ``1.5``, ``1.0`` and
    ``True`` are refused (no class index is equal to 1.5, so it would silently ignore nothing)."""
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise ValueError(
            f"ignore_index must be an integer (a class index, or -100 to ignore none), got "
            f"{ignore_index!r} of type {type(ignore_index).__name__}"
        )
    return int(ignore_index)


@dataclass(frozen=True)
class CrossEntropyOptions:
    """The options of a cross-entropy call, checked and normalised by
    :func:`cross_entropy_options`."""

    weight: np.ndarray | None
    """Per-class weights of shape (C,) in the compute dtype, or None."""
    ignore_index: int
    reduction: str
    label_smoothing: float
    """ε, a float in [0, 1]."""


def cross_entropy_options(num_classes: int, dtype: np.dtype, weight: ArrayLike | None = None,
                          ignore_index: int = -100, reduction: str = "mean",
                          label_smoothing: float = 0.0) -> CrossEntropyOptions:
    """Check the options every cross-entropy entry point shares, in one place.

    ``celib.functional.cross_entropy``, ``celib.grad.cross_entropy_grad`` and
    ``linear_cross_entropy`` (which never forms the logits, hence ``num_classes`` and ``dtype``
    instead of an input array) take exactly the options of ``torch.nn.functional.cross_entropy``
    and call this, so the same mistake gets the same ``ValueError`` from each. ``dtype`` is the
    compute dtype the weights are converted to. The checks, in this order: reduction,
    label_smoothing, ignore_index, weight. Checks that depend on the target (its dtype, shape
    and bounds, ``ignore_index`` with probability targets) are separate:
    :func:`check_index_target`, :func:`check_bounds`,
    :func:`refuse_ignore_index_with_probabilities`.
    """
    check_reduction(reduction)
    epsilon = check_label_smoothing(label_smoothing)
    ignore = check_ignore_index(ignore_index)
    w = check_weight(weight, num_classes, dtype)
    return CrossEntropyOptions(weight=w, ignore_index=ignore, reduction=reduction,
                               label_smoothing=epsilon)


def refuse_ignore_index_with_probabilities(ignore_index: int) -> None:
    """torch refuses any ``ignore_index`` >= 0 with class-probability targets; so does celib."""
    if ignore_index >= 0:
        raise ValueError(
            f"ignore_index={ignore_index} is not supported with class-probability targets "
            "(as in torch): give ignored elements a zero target row instead"
        )


def class_count(x: np.ndarray) -> int:
    """C, the size of the class axis: axis 0 of a 1-D input, axis 1 otherwise (torch's rule)."""
    if x.ndim == 0:
        raise ValueError(
            "input must have a class axis: shape (C,), (N, C) or (N, C, d1, ..., dK); "
            "got a 0-d array"
        )
    return x.shape[0] if x.ndim == 1 else x.shape[1]


def check_weight(weight: ArrayLike | None, num_classes: int, dtype: np.dtype) -> np.ndarray | None:
    """Per-class weights: a 1-D array of length C, returned in ``dtype``."""
    if weight is None:
        return None
    w = np.asarray(weight)
    if w.dtype.kind not in "fiu":
        raise ValueError(
            f"weight must be a real array of length C = {num_classes}, got dtype {w.dtype}")
    if w.shape != (num_classes,):
        raise ValueError(
            f"weight must have shape (C,) = ({num_classes},), one weight per class, "
            f"got shape {w.shape}"
        )
    return w.astype(dtype, copy=False)


def index_target_shape(input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape an index target must have: the input's shape without its class axis."""
    if len(input_shape) == 1:
        return ()
    return (input_shape[0],) + tuple(input_shape[2:])


def check_index_target(target: np.ndarray, input_shape: tuple[int, ...],
                       probabilities_allowed: bool = True) -> None:
    """Dtype and shape of class-index targets (bounds are checked by :func:`check_bounds`).

    ``probabilities_allowed`` says whether the caller also takes probability targets
    (``cross_entropy`` does, ``nll_loss`` does not), which changes the advice for float targets.
    """
    if target.dtype not in INDEX_DTYPES:
        hint = ""
        if target.dtype.kind == "f" and not probabilities_allowed:
            hint = (
                " nll_loss takes class indices only (torch: 'multi-target not supported'); for "
                "class-probability targets use cross_entropy on the logits."
            )
        elif target.dtype.kind == "f":
            hint = (
                " Float targets are read as class probabilities and must have the input's shape "
                f"{input_shape}; for class indices use integers, e.g. target.astype(np.int64)."
            )
        elif target.dtype.kind in "iu":
            hint = " Convert with target.astype(np.int64)."
        raise ValueError(
            f"class-index targets must be int64 (or uint8), as in torch; "
            f"got dtype {target.dtype}.{hint}"
        )
    expected = index_target_shape(input_shape)
    if target.shape != expected:
        hint = ""
        if target.shape == expected + (1,):
            hint = (" A trailing axis of size 1 is not allowed: use target.reshape(-1) or "
                    "target[:, 0].")
        raise ValueError(
            f"expected a class-index target of shape {expected} for input of shape {input_shape} "
            f"(the input's shape without the class axis), got shape {target.shape}.{hint}"
        )


def check_bounds(target: np.ndarray, num_classes: int,
                 ignore_index: int | None = None) -> np.ndarray:
    """Raise IndexError for a class index outside [0, C) that is not ``ignore_index``.

    Returns the boolean mask of ignored elements (all False when ``ignore_index`` is None).
    """
    ignored = (target == ignore_index) if ignore_index is not None else np.zeros(target.shape, bool)
    # uint8 targets cannot be negative; cast so the comparison below means what it says.
    t = target.astype(np.int64, copy=False)
    bad = ((t < 0) | (t >= num_classes)) & ~ignored
    if bad.any():
        value = int(t[bad].flat[0])
        count = int(bad.sum())
        others = f" ({count} targets are out of range)" if count > 1 else ""
        raise IndexError(
            f"Target {value} is out of bounds: class indices must be in [0, {num_classes}) "
            f"for C = {num_classes} classes{others}."
        )
    return ignored
