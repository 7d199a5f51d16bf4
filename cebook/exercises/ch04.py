"""Checkers for the exercises of chapter 4, Cross-entropy.

Each checker recomputes what it needs with numpy and depends on nothing the page defines.
"""

from __future__ import annotations

import math

import numpy as np

from . import as_number, checker, correct, require

__all__ = ["check_ex1", "check_ex2", "check_ex3", "check_ex4"]


def _per_sample(z, y) -> np.ndarray:
    """-log softmax(z)_y per row, float64, with the max-shift."""
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=1, keepdims=True)
    log_q = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    return -log_q[np.arange(len(y)), y]


def _softmax(z) -> np.ndarray:
    """softmax(z) per row, float64, with the max-shift."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _named_mistakes(loss: float, z, y, w=None) -> None:
    """Reject the chapter's named mistakes, each with its hint: the mean over the N x C
    entries (mistake 2), a softmax before the loss (mistake 1), NLLLoss on raw logits, bits."""
    z, y = np.asarray(z, dtype=np.float64), np.asarray(y)
    w = np.ones(z.shape[1]) if w is None else np.asarray(w, dtype=np.float64)
    ell = _per_sample(z, y)
    right = float(np.sum(w[y] * ell) / w[y].sum())
    after_softmax = float(np.sum(w[y] * _per_sample(_softmax(z), y)) / w[y].sum())
    raw_logits = float(np.sum(w[y] * -z[np.arange(len(y)), y]) / w[y].sum())
    require(not math.isclose(loss, right / z.shape[1], rel_tol=1e-6),
            "that is the mean over all N x C entries of the one-hot product: the mean is over "
            "the samples, not the classes")
    require(not math.isclose(loss, after_softmax, rel_tol=1e-6),
            "that is the loss of softmax(z) taken as logits: the loss takes the logits "
            "themselves")
    require(not math.isclose(loss, raw_logits, rel_tol=1e-6),
            "that is -z_y, what NLLLoss returns on raw logits: take the log-softmax first")
    require(not math.isclose(loss, right / math.log(2), rel_tol=1e-6),
            "that is in bits: the loss uses the natural logarithm")


@checker
def check_ex1(loss) -> None:
    """Exercise 1: the mean loss of logits [[-0.0464, -0.0268], [-0.0234, -0.0091]], labels
    [0, 1]."""
    loss = as_number(loss, "loss")
    z, y = [[-0.0464, -0.0268], [-0.0234, -0.0091]], [0, 1]
    ell = _per_sample(z, y)
    require(not math.isclose(loss, ell.sum(), rel_tol=1e-6),
            "that is the sum of the two losses: the default reduction is the mean")
    _named_mistakes(loss, z, y)
    require(math.isclose(loss, ell.mean(), rel_tol=1e-6),
            f"{loss:.6f} is not the loss: which probability does each label pick?")
    correct(f"the loss is {loss:.4f} nats, just above ln 2 = {math.log(2):.4f}.")


@checker
def check_ex2(loss) -> None:
    """Exercise 2: the weighted mean cross-entropy of the exercise's logits, targets, weights."""
    loss = as_number(loss, "loss")
    y, w = np.array([0, 2, 2]), np.array([1.0, 3.0, 2.0])
    z = [[1.0, 0.0, -1.0], [0.5, 0.5, 0.0], [0.0, 2.0, 0.0]]
    ell = _per_sample(z, y)
    weighted_sum = float(np.sum(w[y] * ell))
    _named_mistakes(loss, z, y, w)
    require(not math.isclose(loss, weighted_sum / len(y), rel_tol=1e-6),
            "you divided by N: divide by the sum of the targets' weights")
    require(not math.isclose(loss, weighted_sum / w.sum(), rel_tol=1e-6),
            "you divided by the sum of all class weights: only the targets' weights w[y] count")
    require(math.isclose(loss, weighted_sum / w[y].sum(), rel_tol=1e-6),
            f"{loss:.6f} is not the weighted mean: which weight belongs to each sample?")
    correct(f"the weighted mean is {loss:.4f}.")


@checker
def check_ex3(floor) -> None:
    """Exercise 3: the smallest loss of one sample, C = 100, label_smoothing=0.2 (nats)."""
    floor = as_number(floor, "floor")
    C, eps = 100, 0.2
    p = np.full(C, eps / C)
    p[0] += 1 - eps
    h = float(-np.sum(p * np.log(p)))
    require(math.isclose(floor, h, rel_tol=1e-6),
            f"{floor:.6f} nats is not the floor: at its minimum the model predicts the smoothed "
            f"target itself; what is the loss then?")
    correct(f"the floor is H(p) = {h:.4f} nats, reached at the logits log p.")


@checker
def check_ex4(lowest, highest) -> None:
    """Exercise 4: the range of cross_entropy(softmax(z), y) for C = 1000."""
    lowest, highest = as_number(lowest, "lowest"), as_number(highest, "highest")
    C = 1000
    low, high = math.log(1 + (C - 1) / math.e), math.log(math.e + C - 1)
    require(math.isclose(lowest, low, rel_tol=1e-6),
            f"lowest = {lowest:.4f} is not the floor: put all of the probability on the true "
            f"class, then treat those probabilities as logits")
    require(math.isclose(highest, high, rel_tol=1e-6),
            f"highest = {highest:.4f} is not the ceiling: put all of the probability on one "
            f"wrong class")
    correct(f"the loss is stuck between {low:.4f} and {high:.4f}, 1 nat apart.")
