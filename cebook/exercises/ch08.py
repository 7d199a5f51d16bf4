"""Checkers for the exercises of chapter 8, Probabilities you can trust.

Each exercise is self-contained (small arrays given in its statement), so the checkers depend
on nothing the page trains or defines.
"""

from __future__ import annotations

import math

import numpy as np

from celib.calibration import expected_calibration_error

from . import as_number, checker, correct, require

__all__ = ["check_ex1", "check_ex2", "check_ex3", "check_ex4", "EX2_PROBS", "EX2_LABELS"]

P_TRUE = np.array([0.7, 0.2, 0.1])
EX2_PROBS = np.array([[1.0, 0.0], [0.8, 0.2], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
EX2_LABELS = np.array([0, 1, 0, 0, 1])


@checker
def check_ex1(honest, argmax) -> None:
    """Exercise 1: expected Brier score of reporting p, and of reporting its argmax one-hot."""
    honest = as_number(honest, "the expected Brier score of reporting p")
    argmax = as_number(argmax, "the expected Brier score of the one-hot report")
    sq = float(np.sum(P_TRUE ** 2))
    require(not math.isclose(honest, sq, abs_tol=1e-6),
            "that is sum_c p_c^2; the expected score is sum_y p_y sum_c (q_c - [c == y])^2")
    require(math.isclose(honest, 1 - sq, abs_tol=1e-6),
            "average the score of q = p over y drawn from p, one term per class y")
    require(math.isclose(argmax, 2 * (1 - P_TRUE[0]), abs_tol=1e-6),
            "the one-hot report scores 0 when y = 0 and 2 otherwise; weight by p_y")
    correct(f"reporting p scores {honest:.2f} in expectation, the one-hot argmax {argmax:.2f}: "
            "being honest pays, though both have the same accuracy")


@checker
def check_ex2(ece) -> None:
    """Exercise 2: the 5-bin ECE of EX2_PROBS, EX2_LABELS with right-closed bins."""
    ece = as_number(ece, "the ECE")
    right = expected_calibration_error(EX2_PROBS, EX2_LABELS, n_bins=5)
    # 0.26 comes from two readings: left-closed bins as torchmetrics (0.6 in [0.6, 0.8), 1.0
    # alone), or the reliability of class 1 (q_1 against [y == 1]) instead of the top label
    require(not math.isclose(ece, 0.26, abs_tol=1e-6),
            "0.26 is what left-closed bins [a, b) give, and also the calibration of class 1 "
            "(q_1 against y == 1); use the top-label confidence max_c q_c, count a hit when the "
            "argmax equals the label, and right-closed bins (a, b]")
    require(math.isclose(ece, right, abs_tol=1e-9),
            "weight each bin's |accuracy - mean confidence| by its share of the 5 examples")
    correct(f"ECE = {ece:.2f} with bins ((m-1)/5, m/5]")


@checker
def check_ex3(T) -> None:
    """Exercise 3: the closed-form temperature of the 4-example toy set."""
    T = as_number(T, "T")
    require(T > 0, "a temperature is positive")
    require(not math.isclose(T, math.log(3) / 4, rel_tol=1e-6),
            "you found 1/T; the temperature is its inverse")
    require(math.isclose(T, 4 / math.log(3), rel_tol=1e-6),
            "at the optimum, the confidence sigmoid(4 / T) equals the accuracy 3/4")
    correct(f"T = 4 / ln 3 = {T:.4f}: the confidence becomes 0.75, the accuracy")


@checker
def check_ex4(ratio) -> None:
    """Exercise 4: focal (gamma = 2) over cross-entropy gradient at p_t = 0.9."""
    ratio = as_number(ratio, "the ratio")
    p = 0.9
    require(not math.isclose(ratio, (1 - p) ** 2, rel_tol=1e-6),
            "(1 - p_t)^gamma alone forgets that the factor depends on z too (product rule)")
    s = (1 - p) ** 2 * (1 - 2 * p * math.log(p) / (1 - p))
    require(math.isclose(ratio, s, rel_tol=1e-4),
            "differentiate -(1 - p_t)^2 log p_t through p_t; dp_t/dz = p_t (e_y - p)")
    correct(f"the focal gradient is {ratio:.4f} times cross-entropy's: "
            f"{1 / ratio:.0f} times smaller at p_t = 0.9")
