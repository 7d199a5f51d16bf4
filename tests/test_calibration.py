"""celib.calibration against torchmetrics, torch autograd and direct O(n·M) loops.

Oracles:
- ECE/MCE/RMS: a direct loop over the M bins and the n examples (right-closed bins, as Guo et
  al.), for every norm and both binning strategies; and torchmetrics'
  ``multiclass_calibration_error``, which bins left-closed, [(m-1)/M, m/M), and puts a confidence
  of exactly 1.0 in an extra bin (torchmetrics issue #3510). Where no confidence is within
  1e-6 of an edge and none is 1.0 the two must agree (to 1e-6: torchmetrics casts confidences to
  float32); where confidences sit on edges, the difference is computed and asserted.
- focal loss: torch, written out from log_softmax; its gradient: torch autograd (float64,
  rtol 1e-10) and central differences.
- fit_temperature: a brute-force grid over T, and the slope of the NLL at T.
"""

from __future__ import annotations

import itertools
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st

from celib import calibration as cc
from celib import functional as cf
from celib import grad as cg

torch.set_num_threads(1)
NORMS = ("l1", "l2", "max")


def _random_probs(rng, n, c, sharp=3.0):
    z = sharp * rng.standard_normal((n, c))
    return cf.softmax(z, axis=1), rng.integers(0, c, n)


def _loop_ece(probs, labels, n_bins, norm, edges=None):
    """The definition, one bin and one example at a time: B_m = (edges[m], edges[m+1]]."""
    probs = np.asarray(probs, np.float64)
    edges = np.linspace(0, 1, n_bins + 1) if edges is None else edges
    n = len(labels)
    total, worst = 0.0, 0.0
    for m in range(n_bins):
        lo, hi = edges[m], edges[m + 1]
        members = []
        for i in range(n):
            c = probs[i].max()
            inside = (lo < c <= hi) or (m == 0 and c <= lo)
            if inside:
                members.append(i)
        if not members:
            continue
        acc = np.mean([probs[i].argmax() == labels[i] for i in members])
        conf = np.mean([probs[i].max() for i in members])
        gap = abs(acc - conf)
        worst = max(worst, gap)
        total += len(members) / n * (gap if norm == "l1" else gap ** 2)
    return {"l1": total, "l2": np.sqrt(total), "max": worst}[norm]


def _torchmetrics(probs, labels, n_bins, norm):
    from torchmetrics.functional.classification import multiclass_calibration_error
    return float(multiclass_calibration_error(
        torch.as_tensor(np.asarray(probs, np.float32)), torch.as_tensor(labels),
        num_classes=np.shape(probs)[1], n_bins=n_bins, norm=norm))


