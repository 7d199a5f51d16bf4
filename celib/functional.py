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
tiny loss that ``log(1 + s)`` would round to 0. Chapter 2 (Softmax, book/02_softmax.ipynb) and
chapter 5 (Numerical stability, book/05_numerical_stability.ipynb) explain both.

The work is done by the blocked, multi-threaded kernels of ``celib._kernels``: float32
input is computed in float64 and rounded once, float64 input carries the rounding error of
``x - m`` into ``exp``, and the cross-entropy gathers the target logits instead of forming the
``(N, C)`` log-softmax (its per-sample losses, and their sum, are float64 until the end, so a
float32 ``'mean'`` does not overflow when the exact mean is finite). On the stress inputs of
``python -m benchmarks.accuracy`` the results are within 1 ulp of exact in float32 and 4 ulp in
float64. (A float64 logsumexp whose exact value is close to 0, such as
``logsumexp([-ln 2, -ln 2])``, where ``m`` and ``log s`` nearly cancel, is computed again in
double-double arithmetic, so it stays within 2 ulp where scipy's and torch's errors grow like
``1/|lse|``.) Speed and memory against torch are measured by
``python -m benchmarks.speed`` (in the book's repository); the appendix on performance shows
both.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _checks, _core, _kernels, _proven
from ._layout import contiguous_rows, rows
from ._linear import linear_cross_entropy  # chapter 9: never forms the logits

__all__ = [
    "logsumexp",
    "softmax",
    "log_softmax",
    "one_hot",
    "nll_loss",
    "cross_entropy",
    "binary_cross_entropy_with_logits",
    "linear_cross_entropy",
    "kl_div",
    "binary_cross_entropy",
    "multi_margin_loss",
]


# --------------------------------------------------------------------------------------------
# The log-sum-exp kernel
# --------------------------------------------------------------------------------------------

def _last_axis_rows(work: np.ndarray, axis: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """View ``work`` as ``(rows, C)`` with ``axis`` last and each row contiguous (copying only
    when the layout requires it); also return the shape of the other axes."""
    moved = np.moveaxis(work, axis, -1)
    rest = moved.shape[:-1]
    return contiguous_rows(moved.reshape(-1, moved.shape[-1])), rest


def _from_last_axis(rows: np.ndarray, rest: tuple[int, ...], axis: int) -> np.ndarray:
    """Inverse of :func:`_last_axis_rows` for a result of the input's shape."""
    out = rows.reshape(rest + (rows.shape[1],))
    if axis != out.ndim - 1:
        out = np.ascontiguousarray(np.moveaxis(out, -1, axis))
    return out


def _normalize_axis(axis: int, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"axis must be an integer, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for an array with {ndim} dimension(s)")
    return axis % ndim


def _normalize_axes(axis: object, ndim: int) -> tuple[int, ...]:
    """``axis`` (an int, or a tuple/list of ints) as a sorted tuple of distinct axes >= 0.

    A 0-d array has one valid axis, as in torch: 0 (or -1), standing for the array itself.
    """
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    if not axes:
        raise ValueError("axis=() reduces over no axis: give at least one axis")
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise ValueError(f"axis must be an integer or a tuple of integers, got {axis!r}")
    normalized = [_normalize_axis(a, max(ndim, 1)) for a in axes]
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"axis {axis!r} names the same axis more than once")
    return tuple(sorted(normalized))


def _input_array(x: ArrayLike, dtype: DTypeLike | None) -> np.ndarray:
    """The input of the softmax family: cast to ``dtype`` first if given (torch's ``dtype=``),
    else as a floating array (integers read as float64)."""
    if dtype is None:
        return _checks.float_array(x, "x")
    dt = _checks.float_dtype(dtype)
    a = _checks.as_array(x, "x")
    if a.dtype.kind not in "biuf":
        return _checks.float_array(a, "x")  # refuses complex, object, strings
    return a.astype(dt, copy=False)


def logsumexp(x: ArrayLike, axis: int | tuple[int, ...] = -1, keepdims: bool = False) -> np.ndarray:
    """Log of the sum of exponentials, :math:`\\log \\sum_j e^{x_j}`, without overflow.

    Same as ``torch.logsumexp(x, dim=axis, keepdim=keepdims)``.

    Parameters
    ----------
    x : array_like
        Real values (logits). Integers are read as float64 (torch reads them as its default
        float dtype, float32; numpy and ``scipy.special.logsumexp`` as float64).
    axis : int or tuple of ints, default -1
        The axis, or axes, to reduce. Several axes are reduced together, as one axis of their
        combined length. A 0-d ``x`` has the single axis 0 (or -1), as in torch.
    keepdims : bool, default False
        Keep the reduced axes with length 1.

    Returns
    -------
    numpy.ndarray
        ``x``'s shape without the reduced axes (or with them of length 1), in ``x``'s floating
        dtype. For a 0-d ``x``, a 0-d array equal to ``x`` (the log-sum-exp of one number).

    Raises
    ------
    ValueError
        An axis out of range, an axis named twice, or ``axis=()``.
    TypeError
        ``keepdims`` that is not True or False (``"False"`` would be true); ``longdouble`` ``x``.

    Notes
    -----
    With :math:`m = \\max_j x_j` at index :math:`k`, the result is
    :math:`m + \\operatorname{log1p}\\big(\\sum_{j\\ne k} e^{x_j - m}\\big)`. An empty axis gives
    ``-inf`` (the log of an empty sum), a row whose maximum is ``+inf`` gives ``+inf``, a row of
    ``-inf`` gives ``-inf``, and ``nan`` propagates; all as in torch.

    Explained in chapter 2 (Softmax, book/02_softmax.ipynb) and chapter 5 (Numerical stability,
    book/05_numerical_stability.ipynb).

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
    >>> logsumexp(np.zeros((2, 3, 4)), axis=(0, 2), keepdims=True).shape  # log(8) each
    (1, 3, 1)
    >>> logsumexp(np.float64(2.5))  # one number: itself, 0-d as in torch
    array(2.5)
    """
    a = _checks.float_array(x, "x")
    axes = _normalize_axes(axis, a.ndim)
    keepdims = _checks.check_bool(keepdims, "keepdims")
    if a.ndim == 0:
        return a.copy()
    work = a.astype(_checks.compute_dtype(a.dtype), copy=False)
    kept = [i for i in range(a.ndim) if i not in axes]
    rest = tuple(a.shape[i] for i in kept)
    keep_shape = tuple(1 if i in axes else n for i, n in enumerate(a.shape))
    length = int(np.prod([a.shape[i] for i in axes]))
    if length == 0:
        out = np.full(rest, -np.inf, dtype=a.dtype)
    else:
        # the reduced axes last, in one row per kept position: (prod(rest), length)
        moved = np.transpose(work, kept + list(axes)).reshape(-1, length)
        # Row by row in float64: m + log1p(s), or m itself where m is +inf, -inf or nan.
        out = _proven.logsumexp_rows(contiguous_rows(moved), a.dtype).reshape(rest)
        with np.errstate(over="ignore"):  # a float64 result beyond float32's range is inf
            out = out.astype(a.dtype, copy=False)
    return out.reshape(keep_shape) if keepdims else out


def _softmax_family(x: ArrayLike, axis: int, dtype: DTypeLike | None,
                    kernel: Callable[[np.ndarray, np.ndarray], None]) -> np.ndarray:
    """Shared by softmax and log_softmax: cast, bring ``axis`` last, run ``kernel`` on the rows."""
    a = _input_array(x, dtype)
    if a.ndim == 0:  # one number is a distribution over one class, as in torch
        _normalize_axis(axis, 1)
        return _softmax_family(a.reshape(1), 0, None, kernel).reshape(())
    axis = _normalize_axis(axis, a.ndim)
    if a.shape[axis] == 0:
        return a.copy()
    work = a.astype(_checks.compute_dtype(a.dtype), copy=False)
    flat, rest = _last_axis_rows(work, axis)
    out = np.empty(flat.shape, dtype=a.dtype)
    kernel(flat, out)
    return _from_last_axis(out, rest, axis)


def log_softmax(x: ArrayLike, axis: int = -1, dtype: DTypeLike | None = None) -> np.ndarray:
    """Logarithm of the softmax, :math:`x_i - \\log\\sum_j e^{x_j}`, computed stably.

    Same as ``torch.nn.functional.log_softmax(x, dim=axis, dtype=dtype)``. This, not
    ``log(softmax(x))``, is what a loss needs: it never returns ``-inf`` for a finite logit, and
    it keeps the tiny values near 0 that the log of a rounded probability loses.

    Parameters
    ----------
    x : array_like
        Logits. Integers are read as float64 (torch refuses integer input unless ``dtype`` is
        given).
    axis : int, default -1
        The class axis. A 0-d ``x`` has the single axis 0 (or -1), as in torch.
    dtype : numpy floating dtype, optional
        If given, ``x`` is cast to it before the operation and the result has it, as torch's
        ``dtype=`` (whose documented use is to prevent overflow: ``dtype=np.float64`` for
        float16 or float32 input).

    Returns
    -------
    numpy.ndarray
        Same shape as ``x``, in ``dtype`` or else ``x``'s floating dtype; every entry ≤ 0.
        A 0-d ``x`` gives 0.0 (one class has probability 1).

    Raises
    ------
    ValueError
        ``axis`` out of range; ``dtype`` not a floating dtype; complex, boolean or non-numeric
        ``x`` (without ``dtype``).

    Notes
    -----
    :math:`\\log\\operatorname{softmax}(x)_i = (x_i - m) - \\operatorname{log1p}(s)` with
    :math:`m = \\max_j x_j` at index :math:`k` and :math:`s = \\sum_{j\\ne k} e^{x_j-m}`.
    A row containing ``+inf``, or only ``-inf``, gives ``nan`` as in torch.

    Explained in chapter 2 (Softmax, book/02_softmax.ipynb) and chapter 5 (Numerical stability,
    book/05_numerical_stability.ipynb).

    References
    ----------
    .. [1] P. Blanchard, D. J. Higham, N. J. Higham, "Accurately computing the log-sum-exp and
       softmax functions", IMA Journal of Numerical Analysis 41(4), 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from celib.functional import log_softmax
    >>> log_softmax([1000.0, 1.0])  # log(softmax) would give [0, -inf]
    array([   0., -999.])
    >>> float(log_softmax([0.0, -40.0])[0])  # -log1p(e^-40), not 0
    -4.248354255291589e-18
    >>> log_softmax(np.array([1.0, 2.0], np.float32), dtype=np.float64).dtype
    dtype('float64')
    """
    return _softmax_family(x, axis, dtype, _kernels.log_softmax_rows)


def softmax(x: ArrayLike, axis: int = -1, dtype: DTypeLike | None = None) -> np.ndarray:
    """Softmax, :math:`e^{x_i} / \\sum_j e^{x_j}`, computed without overflow.

    Same as ``torch.nn.functional.softmax(x, dim=axis, dtype=dtype)``.

    Parameters
    ----------
    x : array_like
        Logits. Integers are read as float64 (torch refuses integer input unless ``dtype`` is
        given).
    axis : int, default -1
        The class axis. A 0-d ``x`` has the single axis 0 (or -1), as in torch.
    dtype : numpy floating dtype, optional
        If given, ``x`` is cast to it before the operation and the result has it, as torch's
        ``dtype=``.

    Returns
    -------
    numpy.ndarray
        Same shape as ``x``, in ``dtype`` or else ``x``'s floating dtype: non-negative, summing
        to 1 along ``axis``. A 0-d ``x`` gives 1.0 (a distribution over one class).

    Raises
    ------
    ValueError
        ``axis`` out of range; ``dtype`` not a floating dtype; complex, boolean or non-numeric
        ``x`` (without ``dtype``).

    Notes
    -----
    Softmax is invariant to adding a constant to every logit, so it is computed as
    :math:`e^{x_i - m} / (1 + s)` with :math:`m = \\max_j x_j` and
    :math:`s = \\sum_{j\\ne k} e^{x_j - m}`; every exponent is ≤ 0. A row containing ``+inf``,
    or only ``-inf``, gives ``nan`` as in torch.

    Explained in chapter 2 (Softmax, book/02_softmax.ipynb).

    Examples
    --------
    >>> import numpy as np
    >>> from celib.functional import softmax
    >>> softmax([1000.0, 1.0])  # the textbook exp(x)/sum(exp(x)) gives nan here
    array([1., 0.])
    >>> softmax([1.0, 2.0, 3.0]).round(4)
    array([0.09  , 0.2447, 0.6652])
    >>> softmax(np.float32(7.0))  # one number: one class, probability 1
    array(1., dtype=float32)
    """
    return _softmax_family(x, axis, dtype, _kernels.softmax_rows)


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
    TypeError
        A ``num_classes`` that is not an integer (``3.0``, ``"3"``, ``True``); a numpy
        integer is taken.

    Notes
    -----
    The result is int64, as in torch: to use it as a probability target, convert it to a
    float dtype (``.astype(np.float32)``). Unlike ``F.one_hot``, which takes only int64,
    any integer dtype is accepted (the values are what matter), and an out-of-range label is
    an ``IndexError``, like an out-of-range target in the losses (torch raises RuntimeError).
    Explained in chapter 3 (Targets: class indices, one-hot vectors and probabilities,
    book/03_targets.ipynb).

    Examples
    --------
    >>> from celib.functional import one_hot
    >>> one_hot([0, 2, 1], num_classes=3)
    array([[1, 0, 0],
           [0, 0, 1],
           [0, 1, 0]])
    """
    t = _checks.as_array(labels, "labels")
    if t.dtype.kind not in "iu":
        raise ValueError(f"one_hot expects integer class indices, got dtype {t.dtype}")
    n = _checks.check_integer(num_classes, "num_classes")
    if n == -1:
        if t.size == 0:
            raise ValueError(
                "num_classes=-1 cannot be inferred from an empty array of labels; pass C")
        if int(t.min()) < 0:
            _checks.check_bounds(t, int(t.max()) + 1)
        n = int(t.max()) + 1
    elif n < 0:
        raise ValueError("num_classes must be a positive number of classes or -1 (infer), "
                         f"got {num_classes}")
    _checks.check_bounds(t, n)
    return (t[..., None] == np.arange(n)).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------

def nll_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
             ignore_index: int = -100, reduction: str = "mean") -> np.ndarray | np.floating:
    """Negative log-likelihood loss on log-probabilities, like ``torch.nn.functional.nll_loss``.

    It only *gathers*: element i contributes :math:`-w_{y_i}\\,\\text{input}_{i, y_i}`. It takes
    no log and no softmax, so give it ``log_softmax(logits)``; ``cross_entropy`` does both.

    Parameters
    ----------
    input : array_like
        Log-probabilities, floating, shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``;
        class axis 1 (0 for 1-D input).
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
        Wrong target shape or dtype, integer input, weight not of length C, unknown reduction,
        an ``ignore_index`` that is not an integer.

    Notes
    -----
    .. math::

        \\ell_i = -w_{y_i}\\,x_{i,y_i}, \\qquad
        L_{\\text{mean}} = \\frac{\\sum_{i:\\,y_i \\ne \\text{ignore}} \\ell_i}
                               {\\sum_{i:\\,y_i \\ne \\text{ignore}} w_{y_i}}

    If every target is ignored, ``'mean'`` is 0/0 = ``nan``, as in torch; if the kept weights
    sum to exactly 0 it is the IEEE quotient (±inf or nan). ``target`` may be uint8 beside a
    1-D or 2-D input only, and an array ``weight`` must have the input's dtype, as in torch.
    Explained in chapter 4 (Cross-entropy, book/04_cross_entropy.ipynb).

    Examples
    --------
    >>> import numpy as np
    >>> from celib.functional import log_softmax, nll_loss
    >>> logits = np.array([[-0.5, -0.2, -0.3]])
    >>> print(f"{nll_loss(log_softmax(logits, axis=1), [0]):.4f}")
    1.2729
    """
    x = _checks.logits_array(input, "input", target)
    num_classes = _checks.class_count(x)
    work = x.astype(_checks.compute_dtype(x.dtype), copy=False)
    opts = _checks.cross_entropy_options(num_classes, work.dtype, weight, ignore_index, reduction,
                                         input_dtype=x.dtype)
    t = _checks.as_array(target, "target")
    _checks.check_index_target(t, x.shape, probabilities_allowed=False, options=opts)
    targets = _core.index_targets(t, num_classes, opts.ignore_index, opts.weight)
    return _core.reduce(_picked_losses(rows(work), targets), targets, opts.reduction, x.dtype)


def _picked_losses(r: np.ndarray, targets: _core.IndexTargets) -> np.ndarray:
    """Per-row :math:`-w_{y_i}\\,r_{i,y_i}`, +0.0 where ignored (the gather of nll_loss)."""
    if r.shape[1] == 0:  # every target is ignored (the bounds check saw to it): nothing to pick
        picked = np.zeros(len(targets.classes), r.dtype)
    else:
        picked = np.take_along_axis(r, targets.classes[:, None], axis=1)[:, 0]
    target_weight = (np.where(targets.ignored, 0, 1).astype(r.dtype) if targets.weights is None
                     else targets.weights.astype(r.dtype))
    # An ignored row is +0.0, as torch writes it; -0.0 * picked would give -0.0 when picked > 0.
    # A weight of 0 times an infinite log-probability is nan, as in torch: no warning for it.
    with np.errstate(invalid="ignore"):
        return np.where(targets.ignored, r.dtype.type(0), -target_weight * picked)


def cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> np.ndarray | np.floating:
    """Cross-entropy between logits and a target, like ``torch.nn.functional.cross_entropy``.

    Takes *logits* (raw scores, not probabilities): it applies log-softmax itself. The target is
    either class indices or class probabilities.

    Parameters
    ----------
    input : array_like
        Logits, floating, shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``; the class axis
        is 1 (0 for a 1-D input). Integer logits are refused, as torch refuses them.
    target : array_like
        Either class indices, int64 (or uint8), shape ``()``, ``(N,)`` or ``(N, d1, ..., dK)``,
        each in ``[0, C)`` or equal to ``ignore_index``; or class probabilities, floating, of
        the input's shape (a target of the input's shape is always read as probabilities).
    weight : array_like, optional
        Per-class weights :math:`w_c`, shape ``(C,)``.
    ignore_index : int, default -100
        Index targets with this value contribute 0 and leave the 'mean' denominator. Not
        supported with probability targets (a value ≥ 0 is refused, as in torch). An integer
        (Python or numpy); a float such as 1.5 is refused, as in torch.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        For index targets 'mean' divides by :math:`\\sum_i w_{y_i}` over non-ignored elements
        (their count when unweighted); for probability targets by the number of elements
        :math:`N d_1 \\cdots d_K`, whatever the weights.
    label_smoothing : float in [0, 1], default 0
        ε: the target becomes :math:`(1-\\varepsilon)\\,y + \\varepsilon/C` on every class.
        A real number (int, float or numpy scalar); a string or a bool is refused.

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
        integer logits, weight not of length C, unknown reduction, label_smoothing not a number
        in [0, 1], an ``ignore_index`` that is not an integer, or an ``ignore_index`` ≥ 0 with
        probability targets.

    Notes
    -----
    With :math:`\\log q = \\operatorname{log\\_softmax}(x)` along the class axis, for index
    targets

    .. math::

        \\ell_i = (1-\\varepsilon)\\,\\big(-w_{y_i} \\log q_{i,y_i}\\big)
                 + \\frac{\\varepsilon}{C} \\sum_c \\big(-w_c \\log q_{i,c}\\big),
        \\qquad L_{\\text{mean}} = \\frac{\\sum_i \\ell_i}{\\sum_i w_{y_i}},

    both sums over non-ignored elements; if every target is ignored, 'mean' gives ``nan``, as
    in torch. For probability targets :math:`p` (smoothed to
    :math:`(1-\\varepsilon)p + \\varepsilon/C`),
    :math:`\\ell_i = -\\sum_c w_c p_{i,c} \\log q_{i,c}`
    and 'mean' divides by the number of elements. One-hot float targets therefore give the
    index-target loss only without weights.

    torch accepts only int64 class indices, and uint8 beside a 1-D or 2-D input; so does celib,
    so that a mistake made here is the mistake torch would report. With class indices an array
    ``weight`` must have the input's dtype (torch: "expected scalar type Float but found
    Double", here a TypeError); a list is read in the input's dtype. With probabilities torch
    mixes dtypes and promotes the result; celib takes the weights and keeps the input's dtype.
    A 'mean' whose kept weights sum to exactly 0 is, as in torch, the IEEE quotient (±inf, or
    nan); with label smoothing, each of its two terms is divided by 0 separately, as torch
    does. Zero classes give torch's -0.0, 0 or nan (label smoothing over no class is
    :math:`(\\varepsilon/0)\\cdot 0` = nan). ``longdouble`` input is refused with a TypeError
    (celib computes in float16, float32 and float64, as torch's CPU). Likewise integer logits
    are refused (torch:
    ``"log_softmax_lastdim_kernel_impl" not implemented for 'Long'``): a loss's input is a
    model's floating output, and integers there are most often the targets passed in its place.
    Where torch raises ``TypeError`` for an option of the wrong type (a string
    ``label_smoothing``, a float ``ignore_index``), celib raises ``ValueError``, as for every
    other wrong argument.

    Explained in chapter 4 (Cross-entropy, book/04_cross_entropy.ipynb); targets in chapter 3
    (Targets: class indices, one-hot vectors and probabilities, book/03_targets.ipynb).

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
    x = _checks.logits_array(input, "input", target)
    num_classes = _checks.class_count(x)
    work = x.astype(_checks.compute_dtype(x.dtype), copy=False)
    opts = _checks.cross_entropy_options(num_classes, work.dtype, weight, ignore_index, reduction,
                                         label_smoothing, input_dtype=x.dtype)
    w, epsilon, reduction = opts.weight, opts.label_smoothing, opts.reduction
    t = _checks.as_array(target, "target")

    if _core.is_probability_target(t, x.shape):
        _checks.refuse_ignore_index_with_probabilities(opts.ignore_index)
        log_q = log_softmax(rows(work), axis=1)  # the model's log-probabilities
        p_targets = _core.probability_targets(rows(t.astype(work.dtype, copy=False)), epsilon,
                                              _checks.index_target_shape(x.shape))
        p = p_targets.probabilities
        wp = p if w is None else p * w
        with np.errstate(invalid="ignore"):  # 0 · (-inf) only where a logit is -inf
            per_element = -np.sum(wp * log_q, axis=1)
        return _core.reduce(per_element, p_targets, reduction, x.dtype)

    _checks.check_index_target(t, x.shape, options=opts)
    targets = _core.index_targets(t, num_classes, opts.ignore_index, w)
    r = contiguous_rows(rows(work))
    if num_classes == 0:  # nothing to normalise over: torch's arithmetic decides (_core)
        return _core.no_class_losses(targets, epsilon, reduction, x.dtype)
    w64 = None if w is None else w.astype(np.float64)
    if epsilon > 0 and reduction == "mean" and targets.denominator == 0:  # rare: see _core
        return _core.smoothed_mean_over_zero(
            _kernels.cross_entropy_rows(r, targets, w64, 0.0),
            _kernels.cross_entropy_rows(r, targets, w64, 1.0), epsilon, targets.denominator,
            x.dtype)
    # Per row, in float64: lse_i - x_{i, y_i} (= -log_softmax(x)_{i, y_i}), without ever
    # forming the (N, C) log-softmax; the smoothing term needs sum_c w_c (lse_i - x_{i,c}).
    checked = _proven.cross_entropy_checked(r, targets, w64, epsilon, reduction, x.dtype)
    if checked is not None:  # the numba backend's rough pass, proven (celib._fast_checked)
        return checked
    per_element = _kernels.cross_entropy_rows(r, targets, w64, epsilon)
    return _core.reduce(per_element, targets, reduction, x.dtype)


def binary_cross_entropy_with_logits(input: ArrayLike, target: ArrayLike,
                                     weight: ArrayLike | None = None, reduction: str = "mean",
                                     pos_weight: ArrayLike | None = None,
                                     ) -> np.ndarray | np.floating:
    """Sigmoid + binary cross-entropy in one stable step, like
    ``torch.nn.functional.binary_cross_entropy_with_logits``.

    Each element is an independent yes/no question: the loss for multi-label problems, where a
    sample may belong to several classes at once (multi-hot targets).

    Parameters
    ----------
    input : array_like
        Logits, floating (integers are refused, as in torch), any shape.
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
        Target of another shape than the input, integer input or target, unknown reduction,
        weights that do not broadcast.

    Notes
    -----
    With :math:`\\operatorname{softplus}(x) = \\log(1 + e^{x})` and pos_weight :math:`p`,

    .. math::

        \\ell = (1 - y)\\,\\operatorname{softplus}(x) + p\\,y\\,\\operatorname{softplus}(-x),

    algebraically equal to torch's :math:`(1-y)x - (1 + (p-1)y)\\log\\sigma(x)`. softplus is
    computed as :math:`\\max(x, 0) + \\operatorname{log1p}(e^{-|x|})`, which neither overflows
    nor cancels, so the loss stays accurate (relative to its size) even when it is tiny. Where
    a logit, target or ``pos_weight`` is not finite, torch's own form gives the value (nan for
    :math:`x = -\\infty, y = 1`), silently, as torch does.
    Explained in chapter 3 (Targets: class indices, one-hot vectors and probabilities,
    book/03_targets.ipynb).

    Examples
    --------
    >>> from celib.functional import binary_cross_entropy_with_logits as bce
    >>> bce([2.0, -1.0, 0.0], [1.0, 0.0, 1.0], reduction="none").round(4)
    array([0.1269, 0.3133, 0.6931])
    """
    x = _checks.logits_array(input, "input")
    _checks.check_reduction(reduction)
    y = _checks.as_array(target, "target")
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
    pw = (None if pos_weight is None
          else _broadcast_weight(pos_weight, x.shape, work_dtype, "pos_weight"))
    loss = _kernels.binary_cross_entropy_terms(xw, yw, pw)
    if weight is not None:
        with np.errstate(over="ignore", invalid="ignore"):  # inf * 0 is torch's nan too
            loss = loss * _broadcast_weight(weight, x.shape, work_dtype, "weight")
    return _core.reduce(loss, _core.Elements.of_shape(x.shape), reduction, x.dtype)


def _broadcast_weight(weight: ArrayLike, shape: tuple[int, ...], dtype: np.dtype,
                      name: str) -> np.ndarray:
    w = _checks.as_array(weight, name)
    if w.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be a real array, got dtype {w.dtype}")
    _checks.check_float_dtype(w, name)
    w = w.astype(dtype, copy=False)
    try:
        np.broadcast_shapes(w.shape, shape)
    except ValueError:
        raise ValueError(f"{name} of shape {w.shape} does not broadcast to the input's "
                         f"shape {shape}") from None
    if np.broadcast_shapes(w.shape, shape) != tuple(shape):
        raise ValueError(f"{name} of shape {w.shape} would enlarge the input's shape {shape}")
    return w




# --------------------------------------------------------------------------------------------
# kl_div, binary_cross_entropy (on probabilities) and multi_margin_loss: torch's three losses
# the chapters use (chapter 3's BCE on probabilities, chapter 6's multiclass hinge loss).
# Their gradients are in celib.grad and share the parsing below.
# --------------------------------------------------------------------------------------------

KL_REDUCTIONS = ("none", "batchmean", "sum", "mean")

#: torch's UserWarning for ``kl_div(..., reduction='mean')``, in the same words.
KL_MEAN_WARNING = (
    "reduction: 'mean' divides the total loss by both the batch size and the support size. "
    "'batchmean' divides only by the batch size, and aligns with the KL div math definition. "
    "'mean' will be changed to behave the same as 'batchmean' in the next major release "
    "(torch's warning: pass reduction='batchmean' for the KL divergence)."
)

# torch clamps each log of binary_cross_entropy at -100, and the gradient's denominator
# x (1 - x) at its EPSILON, 1e-12 rounded to float32 (9.99999996e-13, in float64 too):
# neither is a parameter.
BCE_LOG_FLOOR = -100.0

# The three compute in float64 whatever the input's dtype, and round once to the result's:
# a float32 hinge's slack margin - x_y + x_j, or a product that underflows in float32
# (exp(-104) * inf), would otherwise round to a different answer than the exact one.
WORK_DTYPE = np.float64
BCE_GRAD_EPSILON = float(np.float32(1e-12))


def _real_argument(x: ArrayLike, name: str, what: str) -> np.ndarray:
    """``x`` as a native-byte-order floating array (float16, float32 or float64), or an error
    naming ``name``: ValueError for numbers of the wrong kind (integers, bools, complex), which
    torch refuses too, or a ragged list; TypeError for None, strings, objects, longdouble."""
    if x is None:
        raise TypeError(f"{name} must be an array of {what}, got None")
    a = _native_order(_checks.as_array(x, name))
    _checks.check_float_dtype(a, name)
    if a.dtype.kind == "f":
        return a
    if a.dtype.kind in "biuc":
        raise ValueError(f"{name} must be a floating array of {what}, got dtype {a.dtype}, "
                         f"which torch refuses too; convert it: {name}.astype(np.float32)")
    raise TypeError(f"{name} must be an array of {what}, got dtype {a.dtype}")


def _native_order(a: np.ndarray) -> np.ndarray:
    """``a`` in the machine's byte order (a big-endian array is copied): torch has no other,
    and the dtype checks compare dtypes, which include the byte order."""
    return a.astype(a.dtype.newbyteorder("="), copy=False) if a.dtype.kind in "biufc" else a


def _check_real(value: float, name: str) -> float:
    """A real number (int, float, numpy scalar); a bool or a string is a TypeError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {value!r} of type "
                        f"{type(value).__name__}")
    return float(value)


def _sum_to_shape(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The gradient of a broadcast operand: ``g`` (of the broadcast shape) summed over the
    axes that broadcasting added or stretched, back to ``shape``."""
    extra = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(extra))) if extra else g
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=stretched, keepdims=True) if stretched else g


