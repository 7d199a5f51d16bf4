"""Checkers for the exercises of chapter 6, Gradients.

The data of exercises 2 and 4 come from :mod:`cebook.ch06_helpers` (the page takes them from
there too), so the checkers depend on nothing the page defines.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.functional import hessian

import celib.functional as cf
import celib.grad as cg
from cebook import ch06_helpers as h

from . import as_array, call_reader, checker, correct, require

__all__ = ["check_ex1", "check_ex2", "check_ex3", "check_ex4", "check_ex5"]


def _overflowed(answer, x: np.ndarray) -> bool:
    """True if ``answer`` has x's shape and is not finite exactly where |x| > 709, beyond the
    range of float64's exp: the mark of a formula that overflows (exp(800) / (1 + exp(800)) is
    inf / inf = nan)."""
    try:
        values = np.asarray(answer, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    if values.shape != x.shape:
        return False
    bad = ~np.isfinite(values)
    return bool(bad.any() and np.all(np.abs(x[bad]) > 709))


@checker
def check_ex1(bce_grad) -> None:
    """Exercise 1: d/dx of the summed binary cross-entropy with logits x and targets p.

    Eight moderate logits are compared with finite differences; four large ones (|x| up to 800,
    where exp overflows in float64) with torch autograd, which is exact there.
    """
    x_mid = np.random.default_rng(5).normal(scale=3.0, size=8)
    x = np.concatenate([x_mid, [-800.0, -40.0, 40.0, 800.0]])
    p = np.random.default_rng(6).uniform(size=len(x))
    numeric = cg.numerical_grad(
        lambda v: cf.binary_cross_entropy_with_logits(v, p[:8], reduction="sum"), x_mid)
    xt = torch.tensor(x, requires_grad=True)
    F.binary_cross_entropy_with_logits(xt, torch.from_numpy(p), reduction="sum").backward()
    expected = xt.grad.numpy()
    assert np.allclose(expected[:8], numeric, atol=1e-8)    # the two references agree
    answer = call_reader(bce_grad, x.copy(), p.copy(), what="bce_grad")
    require(not _overflowed(answer, x),
            "bce_grad(x, p) is not finite where |x| = 800: exp overflows in float64 beyond "
            "709.78 (exp(800) = inf, and inf / inf = nan). Which way of writing sigma(x) never "
            "divides inf by inf?")
    got = as_array(answer, "bce_grad(x, p)", shape=x.shape)
    require(not np.allclose(got, -expected, atol=1e-6),
            "the sign is flipped: the gradient is prediction minus target")
    require(not np.allclose(got, expected / len(x), atol=1e-8),
            "that is the gradient of the mean; the exercise asks for the sum")
    require(np.allclose(got[:8], numeric, atol=1e-8),
            f"max error {np.abs(got[:8] - numeric).max():.2e} against finite differences")
    require(np.allclose(got, expected, atol=1e-8),
            f"max error {np.abs(got - expected).max():.2e} against torch autograd at the "
            "large logits (|x| = 40 and 800)")
    correct("matches finite differences of celib's binary_cross_entropy_with_logits, and "
            "torch autograd at logits up to ±800.")


@checker
def check_ex2(gradient) -> None:
    """Exercise 2: dL/dZ of F.cross_entropy(Z, labels, label_smoothing=0.1), mean reduction."""
    Z, labels, _, _, _ = h.example_batch()
    expected = cg.cross_entropy_grad(Z, labels, label_smoothing=0.1)
    got = as_array(gradient, "the gradient", shape=Z.shape)
    unsmoothed = cg.cross_entropy_grad(Z, labels)
    require(not np.allclose(got, unsmoothed, atol=1e-12),
            "that is the gradient without label smoothing: which target p does smoothing use?")
    require(not np.allclose(got, expected * len(Z), atol=1e-12),
            "that is the gradient of the sum: the mean divides by N")
    require(np.allclose(got, expected, atol=1e-15),
            "not the gradient of the smoothed loss: p = (1 - eps) e_y + eps / C, all C classes")
    correct("(q - p) / N with p = (1 - eps) e_y + eps / C.")


@checker
def check_ex3(weighted_grad) -> None:
    """Exercise 3: weighted_grad(Z, target, w, ignore_index) for the 'mean' cross-entropy."""
    r = np.random.default_rng(7)
    Zc = r.normal(size=(8, 5))
    tc = np.array([0, 4, -1, 2, 2, -1, 1, 3])
    wc = r.uniform(0.5, 2.0, size=5)
    Zt = torch.tensor(Zc, requires_grad=True)
    F.cross_entropy(Zt, torch.from_numpy(tc), weight=torch.from_numpy(wc),
                    ignore_index=-1).backward()
    expected = Zt.grad.numpy()
    got = as_array(call_reader(weighted_grad, Zc.copy(), tc.copy(), wc.copy(), -1,
                         what="weighted_grad"), "weighted_grad(...)", shape=Zc.shape)
    require(np.all(got[tc == -1] == 0), "ignored rows must get a zero gradient")
    require(np.allclose(got, expected, atol=1e-15),
            f"max error {np.abs(got - expected).max():.2e} against torch autograd: what does "
            "'mean' divide by when there are weights and ignored targets?")
    correct("matches torch autograd.")


def _ex4_data():
    X, y = h.clouds(h.CENTRES, n_per_class=100, seed=0)
    return h.with_bias(X), y, h.check_weights()


@checker
def check_ex4(H) -> None:
    """Exercise 4: the (9, 9) Hessian of softmax regression's mean cross-entropy at W_check."""
    X1, y, W = _ex4_data()
    C, D = W.shape

    def loss(flat):
        return F.cross_entropy(torch.from_numpy(X1) @ flat.reshape(C, D).T, torch.from_numpy(y))

    expected = hessian(loss, torch.from_numpy(W.reshape(-1))).numpy()
    H = as_array(H, "the Hessian", shape=expected.shape)
    require(not np.allclose(H, expected * len(y), atol=1e-9),
            "that is the Hessian of the sum: the loss is the mean over the examples")
    require(np.allclose(H, expected, atol=1e-12),
            f"max error {np.abs(H - expected).max():.2e} against torch's Hessian: check the "
            "order of the Kronecker factors (W is flattened row by row) and the -q q^T term")
    eigenvalues = np.linalg.eigvalsh(H)
    require(np.all(np.abs(eigenvalues[:D]) < 1e-12) and eigenvalues[D] > 1e-6,
            f"eigenvalues {eigenvalues[:D + 1]}: expected {D} zeros, the rest positive")
    correct(f"matches torch's Hessian; positive semidefinite, with exactly {D} eigenvalues 0 "
            "up to rounding (|λ| < 1e-12).")


