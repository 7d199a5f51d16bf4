"""Check class-index targets before training: the mistakes that cost an afternoon, caught in one
call.

A class-index target for ``cross_entropy`` is an ``int64`` array (``uint8`` too for logits of
shape (C,) or (N, C)) of values in ``[0, C)``, with the logits' shape minus the class axis.
Labels often arrive in some other form: 1-based (Lua Torch, MATLAB/Octave, SVHN), as floats
or ``int32`` after a round trip through another library, one-hot encoded, or with a trailing
axis of size 1. PyTorch rejects most of these with a terse message, or, worse, accepts them:
1-based labels with one spare output train without any error and every prediction is off by
one.

:func:`check_targets` looks at the whole label set once, before training starts, and either
raises with a message that names the problem *and* the fix, or returns a
:class:`TargetSummary` (the validated ``int64`` labels and the count of every class). A class
that never occurs is not an error but gets a :class:`TargetWarning`.

Chapter 7 (The MNIST label-index question, book/07_mnist_labels.ipynb) explains every check on the
real MNIST labels. """

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _checks

__all__ = ["check_targets", "TargetSummary", "TargetWarning"]

_INT64_MAX = int(np.iinfo(np.int64).max)

# How many distinct offending values a message lists before it says "and k more".
_MAX_LISTED = 5


class TargetWarning(UserWarning):
    """Targets that are valid but suspicious: some class never occurs."""


@dataclass(frozen=True, repr=False)
class TargetSummary:
    """What :func:`check_targets` returns when the targets are valid class indices.

    Attributes
    ----------
    target : numpy.ndarray of int64
        The targets, in their original shape (less a trailing axis of size 1), as a new int64
        array: ready for :func:`celib.functional.cross_entropy`, or for ``torch.from_numpy``.
    num_classes : int
        C, as passed.
    counts : numpy.ndarray of int64, shape (C,)
        How many targets hold each class index (``ignore_index`` entries excluded).
    num_ignored : int
        How many targets equal ``ignore_index``.
    missing : tuple of int
        The class indices that never occur.
    """

    target: np.ndarray
    num_classes: int
    counts: np.ndarray
    num_ignored: int
    missing: tuple[int, ...]

    @property
    def num_targets(self) -> int:
        """Number of targets that count (not equal to ``ignore_index``)."""
        return int(self.target.size - self.num_ignored)

    def __repr__(self) -> str:
        return (
            f"TargetSummary(num_targets={self.num_targets}, num_classes={self.num_classes}, "
            f"num_ignored={self.num_ignored}, missing={self.missing}, "
            f"counts={self.counts.tolist()})"
        )


class _Problems:
    """Problems found so far; each is (exception class, message)."""

    def __init__(self) -> None:
        self.items: list[tuple[type[Exception], str]] = []

    def add(self, kind: type[Exception], message: str) -> None:
        self.items.append((kind, message))

    def raise_if_any(self) -> None:
        if not self.items:
            return
        kind = self.items[0][0]
        if len(self.items) == 1:
            raise kind(self.items[0][1])
        listing = "\n".join(f"  {i}. {msg}" for i, (_, msg) in enumerate(self.items, start=1))
        raise kind(f"{len(self.items)} problems with these targets:\n{listing}")


def _list_values(values: np.ndarray, counts: np.ndarray) -> str:
    shown = [f"{int(v)} ({_plural(int(c), 'target')})"
             for v, c in zip(values[:_MAX_LISTED], counts[:_MAX_LISTED], strict=True)]
    more = len(values) - _MAX_LISTED
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {plural or word + 's'}"