# ---- kl_div ----------------------------------------------------------------------------------

class _KLProblem:
    """A checked ``kl_div`` call: the operands in the compute dtype, and how to reduce."""

    def __init__(self, log_q: np.ndarray, target: np.ndarray, log_target: bool,
                 elements: _core.Elements, reduction: str, dtype: np.dtype,
                 input_dtype: np.dtype) -> None:
        self.log_q = log_q            # log q, the input, in the compute dtype
        self.target = target          # p, or log p with log_target, in the compute dtype
        self.log_target = log_target
        self.elements = elements      # the broadcast shape and the (batch)mean's denominator
        self.reduction = reduction    # for _core.reduce: 'none', 'sum' or 'mean'
        self.dtype = dtype            # the result's: the promotion of input's and target's
        self.input_dtype = input_dtype  # the gradient's


def _kl_reduction(reduction: str, log_q: np.ndarray,
                  shape: tuple[int, ...]) -> tuple[str, _core.Elements]:
    """torch's reductions as :func:`_core.reduce` takes them: 'batchmean' is a 'mean' over
    ``input.shape[0]`` (the length of a 1-D input), and a 'sum' for a 0-d input."""
    if reduction != "batchmean":
        return reduction, _core.Elements.of_shape(shape)
    if log_q.ndim == 0:
        return "sum", _core.Elements.of_shape(shape)
    return "mean", _core.Elements(float(log_q.shape[0]), shape)


