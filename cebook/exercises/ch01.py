"""Checkers for the exercises of chapter 1, Entropy.

Each checker recomputes what it needs with numpy and depends on nothing the page defines.
"""

from __future__ import annotations

import math

import numpy as np

from . import as_array, as_number, call_reader, checker, correct, require

__all__ = ["check_ex1", "check_ex2", "check_ex3", "check_ex4", "check_ex5"]


def _entropy(p, base=math.e) -> float:
    p = np.asarray(p, dtype=np.float64)
    nonzero = p[p > 0]
    return float(-np.sum(nonzero * np.log(nonzero)) / math.log(base))


_FAIR = np.full(6, 1 / 6)
_LOADED = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.5])
_SUM_OF_TWO = np.convolve(_FAIR, _FAIR)  # the distribution of the sum of two fair rolls


@checker
def check_ex1(h_fair, h_loaded, h_sum) -> None:
    """Exercise 1: the entropies, in bits, of a fair die, a loaded die and the sum of two fair
    rolls."""
    h_fair = as_number(h_fair, "h_fair")
    h_loaded = as_number(h_loaded, "h_loaded")
    h_sum = as_number(h_sum, "h_sum")
    answers = {"h_fair": (h_fair, _FAIR), "h_loaded": (h_loaded, _LOADED),
               "h_sum": (h_sum, _SUM_OF_TWO)}
    for name, (value, dist) in answers.items():
        require(not math.isclose(value, _entropy(dist), rel_tol=1e-6),
                f"{name} = {value} is in nats: the exercise asks for bits")
    bits = {name: _entropy(dist, 2) for name, (_, dist) in answers.items()}
    require(math.isclose(h_fair, bits["h_fair"], rel_tol=1e-9),
            f"{h_fair} is not the entropy of a fair die in bits (which logarithm did you use?)")
    require(math.isclose(h_loaded, bits["h_loaded"], rel_tol=1e-9),
            f"{h_loaded} is not the entropy of the loaded die: its six probabilities are not "
            "equal, so its surprisals are not either")
    require(not math.isclose(h_sum, 2 * bits["h_fair"], rel_tol=1e-6),
            f"{h_sum} is the entropy of the pair of rolls; the sum forgets which die showed what")
    require(not math.isclose(h_sum, math.log2(11), rel_tol=1e-6),
            f"{h_sum} = log2 11 assumes the 11 sums equally likely: are they?")
    require(math.isclose(h_sum, bits["h_sum"], rel_tol=1e-9),
            f"{h_sum} is not the entropy of the sum of two rolls: count how many pairs give "
            "each sum")
    correct(f"{h_loaded:.4f} < {h_fair:.4f} < {h_sum:.4f} bits: uniform is the maximum, and the "
            f"sum keeps less than the {2 * h_fair:.4f} bits of the pair.")


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


# The entropies (nats) and class counts at which the reader's functions are evaluated.
_CLASS_COUNTS = (2, 3, 10, 1000)
_FRACTIONS_OF_MAX = (0.0, 0.1, 0.5, 0.9, 1.0)


@checker
def check_ex5(kl_to_uniform, max_entropy) -> None:
    """Exercise 5: D_KL(p || u) as a function of H(p) and C, and the largest entropy over C
    classes, both in nats."""
    for num_classes in _CLASS_COUNTS:
        top = math.log(num_classes)
        got_top = as_number(call_reader(max_entropy, num_classes, what="max_entropy"),
                            "max_entropy(num_classes)")
        require(math.isclose(got_top, top, rel_tol=1e-9),
                f"max_entropy({num_classes}) = {got_top}, not the largest entropy in nats over "
                f"{num_classes} classes (is it a count, or in bits?)")
        for fraction in _FRACTIONS_OF_MAX:
            h = fraction * top
            got = as_number(call_reader(kl_to_uniform, h, num_classes, what="kl_to_uniform"),
                            "kl_to_uniform(h, num_classes)")
            require(math.isclose(got, top - h, rel_tol=1e-9, abs_tol=1e-12),
                    f"kl_to_uniform({h:.4f}, {num_classes}) = {got}: a divergence is never "
                    "negative, is 0 only for the uniform distribution (whose entropy is the "
                    "largest), and is in nats here")
    correct("D_KL(p || u) = log C - H(p) >= 0, so H(p) <= log C, with equality only for u.")
