"""Gradients of cross-entropy, written out by hand, and the tools to check them.

The whole chapter fits in one line: for logits :math:`z`, the model :math:`q =
\\operatorname{softmax}(z)` and the target distribution :math:`p` (the book's notation),

.. math:: \\frac{\\partial}{\\partial z}\\Big(-\\sum_c p_c \\log q_c\\Big) = q - p .

:func:`cross_entropy_grad` adds what the options do to it (weights, ``ignore_index``, label
smoothing, the mean's denominator) and agrees with torch autograd on every one of them.
Chapter 6 (Gradients) derives it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from . import _checks, _core, _kernels
from ._layout import contiguous_rows, rows, unrows
from ._linear import linear_cross_entropy_grad  # chapter 9; defined with its forward
from .functional import softmax

__all__ = ["cross_entropy_grad", "softmax_jacobian", "numerical_grad", "linear_cross_entropy_grad"]


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
    Ignored elements get 0; ``'mean'`` divides by the same denominator as the loss. When every
    target is ignored the gradient is 0 (torch autograd gives the same), although the loss is
    ``nan``; when the kept targets all have weight 0, it is ``nan`` like torch's. Without
    weights, each row of the gradient sums to 0.

    Explained in chapter 6 (Gradients).

    Examples
    --------
    >>> from celib.grad import cross_entropy_grad
    >>> cross_entropy_grad([[2.0, 1.0, 0.1]], [0]).round(4)  # softmax - one_hot
    array([[-0.341 ,  0.2424,  0.0986]])
    """
    x = _checks.logits_array(input, "input")
    num_classes = _checks.class_count(x)
    work = x.astype(_checks.compute_dtype(x.dtype), copy=False)
    opts = _checks.cross_entropy_options(num_classes, work.dtype, weight, ignore_index, reduction,
                                         label_smoothing)
    w, epsilon, reduction = opts.weight, opts.label_smoothing, opts.reduction
    weights = np.ones(num_classes, work.dtype) if w is None else w
    t = np.asarray(target)

    if _core.is_probability_target(t, x.shape):
        _checks.refuse_ignore_index_with_probabilities(opts.ignore_index)
        q = softmax(rows(work), axis=1)  # the model
        p_targets = _core.probability_targets(rows(t.astype(work.dtype, copy=False)), epsilon,
                                              _checks.index_target_shape(x.shape))
        wp = p_targets.probabilities * weights
        g = np.sum(wp, axis=1, keepdims=True) * q - wp
        return _finish(g, p_targets, reduction, x)

    _checks.check_index_target(t, x.shape)
    targets = _core.index_targets(t, num_classes, opts.ignore_index, w)
    r = contiguous_rows(rows(work))
    if num_classes == 0 or _core.nan_rows(targets, reduction) is not None:
        # Rare cases, kept in their plain form: nothing to normalise over, or a 'mean' whose
        # denominator is 0 (see _finish for what autograd does there).
        target_weight = (np.where(targets.ignored, 0, 1) if targets.weights is None
                         else targets.weights).astype(work.dtype)
        q = softmax(r, axis=1)
        g = q.copy()
        g[np.arange(len(targets.classes)), targets.classes] -= 1
        keep, spread = _core.smoothing_coefficients(epsilon, num_classes)
        g *= keep * target_weight[:, None]
        if epsilon > 0:
            g += spread * (weights.sum() * q - weights)
        g[targets.ignored] = 0
        return _finish(g, targets, reduction, x)
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
    Explained in chapter 6 (Gradients).

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
            f"softmax_jacobian takes one logit vector of shape (C,), got shape {a.shape}")
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

    Notes
    -----
    Costs two calls of ``f`` per entry of ``x``: for checking, not for training.
    Explained in chapter 6 (Gradients).

    Examples
    --------
    >>> import numpy as np
    >>> from celib.grad import numerical_grad
    >>> numerical_grad(lambda v: float(np.sum(v ** 2)), [1.0, -2.0]).round(6)
    array([ 2., -4.])
    """
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    point = np.array(x, dtype=np.float64)
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


