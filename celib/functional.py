"""Softmax, log-softmax and the classification losses, with ``torch.nn.functional``'s semantics.

Put ``F.cross_entropy`` (PyTorch) and ``cf.cross_entropy`` (this module) side by side: the
arguments, the shapes, the options, the edge cases and the errors are the same. Arrays in,
arrays out; the result has the input's floating dtype.

The log-sum-exp family uses the max-shift with the ``log1p`` form of Blanchard, Higham & Higham
(2021): with :math:`m = \\max_j x_j` attained at index :math:`k` and
:math:`s = \\sum_{j \\ne k} e^{x_j - m}`,

.. math::

    \\log \\sum_j e^{x_j} = m + \\operatorname{log1p}(s), \\qquad
    \\log \\operatorname{softmax}(x)_i = (x_i - m) - \\operatorname{log1p}(s).

Nothing overflows (every exponent is ≤ 0), and when one logit dominates, ``log1p(s)`` keeps the
tiny loss that ``log(1 + s)`` would round to 0. Chapter 2 (Softmax) and chapter 5 (Numerical
stability) explain both.

The work is done by the blocked, multi-threaded kernels of ``celib._kernels``: float32
input is computed in float64 and rounded once, float64 input carries the rounding error of
``x - m`` into ``exp``, and the cross-entropy gathers the target logits instead of forming the
``(N, C)`` log-softmax (its per-sample losses, and their sum, are float64 until the end, so a
float32 ``'mean'`` does not overflow when the exact mean is finite). On the stress inputs of
``python -m celib.accuracy`` the results are within 1 ulp of exact in float32 and 4 ulp in
float64. (One limit no method escapes: a float64 logsumexp whose exact value is close to 0,
such as ``logsumexp([-ln 2, -ln 2])``, is the difference of two nearly equal numbers and has
only a small *absolute* error.) Speed and memory against torch are measured by
``python -m celib.bench``; the appendix on performance shows both.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import _checks, _kernels

__all__ = [
    "logsumexp",
    "softmax",
    "log_softmax",
    "one_hot",
    "nll_loss",
    "cross_entropy",
    "binary_cross_entropy_with_logits",
]


# --------------------------------------------------------------------------------------------
# The log-sum-exp kernel
# --------------------------------------------------------------------------------------------

def _last_axis_rows(work: np.ndarray, axis: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """View ``work`` as ``(rows, C)`` with ``axis`` last and each row contiguous (copying only
    when the layout requires it); also return the shape of the other axes."""
    moved = np.moveaxis(work, axis, -1)
    rest = moved.shape[:-1]
    rows = moved.reshape(-1, moved.shape[-1])
    return _contiguous_rows(rows), rest


def _contiguous_rows(rows: np.ndarray) -> np.ndarray:
    if rows.shape[1] > 1 and rows.strides[1] != rows.itemsize:
        return np.ascontiguousarray(rows)
    return rows


def _from_last_axis(rows: np.ndarray, rest: tuple[int, ...], axis: int) -> np.ndarray:
    """Inverse of :func:`_last_axis_rows` for a result of the input's shape."""
    out = rows.reshape(rest + (rows.shape[1],))
    if axis != out.ndim - 1:
        out = np.ascontiguousarray(np.moveaxis(out, -1, axis))
    return out


def _normalize_axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for an array with {ndim} dimension(s)")
    return axis % ndim


