"""celib.grad against torch autograd (every option) and against central differences."""

from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from celib import functional as cf
from celib import grad as cg
from tests.celib_testing import (
    TORCH_INDEX_DTYPES,
    REDUCTIONS,
    SMOOTHING,
    celib_kwargs,
    make_index_target,
    make_logits,
    make_prob_target,
    make_weight,
    n_classes,
    target_shape,
    torch_kwargs,
    assert_close,
    to_torch64,
    torch_np,
)


def torch_grad(x, target, **kw):
    """d/dx of torch's loss (summed when reduction='none'), in float64."""
    xt = to_torch64(x).requires_grad_(True)
    loss = F.cross_entropy(xt, to_torch64(target), **torch_kwargs(**kw))
    loss.sum().backward()
    return torch_np(xt.grad)


# --------------------------------------------------------------------------------------
# cross_entropy_grad vs torch autograd (the option grid is tests/test_option_grid.py)
# --------------------------------------------------------------------------------------

def test_grad_defaults(rng, dtype):
    x = make_logits(rng, (5, 4), dtype)
    t = np.array([0, 3, -100, 2, 1])
    assert_close(cg.cross_entropy_grad(x, t), torch_grad(x, t), dtype)


@pytest.mark.parametrize("int_dtype", [np.int8, np.int32, np.uint16, np.uint8, np.int64],
                         ids=lambda d: np.dtype(d).name)
def test_grad_target_dtypes_follow_torch(rng, dtype, int_dtype):
    x = make_logits(rng, (5, 4), dtype)
    t = np.array([0, 3, 1, 2, 1], dtype=int_dtype)
    if int_dtype in TORCH_INDEX_DTYPES:
        assert_close(cg.cross_entropy_grad(x, t, label_smoothing=0.1),
                     torch_grad(x, t.astype(np.int64), label_smoothing=0.1), dtype)
    else:
        with pytest.raises(ValueError, match="int64"):
            cg.cross_entropy_grad(x, t, label_smoothing=0.1)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ls", SMOOTHING)
