"""Edge cases of the argument handling: 0-d and empty inputs, integer logits, bad dtypes.

Each is compared with what torch does, or checked for the error torch would raise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from celib import functional as cf


def test_logsumexp_of_a_scalar_is_the_scalar():
    assert float(cf.logsumexp(np.float64(3.0))) == torch.logsumexp(torch.tensor(3.0, dtype=torch.float64), 0).item()


@pytest.mark.parametrize("fn", [cf.softmax, cf.log_softmax])
def test_softmax_family_on_an_empty_class_axis_is_empty(fn):
    out = fn(np.zeros((2, 0), np.float32), axis=1)
    assert out.shape == (2, 0) and out.dtype == np.float32


@pytest.mark.parametrize("fn", [cf.softmax, cf.log_softmax])
def test_softmax_family_refuses_a_0d_array(fn):
    with pytest.raises(ValueError, match="at least one axis"):
        fn(np.float64(1.0))


@pytest.mark.parametrize("fn", [cf.softmax, cf.log_softmax, cf.logsumexp])
def test_axis_out_of_range_is_a_value_error(fn):
    with pytest.raises(ValueError, match="axis 2 is out of range for an array with 2 dimension"):
        fn(np.zeros((2, 3)), axis=2)


def test_integer_logits_are_read_as_float64():
    out = cf.softmax([1, 2, 3])
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, torch.softmax(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), 0).numpy())


@pytest.mark.parametrize("bad", [np.array([True, False]), np.array([1 + 2j, 3j])], ids=["bool", "complex"])
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
        F.binary_cross_entropy_with_logits(torch.zeros(3), torch.zeros(3), pos_weight=torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"pos_weight of shape \(2, 3\) would enlarge the input's shape \(3,\)"):
        cf.binary_cross_entropy_with_logits(np.zeros(3), np.zeros(3), pos_weight=np.ones((2, 3)))
