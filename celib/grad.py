"""Gradients of cross-entropy, written out by hand, and the tools to check them.

The whole chapter fits in one line: for logits :math:`z`, the model :math:`q =
\\operatorname{softmax}(z)` and the target distribution :math:`p` (the book's notation),

.. math:: \\frac{\\partial}{\\partial z}\\Big(-\\sum_c p_c \\log q_c\\Big) = q - p .

:func:`cross_entropy_grad` adds what the options do to it (weights, ``ignore_index``, label
smoothing, the mean's denominator) and agrees with torch autograd on every one of them.
Chapter 6 (Gradients, book/06_gradients.ipynb) derives it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from . import _checks, _core, _kernels
from ._layout import contiguous_rows, rows, unrows
from ._linear import linear_cross_entropy_grad  # chapter 9; defined with its forward
from .functional import (BCE_GRAD_EPSILON, _bce_problem, _kl_problem, _MarginProblem,
                         _sum_to_shape, softmax)

__all__ = ["cross_entropy_grad", "softmax_jacobian", "numerical_grad", "linear_cross_entropy_grad",
           "kl_div_grad", "binary_cross_entropy_grad", "multi_margin_loss_grad"]


def cross_entropy_grad(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
                       ignore_index: int = -100, reduction: str = "mean",
                       label_smoothing: float = 0.0) -> np.ndarray:
    """Gradient of :func:`celib.functional.cross_entropy` with respect to its input (the logits).

    Takes the same arguments as :func:`celib.functional.cross_entropy` and returns
    :math:`\\partial L / \\partial\\,\\text{input}`, where :math:`L` is the reduced loss; for
    ``reduction='none'`` it is the gradient of the *sum* of the per-element losses (what
    ``loss.sum().backward()`` gives in torch).

    Parameters
    ----------
    input, target, weight, ignore_index, reduction, label_smoothing
        As in :func:`celib.functional.cross_entropy`, with the same checks and errors.

    Returns
    -------
    numpy.ndarray
        The input's shape and floating dtype.

    Notes
    -----
    With :math:`q = \\operatorname{softmax}(z_i)`, :math:`S = \\sum_c w_c` and (for index targets)
    :math:`y = y_i`, the gradient of element :math:`i`'s loss is

    .. math::

        g_i = (1-\\varepsilon)\\,w_y\\,(q - e_y)
              + \\frac{\\varepsilon}{C}\\,(S\\,q - w),

    which is :math:`q - p` with :math:`p = (1-\\varepsilon)e_y + \\varepsilon/C` when unweighted.
    For probability targets :math:`p`, :math:`g_i = (\\sum_c w_c p_c)\\,q - w \\odot p`.
    Ignored elements get 0 (nan where their softmax is nan, as autograd's :math:`0\\cdot`nan);
    ``'mean'`` divides by the same denominator as the loss. When every target is ignored the
    gradient is 0 (torch autograd gives the same), although the loss is ``nan``; when the kept
    weights sum to exactly 0, it is what autograd gives with :math:`1/0 = \\infty` (nan rows
    for weights that are all 0, ±inf and nan for weights that cancel). Without weights, each
    row of the gradient sums to 0.

    Explained in chapter 6 (Gradients, book/06_gradients.ipynb).

    Examples
    --------
    >>> from celib.grad import cross_entropy_grad
    >>> cross_entropy_grad([[2.0, 1.0, 0.1]], [0]).round(4)  # softmax - one_hot
    array([[-0.341 ,  0.2424,  0.0986]])
    """
    x = _checks.logits_array(input, "input", target)
    num_classes = _checks.class_count(x)
    work = x.astype(_checks.compute_dtype(x.dtype), copy=False)
    opts = _checks.cross_entropy_options(num_classes, work.dtype, weight, ignore_index, reduction,
                                         label_smoothing, input_dtype=x.dtype)
    w, epsilon, reduction = opts.weight, opts.label_smoothing, opts.reduction
    weights = np.ones(num_classes, work.dtype) if w is None else w
    t = _checks.as_array(target, "target")

    if _core.is_probability_target(t, x.shape):
        _checks.refuse_ignore_index_with_probabilities(opts.ignore_index)
        q = softmax(rows(work), axis=1)  # the model
        p_targets = _core.probability_targets(rows(t.astype(work.dtype, copy=False)), epsilon,
                                              _checks.index_target_shape(x.shape))
        wp = p_targets.probabilities * weights
        g = np.sum(wp, axis=1, keepdims=True) * q - wp
        return _finish(g, p_targets, reduction, x)

    _checks.check_index_target(t, x.shape, options=opts)
    targets = _core.index_targets(t, num_classes, opts.ignore_index, w)
    r = contiguous_rows(rows(work))
    if num_classes == 0:  # an (M, 0) gradient: nothing to compute
        return np.zeros(x.shape, x.dtype)
    if _core.nan_rows(targets, reduction) is not None:
        # Rare: a 'mean' whose denominator is 0, where torch's autograd divides by 0 (_core).
        g = _core.zero_denominator_gradient(softmax(r, axis=1), targets, w, epsilon)
        return unrows(g, x.shape).astype(x.dtype, copy=False)
    # One pass per row block, in float64: g = c_i·(q - e_y) + s·(Σw·q - w), with
    # c_i = (1 - ε)·w_y·scale and s = (ε/C)·scale, scale = 1/denominator for 'mean'.
    scale = _core.gradient_scale(targets, reduction)
    keep, spread = _core.smoothing_coefficients(epsilon, num_classes)
    out = np.empty(r.shape, dtype=x.dtype)
    _kernels.cross_entropy_grad_rows(
        r, targets, None if w is None else w.astype(np.float64), keep * scale, spread * scale,
        out)
    return unrows(out, x.shape)


def _finish(g: np.ndarray, targets: _core.Targets, reduction: str, x: np.ndarray) -> np.ndarray:
    """Apply the reduction (a 'mean' over nothing gives torch's autograd's nan and 0) and go
    back to the input's layout and dtype."""
    g = _core.reduce_gradient(g, targets, reduction)
    return unrows(g, x.shape).astype(x.dtype, copy=False)


def softmax_jacobian(z: ArrayLike) -> np.ndarray:
    """Jacobian of the softmax, :math:`J = \\operatorname{diag}(q) - q q^\\top`, for one vector.

    Parameters
    ----------
    z : array_like, shape (C,)
        Logits.

    Returns
    -------
    numpy.ndarray, shape (C, C)
        :math:`J_{ij} = \\partial q_i / \\partial z_j = q_i(\\delta_{ij} - q_j)`: symmetric,
        positive semidefinite, rows summing to 0. It is also the Hessian of
        :math:`\\log\\sum_j e^{z_j}`, hence of cross-entropy in the logits, which is why the loss
        is convex in them.

    Notes
    -----
    Explained in chapter 6 (Gradients, book/06_gradients.ipynb).

    Examples
    --------
    >>> from celib.grad import softmax_jacobian
    >>> softmax_jacobian([0.0, 0.0])
    array([[ 0.25, -0.25],
           [-0.25,  0.25]])
    """
    a = _checks.float_array(z, "z")
    if a.ndim != 1:
        raise ValueError(
            f"z must be one logit vector of shape (C,) (softmax_jacobian), got shape {a.shape}")
    s = softmax(a)
    return np.diag(s) - np.outer(s, s)


def numerical_grad(f: Callable[[np.ndarray], float], x: ArrayLike, eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of a scalar function, to check analytic gradients.

    Parameters
    ----------
    f : callable
        Maps an array of ``x``'s shape to a scalar.
    x : array_like
        The point; computed in float64 whatever its dtype.
    eps : float, default 1e-6
        The step h. The error is :math:`O(h^2)` from truncation plus :math:`O(\\epsilon/h)` from
        rounding, so about 1e-6 to 1e-5 is best in float64; expect agreement to ~1e-8.

    Returns
    -------
    numpy.ndarray of float64
        :math:`(f(x + h e_k) - f(x - h e_k)) / 2h` for every entry k, in ``x``'s shape.

    Raises
    ------
    TypeError
        ``f`` not callable; ``eps`` not a number (a bool, a string).
    ValueError
        ``eps`` not finite or not > 0; ``x`` ragged or not real.

    Notes
    -----
    Costs two calls of ``f`` per entry of ``x``: for checking, not for training.
    Explained in chapter 6 (Gradients, book/06_gradients.ipynb).

    Examples
    --------
    >>> import numpy as np
    >>> from celib.grad import numerical_grad
    >>> numerical_grad(lambda v: float(np.sum(v ** 2)), [1.0, -2.0]).round(6)
    array([ 2., -4.])
    """
    if not callable(f):
        raise TypeError(f"f must be a callable that maps an array to a number, got {f!r}")
    eps = _checks.check_positive_number(eps, "eps")
    point = _checks.float_array(x, "x").astype(np.float64)  # a copy: it is perturbed
    grad = np.zeros_like(point)
    flat_point, flat_grad = point.reshape(-1), grad.reshape(-1)
    for k in range(flat_point.size):
        saved = flat_point[k]
        flat_point[k] = saved + eps
        upper = float(f(point))
        flat_point[k] = saved - eps
        lower = float(f(point))
        flat_point[k] = saved
        flat_grad[k] = (upper - lower) / (2 * eps)
    return grad




# --------------------------------------------------------------------------------------------
# Gradients of kl_div, binary_cross_entropy and multi_margin_loss, as torch's autograd gives
# them (for reduction='none', of the sum of the losses, as above). They parse their arguments
# exactly as their forwards do.
# --------------------------------------------------------------------------------------------

def kl_div_grad(input: ArrayLike, target: ArrayLike, reduction: str = "mean",
                log_target: bool = False) -> np.ndarray:
    """Gradient of :func:`celib.functional.kl_div` with respect to its input (:math:`\\log q`).

    Parameters
    ----------
    input, target, reduction, log_target
        As in :func:`celib.functional.kl_div`, with the same checks, errors and warning.

    Returns
    -------
    numpy.ndarray
        The input's shape and dtype.

    Notes
    -----
    The loss is linear in the input: :math:`\\partial \\ell_i / \\partial \\log q_i = -p_i`
    (:math:`-e^{t_i}` for ``log_target=True``), whatever the input, so the gradient is finite
    even where the loss is nan because the input is :math:`-\\infty`; divided by the number of
    elements for 'mean', by ``input.shape[0]`` for 'batchmean'. A target that broadcasts
    against a smaller input is summed over the broadcast axes, as autograd does.

    Explained with the loss in chapter 1 (Entropy, book/01_entropy.ipynb), which relates the
    divergence to cross-entropy.

    Examples
    --------
    >>> import numpy as np
    >>> from celib.grad import kl_div_grad
    >>> kl_div_grad(np.log([[0.25, 0.75]]), np.array([[0.5, 0.5]]), reduction="batchmean")
    array([[-0.5, -0.5]])
    """
    problem = _kl_problem(input, target, reduction, log_target)
    with np.errstate(over="ignore"):  # exp of a large log target: inf, as in torch
        per_element = -(np.exp(problem.target) if problem.log_target else problem.target)
    g = np.broadcast_to(per_element, problem.elements.shape)
    scale = _core.gradient_scale(problem.elements, problem.reduction)
    g = _sum_to_shape(g.astype(np.float64) * scale, problem.log_q.shape)
    with np.errstate(over="ignore"):
        return g.astype(problem.input_dtype, copy=False)


def binary_cross_entropy_grad(input: ArrayLike, target: ArrayLike,
                              weight: ArrayLike | None = None,
                              reduction: str = "mean") -> np.ndarray:
    """Gradient of :func:`celib.functional.binary_cross_entropy` with respect to its input
    (the probabilities).

    Parameters
    ----------
    input, target, weight, reduction
        As in :func:`celib.functional.binary_cross_entropy`, with the same checks and errors.

    Returns
    -------
    numpy.ndarray
        The input's shape and dtype.

    Notes
    -----
    torch's backward, not the derivative of the clamped loss:

    .. math::

        \\frac{\\partial \\ell}{\\partial x} = w\\,\\frac{x - t}{\\max\\big(x (1 - x),
        10^{-12}\\big)},

    divided by the number of elements for 'mean'. Where the log is clamped at :math:`-100`
    (at :math:`x = 0` or 1, or within about :math:`e^{-100}` of them) the clamped loss is flat,
    but this gradient is huge: :math:`\\pm 10^{12}` at :math:`x = 0` or 1 with the other label.
    At :math:`x = t \\in \\{0, 1\\}` it is 0.

    Explained with the loss in chapter 3 (Targets: class indices, one-hot vectors and
    probabilities, book/03_targets.ipynb).

    Examples
    --------
    >>> import numpy as np
    >>> from celib.grad import binary_cross_entropy_grad
    >>> binary_cross_entropy_grad(np.array([0.5, 0.0]), np.array([1.0, 1.0]), reduction="sum")
    array([-2.e+00, -1.e+12])
    """
    problem = _bce_problem(input, target, weight, reduction)
    q, t = problem.q, problem.target
    g = (q - t) / np.maximum(q * (1 - q), q.dtype.type(BCE_GRAD_EPSILON))
    if problem.weight is not None:
        with np.errstate(invalid="ignore"):  # an inf weight on a gradient of 0: nan, as torch
            g = g * problem.weight
    g = g * _core.gradient_scale(problem.elements, reduction)
    with np.errstate(over="ignore"):
        return g.astype(problem.dtype, copy=False)


def multi_margin_loss_grad(input: ArrayLike, target: ArrayLike, p: int = 1, margin: float = 1.0,
                           weight: ArrayLike | None = None,
                           reduction: str = "mean") -> np.ndarray:
    """Gradient of :func:`celib.functional.multi_margin_loss` with respect to its input.

    Parameters
    ----------
    input, target, p, margin, weight, reduction
        As in :func:`celib.functional.multi_margin_loss`, with the same checks and errors.

    Returns
    -------
    numpy.ndarray
        The input's shape and dtype.

    Notes
    -----
    With :math:`z_{ij} = \\text{margin} - x_{i,y} + x_{i,j}` for :math:`j \\ne y = y_i`, a term
    counts where :math:`z_{ij} > 0`, and then

    .. math::

        \\frac{\\partial \\ell_i}{\\partial x_{i,j}} = \\frac{w_y}{C}\\, p\\, z_{ij}^{p-1},
        \\qquad \\frac{\\partial \\ell_i}{\\partial x_{i,y}} = -\\sum_{j \\ne y}
        \\frac{\\partial \\ell_i}{\\partial x_{i,j}},

    divided by N for 'mean'. At the kink :math:`z_{ij} = 0` the subgradient taken is 0, as
    torch's; a nan slack counts 0 too. So a row whose true score leads every other by at least
    the margin has a zero gradient: the example stops pulling on the weights.

    Explained with the loss in chapter 6 (Gradients, book/06_gradients.ipynb), beside the
    cross-entropy's gradient.

    Examples
    --------
    >>> import numpy as np
    >>> from celib.grad import multi_margin_loss_grad
    >>> multi_margin_loss_grad(np.array([[0.1, 0.2, 0.4, 0.8]]), np.array([3]))
    array([[ 0.25,  0.25,  0.25, -0.75]])
    >>> multi_margin_loss_grad(np.array([[1.0, 0.0, 0.0]]), np.array([0]))  # at the kink
    array([[0., 0., 0.]])
    """
    problem = _MarginProblem(input, target, p, margin, weight, reduction)
    z, active = problem.slack()
    with np.errstate(invalid="ignore", over="ignore"):
        g = np.where(active, 1.0 if problem.power == 1 else 2 * z, 0.0)
        w = problem.target_weight()
        if w is not None:
            g = np.where(active, g * w, 0.0)
        picked = np.arange(len(g))
        g[picked, problem.classes] = 0.0 - g.sum(axis=1)  # +0.0 when no term counts, as torch
    num_classes = problem.rows.shape[1]
    g = g * (_core.gradient_scale(problem.elements, reduction) / num_classes)
    with np.errstate(over="ignore"):
        return g.reshape(problem.shape).astype(problem.dtype, copy=False)