def _looks_like_rows_of_classes(t: np.ndarray, num_classes: int,
                                input_shape: tuple[int, ...] | None) -> bool:
    """Whether ``t`` is (N, C) data meant as one row per sample (one-hot, multi-hot, probabilities).

    With the logits' shape known the rule is torch's: a target of the input's shape holds one
    value per class. Without it, a 2-D target with C columns of 0/1 values is taken for one-hot
    (a 2-D index target of width C holding only 0s and 1s is, in practice, never intended).
    """
    if input_shape is not None:
        return t.shape == input_shape and t.ndim >= 2
    if t.ndim != 2 or t.shape[1] != num_classes or num_classes < 2 or t.size == 0:
        return False
    if t.dtype.kind == "f":
        return bool(np.all(np.isfinite(t)) and np.all((t >= 0) & (t <= 1)))
    return bool(np.all((t == 0) | (t == 1)))


def _rows_message(t: np.ndarray, num_classes: int) -> str:
    """Explain what a (N, C) target is and how to turn it into class indices."""
    n = t.shape[0]
    shape = tuple(int(s) for s in t.shape)
    index_shape = (n,) + shape[2:]
    values = t.astype(np.float64, copy=False)
    binary = bool(np.all((values == 0) | (values == 1)))
    row_sums = np.moveaxis(values, 1, -1).sum(axis=-1)
    one_per_row = bool(np.allclose(row_sums, 1.0))
    if binary and one_per_row:
        what = "like one-hot encoding (a single 1 per row)"
        fix = (
            f"Use class indices: target.argmax(axis=1) (torch: target.argmax(dim=1)), of shape "
            f"{index_shape}; or pass it to cross_entropy as a probability target in floating "
            f"point, target.astype(np.float32) (torch: target.float())."
        )
    elif binary:
        what = "like multi-hot encoding (rows with several 1s, or none)"
        fix = (
            "If a sample can belong to several classes, this is multi-label classification: use "
            "binary_cross_entropy_with_logits with a float target of this shape. If each sample "
            "has exactly one class, rebuild the labels: some rows do not hold a single 1."
        )
    elif one_per_row and t.dtype.kind == "f":
        what = "like class probabilities (rows summing to 1)"
        fix = (
            "cross_entropy accepts probabilities as a float target of the logits' shape, as it "
            "is; check_targets only checks class indices. For hard labels use "
            "target.argmax(axis=1)."
        )
    else:
        what = "like one value per class"
        fix = (f"Class-index targets hold one integer in [0, {num_classes}) per sample, "
               f"shape {index_shape}.")
    return (
        f"target of shape {shape} has one entry per class (C = {num_classes}): it looks "
        f"{what}, not class indices. {fix}"
    )


def _dtype_problem(t: np.ndarray) -> str | None:
    """The message for a numeric dtype torch refuses as class indices at every input rank, or
    None (uint8, refused for K-dimensional input only, is :func:`_byte_problem`'s)."""
    if t.dtype in _checks.INDEX_DTYPES:
        return None
    torch_name = {
        "float16": "Half", "float32": "Float", "float64": "Double", "int8": "Char",
        "int16": "Short", "int32": "Int", "uint16": "UInt16", "uint32": "UInt32",
        "uint64": "UInt64",
    }.get(t.dtype.name, t.dtype.name)
    if t.dtype.kind == "f":
        return (
            f"dtype {t.dtype}: class indices must be integers. The values are whole numbers, so "
            f"convert them: target.astype(np.int64) (torch: target.long()). torch refuses "
            f"float indices ('expected target dtype to be Long or Byte, but got {torch_name}'), "
            f"and a float target of the logits' shape would be read as class probabilities."
        )
    return (
        f"dtype {t.dtype}: torch's cross-entropy takes class indices as int64 (Long) or uint8 "
        f"(Byte) only, and raises 'expected target dtype to be Long or Byte, but got "
        f"{torch_name}'. Convert with target.astype(np.int64) (torch: target.long())."
    )


