"""Argument checks shared by the losses.

Every public function of celib validates its arguments here, so that the same mistake gets the
same message everywhere: a wrong option or shape raises ``ValueError`` saying what was expected,
and a class index outside ``[0, C)`` raises ``IndexError`` naming the value and the range, as in
PyTorch. A silent wrong number is the one outcome we never allow.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

REDUCTIONS = ("none", "mean", "sum")

# Class-index targets. torch 2.13's nll_loss (hence cross_entropy and linear_cross_entropy)
# takes int64 (Long) at every input rank, and uint8 (Byte) only for a 1-D or 2-D input: the
# K-dimensional path refuses it ("expected scalar type Long but found Byte"). Every other
# dtype is refused at every rank. :func:`index_dtypes` says which, for an input of a given rank.
INDEX_DTYPES = (np.dtype(np.int64), np.dtype(np.uint8))
"""The dtypes torch takes as class indices for *some* input rank (uint8: 1-D and 2-D input
only); :func:`index_dtypes` gives the exact set for a rank."""

# The floating dtypes celib computes in: torch's on the CPU (bfloat16 aside). float16 is
# computed in float32 and rounded back, as torch does; longdouble (float128 on x86 Linux) is
# refused with a TypeError everywhere, rather than computed in some functions and not others.
FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def index_dtypes(input_ndim: int) -> tuple[np.dtype, ...]:
    """The dtypes torch accepts as class indices for an input with ``input_ndim`` axes:
    int64 and uint8 for a 1-D or 2-D input, int64 only for a K-dimensional one."""
    return INDEX_DTYPES if input_ndim <= 2 else (np.dtype(np.int64),)


def as_array(x: ArrayLike, name: str) -> np.ndarray:
    """``np.asarray(x)`` in the machine's byte order (a big-endian array is copied, so that
    every result, like torch's, has a native dtype), with numpy's message for a ragged list
    replaced by one that names the argument ("setting an array element with a sequence" does
    not say which, nor why)."""
    try:
        a = np.asarray(x)
    except ValueError:
        raise ValueError(
            f"{name} must be a rectangular array, but its rows have different lengths (a ragged "
            "nested list): give every row the same number of entries"
        ) from None
    if not a.dtype.isnative:
        return a.astype(a.dtype.newbyteorder("="))
    return a


def check_float_dtype(a: np.ndarray, name: str) -> None:
    """Refuse a floating dtype celib does not compute in (longdouble) with a TypeError."""
    if a.dtype.kind == "f" and a.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} has dtype {a.dtype}, which celib does not support: like torch on the CPU "
            f"it computes in float16, float32 or float64; convert with {name}.astype(np.float64)"
        )


def check_bool(value: object, name: str) -> bool:
    """A flag: True or False (a numpy bool too), nothing else; ``"False"`` would be true."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} of type "
                        f"{type(value).__name__}")
    return bool(value)


def check_integer(value: object, name: str) -> int:
    """An integer (Python or numpy), never a bool, a float or a string."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} of type "
                        f"{type(value).__name__}")
    return int(value)


def check_positive_number(value: object, name: str) -> float:
    """A finite real number > 0 (a step, a scale), never a bool or a string."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {value!r} of type "
                        f"{type(value).__name__}")
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def float_array(x: ArrayLike, name: str = "input") -> np.ndarray:
    """Return ``x`` as a floating array, keeping float16/32/64 and turning integers into float64.

    numpy users pass lists such as ``[1, 2, 3]``; treating them as float64 is what they mean.
    Booleans, complex numbers and objects have no meaning as logits and are refused.
    """
    a = as_array(x, name)
    check_float_dtype(a, name)
    if a.dtype.kind == "f":
        return a
    if a.dtype.kind in "iu":
        return a.astype(np.float64)
    raise ValueError(f"{name} must be a real floating array (logits), got dtype {a.dtype}")