def _kl_problem(input: ArrayLike, target: ArrayLike, reduction: str,
                log_target: bool) -> _KLProblem:
    """Check a ``kl_div`` call; for ``reduction='mean'`` warn as torch does (at the caller's
    caller: the user's line)."""
    log_q = _real_argument(input, "input", "log-probabilities")
    t = _real_argument(target, "target", "probabilities (or log-probabilities)")
    if not (isinstance(reduction, str) and reduction in KL_REDUCTIONS):
        raise ValueError("reduction must be one of 'none', 'batchmean', 'sum' or 'mean', "
                         f"got {reduction!r}")
    log_target = _checks.check_bool(log_target, "log_target")
    try:
        shape = np.broadcast_shapes(log_q.shape, t.shape)
    except ValueError:
        raise ValueError(f"target of shape {t.shape} does not broadcast with the input's "
                         f"shape {log_q.shape}; give both the same shape") from None
    if reduction == "mean":
        import warnings  # only here: nothing else in this module warns
        warnings.warn(KL_MEAN_WARNING, UserWarning, stacklevel=3)
    dtype = np.result_type(log_q.dtype, t.dtype)
    work = np.dtype(WORK_DTYPE)
    reduce_as, elements = _kl_reduction(reduction, log_q, shape)
    return _KLProblem(log_q.astype(work, copy=False), t.astype(work, copy=False), log_target,
                      elements, reduce_as, dtype, log_q.dtype)