def check_targets(target: ArrayLike, num_classes: int, *, input: Any = None,
                  ignore_index: int = -100, warn_missing: bool = True) -> TargetSummary:
    """Check class-index targets before training; raise with the fix, or summarize them.

    Call it once on the whole label set (or on the first batch and the labels of the data
    set) before training. It refuses what ``torch.nn.functional.cross_entropy`` would refuse,
    and also what torch would silently accept but is almost surely a mistake, and says in
    each message what is wrong and how to fix it.

    Parameters
    ----------
    target : array_like
        The labels: a numpy array, a list or a CPU torch tensor.
    num_classes : int
        C, the number of classes: the model's number of outputs (logits).
    input : array_like, optional
        The logits (or anything with their ``shape``), to check C and the target's shape
        exactly as ``cross_entropy`` would: the target must have the logits' shape without
        the class axis (axis 1, or 0 for 1-D logits). Without it, any shape is accepted except
        the ones below.
    ignore_index : int, default -100
        Targets equal to it are skipped, as in ``cross_entropy`` (whose default it is). An
        integer (a numpy integer too); a float, a string or a bool is a TypeError.
    warn_missing : bool, default True
        Warn (:class:`TargetWarning`) when a class never occurs. Turn it off for a single
        small batch, where missing classes are normal.

    Returns
    -------
    TargetSummary
        ``target`` (the labels as an int64 array, same shape), ``counts`` per class,
        ``num_ignored``, ``missing`` classes.

    Raises
    ------
    IndexError
        Values outside ``[0, C)`` (other than ``ignore_index``): the message names them, their
        counts and the range, and recognizes **1-based labels** (values 1 to C with no 0: the
        Lua Torch, MATLAB/Octave and SVHN convention), suggesting ``target - 1``, or
        ``target % C`` when label C stands for class 0 (SVHN, Andrew Ng's ex3).
        A float or uint64 value too large for int64 is out of range too.
    ValueError
        A dtype torch refuses (float, int32, bool, uint8 for K-dimensional logits, ...); a
        one-hot, multi-hot or probability target of shape (N, C) passed where class indices
        are expected; a trailing axis of size 1, shape (N, 1); a target whose shape does not
        match ``input``, or ``input`` with another number of classes than ``num_classes``;
        ``num_classes`` < 1 or above 2**63 - 1; a ragged ``target`` or ``input``.
    TypeError
        ``num_classes`` or ``ignore_index`` that is not an integer (a bool, a float, a
        string, None), or ``warn_missing`` that is not a bool.
    MemoryError
        A ``num_classes`` whose per-class ``counts`` cannot be allocated (C int64 values).

    Warns
    -----
    TargetWarning
        When a class index in ``[0, C)`` never occurs. If class 0 is the missing one and the
        labels run from 1 to C - 1, the message says these are probably 1-based labels
        trained with one output too many: no error is raised anywhere, and every prediction
        comes out shifted by one.

    Notes
    -----
    A valid class-index target holds, for each sample :math:`i`, one integer
    :math:`y_i \\in \\{0, 1, \\dots, C-1\\}`, and the loss reads the logit with that index:
    :math:`\\ell_i = -\\log \\operatorname{softmax}(z_i)_{y_i}`. Class index k, logit index k
    and (for MNIST) digit k are the same number; nothing in the loss knows about 1-based
    counting.

    The checks run in this order: ``num_classes``; the dtype's kind (bool, complex, strings
    are refused at once); rows of classes (one-hot and friends, refused at once); the shape;
    the integer dtype; the values. Shape, dtype and value problems are collected, so a label
    array with several problems (say SVHN labels read from MATLAB: shape (N, 1), values 1 to
    10) gets them all in one message, numbered; the exception's type is the first problem's.

    Which dtypes torch 2.13 takes as class indices (``cross_entropy`` and ``nll_loss``),
    measured in the tests against torch at every rank: int64 always; uint8 (MNIST's own dtype)
    only for logits of shape (C,) or (N, C), that is for a target of at most one dimension; for
    K-dimensional logits torch raises 'expected scalar type Long but found Byte', so a uint8
    segmentation mask is refused here with the fix, ``target.astype(np.int64)``. Every other
    dtype is refused at every rank. The returned ``target`` is int64 either way.

    Deliberate differences from torch, each pinned by a test:

    - An *empty* uint8 K-dimensional target is refused; torch takes it with 'mean' and 'sum'
      (which return early on an empty batch) but not with 'none'. check_targets knows no
      reduction, and a uint8 mask that works only while it is empty is a bug waiting.
    - uint8 class indices with both ``label_smoothing`` > 0 and a class ``weight`` fail in
      torch (its ``gather`` wants int64); check_targets takes neither option and accepts them.
      Convert to int64 to be safe everywhere.

    ``ignore_index`` must be an integer, as in torch, which raises a TypeError for a float, a
    bool or a string there too.

    Explained in chapter 7 (The MNIST label-index question, book/07_mnist_labels.ipynb).

    Examples
    --------
    >>> import numpy as np
    >>> from celib.targets import check_targets
    >>> summary = check_targets(np.array([7, 2, 1, 0, 4, 1, 4, 9, 5, 9]), 10, warn_missing=False)
    >>> summary  # doctest: +NORMALIZE_WHITESPACE
    TargetSummary(num_targets=10, num_classes=10, num_ignored=0, missing=(3, 6, 8),
                  counts=[1, 2, 1, 0, 2, 1, 0, 1, 0, 2])
    >>> summary.target.dtype
    dtype('int64')

    1-based labels (here digit d stored as d + 1, as Lua Torch code had to) are named as such,
    with the fix:

    >>> try:
    ...     check_targets([8, 3, 2, 1, 5, 2, 5, 10, 6, 10], 10)
    ... except IndexError as e:
    ...     print(e)  # doctest: +NORMALIZE_WHITESPACE +ELLIPSIS
    Target 10 is out of bounds: class indices must be in [0, 10) for num_classes = 10;
    out of range: 10 (2 targets). This looks like 1-based labels (the Lua Torch / MATLAB /
    Octave / SVHN convention): the values run from 1 to 10 and none is 0. Subtract 1:
    target - 1 ... use target % 10 instead, so that class index k is digit k.

    A one-hot target is not class indices:

    >>> try:
    ...     check_targets(np.eye(3, dtype=np.int64)[[2, 0]], 3)
    ... except ValueError as e:
    ...     print(e)  # doctest: +NORMALIZE_WHITESPACE +ELLIPSIS
    target of shape (2, 3) has one entry per class (C = 3): it looks like one-hot encoding
    (a single 1 per row), not class indices. Use class indices: target.argmax(axis=1) ...

    A class that never occurs is a warning, not an error:

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     summary = check_targets([1, 2, 2, 1], 3)
    >>> summary.missing, caught[0].category.__name__
    ((0,), 'TargetWarning')
    """
    c = _check_num_classes(num_classes)
    ignore = _check_ignore_index(ignore_index)
    warn = _checks.check_bool(warn_missing, "warn_missing")
    t = _checks.as_array(target, "target")
    input_shape = _check_input(input, c)
    _check_value_kind(t)  # bool, complex, strings: refused at once
    _check_not_rows_of_classes(t, c, input_shape)  # one-hot and friends: refused at once

    problems = _Problems()  # shape, dtype and value problems are collected, then raised together
    t = _check_shape(t, input_shape, problems)
    _check_whole_numbers(t, c)
    _check_dtype(t, input_shape, problems)
    values = _int64_values(t, c, problems)
    ignored = values == ignore
    kept = values[~ignored]
    _check_range(kept, c, ignore, problems)
    problems.raise_if_any()

    counts = _class_counts(kept, c)
    missing = tuple(int(k) for k in np.flatnonzero(counts == 0))
    if warn and missing and kept.size:
        _warn_missing(missing, kept, c)
    return TargetSummary(target=values, num_classes=c, counts=counts,
                         num_ignored=int(ignored.sum()), missing=missing)


