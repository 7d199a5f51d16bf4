"""The textbook formulas, exactly as written on the blackboard, and deliberately unstable.

These exist to be watched failing (chapter 5: Numerical stability,
book/05_numerical_stability.ipynb): ``exp`` overflows to ``inf`` beyond about 709.78 in float64
(88.72 in float32), ``inf / inf`` is ``nan``, and ``log`` of a probability that rounded to 0 is
``-inf``. numpy's floating-point warnings are left on, so you see them; use :mod:`celib.functional`
for real work.

The arguments are checked as everywhere in celib (a ragged list, a complex or longdouble array,
an axis that is not an integer in range, a class index out of range: a ValueError, TypeError or
IndexError that names the argument): only the arithmetic is naive.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import _checks

__all__ = ["softmax", "log_softmax", "logsumexp", "cross_entropy", "cross_entropy_from_probs"]


def _checked(z: ArrayLike, axis: int, name: str = "z") -> np.ndarray:
    """``z`` as a floating array (integers as float64), and ``axis`` checked against it."""
    a = _checks.float_array(z, name)
    axis = _checks.check_integer(axis, "axis")
    if not -max(a.ndim, 1) <= axis < max(a.ndim, 1):
        raise ValueError(f"axis {axis} is out of range for an array with {a.ndim} dimension(s)")
    return a


def _class_indices(target: ArrayLike, num_rows: int, num_classes: int) -> np.ndarray:
    """Integer class indices, one per row of probabilities, each in [0, C)."""
    t = _checks.as_array(target, "target")
    if t.dtype.kind not in "iu":
        raise ValueError(f"target must hold integer class indices, got dtype {t.dtype}")
    if t.size != num_rows or t.ndim > 1:
        raise ValueError(f"target must hold one class index per row ({num_rows}), got shape "
                         f"{t.shape}")
    _checks.check_bounds(t, num_classes)
    return t.reshape(-1)


def softmax(z: ArrayLike, axis: int = -1) -> np.ndarray:
    """:math:`e^{z_i} / \\sum_j e^{z_j}` with no shift: overflows for logits beyond ~709.

    Notes
    -----
    Explained in chapter 5 (Numerical stability, book/05_numerical_stability.ipynb).

    Examples
    --------
    >>> import numpy as np
    >>> from celib import naive
    >>> naive.softmax([1.0, 2.0, 3.0]).round(4)
    array([0.09  , 0.2447, 0.6652])
    >>> with np.errstate(over="ignore", invalid="ignore"):
    ...     naive.softmax([1000.0, 1.0])
    array([nan,  0.])
    """
    e = np.exp(_checked(z, axis))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(z: ArrayLike, axis: int = -1) -> np.ndarray:
    """``log(softmax(z))``: ``-inf`` wherever a probability underflowed to 0.

    Notes
    -----
    Explained in chapter 5 (Numerical stability, book/05_numerical_stability.ipynb).

    Examples
    --------
    >>> import numpy as np
    >>> from celib import naive
    >>> with np.errstate(divide="ignore"):
    ...     naive.log_softmax([0.0, -800.0])
    array([  0., -inf])
    """
    return np.log(softmax(z, axis=axis))


def logsumexp(z: ArrayLike, axis: int = -1) -> np.ndarray:
    """``log(sum(exp(z)))``: ``inf`` as soon as one ``exp`` overflows.

    Notes
    -----
    Explained in chapter 5 (Numerical stability, book/05_numerical_stability.ipynb).

    Examples
    --------
    >>> import numpy as np
    >>> from celib import naive
    >>> with np.errstate(over="ignore"):
    ...     float(naive.logsumexp([1000.0, 1000.0]))
    inf
    """
    return np.log(np.sum(np.exp(_checked(z, axis)), axis=axis))


def cross_entropy_from_probs(probs: ArrayLike, target: ArrayLike) -> np.floating:
    """Mean of :math:`-\\log p_{i, y_i}` from probabilities of shape (C,) or (N, C).

    Notes
    -----
    Explained in chapter 5 (Numerical stability, book/05_numerical_stability.ipynb).

    Examples
    --------
    >>> from celib import naive
    >>> print(f"{naive.cross_entropy_from_probs([[0.7, 0.2, 0.1]], [0]):.4f}")
    0.3567
    """
    p = _checks.float_array(probs, "probs")
    if p.ndim not in (1, 2):
        raise ValueError(f"probs must have shape (C,) or (N, C), got shape {p.shape}")
    p2 = p[None, :] if p.ndim == 1 else p
    t = _class_indices(target, p2.shape[0], p2.shape[1])
    picked = p2[np.arange(p2.shape[0]), t]
    return np.mean(-np.log(picked))


def cross_entropy(logits: ArrayLike, target: ArrayLike) -> np.floating:
    """Mean cross-entropy as ``-log(softmax(z)[y])``: the softmax first, the log after.

    Notes
    -----
    Explained in chapter 5 (Numerical stability, book/05_numerical_stability.ipynb).

    Examples
    --------
    >>> import numpy as np
    >>> from celib import naive
    >>> print(f"{naive.cross_entropy([[-0.5, -0.2, -0.3]], [0]):.4f}")
    1.2729
    >>> with np.errstate(divide="ignore"):  # exact loss is 800, naive gives inf
    ...     float(naive.cross_entropy([[0.0, -800.0]], [1]))
    inf
    """
    z = _checks.float_array(logits, "logits")
    if z.ndim not in (1, 2):
        raise ValueError(f"logits must have shape (C,) or (N, C), got shape {z.shape}")
    return cross_entropy_from_probs(softmax(z, axis=-1), target)