def logits_array(x: ArrayLike, name: str = "input", target: Any = None) -> np.ndarray:
    """Return the input of a loss as it is: a real floating array (float16, float32, float64).

    Integer input is refused, as torch refuses Long input to ``log_softmax`` and the losses: a
    loss's input is a model's output, and integers there are usually the targets passed in the
    input's place; given the ``target`` of a class-index loss, a floating target beside it is
    named as the likely swap. (The softmax family reads integers as float64 instead; see
    :func:`float_array`.)
    """
    a = as_array(x, name)
    check_float_dtype(a, name)
    if a.dtype.kind == "f":
        return a
    if a.dtype.kind in "iu":
        if _floating(target):  # class indices first, logits second: the usual slip
            raise ValueError(
                f"{name} holds integers (dtype {a.dtype}) and target holds floats: the "
                f"arguments look swapped; as in torch, the input (the model's output) comes "
                f"first and the target second"
            )
        raise ValueError(
            f"{name} must be floating point (logits), got dtype {a.dtype}, which torch refuses "
            f"too; if these really are logits, convert them: {name}.astype(np.float32)"
        )
    raise ValueError(f"{name} must be a real floating array (logits), got dtype {a.dtype}")


def _floating(value: Any) -> bool:
    """Whether ``value`` (an argument not yet checked) reads as a floating array."""
    if value is None:
        return False
    try:
        return bool(np.asarray(value).dtype.kind == "f")
    except (TypeError, ValueError):
        return False


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
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be np.float16, np.float32 or np.float64 (torch's CPU "
                        f"dtypes), got {dt}, which celib does not support")
    return dt


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype used for arithmetic: float16 (and smaller) is computed in float32, as torch does on
    the CPU, then rounded back; float32 and float64 are computed as they are."""
    return _COMPUTE_DTYPES.get(dtype) or np.result_type(dtype, np.float32)


_COMPUTE_DTYPES = {np.dtype(t): np.dtype(t) for t in (np.float32, np.float64)}  # the usual ones


def check_reduction(reduction: str) -> None:
    if not (isinstance(reduction, str) and reduction in REDUCTIONS):
        raise ValueError(
            f"reduction must be one of 'none', 'mean' or 'sum', got {reduction!r}"
        )


def check_label_smoothing(label_smoothing: float) -> float:
    """ε as a float in [0, 1]. A real number only: ``"0.1"`` or ``True`` is refused (torch
    refuses a string with a TypeError; it reads ``True`` as 1.0, almost surely not what was
    meant)."""
    if type(label_smoothing) is float and 0.0 <= label_smoothing <= 1.0:  # the usual case
        return label_smoothing
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
    if type(ignore_index) is int:  # the usual case, without the slower checks below
        return ignore_index
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise ValueError(
            f"ignore_index must be an integer (a class index, or -100 to ignore none), got "
            f"{ignore_index!r} of type {type(ignore_index).__name__}"
        )
    return int(ignore_index)


class CrossEntropyOptions(NamedTuple):  # (built in a fifth of a frozen dataclass's time)
    """The options of a cross-entropy call, checked and normalised by
    :func:`cross_entropy_options`."""

    weight: np.ndarray | None
    """Per-class weights of shape (C,) in the compute dtype, or None."""
    ignore_index: int
    reduction: str
    label_smoothing: float
    """ε, a float in [0, 1]."""
    weight_dtype: np.dtype | None = None
    """The dtype of the class weights as given, if they were an array (a list has none of its
    own); checked against the input's by :meth:`check_for_index_targets`."""
    input_dtype: np.dtype | None = None
    """The input's dtype (float16 is computed in float32 but compared as float16)."""

    def check_for_index_targets(self) -> None:
        """torch's rule for class-index targets: the class weights have the input's dtype
        ("expected scalar type Float but found Double"); with class probabilities torch mixes
        dtypes, and so does celib."""
        if (self.weight_dtype is not None and self.input_dtype is not None
                and self.weight_dtype != self.input_dtype):
            raise TypeError(
                f"weight must have the input's dtype {self.input_dtype} with class-index targets, "
                f"as in torch, got {self.weight_dtype}: convert with "
                f"weight.astype(np.{self.input_dtype})"
            )


