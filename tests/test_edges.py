"""Edge cases of the argument handling: 0-d and empty inputs, integer logits, bad dtypes.

Each is compared with what torch does, or checked for the error torch would raise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from celib import functional as cf


FLOATS = (np.float32, np.float64)


def torch_result(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


# --------------------------------------------------------------------------------------
# 0-d input: one number is a distribution over one class (torch: dim 0 or -1 only)
# --------------------------------------------------------------------------------------

ZERO_D_VALUES = [3.0, -2.5, 0.0, 1e30, np.inf, -np.inf, np.nan]


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("value", ZERO_D_VALUES)
@pytest.mark.parametrize("axis", [0, -1, (0,), (-1,)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_of_a_0d_array_is_the_number_itself(dtype, value, axis, keepdims):
    x = np.array(value, dtype=dtype)
    ref = torch_result(torch.logsumexp(torch.tensor(value, dtype=torch.float64), axis,
                                       keepdim=keepdims))
    got = cf.logsumexp(x, axis=axis, keepdims=keepdims)
    assert got.shape == ref.shape == () and got.dtype == dtype
    np.testing.assert_array_equal(got, ref.astype(dtype))


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("value", ZERO_D_VALUES)
@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_of_a_0d_array_matches_torch(dtype, value, axis, name):
    ref = torch_result(getattr(F, name)(torch.tensor(value, dtype=torch.float64), axis))
    got = getattr(cf, name)(np.array(value, dtype=dtype), axis=axis)
    assert got.shape == ref.shape == () and got.dtype == dtype
    np.testing.assert_array_equal(got, ref.astype(dtype))  # 1 / 0, or nan if not finite


@pytest.mark.parametrize("fn", [cf.softmax, cf.log_softmax, cf.logsumexp])
def test_0d_array_has_only_axis_0(fn):
    with pytest.raises(IndexError):  # torch: "Dimension out of range"
        F.softmax(torch.tensor(1.0), 1)
    with pytest.raises(ValueError, match="axis 1 is out of range for an array with 1 dimension"):
        fn(np.float64(1.0), axis=1)


@pytest.mark.parametrize("fn", [cf.softmax, cf.log_softmax])
def test_softmax_family_on_an_empty_class_axis_is_empty(fn):
    out = fn(np.zeros((2, 0), np.float32), axis=1)
    assert out.shape == (2, 0) and out.dtype == np.float32


@pytest.mark.parametrize("fn", [cf.softmax, cf.log_softmax, cf.logsumexp])
def test_axis_out_of_range_is_a_value_error(fn):
    with pytest.raises(ValueError, match="axis 2 is out of range for an array with 2 dimension"):
        fn(np.zeros((2, 3)), axis=2)


def test_integer_logits_are_read_as_float64():
    out = cf.softmax([1, 2, 3])
    assert out.dtype == np.float64
    ref = torch.softmax(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), 0)
    np.testing.assert_allclose(out, ref.numpy())


@pytest.mark.parametrize("bad", [np.array([True, False]), np.array([1 + 2j, 3j])],
                         ids=["bool", "complex"])
def test_non_real_logits_are_refused(bad):
    with pytest.raises(ValueError, match="real floating array"):
        cf.softmax(bad)


def test_one_hot_refuses_negative_num_classes_other_than_minus_one():
    with pytest.raises(ValueError, match="num_classes must be a positive number of classes or -1"):
        cf.one_hot([0, 1], num_classes=-2)


def test_weight_of_a_non_real_dtype_is_refused():
    with pytest.raises(ValueError, match="weight must be a real array of length C = 3"):
        cf.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), weight=np.array(["a", "b", "c"]))


def test_bce_pos_weight_that_would_enlarge_the_input_is_refused():
    with pytest.raises(RuntimeError, match="broadcast"):  # torch refuses it too
        F.binary_cross_entropy_with_logits(torch.zeros(3), torch.zeros(3),
                                           pos_weight=torch.ones(2, 3))
    message = r"pos_weight of shape \(2, 3\) would enlarge the input's shape \(3,\)"
    with pytest.raises(ValueError, match=message):
        cf.binary_cross_entropy_with_logits(np.zeros(3), np.zeros(3), pos_weight=np.ones((2, 3)))


@pytest.mark.parametrize("fn", [cf.cross_entropy, cf.nll_loss, cf.binary_cross_entropy_with_logits])
def test_complex_input_to_a_loss_is_refused(fn):
    x = np.array([[1 + 2j, 3j]])
    with pytest.raises(ValueError, match="input must be a real floating array"):
        fn(x, np.zeros(x.shape) if fn is cf.binary_cross_entropy_with_logits else np.array([0]))


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
def test_cross_entropy_with_no_classes_and_every_target_ignored_matches_torch(dtype):
    ref = F.cross_entropy(torch.zeros(3, 0, dtype=torch.float64), torch.tensor([-100, -100, -100]))
    got = cf.cross_entropy(np.zeros((3, 0), dtype), np.array([-100, -100, -100]))
    assert np.isnan(got) and np.isnan(ref.item()) and got.dtype == dtype
    with pytest.raises(IndexError):  # torch: "Target 0 is out of bounds"
        cf.cross_entropy(np.zeros((3, 0), dtype), np.array([0, 0, 0]))
    for name in ("cross_entropy", "nll_loss"):
        for reduction in ("none", "sum"):
            ref = getattr(F, name)(torch.zeros(3, 0, dtype=torch.float64), torch.tensor([-100] * 3),
                                   reduction=reduction)
            got = getattr(cf, name)(np.zeros((3, 0), dtype), np.array([-100] * 3),
                                    reduction=reduction)
            np.testing.assert_array_equal(got, ref.numpy())


def test_bce_integer_target_is_refused():
    with pytest.raises(RuntimeError):  # torch: "result type Float can't be cast to ... Long"
        F.binary_cross_entropy_with_logits(torch.zeros(3), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match=r"target must be floating point .*astype\(np.float32\)"):
        cf.binary_cross_entropy_with_logits(np.zeros(3), np.array([0, 1, 1]))


# --------------------------------------------------------------------------------------
# Ignored elements under reduction='none' are +0.0, as torch writes them
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
def test_ignored_element_is_positive_zero(dtype):
    x = np.array([[1.0, 2.0, 3.0], [0.5, 1.0, 2.0]], dtype)  # positive: -0.0 * x would be -0.0
    t = np.array([0, 1])
    ours = cf.nll_loss(x, t, reduction="none", ignore_index=0)
    theirs = torch_result(F.nll_loss(torch.from_numpy(x), torch.from_numpy(t),
                                     reduction="none", ignore_index=0))
    np.testing.assert_array_equal(np.signbit(ours), np.signbit(theirs))
    assert ours[0] == 0.0 and not np.signbit(ours[0])


# --------------------------------------------------------------------------------------
# Issue 20: the edges, each against torch (or, where celib differs on purpose, pinned)
# --------------------------------------------------------------------------------------

from celib import grad as cg  # noqa: E402
from celib import naive  # noqa: E402

REDUCTIONS = ("none", "sum", "mean")


def as_torch(a: np.ndarray, requires_grad: bool = False) -> torch.Tensor:
    return torch.from_numpy(np.array(a, copy=True)).requires_grad_(requires_grad)


def assert_same(got, ref: torch.Tensor) -> None:
    """Values, nan positions, shape, dtype and the sign of zero."""
    expected = ref.detach().numpy()
    got = np.asarray(got)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(np.signbit(got[~np.isnan(got)]),
                                  np.signbit(expected[~np.isnan(expected)]))


def torch_linear(x, w, target, b=None, **kw):
    """torch's loss and its three gradients, for ``reduction``'s loss summed."""
    xt, wt = as_torch(x, True), as_torch(w, True)
    bt = None if b is None else as_torch(b, True)
    tkw = {k: as_torch(v) if k == "weight" else v for k, v in kw.items()}
    loss = F.linear_cross_entropy(xt, wt, as_torch(target), linear_bias=bt, **tkw)
    loss.sum().backward()
    return loss, xt.grad, wt.grad, None if bt is None else bt.grad


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("schedule", ["recompute", "fused", "auto"])
def test_linear_cross_entropy_of_no_tokens_matches_torch(reduction, schedule):
    x, w, y = np.zeros((0, 4)), np.ones((3, 4)), np.zeros(0, np.int64)
    ref = torch_linear(x, w, y, reduction=reduction)
    assert_same(cf.linear_cross_entropy(x, w, y, reduction=reduction), ref[0])
    got = cg.linear_cross_entropy_grad(x, w, y, reduction=reduction, return_loss=True,
                                       schedule=schedule, linear_bias=np.zeros(3))
    for ours, theirs in zip(got[:3], ref[:3], strict=True):
        assert_same(ours, theirs)
    assert got[3].shape == (3,) and not got[3].any()


@pytest.mark.parametrize("schedule", ["recompute", "fused", "auto"])
@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
def test_linear_cross_entropy_grad_of_a_non_finite_row_is_nan_where_torchs_is(schedule, dtype):
    cases = [  # the reproducer, and finite float32 input whose logits overflow
        (np.array([[np.inf], [1.0]]), np.array([[1.0], [-1.0], [0.5]]), np.array([1, 0])),
        (np.array([[1e30], [1e-30]]), np.array([[1e9], [-1.0], [0.5]]), np.array([1, 0])),
        (np.array([[np.inf], [1.0]]), np.array([[1.0], [-1.0], [0.5]]), np.array([-100, 0])),
    ]
    if dtype == np.float64:  # its logits stay finite (and huge) in float64
        del cases[1]
    for x, w, y in cases:
        x, w, b = x.astype(dtype), w.astype(dtype), np.zeros(3, dtype)
        ref = torch_linear(x, w, y, b)
        got = cg.linear_cross_entropy_grad(x, w, y, linear_bias=b, return_loss=True,
                                           schedule=schedule)
        for ours, theirs in zip(got, ref, strict=True):
            theirs = theirs.detach().numpy()
            np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
            np.testing.assert_allclose(ours, theirs, rtol=1e-5, equal_nan=True)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_no_classes_matches_torch(reduction, smoothing):
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    ignored = np.array([-100, -100])
    cases = [  # (input, target, class weight)
        (np.zeros((2, 0)), np.zeros((2, 0)), None),  # probabilities over no class
        (np.zeros((2, 0)), ignored, np.zeros(0)),
        (np.zeros((2, 0)), ignored, None),
        (np.zeros((1, 0, 3, 0)), np.zeros((1, 3, 0), np.int64), None),
    ]
    for x, y, w in cases:
        extra = {} if w is None else {"weight": w}
        textra = {} if w is None else {"weight": as_torch(w)}
        ref = F.cross_entropy(as_torch(x), as_torch(y), **kw, **textra)
        assert_same(cf.cross_entropy(x, y, **kw, **extra), ref)
        assert cg.cross_entropy_grad(x, y, **kw, **extra).shape == x.shape
        if y.dtype.kind == "i":
            ref = F.nll_loss(as_torch(x), as_torch(y), reduction=reduction, **textra)
            assert_same(cf.nll_loss(x, y, reduction=reduction, **extra), ref)
    for y in (ignored, np.zeros((2, 0))):  # linear_cross_entropy with V = 0
        x, w = np.ones((2, 4)), np.zeros((0, 4))
        ref = torch_linear(x, w, y, **kw)
        got = cg.linear_cross_entropy_grad(x, w, y, return_loss=True, **kw)
        assert_same(cf.linear_cross_entropy(x, w, y, **kw), ref[0])
        for ours, theirs in zip(got[:3], ref[:3], strict=True):
            assert_same(ours, theirs)


@pytest.mark.parametrize("shape, target", [((2,), np.array(-100)), ((1, 0, 1), np.array([[-100]]))],
                         ids=["1-D", "K-dim"])
def test_no_classes_where_torch_fails_gives_the_2d_answer(shape, target):
    # deliberate difference: torch raises (a size mismatch in its reshaping) on a 1-D or
    # K-dimensional input with no classes and a non-empty target; celib gives what torch gives
    # for the same elements as (N, 0) rows: 0 per ignored element, nan for 'mean'
    x = np.zeros((0,) if len(shape) == 1 else shape)
    with pytest.raises(RuntimeError):
        F.cross_entropy(as_torch(x), as_torch(target), reduction="none").sum().backward()
    np.testing.assert_array_equal(cf.cross_entropy(x, target, reduction="none"),
                                  np.zeros(target.shape))
    assert np.isnan(cf.cross_entropy(x, target))
    assert cg.cross_entropy_grad(x, target).shape == x.shape


WEIGHTS_SUMMING_TO_ZERO = [[1.0, -1.0, 0.0], [0.0, 0.0, 0.0], [2.0, -2.0, 1.0], [-0.0, -0.0, -0.0]]


@pytest.mark.parametrize("weight", WEIGHTS_SUMMING_TO_ZERO)
@pytest.mark.parametrize("target", [[0, 1], [2, 2], [1, 0], [-100, 1]])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
def test_mean_over_weights_summing_to_zero_is_ieee_like_torch(weight, target, smoothing, dtype):
    rng = np.random.default_rng(sum(map(abs, target)))
    x, y, w = rng.standard_normal((2, 3)).astype(dtype), np.array(target), np.array(weight, dtype)
    xt = as_torch(x, True)
    ref = F.cross_entropy(xt, as_torch(y), weight=as_torch(w), label_smoothing=smoothing)
    ref.backward()
    got = cf.cross_entropy(x, y, weight=w, label_smoothing=smoothing)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, ref.item(), rtol=1e-5, equal_nan=True)
    g = cg.cross_entropy_grad(x, y, weight=w, label_smoothing=smoothing)
    np.testing.assert_array_equal(np.isnan(g), np.isnan(xt.grad.numpy()))
    np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-5, equal_nan=True)
    if smoothing == 0.0:
        ref = F.nll_loss(as_torch(x), as_torch(y), weight=as_torch(w))
        np.testing.assert_allclose(cf.nll_loss(x, y, weight=w), ref.item(), equal_nan=True)
    b = rng.standard_normal(3).astype(dtype)
    ref_lin = torch_linear(np.eye(2, dtype=dtype), x.T.copy(), y, b, weight=w,
                           label_smoothing=smoothing)
    for schedule in ("recompute", "fused"):
        got_lin = cg.linear_cross_entropy_grad(np.eye(2, dtype=dtype), x.T.copy(), y,
                                               linear_bias=b, weight=w, return_loss=True,
                                               label_smoothing=smoothing, schedule=schedule)
        for ours, theirs in zip(got_lin, ref_lin, strict=True):
            np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-5, equal_nan=True)


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
def test_uint8_targets_are_taken_only_beside_1d_and_2d_input_as_in_torch(ndim):
    x = np.zeros((2, 3, 2, 2)[:ndim]) if ndim > 1 else np.zeros(3)
    y = np.zeros(x.shape[:1] + x.shape[2:] if ndim > 1 else (), np.uint8)
    try:
        F.cross_entropy(as_torch(x), as_torch(y))
        torch_takes = True
    except RuntimeError:  # "expected scalar type Long but found Byte"
        torch_takes = False
    assert torch_takes == (ndim <= 2)
    for fn in (cf.cross_entropy, cf.nll_loss, cg.cross_entropy_grad):
        if torch_takes:
            fn(x, y)
        else:
            with pytest.raises(ValueError, match="uint8 only with a 1-D or 2-D input"):
                fn(x, y)


@pytest.mark.parametrize("fn", [cf.cross_entropy, cf.nll_loss, cg.cross_entropy_grad])
def test_class_weight_of_another_dtype_is_refused_with_index_targets_as_in_torch(fn):
    x, y = np.zeros((2, 3), np.float32), np.array([0, 1])
    with pytest.raises(RuntimeError, match="expected scalar type Float but found Double"):
        F.cross_entropy(as_torch(x), as_torch(y), weight=torch.ones(3, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"weight must have the input's dtype float32.*float64"):
        fn(x, y, weight=np.ones(3))
    with pytest.raises(TypeError, match="weight must have the input's dtype float16"):
        fn(x.astype(np.float16), y, weight=np.ones(3, np.float32))
    fn(x, y, weight=[1.0, 2.0, 3.0])  # deliberate: a list has no dtype, it takes the input's
    with pytest.raises(TypeError, match="weight must have the input's dtype float32"):
        cf.linear_cross_entropy(x, np.ones((3, 3), np.float32), y, weight=np.ones(3))


def test_class_weight_of_another_dtype_is_taken_with_probability_targets_as_in_torch():
    x, p = np.zeros((2, 3), np.float32), np.full((2, 3), 1 / 3, np.float32)
    ref = F.cross_entropy(as_torch(x), as_torch(p), weight=torch.ones(3, dtype=torch.float64))
    got = cf.cross_entropy(x, p, weight=np.ones(3))
    np.testing.assert_allclose(got, ref.item(), rtol=1e-6)
    # deliberate difference: torch promotes the result to float64; celib keeps the input's
    assert ref.dtype == torch.float64 and got.dtype == np.float32


def test_longdouble_is_refused_everywhere_with_a_type_error():
    x = np.zeros((2, 3), np.longdouble)
    y = np.array([0, 1])
    calls = [
        lambda: cf.cross_entropy(x, y), lambda: cf.nll_loss(x, y),
        lambda: cg.cross_entropy_grad(x, y), lambda: cf.softmax(x), lambda: cf.log_softmax(x),
        lambda: cf.logsumexp(x), lambda: cf.binary_cross_entropy_with_logits(x, x),
        lambda: cf.linear_cross_entropy(x, x.T.copy(), y), lambda: cg.softmax_jacobian(x[0]),
        lambda: naive.softmax(x), lambda: cf.softmax(x.astype(np.float64), dtype=np.longdouble),
    ]
    for call in calls:
        with pytest.raises(TypeError, match=r"float16, np.float32 or np.float64|float16, float32"):
            call()


@pytest.mark.parametrize("fn, args", [
    (cf.cross_entropy, ([[1.0, 2.0], [3.0]], [0, 1])),
    (cf.softmax, ([[1.0, 2.0], [3.0]],)),
    (cg.softmax_jacobian, ([[1.0, 2.0], [3.0]],)),
    (cf.one_hot, ([[0, 1], [1]],)),
    (cf.cross_entropy, (np.zeros((2, 2)), [[0], [1, 0]])),
])
def test_a_ragged_list_is_named_and_explained(fn, args):
    with pytest.raises(ValueError, match="rows have different lengths"):
        fn(*args)


def test_no_runtime_warning_on_well_defined_results():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = np.array([[np.inf, 0.0], [-np.inf, 0.0], [0.0, 1.0]])
        cf.nll_loss(x, np.array([-100, 0, 1]), weight=np.array([0.0, 1.0]), reduction="none")
        cf.binary_cross_entropy_with_logits(np.array([np.inf, -np.inf, 1e308]),
                                            np.array([1.0, 0.0, 0.0]), reduction="none")
        cg.linear_cross_entropy_grad(np.array([[np.inf], [1.0]]), np.array([[1.0], [-1.0]]),
                                     np.array([1, 0]), linear_bias=np.zeros(2))
        cf.cross_entropy(x, np.array([0, 1, 1]), weight=np.array([1.0, -1.0]))


def test_bce_on_infinite_logits_follows_torch():
    x = np.array([-np.inf, -np.inf, np.inf, np.inf, 0.0])
    y = np.array([1.0, 0.5, 0.0, 1.0, np.inf])
    for pos_weight in (None, np.array([2.0])):
        kw = {} if pos_weight is None else {"pos_weight": pos_weight}
        tkw = {} if pos_weight is None else {"pos_weight": as_torch(pos_weight)}
        ref = F.binary_cross_entropy_with_logits(as_torch(x), as_torch(y), reduction="none",
                                                 **tkw)
        got = cf.binary_cross_entropy_with_logits(x, y, reduction="none", **kw)
        np.testing.assert_array_equal(got, ref.numpy())


def test_big_endian_and_read_only_arrays_give_native_results():
    x = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, -1.0]], ">f4")
    y = np.array([0, 2], ">i8")
    x.flags.writeable = False
    ref = F.cross_entropy(as_torch(x.astype(np.float32)), as_torch(y.astype(np.int64)))
    got = cf.cross_entropy(x, y, weight=np.ones(3, ">f4"))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref.item(), rtol=1e-6)
    assert cg.cross_entropy_grad(x, y).dtype == np.float32
