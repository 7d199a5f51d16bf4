"""Checkers for the exercises of chapter 3, Targets.

Each checker recomputes what it needs with numpy and depends on nothing the page defines.
"""

from __future__ import annotations

import math

import numpy as np

from . import WrongAnswer, as_array, as_number, checker, correct, require

__all__ = ["check_ex1", "check_ex2", "check_ex3", "check_ex4", "check_ex5"]


@checker
def check_ex1(target) -> None:
    """Exercise 1: a class-index target made from the 1-based float labels [1., 10., 3., 7.]."""
    require(target is not None, "target should be an array of class indices, not None")
    try:
        target = np.asarray(target)
    except (TypeError, ValueError):
        raise WrongAnswer(f"target should be an array of class indices, not {target!r}") from None
    require(target.shape == (4,), f"shape is {target.shape}; one index per sample: (4,)")
    require(target.dtype != np.uint8,
            "uint8 is accepted by PyTorch, but it holds only 0 to 255: labels 300 and -100 "
            "(ignore_index) would become 44 and 156, silently; class indices are int64")
    require(target.dtype == np.int64,
            f"dtype is {target.dtype}; PyTorch takes class indices as int64 (or uint8) only; "
            "use int64")
    require(np.all((0 <= target) & (target < 10)),
            f"{target} has a value outside [0, 10): class indices are 0-based")
    require(np.array_equal(target, [0, 9, 2, 6]),
            f"{target} are not the classes that the labels [1, 10, 3, 7] name")
    correct(f"{target} ({target.dtype}) are 0-based class indices that celib and torch accept.")


_N2, _C2 = 4096, 32_000


@checker
def check_ex2(index_bytes, onehot_bytes) -> None:
    """Exercise 2: the bytes of an int64 index target and a float32 one-hot target,
    N = 4096, C = 32000."""
    index_bytes = as_number(index_bytes, "index_bytes")
    onehot_bytes = as_number(onehot_bytes, "onehot_bytes")
    require(index_bytes == _N2 * 8,
            f"{index_bytes:,.0f} bytes is not the int64 index vector: how many bytes is one int64?")
    require(onehot_bytes == _N2 * _C2 * 4,
            f"{onehot_bytes:,.0f} bytes is not the float32 one-hot matrix: how many entries, "
            f"and how many bytes is one float32?")
    correct(f"{index_bytes:,.0f} bytes against {onehot_bytes:,.0f} bytes "
            f"({onehot_bytes / 2**20:.0f} MiB), {onehot_bytes / index_bytes:,.0f} times more.")


@checker
def check_ex3(p) -> None:
    """Exercise 3: the smoothed target of y = [3, 1], C = 4, eps = 0.2 in PyTorch's convention."""
    p = as_array(p, "p", shape=(2, 4))
    require(np.all(p >= 0) and np.allclose(p.sum(axis=1), 1.0, atol=1e-6),
            f"each row of a target must be a distribution; your rows sum to {p.sum(axis=1)}")
    want = 0.8 * np.eye(4)[[3, 1]] + 0.2 / 4
    require(np.allclose(p, want, atol=1e-6),
            "PyTorch's label_smoothing spreads eps over every class, the true one included")
    correct("this target gives the same loss as label_smoothing=0.2 for every z.")


@checker
def check_ex4(eps_torch) -> None:
    """Exercise 4: PyTorch's label_smoothing equal to fairseq's eps = 0.1 for C = 3."""
    eps_torch = as_number(eps_torch, "eps_torch")
    C, eps = 3, 0.1
    off_fairseq = eps / (C - 1)
    require(math.isclose(eps_torch / C, off_fairseq, rel_tol=1e-9),
            f"label_smoothing={eps_torch} gives each wrong class {eps_torch / C:.4f}; fairseq "
            f"gives it {off_fairseq:.4f}")
    correct(f"label_smoothing = {eps_torch:.4f}: each wrong class gets {off_fairseq:.4f} and the "
            f"true one {1 - eps:.4f} in both conventions.")


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


@checker
def check_ex5(value) -> None:
    """Exercise 5: BCE with logits [1, -2, 0.5], target [1, 0, 1], pos_weight [3, 2, 1], mean."""
    value = as_number(value, "value")
    z, t, pw = np.array([1.0, -2.0, 0.5]), np.array([1.0, 0.0, 1.0]), np.array([3.0, 2.0, 1.0])
    terms = pw * t * _softplus(-z) + (1 - t) * _softplus(z)
    require(not math.isclose(value, terms.sum(), rel_tol=1e-6),
            "that is the sum: the default reduction is the mean")
    require(math.isclose(value, terms.mean(), rel_tol=1e-6),
            f"{value:.6f} is not the loss: which term does pos_weight multiply, and what does "
            f"the mean divide by?")
    correct(f"the loss is {value:.4f}.")