def _kl_elements(problem: _KLProblem) -> np.ndarray:
    """torch's pointwise terms, broadcast: :math:`p \\log p - p \\log q` with
    :math:`0 \\log 0 = 0` (``xlogy``), or :math:`e^{t} (t - \\log q)` for a log target."""
    t, log_q = problem.target, problem.log_q
    # log of a negative or zero target, 0 * inf, inf - inf, exp overflow: torch's nan and inf,
    # without numpy's RuntimeWarnings
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if problem.log_target:
            return np.exp(t) * (t - log_q)
        p_log_p = np.where(t == 0, t.dtype.type(0), t * np.log(t))
        return p_log_p - t * log_q


def kl_div(input: ArrayLike, target: ArrayLike, reduction: str = "mean",
           log_target: bool = False) -> np.ndarray | np.floating:
    """Kullback-Leibler divergence loss, like ``torch.nn.functional.kl_div``.

    Takes the *model's log-probabilities* as input (``log_softmax`` of its logits) and the
    target distribution :math:`p` (or :math:`\\log p` with ``log_target=True``); note the order,
    which is the reverse of :math:`D_{\\mathrm{KL}}(p \\,\\|\\, q)`'s.

    Parameters
    ----------
    input : array_like
        :math:`\\log q`, floating, any shape (integers are refused, as in torch).
        Batch axis 0.
    target : array_like
        :math:`p` (``log_target=False``) or :math:`\\log p` (``log_target=True``), floating,
        of a shape that broadcasts with the input's (as in torch; give the same shape).
    reduction : {'mean', 'batchmean', 'sum', 'none'}, default 'mean'
        'batchmean' divides the sum by the batch size ``input.shape[0]`` and is the KL
        divergence averaged over the batch; 'mean' divides by the number of elements and is
        *not* (it warns, as torch does); 'none' returns the pointwise terms.
    log_target : bool, default False
        Whether ``target`` holds log-probabilities.

    Returns
    -------
    numpy scalar or numpy.ndarray
        A scalar, or the broadcast shape for ``'none'``, in the promoted dtype of the input
        and the target (float32 and float32 give float32; float32 and float64 give float64).

    Raises
    ------
    ValueError
        Integer, boolean or complex input or target, shapes that do not broadcast, an unknown
        reduction.
    TypeError
        An input or target that is not an array of numbers, a ``log_target`` that is not a
        bool.

    Warns
    -----
    UserWarning
        For ``reduction='mean'``, with torch's message.

    Notes
    -----
    Pointwise, as torch computes it,

    .. math::

        \\ell_{i} = p_i\\,(\\log p_i - \\log q_i) \\quad\\text{with } 0 \\log 0 = 0, \\qquad
        \\ell_i = e^{t_i}\\,(t_i - \\log q_i) \\quad\\text{for } t = \\log p,

    so that :math:`\\sum_c \\ell_{n,c} = D_{\\mathrm{KL}}(p_n \\,\\|\\, q_n)` for row :math:`n`.
    ``'batchmean'`` gives :math:`\\frac{1}{N}\\sum_n D_{\\mathrm{KL}}(p_n \\| q_n)`, the KL
    divergence; ``'mean'`` divides the same sum by :math:`N C`, which is the KL divergence
    divided by the number of classes: torch keeps it for backward compatibility and warns.
    For a 0-d input ``'batchmean'`` is the sum (torch does not divide), and for a 1-D input
    it divides by its length, as torch does.

    torch's conventions, kept: a target 0 contributes 0 whatever the input is, except where
    the input is :math:`-\\infty` or nan (:math:`0 \\cdot (-\\infty)` is nan); a negative target
    gives nan (the log of a negative number); nan propagates; an empty input gives 0 for
    'sum' and nan for 'mean' and 'batchmean' (0/0). Computed in float64 and rounded once to
    the result's dtype (torch computes float32 in float32: where an exponential underflows
    there, as :math:`e^{-104} \\cdot \\infty`, torch gives nan and celib the float64 answer).

    Chapter 1 (Entropy, book/01_entropy.ipynb) relates the divergence to cross-entropy, and
    chapter 4 (Cross-entropy, book/04_cross_entropy.ipynb) uses it:
    :math:`H(p, q) = H(p) + D_{\\mathrm{KL}}(p \\| q)`.

    References
    ----------
    .. [1] S. Kullback, R. A. Leibler, "On information and sufficiency", Annals of
       Mathematical Statistics 22(1), 1951.
    .. [2] PyTorch documentation, ``torch.nn.KLDivLoss``.

    Examples
    --------
    >>> import numpy as np
    >>> from celib.functional import kl_div, log_softmax
    >>> p = np.array([[0.5, 0.5, 0.0]])
    >>> log_q = log_softmax(np.array([[1.0, 1.0, 1.0]]))
    >>> print(f"{kl_div(log_q, p, reduction='batchmean'):.4f}")  # log(3/2)
    0.4055
    >>> kl_div(log_q, p, reduction="none").round(4)  # the class with p = 0 contributes 0
    array([[0.2027, 0.2027, 0.    ]])
    """
    problem = _kl_problem(input, target, reduction, log_target)
    with np.errstate(invalid="ignore"):  # a sum of +inf and -inf terms is nan, as in torch
        return _core.reduce(_kl_elements(problem), problem.elements, problem.reduction,
                            problem.dtype)