def logsumexp(x: ArrayLike, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """Log of the sum of exponentials, :math:`\\log \\sum_j e^{x_j}`, without overflow.

    Same as ``torch.logsumexp(x, dim=axis, keepdim=keepdims)``.

    Parameters
    ----------
    x : array_like
        Real values (logits). Integers are read as float64.
    axis : int, default -1
        The axis to reduce.
    keepdims : bool, default False
        Keep the reduced axis with length 1.

    Returns
    -------
    numpy.ndarray
        ``x``'s shape without ``axis`` (or with it of length 1), in ``x``'s floating dtype.

    Notes
    -----
    With :math:`m = \\max_j x_j` at index :math:`k`, the result is
    :math:`m + \\operatorname{log1p}\\big(\\sum_{j\\ne k} e^{x_j - m}\\big)`. An empty axis gives
    ``-inf`` (the log of an empty sum), a row whose maximum is ``+inf`` gives ``+inf``, a row of
    ``-inf`` gives ``-inf``, and ``nan`` propagates; all as in torch.

    Explained in chapter 2 (Softmax) and chapter 5 (Numerical stability).

    References
    ----------
    .. [1] P. Blanchard, D. J. Higham, N. J. Higham, "Accurately computing the log-sum-exp and
       softmax functions", IMA Journal of Numerical Analysis 41(4), 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from celib.functional import logsumexp
    >>> float(logsumexp([1000.0, 1000.0]))  # log(2 e^1000): no overflow
    1000.6931471805599
    >>> float(np.log(np.sum(np.exp([1000.0, 1000.0]))))  # doctest: +SKIP
    inf
    >>> logsumexp([[0.0, 0.0], [1.0, 2.0]], axis=1).round(4)
    array([0.6931, 2.3133])
    """
    a = _checks.float_array(x, "x")
    axis = _normalize_axis(axis, max(a.ndim, 1)) if a.ndim else 0
    if a.ndim == 0:
        a = a.reshape(1)
    work = a.astype(_checks.compute_dtype(a.dtype), copy=False)
    if work.shape[axis] == 0:
        shape = list(work.shape)
        shape[axis] = 1
        out = np.full(shape, -np.inf, dtype=work.dtype)
        if not keepdims:
            out = np.squeeze(out, axis=axis)
        return out.astype(a.dtype, copy=False)
    rows, rest = _last_axis_rows(work, axis)
    # Row by row in float64: m + log1p(s), or m itself where m is +inf, -inf or nan.
    out = _kernels.logsumexp_rows(rows).reshape(rest)
    if keepdims:
        out = np.expand_dims(out, axis)
    with np.errstate(over="ignore"):  # a float64 result beyond float32's range is inf
        return out.astype(a.dtype, copy=False)


def log_softmax(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """Logarithm of the softmax, :math:`x_i - \\log\\sum_j e^{x_j}`, computed stably.

    Same as ``torch.nn.functional.log_softmax(x, dim=axis)``. This, not ``log(softmax(x))``, is
    what a loss needs: it never returns ``-inf`` for a finite logit, and it keeps the tiny
    values near 0 that the log of a rounded probability loses.

    Parameters
    ----------
    x : array_like
        Logits. Integers are read as float64.
    axis : int, default -1
        The class axis.

    Returns
    -------
    numpy.ndarray
        Same shape and floating dtype as ``x``; every entry ≤ 0.

    Notes
    -----
    :math:`\\log\\operatorname{softmax}(x)_i = (x_i - m) - \\operatorname{log1p}(s)` with
    :math:`m = \\max_j x_j` at index :math:`k` and :math:`s = \\sum_{j\\ne k} e^{x_j-m}`.
    A row containing ``+inf``, or only ``-inf``, gives ``nan`` as in torch.

    Explained in chapter 2 (Softmax) and chapter 5 (Numerical stability).

    References
    ----------
    .. [1] P. Blanchard, D. J. Higham, N. J. Higham, "Accurately computing the log-sum-exp and
       softmax functions", IMA Journal of Numerical Analysis 41(4), 2021.

    Examples
    --------
    >>> from celib.functional import log_softmax
    >>> log_softmax([1000.0, 1.0])  # log(softmax) would give [0, -inf]
    array([   0., -999.])
    >>> float(log_softmax([0.0, -40.0])[0])  # -log1p(e^-40), not 0
    -4.248354255291589e-18
    """
    a = _checks.float_array(x, "x")
    if a.ndim == 0:
        raise ValueError("log_softmax needs at least one axis (the classes); got a 0-d array")
    axis = _normalize_axis(axis, a.ndim)
    if a.shape[axis] == 0:
        return a.copy()
    work = a.astype(_checks.compute_dtype(a.dtype), copy=False)
    rows, rest = _last_axis_rows(work, axis)
    out = np.empty(rows.shape, dtype=a.dtype)
    _kernels.log_softmax_rows(rows, out)
    return _from_last_axis(out, rest, axis)


def softmax(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """Softmax, :math:`e^{x_i} / \\sum_j e^{x_j}`, computed without overflow.

    Same as ``torch.nn.functional.softmax(x, dim=axis)``.

    Parameters
    ----------
    x : array_like
        Logits. Integers are read as float64.
    axis : int, default -1
        The class axis.

    Returns
    -------
    numpy.ndarray
        Same shape and floating dtype as ``x``: non-negative, summing to 1 along ``axis``.

    Notes
    -----
    Softmax is invariant to adding a constant to every logit, so it is computed as
    :math:`e^{x_i - m} / (1 + s)` with :math:`m = \\max_j x_j` and
    :math:`s = \\sum_{j\\ne k} e^{x_j - m}`; every exponent is ≤ 0. A row containing ``+inf``,
    or only ``-inf``, gives ``nan`` as in torch.

    Explained in chapter 2 (Softmax).

    Examples
    --------
    >>> from celib.functional import softmax
    >>> softmax([1000.0, 1.0])  # the textbook exp(x)/sum(exp(x)) gives nan here
    array([1., 0.])
    >>> softmax([1.0, 2.0, 3.0]).round(4)
    array([0.09  , 0.2447, 0.6652])
    """
    a = _checks.float_array(x, "x")
    if a.ndim == 0:
        raise ValueError("softmax needs at least one axis (the classes); got a 0-d array")
    axis = _normalize_axis(axis, a.ndim)
    if a.shape[axis] == 0:
        return a.copy()
    work = a.astype(_checks.compute_dtype(a.dtype), copy=False)
    rows, rest = _last_axis_rows(work, axis)
    out = np.empty(rows.shape, dtype=a.dtype)
    _kernels.softmax_rows(rows, out)
    return _from_last_axis(out, rest, axis)


# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------

def one_hot(labels: ArrayLike, num_classes: int = -1) -> np.ndarray:
    """One-hot encoding of class indices, like ``torch.nn.functional.one_hot``.

    Parameters
    ----------
    labels : array_like of int
        Class indices of any shape, each in ``[0, num_classes)``.
    num_classes : int, default -1
        C. With -1 it is inferred as ``labels.max() + 1`` (as torch does), which silently
        gives fewer columns when the largest class is absent from this batch: pass C.

    Returns
    -------
    numpy.ndarray of int64
        Shape ``labels.shape + (C,)``: 1 at each label's index, 0 elsewhere.

    Raises
    ------
    IndexError
        A label outside ``[0, num_classes)``, with the value and the range.
    ValueError
        Non-integer labels, or ``num_classes`` < -1 (or -1 with no labels to infer it from).

    Notes
    -----
    The result is int64, as in torch: to use it as a probability target, convert it to a
    float dtype (``.astype(np.float32)``). Unlike ``F.one_hot``, which takes only int64,
    any integer dtype is accepted (the values are what matter), and an out-of-range label is
    an ``IndexError``, like an out-of-range target in the losses (torch raises RuntimeError).
    Explained in chapter 3 (Targets).

    Examples
    --------
    >>> from celib.functional import one_hot
    >>> one_hot([0, 2, 1], num_classes=3)
    array([[1, 0, 0],
           [0, 0, 1],
           [0, 1, 0]])
    """
    t = np.asarray(labels)
    if t.dtype.kind not in "iu":
        raise ValueError(f"one_hot expects integer class indices, got dtype {t.dtype}")
    n = int(num_classes)
    if n == -1:
        if t.size == 0:
            raise ValueError("num_classes=-1 cannot be inferred from an empty array of labels; pass C")
        if int(t.min()) < 0:
            _checks.check_bounds(t, int(t.max()) + 1)
        n = int(t.max()) + 1
    elif n < 0:
        raise ValueError(f"num_classes must be a positive number of classes or -1 (infer), got {num_classes}")
    _checks.check_bounds(t, n)
    return (t[..., None] == np.arange(n)).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------

def _rows(x: np.ndarray) -> np.ndarray:
    """View the class axis last and everything else flattened: (C,) → (1, C),
    (N, C) → (N, C), (N, C, d1, ..., dK) → (N·d1···dK, C)."""
    if x.ndim == 1:
        return x[None, :]
    if x.ndim == 2:
        return x
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _reduce(per_element: np.ndarray, denominator: float, reduction: str, shape: tuple[int, ...],
            dtype: np.dtype):
    """Apply the reduction to the per-element losses; sums are accumulated in float64."""
    if reduction == "none":
        with np.errstate(over="ignore"):  # a float64 loss beyond float32's range is inf
            return per_element.reshape(shape).astype(dtype, copy=False)
    total = np.sum(per_element, dtype=np.float64)
    with np.errstate(over="ignore"):  # a float64 total beyond float32's range is inf
        if reduction == "sum":
            return dtype.type(total)
        if denominator == 0:
            # Nothing counts (every target ignored, every kept target weighs 0, or an empty
            # batch): torch's mean is 0/0 = nan, even when label smoothing makes the numerator
            # non-zero.
            return dtype.type(np.nan)
        return dtype.type(total / denominator)


def _is_probability_target(target: np.ndarray, input_shape: tuple[int, ...]) -> bool:
    """torch's rule: a target with the input's shape holds class probabilities."""
    if target.shape != input_shape:
        return False
    if target.dtype.kind != "f":
        raise ValueError(
            f"a target of the input's shape {input_shape} is read as class probabilities and must "
            f"be floating point, got dtype {target.dtype}. If it is one-hot, either pass the class "
            "indices (target.argmax(axis=1)) or convert it: target.astype(np.float32)."
        )
    return True


def nll_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
             ignore_index: int = -100, reduction: str = "mean"):
    """Negative log-likelihood loss on log-probabilities, like ``torch.nn.functional.nll_loss``.

    It only *gathers*: element i contributes :math:`-w_{y_i}\\,\\text{input}_{i, y_i}`. It takes
    no log and no softmax, so give it ``log_softmax(logits)``; ``cross_entropy`` does both.

    Parameters
    ----------
    input : array_like
        Log-probabilities, shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``; class axis 1
        (0 for 1-D input).
    target : array_like of int64 (or uint8)
        Class indices, shape ``()``, ``(N,)`` or ``(N, d1, ..., dK)``, in ``[0, C)`` or equal to
        ``ignore_index``.
    weight : array_like, optional
        Per-class weights, shape ``(C,)``.
    ignore_index : int, default -100
        Targets with this value contribute 0 and are left out of the mean's denominator.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        'mean' divides the sum by :math:`\\sum_i w_{y_i}` over the non-ignored elements (by
        their count when unweighted); 'none' returns one loss per element.

    Returns
    -------
    numpy scalar or numpy.ndarray
        A scalar of the input's dtype, or the target's shape for ``'none'``.

    Raises
    ------
    IndexError
        A target outside ``[0, C)`` that is not ``ignore_index``.
    ValueError
        Wrong target shape or dtype, weight not of length C, unknown reduction.

    Notes
    -----
    .. math::

        \\ell_i = -w_{y_i}\\,x_{i,y_i}, \\qquad
        L_{\\text{mean}} = \\frac{\\sum_{i:\\,y_i \\ne \\text{ignore}} \\ell_i}
                               {\\sum_{i:\\,y_i \\ne \\text{ignore}} w_{y_i}}

    If every target is ignored, ``'mean'`` is 0/0 = ``nan``, as in torch.
    Explained in chapter 4 (Cross-entropy).

    Examples
    --------
    >>> import numpy as np
    >>> from celib.functional import log_softmax, nll_loss
    >>> logits = np.array([[-0.5, -0.2, -0.3]])
    >>> print(f"{nll_loss(log_softmax(logits, axis=1), [0]):.4f}")
    1.2729
    """
    x = _checks.float_array(input, "input")
    _checks.check_reduction(reduction)
    num_classes = _checks.class_count(x)
    t = np.asarray(target)
    _checks.check_index_target(t, x.shape, probabilities_allowed=False)
    work = x.astype(_checks.compute_dtype(x.dtype), copy=False)
    w = _checks.check_weight(weight, num_classes, work.dtype)
    per_element, denominator = _nll_rows(_rows(work), t.reshape(-1), w, ignore_index, num_classes)
    return _reduce(per_element, denominator, reduction, t.shape, x.dtype)


def _nll_rows(rows: np.ndarray, t: np.ndarray, w: np.ndarray | None, ignore_index: int,
              num_classes: int) -> tuple[np.ndarray, float]:
    """Per-row -w[t]·rows[t] (0 where ignored) and the 'mean' denominator Σ w[t] over kept rows."""
    ignored = _checks.check_bounds(t, num_classes, ignore_index)
    safe_t = np.where(ignored, 0, t).astype(np.intp)
    picked = np.take_along_axis(rows, safe_t[:, None], axis=1)[:, 0]
    target_weight = np.ones(len(t), rows.dtype) if w is None else w[safe_t]
    target_weight = np.where(ignored, 0, target_weight).astype(rows.dtype)
    per_element = -target_weight * picked
    return per_element, float(np.sum(target_weight, dtype=np.float64))


def cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
                  ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0):
    """Cross-entropy between logits and a target, like ``torch.nn.functional.cross_entropy``.

    Takes *logits* (raw scores, not probabilities): it applies log-softmax itself. The target is
    either class indices or class probabilities.

    Parameters
    ----------
    input : array_like
        Logits, shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``; the class axis is 1
        (0 for a 1-D input).
    target : array_like
        Either class indices, int64 (or uint8), shape ``()``, ``(N,)`` or ``(N, d1, ..., dK)``,
        each in ``[0, C)`` or equal to ``ignore_index``; or class probabilities, floating, of
        the input's shape (a target of the input's shape is always read as probabilities).
    weight : array_like, optional
        Per-class weights :math:`w_c`, shape ``(C,)``.
    ignore_index : int, default -100
        Index targets with this value contribute 0 and leave the 'mean' denominator. Not
        supported with probability targets (a value ≥ 0 is refused, as in torch).
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        For index targets 'mean' divides by :math:`\\sum_i w_{y_i}` over non-ignored elements
        (their count when unweighted); for probability targets by the number of elements
        :math:`N d_1 \\cdots d_K`, whatever the weights.
    label_smoothing : float in [0, 1], default 0
        ε: the target becomes :math:`(1-\\varepsilon)\\,y + \\varepsilon/C` on every class.

    Returns
    -------
    numpy scalar or numpy.ndarray
        A scalar of the input's dtype, or for ``'none'`` one loss per element with the shape
        of the input without its class axis.

    Raises
    ------
    IndexError
        A class index outside ``[0, C)`` that is not ``ignore_index``: the message names it.
    ValueError
        A target of the wrong shape or dtype (int32, a trailing axis of 1, integer one-hot, ...),
        weight not of length C, unknown reduction, label_smoothing outside [0, 1], or an
        ``ignore_index`` ≥ 0 with probability targets.

    Notes
    -----
    With :math:`\\log p = \\operatorname{log\\_softmax}(x)` along the class axis, for index
    targets

    .. math::

        \\ell_i = (1-\\varepsilon)\\,\\big(-w_{y_i} \\log p_{i,y_i}\\big)
                 + \\frac{\\varepsilon}{C} \\sum_c \\big(-w_c \\log p_{i,c}\\big),
        \\qquad L_{\\text{mean}} = \\frac{\\sum_i \\ell_i}{\\sum_i w_{y_i}},

    both sums over non-ignored elements; if every target is ignored, 'mean' gives ``nan``, as
    in torch. For probability targets :math:`q` (smoothed to
    :math:`(1-\\varepsilon)q + \\varepsilon/C`), :math:`\\ell_i = -\\sum_c w_c q_{i,c} \\log p_{i,c}`
    and 'mean' divides by the number of elements. One-hot float targets therefore give the
    index-target loss only without weights.

    torch accepts only int64 and uint8 class indices; so does celib, so that a mistake made
    here is the mistake torch would report.

    Explained in chapter 4 (Cross-entropy); targets in chapter 3.

    Examples
    --------
    >>> import numpy as np
    >>> from celib.functional import cross_entropy
    >>> print(f"{cross_entropy([[-0.5, -0.2, -0.3]], [0]):.4f}")
    1.2729
    >>> logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    >>> cross_entropy(logits, [0, 2], reduction="none").round(4)
    array([0.2413, 0.1096])
    >>> print(f"{cross_entropy(logits, [0, 2], label_smoothing=0.1):.4f}")
    0.3455
    """
    x = _checks.float_array(input, "input")
    _checks.check_reduction(reduction)
    epsilon = _checks.check_label_smoothing(label_smoothing)
    num_classes = _checks.class_count(x)
    t = np.asarray(target)
    work = x.astype(_checks.compute_dtype(x.dtype), copy=False)
    w = _checks.check_weight(weight, num_classes, work.dtype)

    if _is_probability_target(t, x.shape):
        if ignore_index >= 0:
            raise ValueError(
                f"ignore_index={ignore_index} is not supported with class-probability targets "
                "(as in torch): give ignored elements a zero target row instead"
            )
        log_p = log_softmax(_rows(work), axis=1)
        q = _rows(t.astype(work.dtype, copy=False))
        if epsilon > 0:
            q = q * (1 - epsilon) + epsilon / num_classes
        wq = q if w is None else q * w
        with np.errstate(invalid="ignore"):  # 0 · (-inf) only where a logit is -inf
            per_element = -np.sum(wq * log_p, axis=1)
        shape = _checks.index_target_shape(x.shape)
        return _reduce(per_element, float(log_p.shape[0]), reduction, shape, x.dtype)

    _checks.check_index_target(t, x.shape)
    flat = t.reshape(-1)
    rows = _contiguous_rows(_rows(work))
    ignored = _checks.check_bounds(flat, num_classes, ignore_index)
    if num_classes == 0:  # nothing to normalise over: the gather itself decides, as before
        per_element, denominator = _nll_rows(rows, flat, w, ignore_index, num_classes)
        return _reduce(per_element, denominator, reduction, t.shape, x.dtype)
    # Per row, in float64: lse_i - x_{i, y_i} (= -log_softmax(x)_{i, y_i}), without ever
    # forming the (N, C) log-softmax; the smoothing term needs sum_c w_c (lse_i - x_{i,c}).
    per_element, denominator = _kernels.cross_entropy_rows(
        rows, flat, ignored, None if w is None else w.astype(np.float64), epsilon)
    return _reduce(per_element, denominator, reduction, t.shape, x.dtype)


def binary_cross_entropy_with_logits(input: ArrayLike, target: ArrayLike,
                                     weight: ArrayLike | None = None, reduction: str = "mean",
                                     pos_weight: ArrayLike | None = None):
    """Sigmoid + binary cross-entropy in one stable step, like
    ``torch.nn.functional.binary_cross_entropy_with_logits``.

    Each element is an independent yes/no question: the loss for multi-label problems, where a
    sample may belong to several classes at once (multi-hot targets).

    Parameters
    ----------
    input : array_like
        Logits, any shape.
    target : array_like
        Floating targets in [0, 1] (0/1 labels or probabilities), the input's shape.
    weight : array_like, optional
        Rescales each element's loss; broadcast to the input's shape.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        'mean' divides by the number of elements (weights do not change the denominator).
    pos_weight : array_like, optional
        Weight of the positive term, broadcast along the last axis (one per class): values > 1
        raise recall, < 1 raise precision.

    Returns
    -------
    numpy scalar or numpy.ndarray
        A scalar of the input's dtype, or the input's shape for ``'none'``.

    Raises
    ------
    ValueError
        Target of another shape than the input, integer target, unknown reduction, weights that
        do not broadcast.

    Notes
    -----
    With :math:`\\operatorname{softplus}(x) = \\log(1 + e^{x})` and pos_weight :math:`p`,

    .. math::

        \\ell = (1 - y)\\,\\operatorname{softplus}(x) + p\\,y\\,\\operatorname{softplus}(-x),

    algebraically equal to torch's :math:`(1-y)x - (1 + (p-1)y)\\log\\sigma(x)`. softplus is
    computed as :math:`\\max(x, 0) + \\operatorname{log1p}(e^{-|x|})`, which neither overflows
    nor cancels, so the loss stays accurate (relative to its size) even when it is tiny.
    Explained in chapter 3 (Targets).

    Examples
    --------
    >>> from celib.functional import binary_cross_entropy_with_logits as bce
    >>> bce([2.0, -1.0, 0.0], [1.0, 0.0, 1.0], reduction="none").round(4)
    array([0.1269, 0.3133, 0.6931])
    """
    x = _checks.float_array(input, "input")
    _checks.check_reduction(reduction)
    y = np.asarray(target)
    if y.shape != x.shape:
        raise ValueError(f"target must have the input's shape {x.shape}, got {y.shape}")
    if y.dtype.kind != "f":
        raise ValueError(
            f"target must be floating point (0/1 labels or probabilities), got dtype {y.dtype}: "
            "use target.astype(np.float32)"
        )
    work_dtype = _checks.compute_dtype(x.dtype)
    xw = x.astype(work_dtype, copy=False)
    yw = y.astype(work_dtype, copy=False)
    # softplus(x) and softplus(-x) share log1p(exp(-|x|)).
    tail = np.log1p(np.exp(-np.abs(xw)))
    softplus_pos = np.maximum(xw, 0) + tail
    softplus_neg = np.maximum(-xw, 0) + tail
    positive = yw * softplus_neg
    if pos_weight is not None:
        positive = positive * _broadcast_weight(pos_weight, x.shape, work_dtype, "pos_weight")
    loss = (1 - yw) * softplus_pos + positive
    if weight is not None:
        loss = loss * _broadcast_weight(weight, x.shape, work_dtype, "weight")
    return _reduce(loss, float(loss.size), reduction, x.shape, x.dtype)


def _broadcast_weight(weight: ArrayLike, shape: tuple[int, ...], dtype: np.dtype, name: str) -> np.ndarray:
    w = np.asarray(weight, dtype=dtype)
    try:
        np.broadcast_shapes(w.shape, shape)
    except ValueError:
        raise ValueError(f"{name} of shape {w.shape} does not broadcast to the input's shape {shape}") from None
    if np.broadcast_shapes(w.shape, shape) != tuple(shape):
        raise ValueError(f"{name} of shape {w.shape} would enlarge the input's shape {shape}")
    return w