# ---------------------------------------------------------------------------------------------
# ECE: loops, torchmetrics, the edges
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("n_bins", [1, 2, 10, 15])
@pytest.mark.parametrize("seed", [0, 1])
def test_ece_matches_direct_loop(norm, n_bins, seed):
    probs, labels = _random_probs(np.random.default_rng(seed), 300, 4)
    got = cc.expected_calibration_error(probs, labels, n_bins=n_bins, norm=norm)
    assert got == pytest.approx(_loop_ece(probs, labels, n_bins, norm), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("norm", NORMS)
def test_quantile_bins_match_direct_loop(norm):
    probs, labels = _random_probs(np.random.default_rng(3), 257, 5)
    bins = cc.reliability_bins(probs, labels, n_bins=8, strategy="quantile")
    assert bins.edges[0] == 0 and bins.edges[-1] == 1
    # equal mass: every bin within one example of N / M (no repeated confidences here)
    assert np.all(np.abs(bins.counts - 257 / 8) <= 1)
    got = cc.expected_calibration_error(probs, labels, n_bins=8, norm=norm, strategy="quantile")
    assert got == pytest.approx(_loop_ece(probs, labels, 8, norm, bins.edges), rel=1e-12)


def test_bins_numbers_match_loop():
    probs, labels = _random_probs(np.random.default_rng(4), 200, 3)
    bins = cc.reliability_bins(probs, labels, n_bins=10)
    conf, right = probs.max(1), probs.argmax(1) == labels
    for m in range(10):
        inside = (conf > m / 10) & (conf <= (m + 1) / 10)
        assert bins.counts[m] == inside.sum()
        if inside.any():
            assert bins.accuracies[m] == pytest.approx(right[inside].mean())
            assert bins.confidences[m] == pytest.approx(conf[inside].mean())
        else:
            assert np.isnan(bins.accuracies[m]) and np.isnan(bins.confidences[m])
    assert bins.counts.sum() == 200
    np.testing.assert_array_equal(bins.gaps, bins.accuracies - bins.confidences)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("n_bins", [5, 15])
def test_equal_to_torchmetrics_away_from_edges(norm, n_bins):
    probs, labels = _random_probs(np.random.default_rng(5), 500, 10)
    probs = probs.astype(np.float32).astype(np.float64)
    probs /= probs.sum(1, keepdims=True)
    conf = probs.max(1)
    edges = np.linspace(0, 1, n_bins + 1)
    far = np.min(np.abs(conf[:, None] - edges[None, :]), axis=1) > 1e-6
    probs, labels = probs[far], labels[far]
    assert far.sum() > 450 and probs.max() < 1
    ours = cc.expected_calibration_error(probs, labels, n_bins=n_bins, norm=norm)
    assert ours == pytest.approx(_torchmetrics(probs, labels, n_bins, norm), abs=1e-6)


def test_differs_from_torchmetrics_on_edges_and_at_one():
    # With M = 4 the edges 0.25, 0.5, 0.75, 1.0 are exact in float32 and float64, so
    # confidences of exactly 0.75 and 1.0 sit on edges in both libraries.
    probs = np.array([[1.0, 0.0], [1.0, 0.0], [0.75, 0.25], [0.75, 0.25], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0, 1])
    ours = cc.reliability_bins(probs, labels, n_bins=4)
    # right-closed: 0.75 in bin (0.5, 0.75], 1.0 in (0.75, 1.0]
    assert ours.counts.tolist() == [0, 0, 3, 2]
    # torchmetrics: [0.5, 0.75) holds 0.6; [0.75, 1.0) holds 0.75; 1.0 is in a fifth bin.
    n = 5
    tm_expected = (1 / n) * abs(0 - 0.6) + (2 / n) * abs(1 - 0.75) + (2 / n) * abs(0.5 - 1.0)
    assert _torchmetrics(probs, labels, 4, "l1") == pytest.approx(tm_expected, abs=1e-6)
    # ours: bin 3 {0.6, 0.75, 0.75}: acc 2/3, conf 0.7; bin 4 {1.0, 1.0}: acc 1/2, conf 1.
    ours_expected = (3 / n) * abs(2 / 3 - 0.7) + (2 / n) * abs(0.5 - 1.0)
    assert ours.error("l1") == pytest.approx(ours_expected, rel=1e-12)
    assert ours.error("l1") == pytest.approx(_loop_ece(probs, labels, 4, "l1"), rel=1e-12)
    assert abs(ours.error("l1") - tm_expected) > 0.1
    # max norm: torchmetrics sees a gap of 0.6 (the lone 0.6); ours never isolates it.
    assert _torchmetrics(probs, labels, 4, "max") == pytest.approx(0.6, abs=1e-6)
    assert ours.error("max") == pytest.approx(0.5, rel=1e-12)


def test_one_lands_in_last_bin():
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    bins = cc.reliability_bins(probs, np.array([0, 2]), n_bins=15)
    assert bins.counts[-1] == 2 and bins.counts[:-1].sum() == 0
    assert cc.expected_calibration_error(probs, np.array([0, 2])) == pytest.approx(0.5)


def test_perfect_and_worst():
    probs = np.eye(3)[[0, 1, 2, 0]]
    assert cc.expected_calibration_error(probs, [0, 1, 2, 0]) == 0.0
    assert cc.expected_calibration_error(probs, [1, 2, 0, 1]) == 1.0
    assert cc.brier_score(probs, [0, 1, 2, 0]) == 0.0
    assert cc.brier_score(probs, [1, 2, 0, 1]) == 2.0


@given(st.integers(0, 2**31 - 1), st.integers(1, 30))
def test_norms_are_ordered(seed, n_bins):
    probs, labels = _random_probs(np.random.default_rng(seed), 50, 3)
    l1, l2, mx = (cc.expected_calibration_error(probs, labels, n_bins, norm) for norm in NORMS)
    assert 0 <= l1 <= l2 * (1 + 1e-12) and l2 <= mx * (1 + 1e-12) and mx <= 1


# ---------------------------------------------------------------------------------------------
# Brier score
# ---------------------------------------------------------------------------------------------

def test_brier_matches_loop_and_torch():
    probs, labels = _random_probs(np.random.default_rng(6), 100, 7)
    loop = np.mean([sum((probs[i, c] - (c == labels[i])) ** 2 for c in range(7))
                    for i in range(100)])
    got = cc.brier_score(probs, labels)
    assert got == pytest.approx(loop, rel=1e-12)
    t = ((torch.tensor(probs) - F.one_hot(torch.tensor(labels), 7)) ** 2).sum(1).mean()
    assert got == pytest.approx(float(t), rel=1e-12)


def test_proper_scoring_rules_minimised_by_truth():
    p = np.array([0.6, 0.3, 0.1])
    grid = [np.array([a, b, 1 - a - b]) for a in np.linspace(0.01, 0.98, 60)
            for b in np.linspace(0.01, 0.98, 60) if a + b < 0.99]
    def expected_brier(q):
        return sum(p[y] * np.sum((q - np.eye(3)[y]) ** 2) for y in range(3))
    best = min(grid, key=expected_brier)
    assert np.allclose(best, p, atol=0.02)


# ---------------------------------------------------------------------------------------------
# fit_temperature
# ---------------------------------------------------------------------------------------------

def _nll(z, y, T):
    return float(cf.cross_entropy(z / T, y))


@pytest.mark.parametrize("scale", [0.3, 1.0, 5.0, 40.0])
def test_fit_temperature_beats_grid(scale):
    rng = np.random.default_rng(7)
    y = rng.integers(0, 5, 400)
    z = rng.standard_normal((400, 5)) + 1.5 * np.eye(5)[y]
    z = scale * z
    T = cc.fit_temperature(z, y)
    grid = np.geomspace(T / 3, T * 3, 2001)
    nlls = [_nll(z, y, t) for t in grid]
    assert _nll(z, y, T) <= min(nlls) + 1e-12
    assert abs(grid[int(np.argmin(nlls))] / T - 1) < 2e-3
    # the slope of the NLL in β = 1/T vanishes there
    assert abs(cc._nll_slope(z, y, 1 / T)) < 1e-9 * np.abs(z).max()
    # scaling the logits by s scales T by s
    assert cc.fit_temperature(2 * z, y) == pytest.approx(2 * T, rel=1e-8)


def test_fit_temperature_matches_torch_lbfgs():
    rng = np.random.default_rng(8)
    y = rng.integers(0, 3, 300)
    z = 4 * rng.standard_normal((300, 3)) + 2 * np.eye(3)[y]
    T = cc.fit_temperature(z, y)
    logT = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([logT], lr=1, max_iter=200, tolerance_grad=1e-14,
                            tolerance_change=1e-16, line_search_fn="strong_wolfe")
    zt, yt = torch.tensor(z), torch.tensor(y)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(zt / logT.exp(), yt)
        loss.backward()
        return loss
    opt.step(closure)
    assert T == pytest.approx(float(logT.detach().exp()), rel=1e-6)


def test_fit_temperature_keeps_accuracy_and_int_logits():
    z = np.array([[3, 0], [0, 2], [1, 0], [0, 1]])
    y = np.array([0, 1, 1, 1])
    T = cc.fit_temperature(z, y)
    assert T > 0
    np.testing.assert_array_equal((z / T).argmax(1), z.argmax(1))


@pytest.mark.parametrize("logits, labels, match", [
    (np.zeros((3, 2)), np.array([0, 1, 0, 1]), "shape"),          # mismatched shapes
    (np.zeros((3, 2)), np.array([[0], [1], [0]]), "shape"),       # a column of labels
    (np.zeros(4), np.array([0, 1, 0, 1]), "shape"),               # 1-d logits
    (np.zeros((0, 3)), np.zeros(0, np.int64), "N >= 1"),          # no rows
    (np.zeros((3, 1)), np.array([0, 0, 0]), "at least 2 classes"),
    (np.array([[0.0, np.inf], [1, 0]]), np.array([0, 1]), "finite"),
    (np.array([[0.0, np.nan], [1, 0]]), np.array([0, 1]), "finite"),
    (np.zeros((2, 2)), np.array([0.0, 1.0]), "integer"),          # float labels
    (np.array([[1.0, 0], [0, 1]]), np.array([0, 1]), "T -> 0"),   # separable
    (np.array([[0.0, 1], [1, 0]]), np.array([0, 1]), "T -> inf"), # worse than chance
    (np.zeros((2, 2)), np.array([0, 1]), "T -> inf"),             # constant logits
    (np.array(["a", "b"]), np.array([0]), "dtype"),
])
def test_fit_temperature_value_errors(logits, labels, match):
    with pytest.raises(ValueError, match=match):
        cc.fit_temperature(logits, labels)


@pytest.mark.parametrize("bad", [0.0, -1e-3, 1.0, np.nan, np.inf, 1e-16])
def test_fit_temperature_rtol(bad):
    with pytest.raises(ValueError, match="rtol"):
        cc.fit_temperature([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], [0, 1, 1], rtol=bad)


@pytest.mark.parametrize("bad", ["x", None, True, np.False_, [1e-6]])
def test_fit_temperature_rtol_that_is_not_a_number(bad):
    with pytest.raises(TypeError, match=r"rtol must be a real number"):
        cc.fit_temperature([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], [0, 1, 1], rtol=bad)


@pytest.mark.parametrize("label", [2, -1])
def test_fit_temperature_label_out_of_range(label):
    with pytest.raises(IndexError, match=rf"Target {label} is out of bounds.*\[0, 2\)"):
        cc.fit_temperature(np.zeros((2, 2)), np.array([0, label]))


# ---------------------------------------------------------------------------------------------
# Bad input to the metrics
# ---------------------------------------------------------------------------------------------

GOOD = np.array([[0.7, 0.3], [0.2, 0.8]])


@pytest.mark.parametrize("fn", [cc.expected_calibration_error, cc.brier_score,
                                cc.reliability_bins])
@pytest.mark.parametrize("probs, labels, match", [
    (np.array([[2.0, -1.0], [0.0, 1.0]]), [0, 1], "logits"),          # logits passed
    (np.array([[0.5, 0.4], [0.2, 0.8]]), [0, 1], "sum to 1"),
    (np.array([[np.nan, 0.5], [0.2, 0.8]]), [0, 1], "finite"),
    (np.array([0.7, 0.3]), [0], r"\(N, C\)"),
    (np.zeros((0, 2)), [], r"\(N, C\)"),
    (GOOD, [0, 1, 1], "shape"),
    (GOOD, [0.0, 1.0], "integer"),
    (GOOD.astype(complex), [0, 1], "dtype"),
])
def test_metric_value_errors(fn, probs, labels, match):
    with pytest.raises(ValueError, match=match):
        fn(probs, np.asarray(labels))


@pytest.mark.parametrize("fn", [cc.expected_calibration_error, cc.brier_score,
                                cc.reliability_bins])
def test_metric_label_out_of_range(fn):
    with pytest.raises(IndexError, match=r"Target 2 is out of bounds.*\[0, 2\)"):
        fn(GOOD, np.array([0, 2]))


@pytest.mark.parametrize("kwargs, match", [
    ({"n_bins": 0}, "n_bins"), ({"n_bins": -3}, "n_bins"),
    ({"n_bins": cc.MAX_BINS + 1}, "n_bins"), ({"n_bins": 10**9}, "n_bins"),
    ({"norm": "l3"}, "norm"), ({"norm": None}, "norm"), ({"norm": np.array(["l1", "l2"])}, "norm"),
    ({"strategy": "equal"}, "strategy"), ({"strategy": ["uniform"]}, "strategy"),
])
def test_ece_option_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cc.expected_calibration_error(GOOD, np.array([0, 1]), **kwargs)
    with pytest.raises(ValueError, match="norm"):
        cc.reliability_bins(GOOD, np.array([0, 1])).error("L1")


@pytest.mark.parametrize("n_bins", [2.5, 2.0, True, "15", None])
def test_n_bins_that_is_not_an_integer(n_bins):
    for fn in (cc.expected_calibration_error, cc.reliability_bins):
        with pytest.raises(TypeError, match=r"n_bins must be a positive integer"):
            fn(GOOD, np.array([0, 1]), n_bins=n_bins)


def test_largest_n_bins_is_quick():
    bins = cc.reliability_bins(GOOD, np.array([0, 1]), n_bins=cc.MAX_BINS)
    assert bins.counts.sum() == 2 and len(bins.edges) == cc.MAX_BINS + 1
    assert cc.reliability_bins(GOOD, [0, 1], n_bins=np.int64(4)).counts.tolist() == [0, 0, 1, 1]


# ---------------------------------------------------------------------------------------------
# Focal loss and its gradient
# ---------------------------------------------------------------------------------------------

def _torch_focal(z, y, gamma, alpha, reduction):
    zt = torch.tensor(z, requires_grad=True)
    logp = F.log_softmax(zt, dim=1)
    logpt = logp.gather(1, torch.tensor(y)[:, None])[:, 0]
    per = -(1 - logpt.exp()) ** gamma * logpt
    if alpha is not None:
        per = per * torch.tensor(alpha)[torch.tensor(y)]
    loss = {"mean": per.mean, "sum": per.sum, "none": per.sum}[reduction]()
    loss.backward()
    return per.detach().numpy(), float(loss.detach()), zt.grad.numpy()


@pytest.mark.parametrize("gamma, alpha, reduction", list(itertools.product(
    [0.0, 0.5, 1.0, 2.0, 3.0], [None, [0.25, 0.5, 1.0, 2.0]], ["mean", "sum", "none"])))
def test_focal_matches_torch(gamma, alpha, reduction):
    rng = np.random.default_rng(9)
    z, y = 3 * rng.standard_normal((40, 4)), rng.integers(0, 4, 40)
    per, total, grad = _torch_focal(z, y, gamma, alpha, reduction)
    got = cc.focal_loss(z, y, gamma=gamma, alpha=alpha, reduction=reduction)
    expected = per if reduction == "none" else total
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    g = cc.focal_loss_grad(z, y, gamma=gamma, alpha=alpha, reduction=reduction)
    np.testing.assert_allclose(g, grad, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_grad_finite_differences(gamma):
    rng = np.random.default_rng(10)
    z, y = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    num = cg.numerical_grad(lambda v: float(cc.focal_loss(v, y, gamma=gamma)), z)
    np.testing.assert_allclose(cc.focal_loss_grad(z, y, gamma=gamma), num, atol=1e-8)


def test_focal_float32_and_shapes():
    rng = np.random.default_rng(11)
    z = rng.standard_normal((3, 4, 5, 2)).astype(np.float32)
    y = rng.integers(0, 4, (3, 5, 2))
    zt = torch.tensor(z, requires_grad=True)
    logpt = F.log_softmax(zt, 1).gather(1, torch.tensor(y)[:, None])[:, 0]
    loss = (-(1 - logpt.exp()) ** 2 * logpt).mean()
    loss.backward()
    got = cc.focal_loss(z, y)
    assert got.dtype == np.float32
    assert float(got) == pytest.approx(float(loss.detach()), rel=1e-6)
    g = cc.focal_loss_grad(z, y)
    assert g.dtype == np.float32 and g.shape == z.shape
    np.testing.assert_allclose(g, zt.grad.numpy(), rtol=1e-5, atol=1e-7)
    per = cc.focal_loss(z, y, reduction="none")
    assert per.shape == y.shape
    # one logit vector, 0-d target
    v = cc.focal_loss(z[0, :, 0, 0], np.int64(y[0, 0, 0]), reduction="none")
    assert v.shape == () and float(v) == pytest.approx(float(per[0, 0, 0]), rel=1e-6)


def test_gamma_zero_is_cross_entropy():
    rng = np.random.default_rng(12)
    z, y = 5 * rng.standard_normal((64, 10)), rng.integers(0, 10, 64)
    for reduction in ("mean", "sum", "none"):
        np.testing.assert_allclose(cc.focal_loss(z, y, gamma=0.0, reduction=reduction),
                                   cf.cross_entropy(z, y, reduction=reduction), rtol=1e-14)
    np.testing.assert_allclose(cc.focal_loss_grad(z, y, gamma=0.0),
                               cg.cross_entropy_grad(z, y), rtol=1e-13, atol=1e-17)
    w = rng.uniform(0.1, 2, 10)
    np.testing.assert_allclose(cc.focal_loss(z, y, gamma=0.0, alpha=w),
                               cf.cross_entropy(z, y, weight=w, reduction="sum") / 64, rtol=1e-14)


def test_focal_saturated_is_finite():
    z = np.array([[800.0, 0.0], [0.0, 800.0], [0.0, 0.0]])
    y = np.array([0, 0, 1])
    loss = cc.focal_loss(z, y, gamma=0.5, reduction="none")
    assert np.all(np.isfinite(loss)) and loss[0] == 0 and loss[1] == pytest.approx(800.0)
    g = cc.focal_loss_grad(z, y, gamma=0.5, reduction="none")
    assert np.all(np.isfinite(g)) and np.all(g[0] == 0)


@pytest.mark.parametrize("kwargs, match", [
    ({"gamma": -1.0}, "gamma"), ({"gamma": np.inf}, "gamma"), ({"gamma": np.nan}, "gamma"),
    ({"alpha": 0.25}, "scalar"), ({"alpha": [1.0, 1.0]}, "alpha"),
    ({"alpha": [1.0, -1.0, 1.0]}, "alpha"), ({"reduction": "avg"}, "reduction"),
])
@pytest.mark.parametrize("fn", [cc.focal_loss, cc.focal_loss_grad])
def test_focal_value_errors(fn, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fn(np.zeros((2, 3)), np.array([0, 1]), **kwargs)


@pytest.mark.parametrize("gamma", ["2", None, True, np.True_, [2.0]])
@pytest.mark.parametrize("fn", [cc.focal_loss, cc.focal_loss_grad])
def test_focal_gamma_that_is_not_a_number(fn, gamma):
    with pytest.raises(TypeError, match=r"gamma must be a real number"):
        fn(np.zeros((2, 3)), np.array([0, 1]), gamma=gamma)


@pytest.mark.parametrize("fn", [cc.focal_loss, cc.focal_loss_grad])
def test_focal_input_errors(fn):
    with pytest.raises(ValueError, match="floating"):
        fn(np.zeros((2, 3), np.int64), np.array([0, 1]))
    with pytest.raises(ValueError, match="int64"):
        fn(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        fn(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(IndexError, match=r"Target 3 is out of bounds.*\[0, 3\)"):
        fn(np.zeros((2, 3)), np.array([0, 3]))


# ---------------------------------------------------------------------------------------------
# Exact bin edges (issue 20): a confidence of k/M is on edge k, whatever M
# ---------------------------------------------------------------------------------------------

def _exact_bin(c: float, m: int) -> int:
    """The 0-based right-closed bin of confidence c among M, in exact arithmetic: the bin k - 1
    if c is the double nearest some k/M (the value a user computes as k / M), else the smallest
    j with c <= j/M as rationals, minus 1 (0 goes to the first bin)."""
    for k in range(m + 1):
        if c == k / m:
            return max(k - 1, 0)
    return max(math.ceil(Fraction(c) * m) - 1, 0)


def _rows_with_confidences(conf):
    """Probability rows (N, 2 + K) whose largest entry, the confidence, is conf[i] > 0."""
    conf = np.asarray(conf, np.float64)
    spread = int(np.ceil(1 / conf.min())) + 1
    rest = (1 - conf) / spread
    return np.column_stack([conf] + [rest] * spread)


@pytest.mark.parametrize("m", list(range(1, 61)) + [97, 100, 1000, 4097])
def test_confidence_k_over_m_lands_in_bin_k(m):
    conf = np.arange(1, m + 1) / m
    bins = cc.reliability_bins(_rows_with_confidences(conf), np.zeros(m, np.int64), n_bins=m)
    assert bins.counts.tolist() == [1] * m
    np.testing.assert_array_equal(bins.confidences, conf)
    np.testing.assert_array_equal(bins.edges, [k / m for k in range(m + 1)])


def test_issue_example_five_sixths_is_in_the_fifth_bin():
    # np.linspace(0, 1, 7)[5] is one ulp below 5/6: 5/6 used to land in the sixth bin
    assert np.linspace(0, 1, 7)[5] < 5 / 6
    assert torch.linspace(0, 1, 7, dtype=torch.float64)[4].item() != 4 / 6  # torchmetrics' edges
    bins = cc.reliability_bins([[5 / 6, 1 / 6]], [0], n_bins=6)
    assert bins.counts.tolist() == [0, 0, 0, 0, 1, 0]


@given(st.integers(1, 300), st.lists(st.integers(0, 2**20), min_size=1, max_size=20),
       st.integers(-2, 2))
def test_bins_match_exact_arithmetic(m, numerators, ulps):
    # confidences on and next to the edges, a few ulps away, and anywhere between
    conf = np.array([n / 2**20 for n in numerators]) * 0.5 + 0.5
    conf = np.array([_nudge(c, ulps) for c in conf]).clip(0.5, 1.0)
    bins = cc.reliability_bins(_rows_with_confidences(conf), np.zeros(len(conf), np.int64),
                               n_bins=m)
    expected = np.bincount([_exact_bin(float(c), m) for c in conf], minlength=m)
    assert bins.counts.tolist() == expected.tolist()


def _nudge(c: float, ulps: int) -> float:
    for _ in range(abs(ulps)):
        c = math.nextafter(c, 2.0 if ulps > 0 else 0.0)
    return c


@given(st.integers(1, 200), st.integers(0, 200))
def test_bins_of_k_over_m_with_hypothesis(m, k):
    k = min(k, m)
    c = k / m
    if c < 0.5:
        return  # the rows' construction wants the confidence to be the largest entry
    bins = cc.reliability_bins(_rows_with_confidences([c]), [0], n_bins=m)
    assert int(np.argmax(bins.counts)) == _exact_bin(c, m) == max(k - 1, 0)


# ---------------------------------------------------------------------------------------------
# No RuntimeWarning on well-defined inputs; the focal gradient where p_t underflows
# ---------------------------------------------------------------------------------------------

def _torch_focal_grad(z, y, gamma):
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    logp = torch.log_softmax(zt, 1)
    logpt = logp.gather(1, torch.as_tensor(y)[:, None])[:, 0]
    (-(1 - logpt.exp()) ** gamma * logpt).sum().backward()
    return zt.grad.numpy()


@pytest.mark.parametrize("row", [[1e308, -1e308, 0.0], [-np.inf, -np.inf, 0.0]])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_grad_where_p_t_underflows(row, gamma):
    z, y = np.array([row, [0.0, 1.0, 2.0]]), np.array([1, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = cc.focal_loss_grad(z, y, gamma=gamma, reduction="sum")
    ref = _torch_focal_grad(z, y, gamma)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-12)  # an ordinary row: torch's
    q = cf.softmax(z[:1], axis=1)[0]
    # p_t = 0: the limit of the factor p_t log p_t / (1 - p_t) is 0, the gradient q - e_y
    np.testing.assert_array_equal(got[0], q - np.eye(3)[1])
    if gamma == 0:
        np.testing.assert_array_equal(ref[0], got[0])  # cross-entropy: torch agrees
    else:
        assert np.all(np.isnan(ref[0]))  # deliberate difference: torch multiplies 0 by inf


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_metrics_give_no_runtime_warning(strategy):
    cases = [np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([[1 - 5e-324, 5e-324]]), np.eye(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for probs in cases:
            labels = np.zeros(len(probs), np.int64)
            for n_bins, norm in itertools.product((1, 3, 100), NORMS):
                cc.expected_calibration_error(probs, labels, n_bins, norm, strategy)
            cc.brier_score(probs, labels)


# --------------------------------------------------------------------------------------------
# Consistency null, classwise ECE, debiased CE, Brier decomposition, recalibration maps (issue 22)
# --------------------------------------------------------------------------------------------

def _loop_bin(value, m):
    """Right-closed uniform bin of one probability, written out: ((k-1)/M, k/M] -> k - 1."""
    for k in range(m):
        if value <= Fraction(k + 1, m):
            return k
    return m - 1


def _loop_class_bins(probs, labels, m):
    """{(c, k): [(q_ic, [y_i = c]) ...]} one example and one class at a time."""
    bins = {}
    for i in range(len(labels)):
        for c in range(probs.shape[1]):
            key = (c, _loop_bin(Fraction(float(probs[i, c])), m))
            bins.setdefault(key, []).append((probs[i, c], float(labels[i] == c)))
    return bins


def test_consistency_null_is_the_ece_of_labels_drawn_from_q():
    probs, _ = _random_probs(np.random.default_rng(0), 300, 4)
    got = cc.consistency_null_ece(probs, n_bins=10, reps=20, seed=3)
    rng = np.random.default_rng(3)
    for r in range(20):                       # the definition: y_i ~ q_i by inverse CDF
        u = rng.random(len(probs))
        y = np.array([min(int(np.sum(u[i] > np.cumsum(probs[i]))), 3) for i in range(len(u))])
        assert got[r] == cc.expected_calibration_error(probs, y, 10)
    assert got.dtype == np.float64 and got.shape == (20,)
    np.testing.assert_array_equal(got, cc.consistency_null_ece(probs, 10, 20, 3))


def test_consistency_null_centres_on_the_bias_of_a_calibrated_model():
    # labels really drawn from q: the measured ECE is a draw from the same distribution
    rng = np.random.default_rng(1)
    probs, _ = _random_probs(rng, 2000, 10)
    y = np.array([rng.choice(10, p=row) for row in probs])
    null = cc.consistency_null_ece(probs, reps=100)
    lo, hi = np.quantile(null, [0.01, 0.99])
    assert lo < cc.expected_calibration_error(probs, y) < hi and lo > 0


def test_classwise_ece_matches_a_loop_and_torchmetrics():
    from torchmetrics.functional.classification import binary_calibration_error
    rng = np.random.default_rng(2)
    for n, c, m in ((50, 3, 5), (400, 10, 15), (7, 2, 4)):
        probs, labels = _random_probs(rng, n, c)
        bins = _loop_class_bins(probs, labels, m)
        loop = sum(len(v) / n * abs(np.mean([o for _, o in v]) - np.mean([q for q, _ in v]))
                   for v in bins.values()) / c
        got = cc.classwise_ece(probs, labels, m)
        assert abs(got - loop) < 1e-12
        theirs = np.mean([float(binary_calibration_error(
            torch.tensor(probs[:, j]), torch.tensor((labels == j).astype(np.int64)), n_bins=m))
            for j in range(c)])                    # no probability on an edge: bins agree
        assert abs(got - theirs) < 1e-6


def test_classwise_ece_of_binary_is_twice_the_class_one_ece():
    # for C = 2 class 1's probability is 1 - class 0's: the two terms are equal
    probs, labels = _random_probs(np.random.default_rng(4), 200, 2)
    one = cc.classwise_ece(probs, labels, 10)
    bins = _loop_class_bins(probs, labels, 10)
    class0 = sum(len(v) / 200 * abs(np.mean([o for _, o in v]) - np.mean([q for q, _ in v]))
                 for (c, _), v in bins.items() if c == 0)
    assert abs(one - class0) < 1e-12


def _loop_debiased(probs, labels, m, strategy):
    bins = cc.reliability_bins(probs, labels, m, strategy)
    conf, right = probs.max(1), probs.argmax(1) == labels
    total = 0.0
    for k in range(m):
        lo, hi = bins.edges[k], bins.edges[k + 1]
        members = [i for i in range(len(labels))
                   if lo < conf[i] <= hi or (k == 0 and conf[i] <= lo)]
        if not members:
            continue
        acc, mean = np.mean(right[members]), np.mean(conf[members])
        var = acc * (1 - acc) / (len(members) - 1) if len(members) > 1 else 0.0
        total += len(members) / len(labels) * ((acc - mean) ** 2 - var)
    return total


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_debiased_matches_a_loop_and_torchmetrics(strategy):
    from torchmetrics.functional.classification.calibration_error import _ce_compute
    rng = np.random.default_rng(5)
    for n, c, m in ((60, 3, 5), (500, 10, 15)):
        probs, labels = _random_probs(rng, n, c)
        est = cc.debiased_calibration_error(probs, labels, m, strategy, squared=True)
        assert abs(est - _loop_debiased(probs, labels, m, strategy)) < 1e-12
        root = cc.debiased_calibration_error(probs, labels, m, strategy)
        assert root == math.sqrt(max(est, 0.0))
        if strategy == "uniform":   # torchmetrics' private debiased l2, left-closed bins
            theirs = _ce_compute(torch.tensor(probs.max(1)),
                                 torch.tensor((probs.argmax(1) == labels).astype(np.float64)),
                                 torch.tensor(np.arange(m + 1) / m), norm="l2", debias=True)
            assert abs(root - float(theirs)) < 1e-9


def test_debiased_is_centred_on_zero_for_a_calibrated_model():
    rng = np.random.default_rng(6)
    plugin, debiased = [], []
    for _ in range(40):
        probs, _ = _random_probs(rng, 500, 5, sharp=1.0)
        y = np.array([rng.choice(5, p=row) for row in probs])
        plugin.append(cc.expected_calibration_error(probs, y, 15, "l2", "quantile") ** 2)
        debiased.append(cc.debiased_calibration_error(probs, y, 15, squared=True))
    spread = np.std(debiased) / np.sqrt(len(debiased))
    assert abs(np.mean(debiased)) < 3 * spread < np.mean(plugin)
    assert min(debiased) < 0 < min(plugin)


def _loop_brier_terms(probs, labels, m):
    n = len(labels)
    bins = _loop_class_bins(probs, labels, m)
    base = [np.mean(labels == c) for c in range(probs.shape[1])]
    rel = res = wbv = wbc = 0.0
    for (c, _), members in bins.items():
        qs, os_ = np.array([q for q, _ in members]), np.array([o for _, o in members])
        rel += len(qs) / n * (qs.mean() - os_.mean()) ** 2
        res += len(qs) / n * (os_.mean() - base[c]) ** 2
        wbv += np.sum((qs - qs.mean()) ** 2) / n
        wbc += np.sum((qs - qs.mean()) * (os_ - os_.mean())) / n
    return rel, res, sum(b * (1 - b) for b in base), wbv, wbc


def test_brier_decomposition_matches_a_loop_and_sums_to_the_brier_score():
    rng = np.random.default_rng(7)
    for n, c, m in ((40, 3, 5), (300, 10, 15)):
        probs, labels = _random_probs(rng, n, c)
        d = cc.brier_decomposition(probs, labels, m)
        got = (d.reliability, d.resolution, d.uncertainty, d.within_variance,
               d.within_covariance)
        np.testing.assert_allclose(got, _loop_brier_terms(probs, labels, m), atol=1e-12)
        assert abs(d.total - cc.brier_score(probs, labels)) < 1e-12


def test_brier_decomposition_on_binned_forecasts_is_calibration_plus_refinement():
    # every probability at a bin centre of M = 10: each bin holds one value, the within-bin
    # terms vanish and Brier = REL + (UNC - RES) exactly
    rng = np.random.default_rng(8)
    menu = np.array([[0.05, 0.15, 0.35, 0.45], [0.65, 0.15, 0.15, 0.05],
                     [0.25, 0.25, 0.25, 0.25], [0.85, 0.05, 0.05, 0.05]])
    probs = menu[rng.integers(0, 4, 500)]
    labels = np.array([rng.choice(4, p=row) for row in probs])
    d = cc.brier_decomposition(probs, labels, 10)
    assert abs(d.within_variance) < 1e-15 and abs(d.within_covariance) < 1e-15
    assert abs(d.reliability + d.refinement - cc.brier_score(probs, labels)) < 1e-12


def test_histogram_binning_matches_a_loop_and_applies_to_new_data():
    rng = np.random.default_rng(9)
    probs, labels = _random_probs(rng, 300, 4)
    fit = cc.fit_histogram_binning(probs, labels, 8)
    bins = _loop_class_bins(probs, labels, 8)
    for c in range(4):
        for k in range(8):
            expect = (np.mean([o for _, o in bins[(c, k)]]) if (c, k) in bins
                      else (k + 0.5) / 8)
            assert abs(fit.values[c][k] - expect) < 1e-12
    new, _ = _random_probs(rng, 50, 4)
    out = fit.apply(new)
    raw = np.array([[fit.values[c][_loop_bin(Fraction(float(q)), 8)] for c, q in enumerate(row)]
                    for row in new])
    np.testing.assert_allclose(out, raw / raw.sum(1, keepdims=True), rtol=1e-12)
    assert fit.method == "histogram" and out.dtype == np.float64


def _pav(x, y):
    """Pool adjacent violators, written out: the fitted non-decreasing values at sorted x."""
    blocks = []                               # [sum, count]
    for v in np.asarray(y, np.float64)[np.argsort(x)]:
        blocks.append([v, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, n = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += n
    return np.concatenate([[s / n] * n for s, n in blocks])


def test_isotonic_matches_pool_adjacent_violators_and_is_monotone():
    rng = np.random.default_rng(10)
    probs, labels = _random_probs(rng, 200, 3)   # distinct probabilities: no ties
    fit = cc.fit_isotonic(probs, labels)
    for c in range(3):
        order = np.argsort(probs[:, c])
        fitted = np.interp(probs[order, c], fit.knots[c], fit.values[c])
        np.testing.assert_allclose(fitted, _pav(probs[:, c], labels == c), atol=1e-12)
        assert np.all(np.diff(fit.values[c]) >= 0)
    out = fit.apply(_random_probs(rng, 30, 3)[0])
    np.testing.assert_allclose(out.sum(1), 1.0, rtol=1e-12)
    assert fit.method == "isotonic"


def test_recalibration_maps_refuse_other_class_counts_and_zero_rows_become_uniform():
    fit = cc.fit_histogram_binning(np.array([[0.9, 0.1], [0.8, 0.2]]), np.array([1, 1]), 2)
    assert fit.apply(np.array([[0.9, 0.1]])).tolist() == [[0.0, 1.0]]   # class 0 never right
    edges = np.array([0.0, 0.5, 1.0])
    zero = cc.Recalibration("histogram", (edges, edges), (np.zeros(2), np.zeros(2)))
    assert zero.apply(np.array([[0.9, 0.1]])).tolist() == [[0.5, 0.5]]   # both maps give 0
    with pytest.raises(ValueError, match="C = 2"):
        fit.apply(np.full((1, 3), 1 / 3))


def test_new_metrics_check_their_arguments():
    probs = np.array([[0.7, 0.3], [0.2, 0.8]])
    with pytest.raises(TypeError, match="reps"):
        cc.consistency_null_ece(probs, reps=2.0)
    with pytest.raises(ValueError, match="reps"):
        cc.consistency_null_ece(probs, reps=0)
    with pytest.raises(ValueError, match="seed"):
        cc.consistency_null_ece(probs, seed=-1)
    with pytest.raises(TypeError, match="squared"):
        cc.debiased_calibration_error(probs, [0, 1], squared=1)
    with pytest.raises(IndexError, match="out of bounds"):
        cc.classwise_ece(probs, [0, 2])
    with pytest.raises(ValueError, match="logits"):
        cc.fit_isotonic(np.array([[2.0, -1.0]]), [0])