# ---- binary_cross_entropy on probabilities ---------------------------------------------------

def _check_unit_interval(a: np.ndarray, name: str) -> None:
    """torch's check of binary_cross_entropy: every value in [0, 1] (nan is outside)."""
    outside = ~((a >= 0) & (a <= 1))
    if outside.any():
        index = tuple(int(i) for i in np.argwhere(outside)[0])
        count = int(outside.sum())
        others = f" ({count} values are outside)" if count > 1 else ""
        raise ValueError(f"{name} must hold probabilities in [0, 1], as in torch; got "
                         f"{a[index].item()!r} at index {index}{others}")


def _elementwise_weight(weight: ArrayLike, shape: tuple[int, ...], dtype: np.dtype,
                        name: str = "weight") -> np.ndarray:
    """A weight that broadcasts to ``shape`` without enlarging it (torch's ``expand``),
    in ``dtype``."""
    w = _native_order(_checks.as_array(weight, name))
    if w.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real array that broadcasts to the input's shape "
                        f"{shape}, got dtype {w.dtype}")
    _checks.check_float_dtype(w, name)
    try:
        broadcast = np.broadcast_shapes(w.shape, shape)
    except ValueError:
        broadcast = None
    if broadcast != tuple(shape):
        raise ValueError(f"{name} of shape {w.shape} does not broadcast to the input's shape "
                         f"{shape} (it may repeat along axes, not add to them)")
    return w.astype(dtype, copy=False)


