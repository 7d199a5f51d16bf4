"""Plumbing for chapter 7 (The MNIST label-index question, ``book/07_mnist_labels.ipynb``).

The page shows the ideas (a label is a class index, the gradient, one SGD step); the loops that
repeat them live here so that no cell of the page is mostly bookkeeping. Everything follows the
book's notation: ``W`` has shape ``(C, D)``, one row per class, and a batch of inputs ``X`` of
shape ``(N, D)`` gets the logits ``Z = X @ W.T + b``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import celib.functional as cf
from celib.grad import cross_entropy_grad

__all__ = ["sgd_batches", "train_softmax_regression", "symmetric_noise",
           "noisy_floor", "flip_labels", "writer_split", "random_split_like",
           "writer_bootstrap_interval"]


def sgd_batches(n: int, batch_size: int = 100, epochs: int = 3, seed: int = 0) -> list:
    """Index arrays of the minibatches of ``epochs`` passes over ``n`` examples.

    Each pass is a fresh permutation drawn from ``np.random.default_rng(seed)``, so the same
    list can be replayed by another implementation (torch) step for step.
    """
    rng = np.random.default_rng(seed)
    return [perm[i:i + batch_size]
            for perm in [rng.permutation(n) for _ in range(epochs)]
            for i in range(0, n, batch_size)]


def train_softmax_regression(X: np.ndarray, y: np.ndarray, X_held: np.ndarray,
                             y_held: np.ndarray, W0: np.ndarray, b0: np.ndarray,
                             batches: Sequence[np.ndarray], step: float = 0.5,
                             every: int = 10):
    """Minibatch SGD on the mean cross-entropy of softmax regression ``z = W x + b``.

    Parameters
    ----------
    X, y : arrays of shape (N, D) and (N,)
        Training inputs and class indices.
    X_held, y_held : arrays of shape (M, D) and (M,)
        Held-out inputs and class indices, only evaluated.
    W0, b0 : arrays of shape (C, D) and (C,)
        The starting point (copied, not modified).
    batches : sequence of index arrays
        The minibatches, in order (see :func:`sgd_batches`).
    step : float
        The SGD step size.
    every : int
        Record the full training and held-out loss every ``every`` steps and at the end.

    Returns
    -------
    W, b : the trained parameters
    batch_losses : array of shape (len(batches),), the loss of every minibatch before its step
    curve : array of shape (K, 3), rows (step, training loss, held-out loss)
    """
    W, b = W0.copy(), b0.copy()
    batch_losses, curve = [], []

    def record(t: int) -> None:
        curve.append((t, float(cf.cross_entropy(X @ W.T + b, y)),
                      float(cf.cross_entropy(X_held @ W.T + b, y_held))))

    for t, idx in enumerate(batches):
        if t % every == 0:
            record(t)
        z = X[idx] @ W.T + b
        batch_losses.append(float(cf.cross_entropy(z, y[idx])))
        g = cross_entropy_grad(z, y[idx])      # dL/dZ, (B, C), already divided by B
        W -= step * (g.T @ X[idx])             # dL/dW = G^T X, shape (C, D)
        b -= step * g.sum(axis=0)
    record(len(batches))
    return W, b, np.array(batch_losses), np.array(curve)


def symmetric_noise(r: float, C: int) -> np.ndarray:
    """The label distribution ``(1 - r, r/(C-1), ..., r/(C-1))`` of symmetric noise at rate r.

    Entry 0 is the probability that the label is kept; each of the other ``C - 1`` entries the
    probability that it is replaced by one particular other class.
    """
    if not 0.0 <= r <= 1.0 or C < 2:
        raise ValueError(f"need 0 <= r <= 1 and C >= 2, got r={r!r}, C={C!r}")
    return np.array([1.0 - r] + [r / (C - 1)] * (C - 1))


def noisy_floor(r: float, C: int) -> float:
    """H(Y | X) under symmetric noise at rate ``r`` when the clean label is a function of x.

    The entropy, in nats, of :func:`symmetric_noise`: the smallest expected cross-entropy any
    model can reach on labels noised this way.
    """
    p = symmetric_noise(r, C)
    p = p[p > 0]
    return float(-np.sum(p * np.log(p))) + 0.0   # + 0.0: no -0.0 for r = 0


def flip_labels(y: np.ndarray, r: float, C: int, seed: int) -> np.ndarray:
    """Replace each label, with probability ``r``, by one of the other ``C - 1`` classes.

    The replacement is uniform over the classes other than the true one, so a noisy label is
    the true class with probability ``1 - r`` and each other class with ``r / (C - 1)``.
    """
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    flip = rng.random(len(y)) < r
    shift = rng.integers(1, C, size=len(y))       # 1 .. C-1: never back to the same class
    return np.where(flip, (y + shift) % C, y).astype(np.int64)


def writer_split(writer: np.ndarray, population: np.ndarray, held_per_population: int = 1000,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hold out whole writers. In each population (QMNIST's series, say), writers are drawn in
    a random order from ``np.random.default_rng(seed)`` and all their images held out, until
    at least ``held_per_population`` images of that population are. Returns the sorted
    ``(train_idx, held_idx)``: no writer has images in both."""
    rng = np.random.default_rng(seed)
    held = []
    for pop in np.unique(population):
        in_pop = population == pop
        count = 0
        for w in rng.permutation(np.unique(writer[in_pop])):
            if count >= held_per_population:
                break
            rows = np.flatnonzero(in_pop & (writer == w))
            held.append(rows)
            count += len(rows)
    held_idx = np.sort(np.concatenate(held))
    return np.setdiff1d(np.arange(len(writer)), held_idx), held_idx


def random_split_like(population: np.ndarray, held_idx: np.ndarray,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random split with as many held-out images of each population as ``held_idx`` has,
    drawn image by image (writers then fall on both sides). Returns the sorted
    ``(train_idx, held_idx)``."""
    rng = np.random.default_rng(seed)
    held = [rng.choice(np.flatnonzero(population == pop), np.sum(population[held_idx] == pop),
                       replace=False) for pop in np.unique(population)]
    held_random = np.sort(np.concatenate(held))
    return np.setdiff1d(np.arange(len(population)), held_random), held_random


def writer_bootstrap_interval(correct: np.ndarray, writer: np.ndarray, n_boot: int = 2000,
                              seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the accuracy ``correct.mean()`` when the held-out images come in
    clusters, one per writer: resample the writers with replacement, keeping each one's
    images together (a cluster bootstrap; a binomial interval would treat the images as
    independent and come out too narrow)."""
    rng = np.random.default_rng(seed)
    writers, inverse = np.unique(writer, return_inverse=True)
    right = np.bincount(inverse, weights=correct.astype(float))
    total = np.bincount(inverse).astype(float)
    draws = rng.integers(0, len(writers), size=(n_boot, len(writers)))
    accuracy = right[draws].sum(axis=1) / total[draws].sum(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(accuracy, tail)), float(np.quantile(accuracy, 1 - tail))
