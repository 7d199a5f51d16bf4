"""Checkers for the exercises of chapter 1, Entropy.

Each checker recomputes what it needs with numpy and depends on nothing the page defines.
"""

from __future__ import annotations

import math

import numpy as np

from . import as_array, as_number, checker, correct, require

__all__ = ["check_ex1", "check_ex2", "check_ex3", "check_ex4"]


def _entropy(p, base=math.e) -> float:
    p = np.asarray(p, dtype=np.float64)
    nonzero = p[p > 0]
    return float(-np.sum(nonzero * np.log(nonzero)) / math.log(base))


@checker
def check_ex1(h_bits, h_nats) -> None:
    """Exercise 1: the entropy of a fair six-sided die, in bits and in nats."""
    h_bits, h_nats = as_number(h_bits, "h_bits"), as_number(h_nats, "h_nats")
    die = np.full(6, 1 / 6)
    require(math.isclose(h_bits, _entropy(die, 2), rel_tol=1e-9),
            f"{h_bits} is not the entropy of a fair die in bits (which logarithm did you use?)")
    require(math.isclose(h_nats, _entropy(die), rel_tol=1e-9),
            f"{h_nats} is not the entropy of a fair die in nats (which logarithm did you use?)")
    correct(f"{h_bits:.4f} bits = {h_nats:.4f} nats.")


# The code A: 0, B: 10, C: 110, D: 111 (built for p = 1/2, 1/4, 1/8, 1/8), used on a source r.
_LENGTHS = np.array([1, 2, 3, 3])
_R = np.array([1 / 8, 1 / 2, 1 / 4, 1 / 8])


@checker
def check_ex2(average_bits, wasted_bits) -> None:
    """Exercise 2: p's code used on the source r; average length and the waste, bits/symbol."""
    average_bits = as_number(average_bits, "average_bits")
    wasted_bits = as_number(wasted_bits, "wasted_bits")
    average = float(np.dot(_R, _LENGTHS))
    require(math.isclose(average_bits, average, rel_tol=1e-9),
            f"{average_bits} is not the average length: which distribution gives the "
            f"frequencies, and which one the code lengths?")
    require(math.isclose(wasted_bits, average - _entropy(_R, 2), rel_tol=1e-9),
            f"{wasted_bits} is not the waste: compare with the best code for the source that "
            f"actually produces the symbols")
    correct(f"{average_bits:.4f} bits per symbol, of which {wasted_bits:.4f} are wasted.")


@checker
def check_ex3(p_heads) -> None:
    """Exercise 3: the probability of heads p <= 1/2 at which a coin carries half a bit."""
    p_heads = as_number(p_heads, "p")
    require(0 < p_heads <= 0.5, f"p = {p_heads} is not in (0, 1/2]")
    h = _entropy([p_heads, 1 - p_heads], 2)
    require(abs(h - 0.5) < 1e-6, f"a coin with p = {p_heads:.6f} has entropy {h:.6f} bits, not 0.5")
    correct(f"p = {p_heads:.6f} gives {h:.6f} bits.")


@checker
def check_ex4(q_best, loss_best) -> None:
    """Exercise 4: the best constant prediction for label frequencies (0.7, 0.2, 0.1), and its
    loss in nats."""
    freq = np.array([0.7, 0.2, 0.1])
    q_best = as_array(q_best, "q_best", shape=(3,))
    loss_best = as_number(loss_best, "loss_best")
    require(np.all(q_best >= 0) and math.isclose(q_best.sum(), 1.0, rel_tol=1e-9),
            "q_best must be a distribution over the 3 classes: non-negative, summing to 1")
    require(np.allclose(q_best, freq, atol=1e-3),
            f"{np.round(q_best, 4)} is not the best constant prediction")
    loss_of_q = float(-np.sum(freq * np.log(q_best)))
    require(math.isclose(loss_best, loss_of_q, rel_tol=1e-6),
            f"{loss_best} is not the average loss of that q in nats")
    correct(f"always predicting the label frequencies costs {loss_best:.4f} nats, "
            f"against ln 3 = {math.log(3):.4f}.")