class _BCEProblem:
    """A checked ``binary_cross_entropy`` call, in the compute dtype."""

    def __init__(self, q: np.ndarray, target: np.ndarray, weight: np.ndarray | None,
                 reduction: str, dtype: np.dtype) -> None:
        self.q = q                    # the predicted probabilities
        self.target = target          # t, in [0, 1]
        self.weight = weight          # broadcastable to q's shape, or None
        self.reduction = reduction
        self.dtype = dtype            # the input's, the result's
        self.elements = _core.Elements.of_shape(q.shape)


def _bce_problem(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None,
                 reduction: str) -> _BCEProblem:
    q = _real_argument(input, "input", "probabilities")
    t = _real_argument(target, "target", "probabilities (0/1 labels or soft labels)")
    _checks.check_reduction(reduction)
    if t.shape != q.shape:
        raise ValueError(f"target must have the input's shape {q.shape}, got {t.shape} "
                         "(torch refuses a different size too)")
    if t.dtype != q.dtype:
        raise TypeError(f"target must have the input's dtype {q.dtype}, as in torch, got "
                        f"{t.dtype}: convert with target.astype(np.{q.dtype})")
    _check_unit_interval(q, "input")
    _check_unit_interval(t, "target")
    work = np.dtype(WORK_DTYPE)
    w = None if weight is None else _elementwise_weight(weight, q.shape, work)
    return _BCEProblem(q.astype(work, copy=False), t.astype(work, copy=False), w, reduction,
                       q.dtype)