def _ex5_objective(theta: np.ndarray) -> float:
    """Exercise 5's objective at theta (9 numbers: W row by row, then b), in float64."""
    X, y = h.clouds(h.CENTRES, n_per_class=100, seed=0)
    with torch.no_grad():
        value = h.bias_objective(torch.from_numpy(theta), torch.from_numpy(X),
                                 torch.from_numpy(y), 0.01)
    return float(value)


@checker
def check_ex5(v) -> None:
    """Exercise 5: a unit vector (W row by row, then b) along which softmax regression with an
    unpenalised bias and 0.01 ||W||^2 is flat: the shift of every bias by the same number."""
    v = as_array(v, "v", shape=(9,))
    length = float(np.linalg.norm(v))
    require(np.all(np.isfinite(v)) and length > 1e-12,
            "v must be a nonzero direction (9 finite numbers)")
    require(abs(length - 1) < 1e-6, f"v has length {length:.4g}: divide it by its length")
    v_W, v_b = v[:6].reshape(3, 2), v[6:]
    rows_equal = np.allclose(v_W, v_W[0], atol=1e-9)
    require(np.allclose(v_W, 0, atol=1e-9) or not rows_equal,
            "shifting every row of W by the same vector adds the same number to all logits, so "
            "the cross-entropy alone is flat that way (exercise 4), but the penalty "
            "lambda ||W||^2 is not: which parameters does the penalty leave out?")
    require(np.allclose(v_W, 0, atol=1e-9),
            "along this v the weights W change, and the penalty lambda ||W||^2 curves every "
            "direction that moves W")
    require(np.allclose(v_b, v_b[0], atol=1e-9),
            "changing one class's bias more than another's changes the differences between the "
            "logits, so the softmax changes")
    start = np.random.default_rng(8).normal(size=9)
    values = [_ex5_objective(start + s * v) for s in (-5.0, 0.0, 5.0)]
    assert max(values) - min(values) < 1e-12          # the claim, measured
    correct("every bias shifted by the same number moves every logit together; the softmax does "
            "not see it and the penalty does not include b. The objective is flat along v (the "
            "same value at -5 v, 0 and +5 v), so its minimisers form a line, not a point.")
