"""kl_div, binary_cross_entropy (on probabilities), multi_margin_loss and their gradients,
against torch 2.13 and its autograd.

Four parts: the option grid (every reduction, log_target, weights, p, margin and shape, in
float32 and float64, loss and gradient); torch's edge conventions (dtype promotion, the 'mean'
warning, the -100 clamp, the hinge's kink, empty batches, and the documented differences);
hypothesis properties (non-finite values, memory layouts); the bad-argument table.
The references are computed in float64 from the same values (see tests/celib_testing.py).
"""

from __future__ import annotations

import inspect
import re
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from celib import functional as cf
from celib import grad as cg
from tests.celib_testing import FLOAT_DTYPES, assert_close, to_torch64, torch_np

# Every numpy RuntimeWarning is an error here: none may reach the user (issue 20).
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

DTYPE_IDS = [np.dtype(d).name for d in FLOAT_DTYPES]


def autograd(fn, x: np.ndarray, *args, reduction: str, **kwargs):
    """torch's loss and d loss / d x (of the sum for 'none'), in float64 from x's values."""
    xt = to_torch64(x).requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # kl_div's 'mean' warning
        loss = fn(xt, *args, reduction=reduction, **kwargs)
    if xt.numel():
        (loss.sum() if reduction == "none" else loss).backward()
    grad = xt.grad if xt.grad is not None else torch.zeros_like(xt)
    return torch_np(loss), torch_np(grad)