# --------------------------------------------------------------------------------------------
# The checks composed by check_targets, in the order it runs them
# --------------------------------------------------------------------------------------------

def _integer(value: Any, name: str, meaning: str) -> int:
    """``value`` as a Python int: an integer (numpy integers too), never a bool, a float or a
    string, each of which is a TypeError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer ({meaning}), got {value!r} "
                        f"of type {type(value).__name__}")
    return int(value)


def _check_num_classes(num_classes: int) -> int:
    """C as a Python int in [1, 2**63 - 1]: torch's class indices are int64, so no larger C can
    be indexed (and the per-class ``counts`` could not be allocated)."""
    c = _integer(num_classes, "num_classes", "the number of logits")
    if c < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes!r}")
    if c > _INT64_MAX:
        raise ValueError(
            f"num_classes must be at most 2**63 - 1 = {_INT64_MAX} (class indices are int64, "
            f"as in torch), got {num_classes!r}")
    return c


def _check_ignore_index(ignore_index: int) -> int:
    """``ignore_index`` as a Python int; a float (no class index equals 1.5), a string or a bool
    is a TypeError, as an int-only argument of torch's."""
    return _integer(ignore_index, "ignore_index",
                    "a class index to skip, -100 by default")


def _check_input(input: Any, c: int) -> tuple[int, ...] | None:
    """The logits' shape (None without ``input``), after checking that it has C classes."""
    if input is None:
        return None
    shape = getattr(input, "shape", None)  # a tensor or an array: its shape, without a copy
    input_shape = tuple(int(s) for s in (shape if shape is not None else
                                         _checks.as_array(input, "input").shape))
    if len(input_shape) == 0:
        raise ValueError("input must have a class axis: shape (C,), (N, C) or "
                         "(N, C, d1, ..., dK); got a 0-d array")
    # a view of one byte with the logits' shape: class_count reads the shape, allocating nothing
    input_c = _checks.class_count(np.broadcast_to(np.uint8(0), input_shape))
    if input_c != c:
        raise ValueError(
            f"input (the logits) has C = {input_c} classes (shape {input_shape}, class axis "
            f"{0 if len(input_shape) == 1 else 1}) but num_classes = {c}: the model's number "
            f"of outputs must be the number of classes."
        )
    return input_shape