def test_grad_scalar_target(rng, dtype, reduction, ls):
    x = make_logits(rng, (6,), dtype)
    for t in (np.array(4), 4):
        got = cg.cross_entropy_grad(x, t, reduction=reduction, label_smoothing=ls)
        ref = torch_grad(x, np.array(4), reduction=reduction, label_smoothing=ls)
        assert_close(got, ref, dtype)
    got = cg.cross_entropy_grad(x, np.array(-100), reduction=reduction, label_smoothing=ls)
    assert_close(got, torch_grad(x, np.array(-100), reduction=reduction, label_smoothing=ls), dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ls", SMOOTHING)
@pytest.mark.parametrize("use_weight", [False, True])
def test_grad_all_ignored_is_zero_not_nan(rng, dtype, reduction, ls, use_weight):
    # the loss is nan under 'mean', but torch autograd's gradient is exactly zero
    x = make_logits(rng, (4, 3, 2), dtype)
    t = np.full((4, 2), -100)
    w = make_weight(rng, 3, dtype) if use_weight else None
    kw = dict(weight=w, reduction=reduction, label_smoothing=ls)
    got = cg.cross_entropy_grad(x, t, **celib_kwargs(**kw))
    ref = torch_grad(x, t, **kw)
    np.testing.assert_array_equal(ref, 0.0)  # what torch really does
    assert_close(got, ref, dtype)
    assert not np.any(np.isnan(got))


@pytest.mark.parametrize("ls", [0.0, 0.2])
def test_grad_zero_total_weight_follows_autograd(rng, dtype, ls):
    # every target has weight 0 (none ignored): torch's 'mean' is 0/0 = nan and so is its
    # gradient (nan everywhere with log_softmax in between)
    x = make_logits(rng, (3, 4), dtype)
    t = np.array([0, 0, 0])
    w = np.array([0.0, 1.0, 1.0, 1.0], dtype=dtype)
    ref = torch_grad(x, t, weight=w, label_smoothing=ls)
    assert np.all(np.isnan(ref))
    assert_close(cg.cross_entropy_grad(x, t, weight=w, label_smoothing=ls), ref, dtype)


@pytest.mark.parametrize("ls", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_grad_zero_total_weight_without_denominator(rng, dtype, ls, reduction):
    # 'sum' / 'none' have no denominator: finite, and equal to autograd
    x = make_logits(rng, (3, 4), dtype)
    t = np.array([0, 0, 0])
    w = np.array([0.0, 1.0, 1.0, 1.0], dtype=dtype)
    ref = torch_grad(x, t, weight=w, label_smoothing=ls, reduction=reduction)
    got = cg.cross_entropy_grad(x, t, weight=w, label_smoothing=ls, reduction=reduction)
    assert_close(got, ref, dtype)


@pytest.mark.parametrize("shape", [(0, 4), (0, 4, 3), (2, 4, 0)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["index", "prob"])
def test_grad_empty_batch(dtype, shape, reduction, kind):
    x = np.zeros(shape, dtype=dtype)
    if kind == "index":
        y = np.zeros(target_shape(shape), dtype=np.int64)
    else:
        y = np.zeros(shape, dtype=dtype)
    got = cg.cross_entropy_grad(x, y, reduction=reduction)
    assert got.shape == shape and got.dtype == dtype


@pytest.mark.parametrize("K", [0, 1, 2])
def test_grad_huge_logits_finite(K):
    shape = (3, 4) + (2,) * K
    x = np.zeros(shape)
    x[:, 0] = 1e300
    x[:, 1] = -1e300
    t = np.ones((3,) + (2,) * K, dtype=np.int64)
    g = cg.cross_entropy_grad(x, t, reduction="sum", label_smoothing=0.1)
    assert np.all(np.isfinite(g))
    assert_close(g, torch_grad(x, t, reduction="sum", label_smoothing=0.1), np.float64)
    x32 = np.zeros((2, 3), dtype=np.float32)
    x32[:, 0] = 3e38
    x32[:, 2] = -3e38
    with np.errstate(over="ignore"):  # torch's own x - max overflows to -inf here
        g32 = cg.cross_entropy_grad(x32, np.array([2, 1]))
    assert g32.dtype == np.float32 and np.all(np.isfinite(g32))
    assert_close(g32, torch_grad(x32, np.array([2, 1])), np.float32)


def test_grad_does_not_mutate_inputs(rng):
    x = make_logits(rng, (4, 3, 2), np.float64)
    t = make_index_target(rng, x.shape, ignore_index=-100)
    w = make_weight(rng, 3, np.float64)
    copies = [a.copy() for a in (x, t, w)]
    cg.cross_entropy_grad(x, t, weight=w, label_smoothing=0.3)
    for a, c in zip((x, t, w), copies, strict=True):
        np.testing.assert_array_equal(a, c)


# --------------------------------------------------------------------------------------
# cross_entropy_grad vs numerical_grad (float64, random inputs, random options)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_grad_matches_central_differences(seed):
    rng = np.random.default_rng(seed)
    shape = [(5,), (4, 3), (3, 4, 2), (2, 3, 2, 2)][seed % 4]
    C = n_classes(shape)
    x = make_logits(rng, shape, np.float64, scale=2)
    prob = seed % 3 == 2 and len(shape) > 1
    if prob:
        t = make_prob_target(rng, shape, np.float64)
        kw = {}
    else:
        t = make_index_target(rng, shape, -100 if seed % 2 else None)
        kw = {"ignore_index": -100} if seed % 2 else {}
    if seed % 4 in (1, 2):
        kw["weight"] = make_weight(rng, C, np.float64)
    kw["reduction"] = REDUCTIONS[seed % 3]
    kw["label_smoothing"] = [0.0, 0.15, 1.0][(seed // 3) % 3]

    def f(v):
        return float(np.sum(cf.cross_entropy(v, t, **kw)))

    num = cg.numerical_grad(f, x)
    assert num.shape == x.shape
    np.testing.assert_allclose(cg.cross_entropy_grad(x, t, **kw), num, rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------------------
# numerical_grad itself
# --------------------------------------------------------------------------------------


def test_numerical_grad_of_polynomial(rng):
    x = rng.standard_normal((3, 4))
    g = cg.numerical_grad(lambda v: float(np.sum(v**3)), x)
    assert g.shape == x.shape and g.dtype == np.float64
    np.testing.assert_allclose(g, 3 * x**2, rtol=1e-7, atol=1e-8)


def test_numerical_grad_is_central_difference_with_step_eps():
    # ((x+h)^3 - (x-h)^3) / (2h) = 3x^2 + h^2 exactly: the step is eps, and central
    x = np.array([0.5, -1.0, 2.0])
    g = cg.numerical_grad(lambda v: float(np.sum(v**3)), x, eps=0.1)
    np.testing.assert_allclose(g, 3 * x**2 + 0.01, rtol=1e-12)
    g = cg.numerical_grad(lambda v: float(np.sum(v**3)), x, eps=0.25)
    np.testing.assert_allclose(g, 3 * x**2 + 0.0625, rtol=1e-12)
    # default eps = 1e-6: for a quadratic the central difference is exact up to rounding
    g = cg.numerical_grad(lambda v: float(np.sum(v**2)), x)
    np.testing.assert_allclose(g, 2 * x, rtol=1e-8)


def test_numerical_grad_per_coordinate_and_x_untouched(rng):
    x = rng.standard_normal((2, 3, 2))
    x0 = x.copy()
    c = rng.standard_normal(x.shape)
    g = cg.numerical_grad(lambda v: float(np.sum(c * v)), x)
    np.testing.assert_allclose(g, c, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(x, x0)


def test_numerical_grad_scalar_like_shapes():
    x = np.array([1.5])
    np.testing.assert_allclose(cg.numerical_grad(lambda v: float(np.exp(v).sum()), x), np.exp(x),
                               rtol=1e-8)


# --------------------------------------------------------------------------------------
# softmax_jacobian
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("C", [1, 2, 5, 10])
def test_softmax_jacobian_matches_torch(rng, dtype, C):
    z = make_logits(rng, (C,), dtype)
    ref = torch_np(torch.autograd.functional.jacobian(lambda v: torch.softmax(v, 0), to_torch64(z)))
    got = cg.softmax_jacobian(z)
    assert_close(got, ref, dtype)


def test_softmax_jacobian_structure(rng, dtype):
    z = make_logits(rng, (6,), dtype)
    J = cg.softmax_jacobian(z).astype(np.float64)
    s = cf.softmax(z).astype(np.float64)
    assert_close(J, np.diag(s) - np.outer(s, s), np.float64,
                 rtol=1e-12 if dtype == np.float64 else 1e-5,
                 atol=1e-12 if dtype == np.float64 else 1e-6)
    np.testing.assert_allclose(J, J.T, atol=1e-15 if dtype == np.float64 else 1e-7)
    np.testing.assert_allclose(J.sum(axis=1), 0.0, atol=1e-15 if dtype == np.float64 else 1e-6)


def test_softmax_jacobian_huge_logits():
    J = cg.softmax_jacobian(np.array([1e300, -1e300, 0.0]))
    assert np.all(np.isfinite(J))
    np.testing.assert_array_equal(J, np.zeros((3, 3)))


def test_softmax_jacobian_accepts_list():
    J = cg.softmax_jacobian([0.0, 0.0])
    np.testing.assert_allclose(J, [[0.25, -0.25], [-0.25, 0.25]], rtol=1e-15)
