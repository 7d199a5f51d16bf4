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
``python -m benchmarks.accuracy`` the results are within 1 ulp of exact in float32 and 4 ulp in
float64. (One limit no method escapes: a float64 logsumexp whose exact value is close to 0,
such as ``logsumexp([-ln 2, -ln 2])``, is the difference of two nearly equal numbers and has
only a small *absolute* error.) Speed and memory against torch are measured by
``python -m benchmarks.speed`` (in the book's repository); the appendix on performance shows
both.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _checks, _core, _kernels
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


def _normalize_axes(axis, ndim: int) -> tuple[int, ...]:
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


def _input_array(x: ArrayLike, dtype) -> np.ndarray:
    """The input of the softmax family: cast to ``dtype`` first if given (torch's ``dtype=``),
    else as a floating array (integers read as float64)."""
    if dtype is None:
        return _checks.float_array(x, "x")
    dt = _checks.float_dtype(dtype)
    a = np.asarray(x)
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
    >>> logsumexp(np.zeros((2, 3, 4)), axis=(0, 2), keepdims=True).shape  # log(8) each
    (1, 3, 1)
    >>> logsumexp(np.float64(2.5))  # one number: itself, 0-d as in torch
    array(2.5)
    """
    a = _checks.float_array(x, "x")
    axes = _normalize_axes(axis, a.ndim)
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
        out = _kernels.logsumexp_rows(contiguous_rows(moved)).reshape(rest)
        with np.errstate(over="ignore"):  # a float64 result beyond float32's range is inf
            out = out.astype(a.dtype, copy=False)
    return out.reshape(keep_shape) if keepdims else out


def _softmax_family(x: ArrayLike, axis: int, dtype, kernel) -> np.ndarray:
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

    Explained in chapter 2 (Softmax) and chapter 5 (Numerical stability).

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

    Explained in chapter 2 (Softmax).

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
    x = _checks.logits_array(input, "input")
    num_classes = _checks.class_count(x)
    work = x.astype(_checks.compute_dtype(x.dtype), copy=False)
    opts = _checks.cross_entropy_options(num_classes, work.dtype, weight, ignore_index, reduction)
    t = np.asarray(target)
    _checks.check_index_target(t, x.shape, probabilities_allowed=False)
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

    torch accepts only int64 and uint8 class indices; so does celib, so that a mistake made
    here is the mistake torch would report. Likewise integer logits are refused (torch:
    ``"log_softmax_lastdim_kernel_impl" not implemented for 'Long'``): a loss's input is a
    model's floating output, and integers there are most often the targets passed in its place.
    Where torch raises ``TypeError`` for an option of the wrong type (a string
    ``label_smoothing``, a float ``ignore_index``), celib raises ``ValueError``, as for every
    other wrong argument.

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
    x = _checks.logits_array(input, "input")
    num_classes = _checks.class_count(x)
    work = x.astype(_checks.compute_dtype(x.dtype), copy=False)
    opts = _checks.cross_entropy_options(num_classes, work.dtype, weight, ignore_index, reduction,
                                         label_smoothing)
    w, epsilon, reduction = opts.weight, opts.label_smoothing, opts.reduction
    t = np.asarray(target)

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

    _checks.check_index_target(t, x.shape)
    targets = _core.index_targets(t, num_classes, opts.ignore_index, w)
    r = contiguous_rows(rows(work))
    if num_classes == 0:  # nothing to normalise over: the gather itself decides
        return _core.reduce(_picked_losses(r, targets), targets, reduction, x.dtype)
    # Per row, in float64: lse_i - x_{i, y_i} (= -log_softmax(x)_{i, y_i}), without ever
    # forming the (N, C) log-softmax; the smoothing term needs sum_c w_c (lse_i - x_{i,c}).
    per_element = _kernels.cross_entropy_rows(
        r, targets, None if w is None else w.astype(np.float64), epsilon)
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
    nor cancels, so the loss stays accurate (relative to its size) even when it is tiny.
    Explained in chapter 3 (Targets).

    Examples
    --------
    >>> from celib.functional import binary_cross_entropy_with_logits as bce
    >>> bce([2.0, -1.0, 0.0], [1.0, 0.0, 1.0], reduction="none").round(4)
    array([0.1269, 0.3133, 0.6931])
    """
    x = _checks.logits_array(input, "input")
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
    return _core.reduce(loss, _core.Elements.of_shape(x.shape), reduction, x.dtype)


def _broadcast_weight(weight: ArrayLike, shape: tuple[int, ...], dtype: np.dtype,
                      name: str) -> np.ndarray:
    w = np.asarray(weight, dtype=dtype)
    try:
        np.broadcast_shapes(w.shape, shape)
    except ValueError:
        raise ValueError(f"{name} of shape {w.shape} does not broadcast to the input's "
                         f"shape {shape}") from None
    if np.broadcast_shapes(w.shape, shape) != tuple(shape):
        raise ValueError(f"{name} of shape {w.shape} would enlarge the input's shape {shape}")
    return w