def quiet(fn, *args, **kwargs):
    """Call fn with kl_div's 'mean' UserWarning silenced (tested on its own below)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fn(*args, **kwargs)


# ============================================================================================
# kl_div
# ============================================================================================

KL_REDUCTIONS = ("none", "batchmean", "sum", "mean")
# (input shape, target shape): equal shapes, 1-D, 0-d, empty, K-dimensional, and broadcasting
KL_SHAPES = [((4, 5), (4, 5)), ((5,), (5,)), ((), ()), ((0, 3), (0, 3)), ((2, 3, 4), (2, 3, 4)),
             ((4, 5), (5,)), ((1, 5), (4, 5)), ((5,), (4, 5)), ((4, 1), (4, 5))]


def kl_operands(rng, shapes, dtype, log_target):
    """log q (a log-softmax along the last axis) and a target p with some zeros (or log p)."""
    in_shape, t_shape = shapes
    log_q = np.log(rng.dirichlet(np.ones(max(in_shape[-1:] or (1,))), size=in_shape[:-1] or None)
                   if in_shape else np.asarray(rng.uniform(0.1, 1)))
    log_q = np.asarray(log_q).reshape(in_shape)
    p = rng.uniform(0.0, 1.0, size=t_shape)
    p = np.where(rng.random(t_shape) < 0.2, 0.0, p)  # torch's 0 log 0 = 0
    target = np.log(p + 0.05) if log_target else p
    return log_q.astype(dtype), np.asarray(target).astype(dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shapes", KL_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", KL_REDUCTIONS)
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_and_its_gradient_match_torch(rng, dtype, shapes, reduction, log_target):
    log_q, target = kl_operands(rng, shapes, dtype, log_target)
    ref_loss, ref_grad = autograd(F.kl_div, log_q, to_torch64(target), reduction=reduction,
                                  log_target=log_target)
    assert_close(quiet(cf.kl_div, log_q, target, reduction, log_target), ref_loss, dtype)
    assert_close(quiet(cg.kl_div_grad, log_q, target, reduction, log_target), ref_grad, dtype)


@pytest.mark.parametrize("input_dtype, target_dtype", [
    (np.float32, np.float64), (np.float64, np.float32), (np.float16, np.float32),
    (np.float16, np.float16), (np.float32, np.float32)])
def test_kl_div_promotes_dtypes_as_torch(rng, input_dtype, target_dtype):
    log_q = np.log(rng.dirichlet(np.ones(3), size=2)).astype(input_dtype)
    p = rng.dirichlet(np.ones(3), size=2).astype(target_dtype)
    ref = F.kl_div(torch.from_numpy(log_q), torch.from_numpy(p), reduction="sum")
    got = cf.kl_div(log_q, p, reduction="sum")
    assert got.dtype == torch_np(ref).dtype
    assert cg.kl_div_grad(log_q, p, reduction="sum").dtype == log_q.dtype  # as autograd's
    expected = F.kl_div(to_torch64(log_q), to_torch64(p), reduction="sum")
    np.testing.assert_allclose(float(got), float(expected), rtol=2e-3)  # float16 at worst


def test_kl_div_mean_warns_as_torch_and_only_for_mean():
    log_q, p = np.log([[0.25, 0.75]]), np.array([[0.5, 0.5]])
    with pytest.warns(UserWarning) as torch_record:
        F.kl_div(torch.from_numpy(log_q), torch.from_numpy(p), reduction="mean")
    for fn in (cf.kl_div, cg.kl_div_grad):
        with pytest.warns(UserWarning) as record:
            fn(log_q, p)  # the default reduction is 'mean', as in torch
        assert len(record) == len(torch_record) == 1
        assert record[0].filename == __file__  # points at the caller's line
        message = str(record[0].message)
        for words in ("'mean' divides the total loss by both the batch size and the support size",
                      "'batchmean' divides only by the batch size"):
            assert words in message and words in str(torch_record[0].message)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for reduction in ("batchmean", "sum", "none"):
                fn(log_q, p, reduction=reduction)


def test_kl_div_batchmean_is_the_kl_divergence_and_mean_is_it_over_c(rng):
    p = rng.dirichlet(np.ones(5), size=4)
    q = rng.dirichlet(np.ones(5), size=4)
    kl_rows = np.sum(p * np.log(p / q), axis=1)
    batchmean = cf.kl_div(np.log(q), p, reduction="batchmean")
    np.testing.assert_allclose(batchmean, kl_rows.mean(), rtol=1e-13)
    np.testing.assert_allclose(quiet(cf.kl_div, np.log(q), p), kl_rows.mean() / 5, rtol=1e-13)


@pytest.mark.parametrize("target, log_q, expected", [
    (0.0, -1.0, 0.0),            # 0 log 0 = 0
    (-0.0, -1.0, 0.0),
    (0.0, -np.inf, np.nan),      # 0 * (-inf)
    (-0.5, -1.0, np.nan),        # the log of a negative target
    (np.nan, -1.0, np.nan),
    (0.5, np.nan, np.nan),
    (0.5, np.inf, -np.inf),
    (np.inf, -1.0, np.inf),
])
def test_kl_div_pointwise_conventions_match_torch(target, log_q, expected):
    for dtype in FLOAT_DTYPES:
        x, t = np.array([log_q], dtype), np.array([target], dtype)
        ref_loss, ref_grad = autograd(F.kl_div, x, to_torch64(t), reduction="none")
        np.testing.assert_array_equal(ref_loss, [expected])  # what torch does, pinned
        assert_close(cf.kl_div(x, t, reduction="none"), ref_loss, dtype)
        assert_close(cg.kl_div_grad(x, t, reduction="none"), ref_grad, dtype)


@pytest.mark.parametrize("reduction, expected", [("sum", 0.0), ("batchmean", np.nan),
                                                 ("mean", np.nan)])
def test_kl_div_of_an_empty_batch(reduction, expected):
    got = quiet(cf.kl_div, np.zeros((0, 3)), np.zeros((0, 3)), reduction)
    ref = quiet(F.kl_div, torch.zeros(0, 3, dtype=torch.float64),
                torch.zeros(0, 3, dtype=torch.float64), reduction=reduction)
    np.testing.assert_array_equal([got, torch_np(ref)], [expected, expected])
    assert quiet(cg.kl_div_grad, np.zeros((0, 3)), np.zeros((0, 3)), reduction).shape == (0, 3)


# ============================================================================================
# binary_cross_entropy
# ============================================================================================

BCE_SHAPES = [(4, 5), (7,), (), (0, 3), (2, 3, 4)]
# weight shapes as functions of the input's: none, the full shape, one per column, a row
# (1, C), a scalar
BCE_WEIGHTS = {
    "none": lambda shape: None,
    "full": lambda shape: shape,
    "last": lambda shape: shape[-1:],
    "row": lambda shape: (1,) + shape[-1:] if len(shape) >= 2 else shape,
    "scalar": lambda shape: (),
}


def bce_operands(rng, shape, dtype):
    """Probabilities with exact 0s and 1s (the clamp) and tiny values, and soft targets with
    exact 0s and 1s."""
    q = rng.uniform(0, 1, size=shape)
    special = rng.choice([0.0, 1.0, 1e-45, 1 - 1e-7, 1e-30], size=shape)
    q = np.where(rng.random(shape) < 0.3, special, q)
    t = np.where(rng.random(shape) < 0.5, rng.integers(0, 2, size=shape), rng.random(shape))
    return np.asarray(q).astype(dtype), np.asarray(t).astype(dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", BCE_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", ("none", "sum", "mean"))
@pytest.mark.parametrize("weight", BCE_WEIGHTS)
def test_binary_cross_entropy_and_its_gradient_match_torch(rng, dtype, shape, reduction,
                                                            weight):
    q, t = bce_operands(rng, shape, dtype)
    w_shape = BCE_WEIGHTS[weight](shape)
    w = None if w_shape is None else rng.uniform(0.2, 2.0, size=w_shape).astype(dtype)
    ref_loss, ref_grad = autograd(F.binary_cross_entropy, q, to_torch64(t), reduction=reduction,
                                  weight=None if w is None else to_torch64(w))
    assert_close(cf.binary_cross_entropy(q, t, w, reduction), ref_loss, dtype)
    # the gradient's denominator is floored at 1e-12: up to 1e12, relative tolerance only
    assert_close(cg.binary_cross_entropy_grad(q, t, w, reduction), ref_grad, dtype,
                 atol=0, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_binary_cross_entropy_clamp_at_minus_100_and_its_gradient():
    q = np.array([0.0, 1.0, 1e-50, 1 - 1e-16, 0.0, 1.0])
    t = np.array([1.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    ref_loss, ref_grad = autograd(F.binary_cross_entropy, q, to_torch64(t), reduction="none")
    np.testing.assert_array_equal(ref_loss[[0, 1, 2, 4, 5]], [100, 100, 100, 0, 0])
    np.testing.assert_array_equal(cf.binary_cross_entropy(q, t, reduction="none"), ref_loss)
    # the clamped loss is flat there, yet torch's gradient is (x - t) / max(x (1 - x), 1e-12)
    assert ref_grad[0] < -1e11 and ref_grad[1] > 1e11
    np.testing.assert_allclose(cg.binary_cross_entropy_grad(q, t, reduction="none"), ref_grad,
                               rtol=1e-15)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
def test_binary_cross_entropy_of_a_sigmoid_hides_how_wrong_the_logit_is(dtype):
    x = np.array([-200.0], dtype)
    prob = (1 / (1 + np.exp(np.float64(200)))).astype(dtype)[None]
    clamped = cf.binary_cross_entropy(prob, np.ones(1, dtype))
    exact = cf.binary_cross_entropy_with_logits(x, np.ones(1, dtype))
    assert float(clamped) == 100.0 and abs(float(exact) - 200.0) < 1e-4


@pytest.mark.parametrize("reduction, expected", [("sum", 0.0), ("mean", np.nan)])
def test_binary_cross_entropy_of_an_empty_input(reduction, expected):
    ref = F.binary_cross_entropy(torch.zeros(0, 3, dtype=torch.float64),
                                 torch.zeros(0, 3, dtype=torch.float64), reduction=reduction)
    got = cf.binary_cross_entropy(np.zeros((0, 3)), np.zeros((0, 3)), reduction=reduction)
    np.testing.assert_array_equal([got, torch_np(ref)], [expected, expected])
    assert cg.binary_cross_entropy_grad(np.zeros((0, 3)), np.zeros((0, 3))).shape == (0, 3)


def test_binary_cross_entropy_float16_matches_torch():
    q, t = np.array([0.5, 0.9], np.float16), np.array([1.0, 0.0], np.float16)
    ref = F.binary_cross_entropy(torch.from_numpy(q), torch.from_numpy(t), reduction="none")
    got = cf.binary_cross_entropy(q, t, reduction="none")
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, torch_np(ref))


# ============================================================================================
# multi_margin_loss
# ============================================================================================

# (input shape, target shape): a batch, one row as a vector with a 0-d or (1,) target, a 0-d
# score, a (1, C) batch with a 0-d target, an empty batch
MARGIN_SHAPES = [((6, 4), (6,)), ((4,), ()), ((4,), (1,)), ((), ()), ((1, 4), ()),
                 ((0, 4), (0,)), ((5, 1), (5,))]
MARGINS = (1.0, 0.5, 0.0, -0.5, 3)


def margin_operands(rng, shapes, dtype):
    """Scores rounded to quarters (so that many slacks are exactly 0: the kink) and targets."""
    in_shape, t_shape = shapes
    x = np.round(rng.normal(scale=1.0, size=in_shape) * 4) / 4
    num_classes = in_shape[-1] if in_shape else 1
    return np.asarray(x).astype(dtype), rng.integers(0, num_classes, size=t_shape)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shapes", MARGIN_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", ("none", "sum", "mean"))
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("margin", MARGINS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_multi_margin_loss_and_its_gradient_match_torch(rng, dtype, shapes, reduction, p,
                                                        margin, weighted):
    x, y = margin_operands(rng, shapes, dtype)
    if reduction != "none" and x.ndim == 2 and len(x) == 0:
        pytest.skip("torch 2.13 returns an uninitialised number: see the empty-batch test")
    num_classes = x.shape[-1] if x.ndim else 1
    w = rng.uniform(0.2, 2.0, size=num_classes).astype(dtype) if weighted else None
    options = {"p": p, "margin": margin, "weight": w}
    torch_options = {**options, "weight": None if w is None else to_torch64(w)}
    ref_loss, ref_grad = autograd(F.multi_margin_loss, x, torch.from_numpy(y),
                                  reduction=reduction, **torch_options)
    assert_close(cf.multi_margin_loss(x, y, reduction=reduction, **options), ref_loss, dtype)
    assert_close(cg.multi_margin_loss_grad(x, y, reduction=reduction, **options), ref_grad,
                 dtype)


@pytest.mark.parametrize("p", [1, 2])
def test_multi_margin_loss_at_the_kink_takes_torchs_subgradient_zero(p):
    x = np.array([[1.0, 0.0, 0.0], [2.0, 1.0, 0.5], [0.0, 1.0, 1.0]])  # slacks exactly 0
    y = np.array([0, 0, 2])
    ref_loss, ref_grad = autograd(F.multi_margin_loss, x, torch.from_numpy(y), p=p,
                                  reduction="none")
    np.testing.assert_array_equal(ref_grad[0], 0)  # the margin is exactly met: no pull
    np.testing.assert_array_equal(cf.multi_margin_loss(x, y, p=p, reduction="none"), ref_loss)
    got = cg.multi_margin_loss_grad(x, y, p=p, reduction="none")
    np.testing.assert_array_equal(got, ref_grad)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(ref_grad))  # +0.0, as torch


def test_multi_margin_loss_weight_multiplies_the_target_class_term():
    x, y = np.array([[0.1, 0.2, 0.4, 0.8]]), np.array([3])
    w = np.array([10.0, 10.0, 10.0, 2.0])
    plain = cf.multi_margin_loss(x, y)
    assert cf.multi_margin_loss(x, y, weight=w) == pytest.approx(2 * plain, rel=1e-15)
    ref = F.multi_margin_loss(torch.from_numpy(x), torch.from_numpy(y),
                              weight=torch.from_numpy(w))
    assert float(cf.multi_margin_loss(x, y, weight=w)) == pytest.approx(ref.item(), rel=1e-15)


def test_multi_margin_loss_empty_batch_a_deliberate_difference():
    """torch 2.13 returns uninitialised memory (e.g. 4.66e-310, or 2.5e+28) for the 'mean' and
    the 'sum' of an empty batch; celib returns 0/0 = nan and 0, as every other loss does."""
    x, y = np.zeros((0, 3)), np.zeros(0, np.int64)
    assert np.isnan(cf.multi_margin_loss(x, y))
    assert cf.multi_margin_loss(x, y, reduction="sum") == 0
    assert cf.multi_margin_loss(x, y, reduction="none").shape == (0,)
    assert cg.multi_margin_loss_grad(x, y).shape == (0, 3)


def test_multi_margin_loss_float16_is_accepted_a_deliberate_difference():
    x16, y = np.array([[0.1, 0.2, 0.4, 0.8]], np.float16), np.array([3])
    with pytest.raises(NotImplementedError):  # torch: not implemented for 'Half'
        F.multi_margin_loss(torch.from_numpy(x16), torch.from_numpy(y))
    got = cf.multi_margin_loss(x16, y)
    assert got.dtype == np.float16
    assert got == np.float16(cf.multi_margin_loss(x16.astype(np.float64), y))
    assert cg.multi_margin_loss_grad(x16, y).dtype == np.float16


def test_float32_is_computed_in_float64_and_rounded_once():
    """torch computes float32 in float32; celib in float64 (documented in the Notes): the
    float64 answer, rounded once."""
    x, y = np.array([[8388611.0, 8388611.0]], np.float32), np.array([0])
    got = cf.multi_margin_loss(x, y, margin=2.5)
    assert got == np.float32(1.25)  # the exact slack 2.5, over C = 2
    ref32 = F.multi_margin_loss(torch.from_numpy(x), torch.from_numpy(y), margin=2.5).item()
    assert ref32 != 1.25  # torch's float32 slack rounds
    log_q, log_p = np.array([np.inf], np.float32), np.array([-104.0], np.float32)
    assert cf.kl_div(log_q, log_p, reduction="none", log_target=True) == -np.inf
    assert np.isnan(F.kl_div(torch.from_numpy(log_q), torch.from_numpy(log_p),
                             reduction="none", log_target=True).item())  # e^-104 underflows


def test_multi_margin_loss_reads_a_list_of_weights_in_the_input_dtype():
    x, y = np.array([[0.1, 0.2, 0.4, 0.8]], np.float32), np.array([3])
    got = cf.multi_margin_loss(x, y, weight=[1, 1, 1, 2])
    assert got.dtype == np.float32 and got == 2 * cf.multi_margin_loss(x, y)


@pytest.mark.parametrize("p", [1.0, 2.0, np.int64(2)])
def test_multi_margin_loss_takes_p_as_torch_does(p):
    x, y = np.array([[0.1, 0.2, 0.4, 0.8]]), np.array([3])
    ref = F.multi_margin_loss(torch.from_numpy(x), torch.from_numpy(y), p=int(p))
    assert float(cf.multi_margin_loss(x, y, p=p)) == pytest.approx(ref.item(), rel=1e-15)


# ============================================================================================
# hypothesis: non-finite values, memory layouts
# ============================================================================================

ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=32)
SPECIALS = st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, np.inf, -np.inf, np.nan])
VALUE = st.one_of(ANY_FLOAT, SPECIALS)


@st.composite
def float_arrays(draw, shape, elements=VALUE):
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    return draw(hnp.arrays(dtype, shape, elements=elements))


def same_or_both_nan(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(got[~finite & ~np.isnan(ref)], ref[~finite & ~np.isnan(ref)])
    scale = np.maximum(1.0, np.abs(np.where(finite, ref, 0)))
    with np.errstate(invalid="ignore"):  # inf - inf where the reference is not finite
        error = np.abs(np.where(finite, got - ref, 0))
    np.testing.assert_array_less(error, 1e-5 * scale + 1e-30)


@settings(max_examples=150)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
       reduction=st.sampled_from(KL_REDUCTIONS), log_target=st.booleans())
def test_kl_div_non_finite_values_match_torch(data, shape, reduction, log_target):
    log_q = data.draw(float_arrays(shape))
    target = data.draw(float_arrays(shape)).astype(log_q.dtype)
    ref_loss, ref_grad = autograd(F.kl_div, log_q, to_torch64(target), reduction=reduction,
                                  log_target=log_target)
    # float32 results of float64 references: values beyond float32's range become inf
    with np.errstate(over="ignore"):
        ref_loss = np.asarray(ref_loss).astype(log_q.dtype)
        ref_grad = ref_grad.astype(log_q.dtype)
    same_or_both_nan(quiet(cf.kl_div, log_q, target, reduction, log_target), ref_loss)
    same_or_both_nan(quiet(cg.kl_div_grad, log_q, target, reduction, log_target), ref_grad)


@settings(max_examples=150)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
       reduction=st.sampled_from(("none", "sum", "mean")))
def test_binary_cross_entropy_refuses_what_torch_refuses_and_agrees_on_the_rest(data, shape,
                                                                              reduction):
    q = data.draw(float_arrays(shape))
    t = data.draw(float_arrays(shape)).astype(q.dtype)
    weight = data.draw(st.one_of(st.none(), hnp.arrays(np.float64, shape[-1:], elements=VALUE)))
    try:
        ref_loss, ref_grad = autograd(F.binary_cross_entropy, q, to_torch64(t),
                                      reduction=reduction,
                                      weight=None if weight is None else to_torch64(weight))
    except RuntimeError:  # a value outside [0, 1], nan included, in the input or the target
        for fn in (cf.binary_cross_entropy, cg.binary_cross_entropy_grad):
            with pytest.raises(ValueError, match=r"^(input|target) must hold probabilities in "
                                                 r"\[0, 1\]") as excinfo:
                fn(q, t, weight, reduction)
            named = q if str(excinfo.value).startswith("input") else t
            assert not np.all((named >= 0) & (named <= 1))  # it names an argument at fault
        return
    with np.errstate(over="ignore"):
        ref_loss = np.asarray(ref_loss).astype(q.dtype)
        ref_grad = ref_grad.astype(q.dtype)
    same_or_both_nan(cf.binary_cross_entropy(q, t, weight, reduction), ref_loss)
    same_or_both_nan(cg.binary_cross_entropy_grad(q, t, weight, reduction), ref_grad)


@settings(max_examples=150)
@given(data=st.data(), n=st.integers(0, 4), num_classes=st.integers(1, 4),
       reduction=st.sampled_from(("none", "sum", "mean")), p=st.sampled_from([1, 2]),
       margin=st.sampled_from([1.0, 0.0, -1.0, 2.5]))
def test_multi_margin_loss_non_finite_scores_match_torch(data, n, num_classes, reduction, p,
                                                         margin):
    if reduction != "none" and n == 0:
        return  # torch's uninitialised number: the deliberate difference pinned above
    x = data.draw(float_arrays((n, num_classes)))
    y = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, num_classes - 1)))
    ref_loss, ref_grad = autograd(F.multi_margin_loss, x, torch.from_numpy(y), p=p,
                                  margin=margin, reduction=reduction)
    with np.errstate(over="ignore"):
        ref_loss = np.asarray(ref_loss).astype(x.dtype)
        ref_grad = ref_grad.astype(x.dtype)
    same_or_both_nan(cf.multi_margin_loss(x, y, p, margin, reduction=reduction), ref_loss)
    same_or_both_nan(cg.multi_margin_loss_grad(x, y, p, margin, reduction=reduction), ref_grad)


def layout(a: np.ndarray, kind: str) -> np.ndarray:
    """The same values as ``a`` in another memory layout."""
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "reversed":  # negative strides
        return np.flip(np.flip(a).copy())
    if kind == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b
    if kind == "bigendian":
        return a.astype(a.dtype.newbyteorder(">"))
    if kind == "strided":  # every other element of a larger array
        return np.repeat(a, 2, axis=-1)[..., ::2] if a.ndim else a
    raise AssertionError(kind)


LAYOUTS = ("fortran", "reversed", "readonly", "bigendian", "strided")


def all_entry_points(rng, dtype):
    """(name, function, arguments) for the six functions on one (3, 4) problem."""
    log_q, p = kl_operands(rng, ((3, 4), (3, 4)), dtype, False)
    q, t = bce_operands(rng, (3, 4), dtype)
    w = rng.uniform(0.5, 2, size=4).astype(dtype)
    x, y = margin_operands(rng, ((3, 4), (3,)), dtype)
    return [
        ("kl_div", cf.kl_div, (log_q, p, "batchmean")),
        ("kl_div_grad", cg.kl_div_grad, (log_q, p, "batchmean")),
        ("binary_cross_entropy", cf.binary_cross_entropy, (q, t, w, "none")),
        ("binary_cross_entropy_grad", cg.binary_cross_entropy_grad, (q, t, w, "none")),
        ("multi_margin_loss", cf.multi_margin_loss, (x, y, 2, 0.5, w, "none")),
        ("multi_margin_loss_grad", cg.multi_margin_loss_grad, (x, y, 2, 0.5, w, "none")),
    ]


@settings(max_examples=60)
@given(seed=st.integers(0, 2**16), dtype=st.sampled_from(FLOAT_DTYPES),
       kinds=st.lists(st.sampled_from(LAYOUTS), min_size=1, max_size=3))
def test_memory_layouts_give_the_same_result(seed, dtype, kinds):
    """Fortran order, negative strides, read-only, big-endian, strided views: the result of the
    contiguous arrays in the native dtype (up to the order of a sum, which follows the memory
    layout: a few ulp), and no input is written to."""
    rng = np.random.default_rng(seed)
    for name, fn, args in all_entry_points(rng, dtype):
        expected = fn(*args)
        moved = []
        for i, a in enumerate(args):
            if isinstance(a, np.ndarray):
                a = layout(a, kinds[i % len(kinds)])
                if a.dtype.kind == "f":
                    a.flags.writeable = False
            moved.append(a)
        got = fn(*moved)
        assert np.asarray(got).dtype == np.dtype(dtype), name
        np.testing.assert_allclose(got, expected, rtol=16 * np.finfo(dtype).eps, atol=0,
                                   err_msg=name)


# ============================================================================================
# bad arguments: the exception type, and a message that names the argument
# ============================================================================================

GOOD_LOG_Q = np.log(np.full((2, 3), 1 / 3))
GOOD_P = np.full((2, 3), 1 / 3)
GOOD_X = np.array([[0.1, 0.2, 0.4], [0.3, -1.0, 2.0]])
GOOD_Y = np.array([2, 0])


class Call:
    """A good call of one of the losses with some arguments changed (``changes``)."""

    def __init__(self, good: dict, changes: dict) -> None:
        self.kwargs, self.changes = {**good, **changes}, changes

    def __call__(self, fn):
        return fn(**self.kwargs)


def kl_call(**changes):
    return Call({"input": GOOD_LOG_Q, "target": GOOD_P, "reduction": "batchmean",
                 "log_target": False}, changes)


def bce_call(**changes):
    return Call({"input": GOOD_P, "target": GOOD_P, "weight": None, "reduction": "mean"},
                changes)


def margin_call(**changes):
    return Call({"input": GOOD_X, "target": GOOD_Y, "p": 1, "margin": 1.0, "weight": None,
                 "reduction": "mean"}, changes)


KL = (cf.kl_div, cg.kl_div_grad)
BCE = (cf.binary_cross_entropy, cg.binary_cross_entropy_grad)
MARGIN = (cf.multi_margin_loss, cg.multi_margin_loss_grad)

# (id, functions, call, exception, regex the message must match: it names the argument)
BAD_ARGUMENTS = [
    # kl_div: input and target
    ("kl input None", KL, kl_call(input=None), TypeError, r"^input .*None"),
    ("kl input str", KL, kl_call(input="abc"), TypeError, r"^input "),
    ("kl input int", KL, kl_call(input=np.zeros((2, 3), np.int64)), ValueError, r"^input .*int64"),
    ("kl input bool", KL, kl_call(input=np.zeros((2, 3), bool)), ValueError, r"^input .*bool"),
    ("kl input complex", KL, kl_call(input=GOOD_LOG_Q + 0j), ValueError, r"^input .*complex"),
    ("kl input ragged", KL, kl_call(input=[[0.0, 1.0], [0.0]]), ValueError, r"^input "),
    ("kl input longdouble", KL, kl_call(input=GOOD_LOG_Q.astype(np.longdouble)), TypeError,
     r"^input "),
    ("kl target None", KL, kl_call(target=None), TypeError, r"^target .*None"),
    ("kl target int", KL, kl_call(target=np.ones((2, 3), np.int64)), ValueError, r"^target "),
    ("kl target shape", KL, kl_call(target=np.ones((2, 4))), ValueError,
     r"^target of shape \(2, 4\) does not broadcast with the input's shape \(2, 3\)"),
    ("kl reduction unknown", KL, kl_call(reduction="avg"), ValueError, r"^reduction .*'avg'"),
    ("kl reduction None", KL, kl_call(reduction=None), ValueError, r"^reduction .*None"),
    ("kl log_target str", KL, kl_call(log_target="False"), TypeError, r"^log_target "),
    ("kl log_target int", KL, kl_call(log_target=1), TypeError, r"^log_target "),
    ("kl log_target None", KL, kl_call(log_target=None), TypeError, r"^log_target "),
    ("kl reduction bool", KL, kl_call(reduction=True), ValueError, r"^reduction .*True"),
    ("kl target ragged", KL, kl_call(target=[[0.5, 0.5], [1.0]]), ValueError, r"^target "),
    ("kl target complex", KL, kl_call(target=GOOD_P + 0j), ValueError, r"^target "),
    # binary_cross_entropy: input, target, weight, reduction
    ("bce input above 1", BCE, bce_call(input=np.array([[0.5, 1.5, 0.2]] * 2)), ValueError,
     r"^input must hold probabilities in \[0, 1\].* 1\.5 at index \(0, 1\)"),
    ("bce input negative", BCE, bce_call(input=np.full((2, 3), -0.25)), ValueError,
     r"^input .*-0\.25 .*6 values"),
    ("bce input nan", BCE, bce_call(input=np.full((2, 3), np.nan)), ValueError, r"^input .*nan"),
    ("bce input inf", BCE, bce_call(input=np.full((2, 3), np.inf)), ValueError, r"^input .*inf"),
    ("bce target above 1", BCE, bce_call(target=np.full((2, 3), 2.0)), ValueError,
     r"^target must hold probabilities .*2\.0"),
    ("bce target nan", BCE, bce_call(target=np.full((2, 3), np.nan)), ValueError, r"^target .*nan"),
    ("bce input None", BCE, bce_call(input=None), TypeError, r"^input .*None"),
    ("bce input int", BCE, bce_call(input=np.ones((2, 3), np.int64)), ValueError, r"^input "),
    ("bce target int", BCE, bce_call(target=np.ones((2, 3), np.int64)), ValueError, r"^target "),
    ("bce target shape", BCE, bce_call(target=np.full((3,), 0.5)), ValueError,
     r"^target must have the input's shape \(2, 3\), got \(3,\)"),
    ("bce target dtype", BCE, bce_call(target=GOOD_P.astype(np.float32)), TypeError,
     r"^target must have the input's dtype float64.*float32"),
    ("bce weight shape", BCE, bce_call(weight=np.ones(4)), ValueError,
     r"^weight of shape \(4,\) does not broadcast"),
    ("bce weight enlarges", BCE, bce_call(weight=np.ones((2, 2, 3))), ValueError, r"^weight "),
    ("bce weight complex", BCE, bce_call(weight=np.ones(3) + 1j), TypeError, r"^weight "),
    ("bce weight object None", BCE, bce_call(weight=np.array([None, 1.0, 1.0])), TypeError,
     r"^weight "),
    ("bce weight ragged", BCE, bce_call(weight=[[1.0], [1.0, 2.0]]), ValueError, r"^weight "),
    ("bce reduction", BCE, bce_call(reduction="batchmean"), ValueError, r"^reduction "),
    ("bce reduction None", BCE, bce_call(reduction=None), ValueError, r"^reduction "),
    ("bce target None", BCE, bce_call(target=None), TypeError, r"^target .*None"),
    ("bce input ragged", BCE, bce_call(input=[[0.5, 0.5], [0.5]]), ValueError, r"^input "),
    ("bce input bool", BCE, bce_call(input=np.ones((2, 3), bool)), ValueError, r"^input .*bool"),
    ("bce weight bool", BCE, bce_call(weight=True), TypeError, r"^weight .*bool"),
    ("bce weight str", BCE, bce_call(weight="1"), TypeError, r"^weight "),
    # multi_margin_loss: input, target, p, margin, weight, reduction
    ("margin target out of range", MARGIN, margin_call(target=np.array([2, 3])), IndexError,
     r"(?<![\d.])3(?!\d).*\[0, 3\)"),
    ("margin target negative", MARGIN, margin_call(target=np.array([-1, 0])), IndexError,
     r"-1.*\[0, 3\)"),
    ("margin target float", MARGIN, margin_call(target=np.array([2.0, 0.0])), ValueError,
     r"^target .*int64.*float64"),
    ("margin target int32", MARGIN, margin_call(target=np.array([2, 0], np.int32)), ValueError,
     r"^target .*int32"),
    ("margin target uint8", MARGIN, margin_call(target=np.array([2, 0], np.uint8)), ValueError,
     r"^target .*uint8"),
    ("margin target shape", MARGIN, margin_call(target=np.array([[2], [0]])), ValueError,
     r"^target .*\(2,\).*got shape \(2, 1\)"),
    ("margin target count", MARGIN, margin_call(target=np.array([2])), ValueError, r"^target "),
    ("margin target None", MARGIN, margin_call(target=None), ValueError, r"^target "),
    ("margin input None", MARGIN, margin_call(input=None), TypeError, r"^input .*None"),
    ("margin input int", MARGIN, margin_call(input=np.ones((2, 3), np.int64)), ValueError,
     r"^input "),
    ("margin input 3-D", MARGIN, margin_call(input=np.ones((2, 3, 1))), ValueError,
     r"^input .*\(2, 3, 1\)"),
    ("margin input no class", MARGIN, margin_call(input=np.ones((2, 0))), ValueError,
     r"^input .*\(2, 0\)"),
    ("margin p 3", MARGIN, margin_call(p=3), ValueError, r"^p must be 1 or 2.*3"),
    ("margin p 1.5", MARGIN, margin_call(p=1.5), ValueError, r"^p .*1\.5"),
    ("margin p bool", MARGIN, margin_call(p=True), TypeError, r"^p .*True"),
    ("margin p str", MARGIN, margin_call(p="1"), TypeError, r"^p "),
    ("margin p None", MARGIN, margin_call(p=None), TypeError, r"^p "),
    ("margin p nan", MARGIN, margin_call(p=np.nan), ValueError, r"^p "),
    ("margin margin nan", MARGIN, margin_call(margin=np.nan), ValueError,
     r"^margin must be a finite number, got nan"),
    ("margin margin inf", MARGIN, margin_call(margin=np.inf), ValueError, r"^margin .*inf"),
    ("margin margin bool", MARGIN, margin_call(margin=True), TypeError, r"^margin .*True"),
    ("margin margin str", MARGIN, margin_call(margin="1"), TypeError, r"^margin "),
    ("margin margin None", MARGIN, margin_call(margin=None), TypeError, r"^margin "),
    ("margin weight shape", MARGIN, margin_call(weight=np.ones(4)), ValueError,
     r"^weight .*\(3,\)"),
    ("margin weight 2-D", MARGIN, margin_call(weight=np.ones((1, 3))), ValueError, r"^weight "),
    ("margin weight complex", MARGIN, margin_call(weight=np.ones(3) + 1j), TypeError,
     r"^weight "),
    ("margin reduction", MARGIN, margin_call(reduction="batchmean"), ValueError, r"^reduction "),
    ("margin reduction None", MARGIN, margin_call(reduction=None), ValueError, r"^reduction "),
    ("margin target bool", MARGIN, margin_call(target=np.array([True, False])), ValueError,
     r"^target .*bool"),
    ("margin target ragged", MARGIN, margin_call(target=[[2], [0, 1]]), ValueError, r"^target "),
    ("margin input bool", MARGIN, margin_call(input=np.ones((2, 3), bool)), ValueError,
     r"^input .*bool"),
    ("margin input ragged", MARGIN, margin_call(input=[[0.1, 0.2, 0.3], [0.1]]), ValueError,
     r"^input "),
    ("margin weight None-filled", MARGIN, margin_call(weight=np.array([None, 1.0, 1.0])),
     TypeError, r"^weight "),
    ("margin weight bool", MARGIN, margin_call(weight=np.ones(3, bool)), TypeError, r"^weight "),
    ("margin weight dtype", MARGIN, margin_call(weight=np.ones(3, np.float32)), TypeError,
     r"^weight must have the input's dtype float64.*float32"),
]


@pytest.mark.parametrize("functions, call, exception, pattern",
                         [case[1:] for case in BAD_ARGUMENTS],
                         ids=[case[0] for case in BAD_ARGUMENTS])
def test_bad_arguments_raise_a_clear_error(functions, call, exception, pattern):
    for fn in functions:
        with pytest.raises(exception) as excinfo:
            call(fn)
        message = str(excinfo.value)
        assert re.search(pattern, message), f"{fn.__name__}: {message!r} !~ {pattern!r}"
        for internal in INTERNAL:
            assert internal not in message


# numpy's and Python's own messages: none may reach the user
INTERNAL = ("setting an array element with a sequence", "cannot reshape", "according to the rule",
            "inhomogeneous", "not callable", "object of type", "unsupported operand",
            "could not convert", "ufunc", "only integer scalar arrays")


@pytest.mark.parametrize("functions, good_call", [(KL, kl_call()), (BCE, bce_call()),
                                                  (MARGIN, margin_call())],
                         ids=["kl", "bce", "margin"])
def test_the_table_covers_every_argument_of_a_good_call(functions, good_call):
    named = {arg for _, group, call, _, _ in BAD_ARGUMENTS if group is functions
             for arg in call.changes}
    for fn in functions:
        assert named == set(inspect.signature(fn).parameters), fn.__name__
        good_call(fn)  # only the changed argument is bad


@pytest.mark.parametrize("fn, call, torch_call", [
    (cf.binary_cross_entropy, bce_call(input=np.array([[0.5, 1.5, 0.2]] * 2)),
     lambda: F.binary_cross_entropy(torch.tensor([1.5]), torch.tensor([1.0]))),
    (cf.multi_margin_loss, margin_call(target=np.array([2, 3])),
     lambda: F.multi_margin_loss(torch.zeros(2, 3), torch.tensor([2, 3]))),
    (cf.multi_margin_loss, margin_call(p=3),
     lambda: F.multi_margin_loss(torch.zeros(2, 3), torch.tensor([2, 0]), p=3)),
    (cf.multi_margin_loss, margin_call(target=np.array([2, 0], np.uint8)),
     lambda: F.multi_margin_loss(torch.zeros(2, 3), torch.tensor([2, 0], dtype=torch.uint8))),
    (cf.multi_margin_loss, margin_call(weight=np.ones((1, 3))),
     lambda: F.multi_margin_loss(torch.zeros(2, 3), torch.tensor([2, 0]),
                                 weight=torch.ones(1, 3))),
    (cf.multi_margin_loss, margin_call(weight=np.ones(3, np.float32)),
     lambda: F.multi_margin_loss(torch.zeros(2, 3, dtype=torch.float64), torch.tensor([2, 0]),
                                 weight=torch.ones(3))),
    (cf.binary_cross_entropy, bce_call(target=GOOD_P.astype(np.float32)),
     lambda: F.binary_cross_entropy(torch.zeros(2, dtype=torch.float64), torch.zeros(2))),
    (cf.binary_cross_entropy, bce_call(weight=np.ones((2, 2, 3))),
     lambda: F.binary_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 3),
                                    weight=torch.ones(2, 2, 3))),
    (cf.kl_div, kl_call(input=np.zeros((2, 3), np.int64)),
     lambda: F.kl_div(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3), reduction="sum")),
    (cf.kl_div, kl_call(target=np.ones((2, 4))),
     lambda: F.kl_div(torch.zeros(2, 3), torch.zeros(2, 4), reduction="sum")),
])
def test_what_celib_refuses_torch_refuses_too(fn, call, torch_call):
    with pytest.raises((RuntimeError, ValueError, NotImplementedError)):
        torch_call()
    with pytest.raises((IndexError, ValueError, TypeError)):
        call(fn)


@pytest.mark.parametrize("changes", [{"margin": np.nan}, {"margin": np.inf}, {"p": True},
                                     {"margin": True}])
def test_deliberate_differences_torch_accepts_these_arguments(changes):
    """torch takes a nan or infinite margin (a loss of 0 or inf whatever the scores) and bools
    for p and margin; celib refuses them (see multi_margin_loss's Notes)."""
    x, y = torch.from_numpy(GOOD_X), torch.from_numpy(GOOD_Y)
    F.multi_margin_loss(x, y, **changes)  # no error in torch
    with pytest.raises((TypeError, ValueError)):
        margin_call(**changes)(cf.multi_margin_loss)