def _check_value_kind(t: np.ndarray) -> None:
    """Only real numbers can be class indices: booleans and non-numbers are refused."""
    if t.dtype.kind == "b":
        raise ValueError(
            "boolean target (dtype bool): class indices are integers. For two classes use "
            "target.astype(np.int64) with num_classes = 2 (logits of shape (N, 2)); for one "
            "logit per sample use binary_cross_entropy_with_logits with target.astype(np.float32)."
        )
    if t.dtype.kind not in "iuf":
        raise ValueError(f"target of dtype {t.dtype}: class indices must be integers")


def _check_not_rows_of_classes(t: np.ndarray, c: int, input_shape: tuple[int, ...] | None) -> None:
    """One row of class values per sample (one-hot, multi-hot, probabilities) is refused."""
    if _looks_like_rows_of_classes(t, c, input_shape):
        raise ValueError(_rows_message(t, c))


def _check_shape(t: np.ndarray, input_shape: tuple[int, ...] | None,
                 problems: _Problems) -> np.ndarray:
    """The logits' shape without the class axis; a trailing axis of size 1 is a (collected)
    problem, and ``t`` is returned without it so the later checks can go on."""
    if input_shape is not None:
        expected = _checks.index_target_shape(input_shape)
        if t.shape != expected:
            if t.shape == expected + (1,):
                problems.add(ValueError, (
                    f"shape {t.shape} has a trailing axis of size 1 (expected {expected} for "
                    f"logits of shape {input_shape}): use target.reshape(-1) or target[:, 0] "
                    f"(torch: target.squeeze(1)); torch refuses it ('0D or 1D target tensor "
                    f"expected, multi-target not supported')."))
                return t.reshape(expected)
            raise ValueError(
                f"expected a class-index target of shape {expected} for input (logits) of "
                f"shape {input_shape} (the input's shape without the class axis), got shape "
                f"{t.shape}")
    elif t.ndim == 2 and t.shape[1] == 1:
        problems.add(ValueError, (
            f"shape {t.shape} has a trailing axis of size 1 (a column vector, as MATLAB and "
            f"scipy.io.loadmat produce): class indices for N samples have shape "
            f"({t.shape[0]},). Use target.reshape(-1) or target[:, 0] (torch: target.squeeze(1)); "
            f"torch refuses it ('0D or 1D target tensor expected, multi-target not supported')."))
        return t.reshape(-1)
    return t


