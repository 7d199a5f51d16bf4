"""Entropy, cross-entropy and KL divergence of probability distributions.

Information theory's view of the loss (chapter 1, Entropy): :math:`H(p)` is the shortest
average code length for symbols drawn from :math:`p`, :math:`H(p, q)` the average length when
the code was built for :math:`q`, and :math:`D_{KL}(p\\|q) = H(p, q) - H(p) \\ge 0` the price
of the wrong code. Natural logarithms (nats) by default; ``base=2`` gives bits.

Conventions: :math:`0 \\log 0 = 0` (an impossible symbol costs nothing), and :math:`q_c = 0`
where :math:`p_c > 0` gives ``inf`` (a symbol the code cannot express at all).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["entropy", "cross_entropy", "kl_divergence"]


def _distribution(p: ArrayLike, axis: int, name: str) -> np.ndarray:
    """Check that ``p`` holds probability distributions along ``axis`` and return it as floats."""
    a = np.asarray(p)
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{name} must hold real probabilities, got dtype {a.dtype}")
    a = a.astype(np.result_type(a.dtype, np.float64) if a.dtype.kind != "f" else a.dtype)
    if a.ndim == 0:
        raise ValueError(f"{name} must have an axis of outcomes, got a 0-d array")
    if np.any(np.isnan(a)) or np.any(a < 0):
        raise ValueError(f"{name} must be non-negative probabilities, got a negative or nan entry")
    sums = np.sum(a, axis=axis, dtype=np.float64)
    tolerance = max(1e-6, 10 * a.shape[axis] * np.finfo(a.dtype).eps)
    if np.any(np.abs(sums - 1) > tolerance):
        worst = float(np.asarray(sums).flat[np.argmax(np.abs(sums - 1))])
        raise ValueError(
            f"{name} must sum to 1 along axis {axis} (a probability distribution), but a sum is "
            f"{worst:.6g}; if these are logits, apply celib.functional.softmax first"
        )
    return a


def _in_base(nats: np.ndarray, base: float | None) -> np.ndarray:
    if base is None:
        return nats
    if base <= 0 or base == 1:
        raise ValueError(f"base must be positive and not 1, got {base}")
    return nats / np.log(base)


def _output(value: np.ndarray, dtype: np.dtype):
    value = np.asarray(value, dtype=dtype)
    return value[()] if value.ndim == 0 else value


def entropy(p: ArrayLike, axis: int = -1, base: float | None = None) -> np.ndarray | np.floating:
    """Shannon entropy :math:`H(p) = -\\sum_c p_c \\log p_c`.

    Parameters
    ----------
    p : array_like
        Probabilities, non-negative and summing to 1 along ``axis``.
    axis : int, default -1
        The axis of outcomes.
    base : float, optional
        Logarithm base: None for nats, 2 for bits (:math:`H_2 = H / \\ln 2`).

    Returns
    -------
    numpy scalar or numpy.ndarray
        ``p``'s shape without ``axis``; between 0 and :math:`\\log C`.

    Raises
    ------
    ValueError
        Negative entries, or sums that are not 1 (for example logits passed by mistake).

    Notes
    -----
    Terms with :math:`p_c = 0` contribute 0. Explained in chapter 1 (Entropy).

    Examples
    --------
    >>> from celib.info import entropy
    >>> float(entropy([0.5, 0.25, 0.125, 0.125], base=2))
    1.75
    >>> print(f"{entropy([0.1] * 10):.4f}")  # ln 10: the loss of a guessing 10-class model
    2.3026
    """
    a = _distribution(p, axis, "p")
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(a > 0, a * np.log(np.where(a > 0, a, 1)), 0)
    # 0.0 - x turns the -0.0 of a one-hot distribution (minus a sum of zeros) into 0.0.
    return _output(_in_base(0.0 - np.sum(terms, axis=axis), base), a.dtype)


def cross_entropy(p: ArrayLike, q: ArrayLike, axis: int = -1,
                  base: float | None = None) -> np.ndarray | np.floating:
    """Cross-entropy :math:`H(p, q) = -\\sum_c p_c \\log q_c` of two distributions.

    Not to be confused with :func:`celib.functional.cross_entropy`, the loss, which takes
    logits and a target; this one takes two probability distributions.

    Parameters
    ----------
    p : array_like
        The true distribution (the target), summing to 1 along ``axis``.
    q : array_like
        The model's distribution, same shape as ``p`` (or broadcastable to it).
    axis : int, default -1
        The axis of outcomes.
    base : float, optional
        None for nats, 2 for bits.

    Returns
    -------
    numpy scalar or numpy.ndarray
        :math:`\\ge H(p)`, with equality iff ``q == p``; ``inf`` where some :math:`q_c = 0`
        while :math:`p_c > 0`.

    Notes
    -----
    The average code length when symbols drawn from :math:`p` are coded with the code that is
    optimal for :math:`q`. With a one-hot :math:`p = e_y` it is :math:`-\\log q_y`: the loss of
    chapter 4. Explained in chapter 1 (Entropy).

    Examples
    --------
    >>> from celib.info import cross_entropy
    >>> float(cross_entropy([0.5, 0.25, 0.125, 0.125], [0.25] * 4, base=2))
    2.0
    >>> float(cross_entropy([1.0, 0.0], [0.0, 1.0]))
    inf
    """
    pa = _distribution(p, axis, "p")
    qa = _distribution(q, axis, "q")
    dtype = np.result_type(pa.dtype, qa.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(pa > 0, pa * np.log(qa), 0)
    return _output(_in_base(-np.sum(terms, axis=axis), base), dtype)


def kl_divergence(p: ArrayLike, q: ArrayLike, axis: int = -1,
                  base: float | None = None) -> np.ndarray | np.floating:
    """Kullback-Leibler divergence :math:`D_{KL}(p\\|q) = \\sum_c p_c \\log(p_c / q_c)`.

    Parameters
    ----------
    p, q : array_like
        Distributions along ``axis``, as in :func:`cross_entropy`.
    axis : int, default -1
        The axis of outcomes.
    base : float, optional
        None for nats, 2 for bits.

    Returns
    -------
    numpy scalar or numpy.ndarray
        :math:`\\ge 0` (Gibbs' inequality), 0 iff ``p == q``; ``inf`` where some
        :math:`q_c = 0` while :math:`p_c > 0`. Not symmetric in ``p`` and ``q``.

    Notes
    -----
    Equal to :math:`H(p, q) - H(p)`, but computed term by term as
    :math:`p_c \\log(p_c/q_c)` so that it does not lose its digits to cancellation when
    :math:`q` is close to :math:`p`. Same as ``torch.nn.functional.kl_div(q.log(), p,
    reduction='sum')``. Explained in chapter 1 (Entropy).

    Examples
    --------
    >>> from celib.info import kl_divergence
    >>> print(f"{kl_divergence([0.5, 0.5], [0.9, 0.1]):.4f}")
    0.5108
    >>> print(f"{kl_divergence([0.9, 0.1], [0.5, 0.5]):.4f}")  # not symmetric
    0.3681
    """
    pa = _distribution(p, axis, "p")
    qa = _distribution(q, axis, "q")
    dtype = np.result_type(pa.dtype, qa.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(pa > 0, pa * np.log(pa / qa), 0)
    return _output(_in_base(np.sum(terms, axis=axis), base), dtype)
