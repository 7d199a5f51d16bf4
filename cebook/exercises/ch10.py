"""Checkers for the exercises of chapter 10, Beyond one label.

Each checker recomputes what it needs with numpy and depends on nothing the page defines; the
exercises' data are the constants below, which the page imports.
"""

from __future__ import annotations

import math

import numpy as np

from . import as_number, checker, correct, require

__all__ = ["EX1_LOSSES", "EX2_TEACHER", "EX2_STUDENT", "EX3_SIM", "EX3_TAU", "EX3_DIGITS",
           "check_ex1", "check_ex2", "check_ex3", "check_ex4"]

#: Exercise 1: the loss of each predicted token of three names (nats), names of 3, 9 and 2
#: letters, so 4, 10 and 3 predictions.
EX1_LOSSES = (np.array([2.9, 2.0, 1.2, 0.4]),
              np.array([2.5, 1.8, 1.6, 1.0, 2.2, 0.9, 1.4, 0.6, 0.3, 0.8]),
              np.array([3.1, 2.6, 0.7]))
#: Exercise 2: a teacher's and a student's logits for three examples of four classes.
EX2_TEACHER = np.array([[6.0, 2.0, 0.5, -1.0], [0.0, 5.0, 3.5, 1.0], [1.0, -2.0, 0.0, 4.0]])
EX2_STUDENT = np.array([[2.0, 1.0, 0.0, 0.0], [0.5, 1.5, 1.0, 0.0], [0.0, 0.0, 0.5, 1.0]])
#: Exercise 3: cosine similarities of four images (rows) and their four captions (columns),
#: in matching order, the temperature, and the digit each image shows.
EX3_SIM = np.array([[0.61, 0.12, 0.35, 0.02],
                    [0.20, 0.48, 0.05, 0.31],
                    [0.44, 0.09, 0.57, 0.15],
                    [0.03, 0.27, 0.18, 0.52]])
EX3_TAU = 0.1
EX3_DIGITS = np.array([3, 3, 1, 0])


