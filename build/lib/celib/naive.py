"""The textbook formulas, exactly as written on the blackboard, and deliberately unstable.

These exist to be watched failing (chapter 5, Numerical stability): ``exp`` overflows to
``inf`` beyond about 709.78 in float64 (88.72 in float32), ``inf / inf`` is ``nan``, and
``log`` of a probability that rounded to 0 is ``-inf``. numpy's floating-point warnings are
left on, so you see them; use :mod:`celib.functional` for real work.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["softmax", "log_softmax", "logsumexp", "cross_entropy", "cross_entropy_from_probs"]


def softmax(z: ArrayLike, axis: int = -1) -> np.ndarray:
    """:math:`e^{z_i} / \\sum_j e^{z_j}` with no shift: overflows for logits beyond ~709.

    Notes
    -----
    Explained in chapter 5 (Numerical stability).

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
    e = np.exp(np.asarray(z, dtype=float) if np.asarray(z).dtype.kind != "f" else np.asarray(z))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(z: ArrayLike, axis: int = -1) -> np.ndarray:
    """``log(softmax(z))``: ``-inf`` wherever a probability underflowed to 0.

    Notes
    -----
    Explained in chapter 5 (Numerical stability).

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
    Explained in chapter 5 (Numerical stability).

    Examples
    --------
    >>> import numpy as np
    >>> from celib import naive
    >>> with np.errstate(over="ignore"):
    ...     float(naive.logsumexp([1000.0, 1000.0]))
    inf
    """
    a = np.asarray(z)
    return np.log(np.sum(np.exp(a if a.dtype.kind == "f" else a.astype(float)), axis=axis))


def cross_entropy_from_probs(probs: ArrayLike, target: ArrayLike) -> np.floating:
    """Mean of :math:`-\\log p_{i, y_i}` from probabilities of shape (C,) or (N, C).

    Notes
    -----
    Explained in chapter 5 (Numerical stability).

    Examples
    --------
    >>> from celib import naive
    >>> print(f"{naive.cross_entropy_from_probs([[0.7, 0.2, 0.1]], [0]):.4f}")
    0.3567
    """
    p = np.asarray(probs)
    t = np.asarray(target)
    p2 = p[None, :] if p.ndim == 1 else p
    picked = p2[np.arange(p2.shape[0]), t.reshape(-1)]
    return np.mean(-np.log(picked))


def cross_entropy(logits: ArrayLike, target: ArrayLike) -> np.floating:
    """Mean cross-entropy as ``-log(softmax(z)[y])``: the softmax first, the log after.

    Notes
    -----
    Explained in chapter 5 (Numerical stability).

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
    z = np.asarray(logits)
    return cross_entropy_from_probs(softmax(z, axis=-1), target)