def binary_cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
                         reduction: str = "mean") -> np.ndarray | np.floating:
    """Binary cross-entropy on probabilities, like ``torch.nn.functional.binary_cross_entropy``.

    Takes *probabilities* (a sigmoid's output), not logits. Prefer
    :func:`binary_cross_entropy_with_logits`, which never forms the probability and needs no
    clamp; this one exists because models that end in a sigmoid, and chapter 3 (Targets: class
    indices, one-hot vectors and probabilities, book/03_targets.ipynb), use it.

    Parameters
    ----------
    input : array_like
        Predicted probabilities :math:`x \\in [0, 1]`, floating, any shape.
    target : array_like
        Targets :math:`t \\in [0, 1]` (0/1 labels or soft labels), the input's shape and dtype.
    weight : array_like, optional
        Rescales each element's loss; broadcast to the input's shape (it may repeat along
        axes, as torch's ``expand``, but not add to the shape).
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        'mean' divides by the number of elements (weights do not change the denominator).

    Returns
    -------
    numpy scalar or numpy.ndarray
        A scalar of the input's dtype, or the input's shape for ``'none'``.

    Raises
    ------
    ValueError
        An input or target value outside [0, 1] or nan (the message names the argument, the
        value and its index), a target of another shape, a weight that does not broadcast,
        integer input or target, an unknown reduction.
    TypeError
        A target of another floating dtype than the input (torch: "Found dtype Double but
        expected Float"), arguments that are not arrays of numbers.

    Notes
    -----
    Elementwise, with weight :math:`w`,

    .. math::

        \\ell = -w\\,\\big[\\,t \\max(\\log x, -100) + (1 - t) \\max(\\log(1 - x), -100)\\big] .

    torch clamps each logarithm at :math:`-100`, so that :math:`x = 0` or :math:`x = 1` gives
    a finite loss: an element never costs more than 100 nats (times its weight), however wrong
    the prediction (``sigmoid(-200)`` with label 1 costs 100, not 200). The gradient does not
    see the clamp: torch's backward is

    .. math::

        \\frac{\\partial \\ell}{\\partial x} = w\\,\\frac{x - t}{\\max\\big(x (1 - x),
        10^{-12}\\big)},

    the derivative of the unclamped loss with its denominator floored at :math:`10^{-12}`, so
    at :math:`x = 0` with :math:`t = 1` it is :math:`-10^{12}`, not 0
    (:func:`celib.grad.binary_cross_entropy_grad`). torch refuses an input or target outside
    [0, 1], nan included, with a RuntimeError; celib raises ValueError naming the value.
    Computed in float64 and rounded once to the input's dtype. Explained in chapter 3 (Targets:
    class indices, one-hot vectors and probabilities, book/03_targets.ipynb).

    References
    ----------
    .. [1] PyTorch documentation, ``torch.nn.BCELoss``.

    Examples
    --------
    >>> import numpy as np
    >>> from celib.functional import binary_cross_entropy
    >>> binary_cross_entropy(np.array([0.9, 0.2, 0.0]), np.array([1.0, 0.0, 1.0]),
    ...                      reduction="none").round(4)  # the last one is clamped
    array([  0.1054,   0.2231, 100.    ])
    >>> print(f"{binary_cross_entropy(np.array([0.9, 0.2]), np.array([1.0, 0.0])):.4f}")
    0.1643
    """
    problem = _bce_problem(input, target, weight, reduction)
    return _core.reduce(_bce_elements(problem), problem.elements, reduction, problem.dtype)


def _bce_elements(problem: _BCEProblem) -> np.ndarray:
    """torch's elementwise loss, ``(t - 1) max(log1p(-x), -100) - t max(log x, -100)``, times
    the weight."""
    q, t = problem.q, problem.target
    with np.errstate(divide="ignore"):  # log(0) = -inf, then clamped
        log_q = np.maximum(np.log(q), BCE_LOG_FLOOR)
        log_1mq = np.maximum(np.log1p(-q), BCE_LOG_FLOOR)
    loss = (t - 1) * log_1mq - t * log_q
    if problem.weight is not None:
        with np.errstate(invalid="ignore"):  # an inf weight on a loss of 0: nan, as in torch
            loss = loss * problem.weight
    return loss


# ---- multi_margin_loss -----------------------------------------------------------------------

def _check_margin_power(p: int) -> int:
    """torch's ``p``: 1 or 2 (a float 1.0 or 2.0 too, as torch takes it; never a bool)."""
    value = _check_real(p, "p")
    if value not in (1.0, 2.0):
        raise ValueError(f"p must be 1 or 2 (as in torch: 'only p == 1 and p == 2 supported'), "
                         f"got {p!r}")
    return int(value)


def _check_margin(margin: float) -> float:
    value = _check_real(margin, "margin")
    if not np.isfinite(value):
        raise ValueError(f"margin must be a finite number, got {margin!r} (torch accepts it, "
                         "but a nan margin gives a loss of 0 and an infinite one inf or 0, "
                         "whatever the scores)")
    return value


def _margin_rows(x: np.ndarray) -> np.ndarray:
    """The input as (N, C) rows: torch takes a 0-d score (N = C = 1), a vector (C,) with
    C > 0, or a matrix (N, C) with C > 0 (N may be 0)."""
    if x.ndim > 2 or (x.ndim >= 1 and x.shape[-1] == 0):
        raise ValueError("input must be a non-empty vector (C,) or a matrix (N, C) with C > 0 "
                         f"(N may be 0), as in torch; got shape {x.shape}")
    return x.reshape(-1, x.shape[-1] if x.ndim else 1)


def _margin_target(target: ArrayLike, num_rows: int, input_shape: tuple[int, ...]) -> np.ndarray:
    """The class indices, checked: int64 as torch requires, one per row, 0-d or 1-D."""
    y = _native_order(_checks.as_array(target, "target"))
    if y.dtype != np.int64:
        hint = " Convert with target.astype(np.int64)." if y.dtype.kind in "iu" else ""
        raise ValueError(f"target must hold int64 class indices, as torch requires for "
                         f"multi_margin_loss, got dtype {y.dtype}.{hint}")
    if y.ndim > 1 or y.size != num_rows:
        raise ValueError(f"target must be 1-D with one class index per row of the input, "
                         f"shape ({num_rows},) for input of shape {input_shape} (or 0-d for one "
                         f"row), got shape {y.shape}")
    return y


def _margin_weight(weight: ArrayLike | None, dtype: np.dtype) -> np.ndarray | None:
    """The class weights in native byte order; an array must have the input's dtype, as torch
    requires and as cross_entropy does with class indices (a list has none: it takes the
    input's)."""
    if weight is None:
        return None
    w = _native_order(_checks.as_array(weight, "weight"))
    if isinstance(weight, np.ndarray) and w.dtype != dtype:
        raise TypeError(f"weight must have the input's dtype {dtype}, as in torch, got "
                        f"{w.dtype}: convert with weight.astype(np.{dtype})")
    return w