def _log_softmax(z: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, float64, with the max-shift."""
    z = np.asarray(z, dtype=np.float64)
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _ce(z: np.ndarray, labels) -> float:
    """Mean cross-entropy of the rows of z with integer labels."""
    return float(-np.mean(_log_softmax(z)[np.arange(len(z)), labels]))


def _near(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


@checker
def check_ex1(per_token, perplexity) -> None:
    """Exercise 1: the per-token mean NLL of :data:`EX1_LOSSES` and the perplexity."""
    per_token = as_number(per_token, "per_token")
    perplexity = as_number(perplexity, "perplexity")
    losses = [np.asarray(x) for x in EX1_LOSSES]
    total, count = sum(x.sum() for x in losses), sum(len(x) for x in losses)
    right, per_name = total / count, float(np.mean([x.mean() for x in losses]))
    require(not _near(per_token, per_name),
            "that is the per-name mean: each name weighs the same, so the characters of short "
            "names weigh more. Divide the total loss by the number of tokens")
    require(not _near(per_token, total / (len(losses) * max(map(len, losses)))),
            "you divided by every position of the padded batch: the padding positions are "
            "not tokens and must not count")
    require(not _near(per_token, total), "that is the sum: the mean divides it by the tokens")
    require(_near(per_token, right), f"per_token = {per_token:.4f} is not the per-token mean")
    require(not _near(perplexity, math.exp(per_name)),
            "that perplexity comes from the per-name mean: use the per-token mean")
    require(not _near(perplexity, 2 ** right),
            "2 to the power of a loss in nats mixes units: the loss is in nats")
    require(_near(perplexity, math.exp(right)),
            f"perplexity = {perplexity:.4f} is not e to the per-token mean")
    correct(f"{right:.4f} nats per token, perplexity {math.exp(right):.3f}; the per-name mean "
            f"would say {per_name:.4f}.")


def _soft_parts(T: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The teacher's p at T, log p, and the student's log q at T, for exercise 2."""
    log_p = _log_softmax(EX2_TEACHER / T)
    return np.exp(log_p), log_p, _log_softmax(EX2_STUDENT / T)


@checker
def check_ex2(soft_loss) -> None:
    """Exercise 2: T^2 times the batch-mean KL divergence at T = 4."""
    soft_loss = as_number(soft_loss, "soft_loss")
    T, n, C = 4.0, *EX2_TEACHER.shape
    p, log_p, log_q = _soft_parts(T)
    kl = float(np.sum(p * (log_p - log_q)) / n)
    entropy = float(-np.sum(p * log_p) / n)
    log_q1 = _log_softmax(EX2_STUDENT)
    require(not _near(soft_loss, kl), "that is the KL divergence without the factor T^2")
    require(not _near(soft_loss, T * kl), "that is T times the KL divergence: the factor is T^2")
    require(not _near(soft_loss, T**2 * kl / C),
            "that is reduction='mean', which divides by N x C: use 'batchmean'")
    require(not _near(soft_loss, T**2 * (kl + entropy)),
            "that is T^2 times the cross-entropy, which is larger than the KL by H(p)")
    require(not _near(soft_loss, T**2 * float(np.sum(p * (log_p - log_q1)) / n)),
            "the student's logits must be divided by T too")
    q = np.exp(log_q)
    require(not _near(soft_loss, T**2 * float(np.sum(q * (log_q - log_p)) / n)),
            "that is KL(q || p), the other direction: the teacher's p comes first")
    require(not _near(soft_loss, T**2 * float(np.sum(p * (log_p - q)) / n)),
            "kl_div's input is the student's log-probabilities, not its probabilities")
    require(_near(soft_loss, T**2 * kl), f"soft_loss = {soft_loss:.4f} is not T^2 x KL")
    correct(f"the soft loss is {T**2 * kl:.4f} (KL {kl:.4f}, times T^2 = 16).")


def _directions() -> tuple[float, float]:
    """InfoNCE of the rows and of the columns of EX3_SIM / EX3_TAU."""
    S, labels = EX3_SIM / EX3_TAU, np.arange(len(EX3_SIM))
    return _ce(S, labels), _ce(S.T, labels)


@checker
def check_ex3(loss) -> None:
    """Exercise 3: the InfoNCE loss of the rows of EX3_SIM at tau = EX3_TAU."""
    loss = as_number(loss, "loss")
    S, N = EX3_SIM / EX3_TAU, len(EX3_SIM)
    rows, cols = _directions()
    for wrong, what in ((np.zeros(N, dtype=int), "all zeros"),
                        (EX3_DIGITS, "the digits the images show"),
                        (np.arange(N)[::-1], "arange(N) reversed")):
        require(not _near(loss, _ce(S, wrong)),
                f"those labels are {what}: the positive of row i is column i, so the labels "
                "are arange(N)")
    require(not _near(loss, _ce(EX3_SIM, np.arange(N))), "divide the similarities by tau first")
    require(not _near(loss, cols), "that is the columns' loss (captions to images): take the rows")
    require(_near(loss, rows), f"loss = {loss:.4f} is not the rows' InfoNCE")
    correct(f"the InfoNCE loss of the rows is {rows:.4f} nats (log N = {math.log(N):.4f}).")


@checker
def check_ex4(loss) -> None:
    """Exercise 4: CLIP's symmetric loss of EX3_SIM at tau = EX3_TAU."""
    loss = as_number(loss, "loss")
    rows, cols = _directions()
    require(not _near(loss, (rows + cols) / 4),
            "that is halved twice: each direction's mean is already a mean over N, and the "
            "symmetric loss is their mean, (rows + cols) / 2")
    require(not _near(loss, rows + cols), "that is the sum of the two directions: take the mean")
    require(not _near(loss, rows) and not _near(loss, cols),
            "that is one direction only: CLIP averages the rows' and the columns' losses")
    require(_near(loss, (rows + cols) / 2), f"loss = {loss:.4f} is not the symmetric loss")
    correct(f"the symmetric loss is {(rows + cols) / 2:.4f} nats, the mean of {rows:.4f} (rows) "
            f"and {cols:.4f} (columns).")