def _check_whole_numbers(t: np.ndarray, c: int) -> None:
    """Float targets must hold whole, finite numbers (they may still have the wrong dtype)."""
    if t.dtype.kind != "f":
        return
    finite = np.isfinite(t)
    if not np.all(finite):
        bad = t[~finite].flat[0]
        raise ValueError(f"target holds {bad}: class indices are integers in [0, {c}); "
                         f"find where the {bad} came from (a missing label?)")
    fractional = t != np.round(t)
    if np.any(fractional):
        example = float(t[fractional].flat[0])
        raise ValueError(
            f"target holds non-integer values such as {example:g} (dtype {t.dtype}): class "
            f"indices are integers in [0, {c}). If these are class probabilities, they need "
            f"one row per sample of shape (N, {c}) and go to cross_entropy as they are.")


def _check_dtype(t: np.ndarray, input_shape: tuple[int, ...] | None,
                 problems: _Problems) -> None:
    """A dtype torch refuses as class indices is a problem: anything but int64 and uint8, and
    uint8 too for K-dimensional logits (a target of 2 or more dimensions)."""
    message = _dtype_problem(t) or _byte_problem(t, input_shape)
    if message is not None:
        problems.add(ValueError, message)


def _byte_problem(t: np.ndarray, input_shape: tuple[int, ...] | None) -> str | None:
    """torch 2.13 takes Byte targets for logits of shape (C,) or (N, C) only: its
    K-dimensional kernel (nll_loss2d, and the reshape path for K != 1) raises 'expected scalar
    type Long but found Byte'. The target's rank tells the logits' (one more: a class axis)."""
    if t.dtype not in _checks.INDEX_DTYPES or t.dtype in _checks.index_dtypes(t.ndim + 1):
        return None
    logits = f"logits of shape {input_shape}" if input_shape else "K-dimensional logits"
    return (
        f"dtype uint8 with a target of shape {t.shape}: torch takes uint8 (Byte) class indices "
        f"only for logits of shape (C,) or (N, C); with {logits} it raises 'expected scalar "
        f"type Long but found Byte'. Convert with target.astype(np.int64) (torch: "
        f"target.long())."
    )


def _int64_values(t: np.ndarray, c: int, problems: _Problems) -> np.ndarray:
    """The targets as int64. A whole-number float or a uint64 beyond int64's range cannot be
    cast (it would wrap, or be undefined): it is out of range, an IndexError naming it."""
    too_large = None
    if t.dtype.kind == "f":
        too_large = np.abs(t.astype(np.float64)) >= 2.0 ** 63
    elif t.dtype == np.uint64:
        too_large = t > _INT64_MAX
    if too_large is not None and np.any(too_large):
        value = t[too_large].flat[0]
        problems.add(IndexError, (
            f"Target {value} is out of bounds: class indices must be in [0, {c}) for "
            f"num_classes = {c} (and fit in int64, as in torch)."))
        problems.raise_if_any()
    return t.astype(np.int64)