class _MarginProblem:
    """A checked ``multi_margin_loss`` call, in the compute dtype."""

    def __init__(self, input: ArrayLike, target: ArrayLike, p: int, margin: float,
                 weight: ArrayLike | None, reduction: str) -> None:
        x = _real_argument(input, "input", "scores (logits)")
        self.power = _check_margin_power(p)
        self.margin = _check_margin(margin)
        _checks.check_reduction(reduction)
        self.reduction = reduction
        self.dtype = x.dtype
        self.shape = x.shape
        work = np.dtype(WORK_DTYPE)
        self.rows = _margin_rows(x).astype(work, copy=False)       # (N, C)
        y = _margin_target(target, len(self.rows), x.shape)
        num_classes = self.rows.shape[1]
        _checks.check_bounds(y, num_classes)
        self.classes = y.reshape(-1).astype(np.intp)               # (N,)
        self.class_weight = _checks.check_weight(_margin_weight(weight, x.dtype), num_classes,
                                                 work)
        # 'none' has one loss per row, or none at all (0-d) for a 0-d target, as in torch
        self.elements = _core.Elements(float(len(self.rows)), (len(self.rows),) if y.ndim else ())

    def slack(self) -> tuple[np.ndarray, np.ndarray]:
        """:math:`z_{ij} = \\text{margin} - x_{i,y_i} + x_{ij}` and where it counts: z > 0
        and j ≠ y_i. A nan z does not count (torch's ``if (z > 0)``), nor does the kink z = 0."""
        r, picked = self.rows, np.arange(len(self.rows))
        with np.errstate(invalid="ignore"):  # inf - inf: nan, which does not count
            z = self.margin - r[picked, self.classes][:, None] + r
            active = z > 0
        active[picked, self.classes] = False
        return z, active

    def target_weight(self) -> np.ndarray | None:
        """:math:`w_{y_i}` as a column, or None without class weights."""
        return None if self.class_weight is None else self.class_weight[self.classes][:, None]


def multi_margin_loss(input: ArrayLike, target: ArrayLike, p: int = 1, margin: float = 1.0,
                      weight: ArrayLike | None = None,
                      reduction: str = "mean") -> np.ndarray | np.floating:
    """Multiclass hinge loss, like ``torch.nn.functional.multi_margin_loss``.

    The loss of a multiclass support vector machine: row i costs nothing once its true score
    leads every other one by at least ``margin``.

    Parameters
    ----------
    input : array_like
        Scores (logits), floating, shape ``(N, C)`` or ``(C,)`` (one row) with C > 0, or 0-d
        (one row of one class); N may be 0.
    target : array_like of int64
        Class indices :math:`y_i \\in [0, C)`, shape ``(N,)`` (or 0-d / ``(1,)`` for one row).
    p : {1, 2}, default 1
        1 for the hinge, 2 for the squared hinge.
    margin : float, default 1.0
        The margin the true score must keep over each other one; finite.
    weight : array_like, optional
        Per-class weights, shape ``(C,)``; :math:`w_{y_i}` multiplies row i's terms (the weight
        of the *target* class). An array must have the input's dtype, as in torch (a list is
        read in it).
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        'mean' divides the sum by N (the weights do not change it); 'none' gives one loss per
        row, shape ``(N,)`` (0-d for a 0-d target).

    Returns
    -------
    numpy scalar or numpy.ndarray
        A scalar of the input's dtype, or one loss per row for ``'none'``.

    Raises
    ------
    IndexError
        A class index outside ``[0, C)``, with the value and the range.
    ValueError
        A target that is not int64 or not one index per row, an input of another shape (or
        C = 0), a weight not of shape ``(C,)``, ``p`` not 1 or 2, a non-finite ``margin``, an
        unknown reduction, integer input.
    TypeError
        ``p`` or ``margin`` not a number (a bool or a string), a weight array of another dtype
        than the input, arguments that are not arrays of numbers.

    Notes
    -----
    For row i with target :math:`y = y_i`,

    .. math::

        \\ell_i = \\frac{1}{C} \\sum_{j \\ne y} w_y \\max\\big(0,\\;
        \\text{margin} - x_{i,y} + x_{i,j}\\big)^p ,

    Weston and Watkins' multiclass hinge loss divided by C. 'mean' is
    :math:`\\frac{1}{N}\\sum_i \\ell_i`. torch's conventions, kept: a term whose slack
    :math:`z` is nan counts 0 (torch adds a term only ``if (z > 0)``), so a nan score does not
    make the loss nan; check your scores with ``np.isfinite``. A score of :math:`+\\infty`
    in a wrong class gives inf. Where celib differs, deliberately: an empty batch gives nan
    (0/0) for 'mean' and 0 for 'sum' (torch 2.13 returns uninitialised memory for both);
    float16 is accepted
    (torch: "not implemented for 'Half'"); every dtype is computed in float64 and rounded
    once (torch computes float32 in float32, so a slack such as
    :math:`2.5 - 8388611 + 8388611` rounds to 3 there); a nan or infinite ``margin`` and a bool
    ``p`` or ``margin`` are refused (torch takes them); a 0-d weight for C = 1 is refused
    (give it shape (1,)). Chapter 6 (Gradients, book/06_gradients.ipynb) compares it with
    cross-entropy on separable data.

    References
    ----------
    .. [1] J. Weston, C. Watkins, "Support vector machines for multi-class pattern
       recognition", ESANN 1999.
    .. [2] PyTorch documentation, ``torch.nn.MultiMarginLoss``.

    Examples
    --------
    >>> import numpy as np
    >>> from celib.functional import multi_margin_loss
    >>> x = np.array([[0.1, 0.2, 0.4, 0.8]])
    >>> print(f"{multi_margin_loss(x, np.array([3])):.4f}")  # (0.3 + 0.4 + 0.6) / 4
    0.3250
    >>> print(f"{multi_margin_loss(np.array([[2.0, 0.5, 0.9]]), np.array([0])):.4f}")
    0.0000
    """
    problem = _MarginProblem(input, target, p, margin, weight, reduction)
    return _core.reduce(_margin_losses(problem), problem.elements, reduction, problem.dtype)


def _margin_losses(problem: _MarginProblem) -> np.ndarray:
    """:math:`\\ell_i`, one per row."""
    z, active = problem.slack()
    with np.errstate(invalid="ignore", over="ignore"):
        terms = np.where(active, z if problem.power == 1 else z * z, 0)
        w = problem.target_weight()
        if w is not None:  # only the active terms: torch never multiplies the others
            terms = np.where(active, terms * w, 0)
    num_classes = problem.rows.shape[1]
    return terms.sum(axis=1, dtype=np.float64) / num_classes