def cross_entropy_options(num_classes: int, dtype: np.dtype, weight: ArrayLike | None = None,
                          ignore_index: int = -100, reduction: str = "mean",
                          label_smoothing: float = 0.0,
                          input_dtype: np.dtype | None = None) -> CrossEntropyOptions:
    """Check the options every cross-entropy entry point shares, in one place.

    ``celib.functional.cross_entropy``, ``celib.grad.cross_entropy_grad`` and
    ``linear_cross_entropy`` (which never forms the logits, hence ``num_classes`` and ``dtype``
    instead of an input array) take exactly the options of ``torch.nn.functional.cross_entropy``
    and call this, so the same mistake gets the same ``ValueError`` from each. ``dtype`` is the
    compute dtype the weights are converted to; ``input_dtype`` (the input's own, if given) is
    the dtype an array of class weights must have with class-index targets, which
    :func:`check_index_target` checks. The checks, in this order: reduction, label_smoothing,
    ignore_index, weight. Checks that depend on the target (its dtype, shape and bounds,
    ``ignore_index`` with probability targets) are separate: :func:`check_index_target`,
    :func:`check_bounds`, :func:`refuse_ignore_index_with_probabilities`.
    """
    check_reduction(reduction)
    epsilon = check_label_smoothing(label_smoothing)
    ignore = check_ignore_index(ignore_index)
    w = check_weight(weight, num_classes, dtype)
    given = weight.dtype.newbyteorder("=") if isinstance(weight, np.ndarray) else None
    return CrossEntropyOptions(weight=w, ignore_index=ignore, reduction=reduction,
                               label_smoothing=epsilon, weight_dtype=given,
                               input_dtype=None if input_dtype is None else np.dtype(input_dtype))


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
    w = as_array(weight, "weight")
    if w.dtype.kind not in "fiu":
        raise ValueError(
            f"weight must be a real array of length C = {num_classes}, got dtype {w.dtype}")
    check_float_dtype(w, "weight")
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
                       probabilities_allowed: bool = True,
                       options: CrossEntropyOptions | None = None) -> None:
    """Dtype and shape of class-index targets (bounds are checked by :func:`check_bounds`),
    and, given the call's ``options``, the class weights' dtype (torch's rule for index targets).

    ``probabilities_allowed`` says whether the caller also takes probability targets
    (``cross_entropy`` does, ``nll_loss`` does not), which changes the advice for float targets.
    """
    if target.dtype not in index_dtypes(len(input_shape)):
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
        accepted = "int64 (or uint8)" if len(input_shape) <= 2 else (
            "int64 (uint8 only with a 1-D or 2-D input)")
        raise ValueError(
            f"class-index targets must be {accepted}, as in torch; "
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
    if options is not None:
        options.check_for_index_targets()


def check_bounds(target: np.ndarray, num_classes: int,
                 ignore_index: int | None = None) -> np.ndarray:
    """Raise IndexError for a class index outside [0, C) that is not ``ignore_index``.

    Returns the boolean mask of ignored elements (all False when ``ignore_index`` is None).
    """
    # uint8 targets cannot be negative; cast so the comparisons below mean what they say.
    t = target.astype(np.int64, copy=False)
    # the usual case, in one pass: a negative index read as unsigned is beyond any class count
    if t.size == 0 or t.view(np.uint64).max() < num_classes:
        if ignore_index is not None and 0 <= ignore_index < num_classes:
            return t == ignore_index
        return np.zeros(t.shape, bool)
    ignored = (target == ignore_index) if ignore_index is not None else np.zeros(target.shape, bool)
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