def _class_counts(kept: np.ndarray, c: int) -> np.ndarray:
    """How many kept targets hold each class: an int64 array of length C."""
    try:
        return np.bincount(kept, minlength=c).astype(np.int64, copy=False)
    except (MemoryError, ValueError):  # numpy: "Unable to allocate" or "array is too big"
        raise MemoryError(
            f"num_classes = {c} is too large for check_targets: the count of every class "
            f"needs an array of {c} int64 ({c * 8 / 2**30:.3g} GiB)"
        ) from None


def _check_range(kept: np.ndarray, c: int, ignore: int, problems: _Problems) -> None:
    """Every kept value (not ``ignore_index``) in [0, C); out-of-range values are an IndexError
    problem whose message lists them and recognizes 1-based labels."""
    bad = (kept < 0) | (kept >= c)
    if not np.any(bad):
        return
    bad_values, bad_counts = np.unique(kept[bad], return_counts=True)
    first = int(kept[bad][0])
    message = (
        f"Target {first} is out of bounds: class indices must be in [0, {c}) for "
        f"num_classes = {c}; out of range: {_list_values(bad_values, bad_counts)}."
    )
    if _looks_one_based(kept, c):
        message += (
            f" This looks like 1-based labels (the Lua Torch / MATLAB / Octave / SVHN "
            f"convention): the values run from 1 to {c} and none is 0. Subtract 1: "
            f"target - 1 (class k is then label k + 1). If label {c} stands for the class "
            f"usually numbered 0, as in SVHN and Andrew Ng's ex3 where 10 is the digit 0, "
            f"use target % {c} instead, so that class index k is digit k."
        )
    else:
        message += _out_of_range_hints(bad_values, c, ignore)
    problems.add(IndexError, message)


def _looks_one_based(kept: np.ndarray, c: int) -> bool:
    """The 1-based suspicion: the values run from 1 to C (C itself occurs) and none is 0."""
    return bool(kept.min() >= 1 and kept.max() == c)


def _out_of_range_hints(bad_values: np.ndarray, c: int, ignore: int) -> str:
    """What negative values and values >= C usually mean."""
    hints = ""
    if bad_values.min() < 0:
        hints += (
            f" Negative values often mark unlabelled samples or padding: drop them, or "
            f"pass the marker as ignore_index to the loss and to check_targets (here "
            f"ignore_index = {ignore})."
        )
    if bad_values.max() >= c:
        hints += (
            f" If there really are {int(bad_values.max()) + 1} or more classes, the model "
            f"needs that many outputs (num_classes); otherwise find where these labels "
            f"come from."
        )
    return hints


def _warn_missing(missing: tuple[int, ...], kept: np.ndarray, c: int) -> None:
    listed = ", ".join(str(k) for k in missing[:_MAX_LISTED * 2])
    if len(missing) > _MAX_LISTED * 2:
        listed += f" and {len(missing) - _MAX_LISTED * 2} more"
    message = (
        f"{_plural(len(missing), 'class', 'classes')} of {c} "
        f"never occur{'s' if len(missing) == 1 else ''} "
        f"among the {len(kept)} targets: {listed}."
    )
    high = int(kept.max())
    # Only class 0 absent, and more than two classes (a batch of all-positive binary labels is
    # not a 1-based labelling): the signature of 1-based labels given one output too many.
    if missing == (0,) and c > 2:
        message += (
            f" The labels run from 1 to {c - 1} with no 0: these look like 1-based labels for "
            f"{c - 1} classes given a model with {c} outputs. Nothing fails: logit k + 1 learns "
            f"what label k + 1 stands for (class k), logit 0 is never a target, and predictions "
            f"decoded as argmax come out shifted by one. Subtract 1 and use num_classes = {c - 1}."
        )
    elif missing[0] > high:
        message += (
            f" The largest label is {high}: is num_classes = {c} too large? Each missing class "
            f"is a logit that is only ever pushed down."
        )
    else:
        message += (
            " A class that never occurs is only ever pushed down by the loss. Check the data "
            "split and num_classes; in a single small batch this is normal (warn_missing=False)."
        )
    warnings.warn(message, TargetWarning, stacklevel=3)
