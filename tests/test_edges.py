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
