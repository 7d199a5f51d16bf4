"""celib.targets.check_targets: every detection, its message (problem *and* fix), the success
path, and, where torch has an opinion, that torch really fails (or silently succeeds) on the same
input.

Messages are matched by the facts they must contain (the value, the range, the dtype, the fix),
not word for word.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from celib import functional as cf
from celib.targets import TargetSummary, TargetWarning, check_targets

C = 10
# The first nineteen MNIST test labels (chapter 7) and an 8, so that every digit occurs.
DIGITS = np.array([7, 2, 1, 0, 4, 1, 4, 9, 5, 9, 0, 6, 9, 0, 1, 5, 9, 7, 3, 8], dtype=np.int64)
LOGITS = np.random.default_rng(0).standard_normal((len(DIGITS), C))


def no_warnings(fn, *args, **kwargs):
    """Call fn with every warning turned into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


def caught_warnings(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    return result, caught


def message(excinfo) -> str:
    return str(excinfo.value)


def torch_error(logits, target) -> Exception:
    """The exception torch's cross_entropy raises on these inputs (fails if it raises none)."""
    with pytest.raises((RuntimeError, IndexError, ValueError)) as excinfo:
        F.cross_entropy(torch.as_tensor(logits), target)
    return excinfo.value


# ----------------------------------------------------------------------------------------------
# Success
# ----------------------------------------------------------------------------------------------

def test_valid_labels_summary():
    summary = no_warnings(check_targets, DIGITS, C)
    assert isinstance(summary, TargetSummary)
    assert summary.target.dtype == np.int64
    np.testing.assert_array_equal(summary.target, DIGITS)
    np.testing.assert_array_equal(summary.counts, np.bincount(DIGITS, minlength=C))
    assert summary.counts.dtype == np.int64
    assert summary.num_classes == C
    assert summary.num_targets == len(DIGITS)
    assert summary.num_ignored == 0
    assert summary.missing == ()


def test_returned_target_is_a_new_array():
    labels = DIGITS.copy()
    summary = no_warnings(check_targets, labels, C)
    summary.target[0] = 3
    assert labels[0] == 7


def test_returned_target_feeds_celib_and_torch_alike():
    summary = no_warnings(check_targets, DIGITS, C, input=LOGITS)
    ours = cf.cross_entropy(LOGITS, summary.target)
    theirs = F.cross_entropy(torch.from_numpy(LOGITS), torch.from_numpy(summary.target)).item()
    assert abs(float(ours) - theirs) < 1e-12


def test_repr_is_short_and_complete():
    text = repr(no_warnings(check_targets, DIGITS, C))
    assert text == (
        "TargetSummary(num_targets=20, num_classes=10, num_ignored=0, missing=(), "
        "counts=[3, 3, 1, 1, 2, 2, 1, 2, 1, 4])"
    )


@pytest.mark.parametrize("convert", [
    lambda y: y.tolist(),
    lambda y: y.astype(np.uint8),
    lambda y: torch.from_numpy(y),
    lambda y: torch.from_numpy(y.astype(np.uint8)),
], ids=["list", "uint8", "torch-int64", "torch-uint8"])
def test_accepted_containers_and_dtypes(convert):
    labels = np.arange(C).repeat(2)
    summary = no_warnings(check_targets, convert(labels), C)
    assert summary.target.dtype == np.int64
    np.testing.assert_array_equal(summary.target, labels)


def test_uint8_is_valid_in_torch_too():
    # MNIST's IDX files store labels as uint8; torch takes Byte targets as they are.
    labels = DIGITS.astype(np.uint8)
    no_warnings(check_targets, labels, C, warn_missing=False)
    loss_u8 = F.cross_entropy(torch.from_numpy(LOGITS), torch.from_numpy(labels)).item()
    loss_i64 = F.cross_entropy(torch.from_numpy(LOGITS), torch.from_numpy(DIGITS)).item()
    assert loss_u8 == loss_i64


def test_zero_dim_and_empty_targets():
    summary = no_warnings(check_targets, np.int64(1), 2, input=np.zeros(2), warn_missing=False)
    assert summary.target.shape == () and summary.counts.tolist() == [0, 1]
    # no warning: nothing to count
    empty = no_warnings(check_targets, np.array([], dtype=np.int64), 3)
    assert empty.num_targets == 0 and empty.missing == (0, 1, 2)


def test_spatial_targets_with_input():
    # (N, d1) targets for (N, C, d1) logits, even when d1 == C and the values are 0/1.
    logits = np.zeros((4, 3, 3))
    target = np.eye(3, dtype=np.int64)[[0, 1, 2, 0]]
    summary = no_warnings(check_targets, target, 3, input=logits, warn_missing=False)
    assert summary.target.shape == (4, 3)
    cf.cross_entropy(logits, summary.target)  # and the loss agrees it is valid


def test_input_may_be_a_tensor_that_requires_grad():
    logits = torch.zeros(len(DIGITS), C, requires_grad=True)
    no_warnings(check_targets, DIGITS, C, input=logits, warn_missing=False)


def test_ignore_index_is_skipped_and_counted():
    target = np.array([0, -1, 1, 2, -1])
    summary = no_warnings(check_targets, target, 3, ignore_index=-1)
    assert summary.num_ignored == 2 and summary.num_targets == 3
    assert summary.counts.tolist() == [1, 1, 1]
    # torch accepts the same target with the same ignore_index
    F.cross_entropy(torch.zeros(5, 3), torch.from_numpy(target), ignore_index=-1)


def test_default_ignore_index_is_torchs():
    target = np.array([0, -100, 1])
    summary = no_warnings(check_targets, target, 2)
    assert summary.num_ignored == 1
    F.cross_entropy(torch.zeros(3, 2), torch.from_numpy(target))


# ----------------------------------------------------------------------------------------------
# 1-based labels
# ----------------------------------------------------------------------------------------------

def test_one_based_labels_named_with_both_fixes():
    one_based = DIGITS + 1  # Lua Torch style: digit d is class d + 1
    with pytest.raises(IndexError) as excinfo:
        check_targets(one_based, C)
    msg = message(excinfo)
    assert "Target 10 is out of bounds" in msg  # the same opening as torch's message
    assert "[0, 10)" in msg
    assert "10 (4 targets)" in msg  # the value and how often: four 9s in DIGITS
    assert "1-based" in msg
    for source in ("Lua Torch", "MATLAB", "Octave", "SVHN"):
        assert source in msg
    assert "target - 1" in msg and "target % 10" in msg


def test_one_based_labels_fail_in_torch_and_celib_too():
    one_based = torch.from_numpy(DIGITS + 1)
    err = torch_error(LOGITS, one_based)
    assert isinstance(err, IndexError) and "Target 10 is out of bounds" in str(err)
    with pytest.raises(IndexError, match=r"Target 10 is out of bounds"):
        cf.cross_entropy(LOGITS, DIGITS + 1)


@pytest.mark.parametrize("fix", ["minus_one", "modulo"])
def test_svhn_style_labels_and_their_fixes(fix):
    svhn = np.where(DIGITS == 0, 10, DIGITS)  # SVHN / ex3: digit 0 has label 10
    with pytest.raises(IndexError, match="1-based"):
        check_targets(svhn, C)
    fixed = svhn - 1 if fix == "minus_one" else svhn % 10
    summary = check_targets(fixed, C, warn_missing=False)
    if fix == "modulo":
        np.testing.assert_array_equal(summary.target, DIGITS)  # class k is digit k again
    else:
        np.testing.assert_array_equal(summary.target, (DIGITS - 1) % 10)  # valid, but shifted


def test_zero_present_is_not_called_one_based():
    target = np.array([0, 1, 10, 3])
    with pytest.raises(IndexError) as excinfo:
        check_targets(target, C)
    assert "1-based" not in message(excinfo)
    assert "11 or more classes" in message(excinfo)


def test_one_based_with_one_spare_output_warns():
    # The silent failure: 11 logits, labels 1..10. torch trains without complaint...
    F.cross_entropy(torch.zeros(len(DIGITS), C + 1), torch.from_numpy(DIGITS + 1))
    cf.cross_entropy(np.zeros((len(DIGITS), C + 1)), DIGITS + 1)
    # ...check_targets does not raise either (the labels are valid), but it warns.
    labels = np.arange(C).repeat(2) + 1  # every digit present, shifted
    summary, caught = caught_warnings(check_targets, labels, C + 1)
    assert summary.missing == (0,)
    assert len(caught) == 1 and caught[0].category is TargetWarning
    text = str(caught[0].message)
    assert "1-based" in text and "Subtract 1" in text and "num_classes = 10" in text
    assert "shifted by one" in text


# ----------------------------------------------------------------------------------------------
# Out-of-range values
# ----------------------------------------------------------------------------------------------

def test_negative_values_named_with_ignore_index_hint():
    target = np.array([0, -1, 2, -1, 1])
    with pytest.raises(IndexError) as excinfo:
        check_targets(target, 3)
    msg = message(excinfo)
    assert "Target -1 is out of bounds" in msg and "[0, 3)" in msg
    assert "-1 (2 targets)" in msg
    assert "ignore_index" in msg
    err = torch_error(np.zeros((5, 3)), torch.from_numpy(target))
    assert isinstance(err, IndexError) and "Target -1 is out of bounds" in str(err)


def test_too_large_values_listed_with_counts():
    target = np.array([0, 12, 11, 12, 3])
    with pytest.raises(IndexError) as excinfo:
        check_targets(target, C)
    msg = message(excinfo)
    assert "Target 12 is out of bounds" in msg  # the first bad value, as torch reports it
    assert "11 (1 target), 12 (2 targets)" in msg
    assert "13 or more classes" in msg
    err = torch_error(np.zeros((5, C)), torch.from_numpy(target))
    assert isinstance(err, IndexError)


def test_many_bad_values_are_abbreviated():
    target = np.arange(20, 40)
    with pytest.raises(IndexError, match=r"and 15 more"):
        check_targets(target, C)


def test_uint8_out_of_range():
    with pytest.raises(IndexError, match=r"Target 255 is out of bounds"):
        check_targets(np.array([0, 255], dtype=np.uint8), C)


# ----------------------------------------------------------------------------------------------
# Dtypes
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, torch_name", [
    (np.float32, "Float"), (np.float64, "Double"), (np.float16, "Half"),
])
def test_float_labels(dtype, torch_name):
    labels = DIGITS.astype(dtype)
    with pytest.raises(ValueError) as excinfo:
        check_targets(labels, C)
    msg = message(excinfo)
    assert np.dtype(dtype).name in msg and "astype(np.int64)" in msg and ".long()" in msg
    assert f"but got {torch_name}" in msg
    err = torch_error(LOGITS, torch.from_numpy(labels))
    assert f"but got {torch_name}" in str(err)  # the very message torch gives


@pytest.mark.parametrize("dtype, torch_name", [
    (np.int32, "Int"), (np.int16, "Short"), (np.int8, "Char"),
])
def test_narrow_integer_labels(dtype, torch_name):
    labels = DIGITS.astype(dtype)
    with pytest.raises(ValueError) as excinfo:
        check_targets(labels, C)
    msg = message(excinfo)
    assert np.dtype(dtype).name in msg and "int64" in msg and "astype(np.int64)" in msg
    assert f"but got {torch_name}" in msg
    err = torch_error(LOGITS, torch.from_numpy(labels))
    assert f"but got {torch_name}" in str(err)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.uint64])
def test_wide_unsigned_labels(dtype):
    with pytest.raises(ValueError, match=np.dtype(dtype).name):
        check_targets(DIGITS.astype(dtype), C)


def test_int32_torch_tensor():
    with pytest.raises(ValueError, match=r"int32"):
        check_targets(torch.from_numpy(DIGITS).int(), C)


def test_bool_labels():
    labels = DIGITS % 2 == 1
    with pytest.raises(ValueError) as excinfo:
        check_targets(labels, 2)
    msg = message(excinfo)
    assert "bool" in msg and "num_classes = 2" in msg and "binary_cross_entropy_with_logits" in msg
    err = torch_error(np.zeros((len(labels), 2)), torch.from_numpy(labels))
    assert "Bool" in str(err)


def test_fractional_and_nan_labels():
    with pytest.raises(ValueError, match=r"non-integer values such as 0\.5"):
        check_targets(np.array([0.0, 0.5, 2.0]), 3)
    with pytest.raises(ValueError, match=r"nan"):
        check_targets(np.array([0.0, np.nan]), 3)
    with pytest.raises(ValueError, match=r"inf"):
        check_targets(np.array([0.0, np.inf]), 3)


@pytest.mark.parametrize("bad", [np.array([1 + 0j]), np.array(["1"]), np.array([None, 1])],
                         ids=["complex", "str", "object"])
def test_non_numeric_labels(bad):
    with pytest.raises(ValueError, match=r"must be integers"):
        check_targets(bad, C)


# ----------------------------------------------------------------------------------------------
# Shapes: one-hot, multi-hot, probabilities, a trailing axis of 1
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int64, np.float32, np.uint8])
def test_one_hot_passed_as_indices(dtype):
    one_hot = np.eye(C, dtype=dtype)[DIGITS]
    with pytest.raises(ValueError) as excinfo:
        check_targets(one_hot, C)
    msg = message(excinfo)
    assert "one-hot" in msg and f"{one_hot.shape}" in msg
    assert "argmax(axis=1)" in msg and "argmax(dim=1)" in msg
    assert "probability target" in msg and "astype(np.float32)" in msg
    assert f"({len(DIGITS)},)" in msg  # the shape class indices must have
    # the fix works
    no_warnings(check_targets, one_hot.argmax(axis=1), C, warn_missing=False)


def test_one_hot_in_torch():
    one_hot = F.one_hot(torch.from_numpy(DIGITS), C)
    # integer one-hot: torch refuses it ...
    err = torch_error(LOGITS, one_hot)
    assert "Expected floating point type for target with class probabilities" in str(err)
    # ... float one-hot: torch reads it as probabilities and gives the index-target loss
    as_probs = F.cross_entropy(torch.from_numpy(LOGITS), one_hot.double()).item()
    as_index = F.cross_entropy(torch.from_numpy(LOGITS), one_hot.argmax(dim=1)).item()
    assert abs(as_probs - as_index) < 1e-12
    # with the logits given, check_targets uses torch's rule (the input's shape) and still explains
    with pytest.raises(ValueError, match="one-hot"):
        check_targets(one_hot, C, input=LOGITS)


def test_multi_hot():
    target = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0]])
    with pytest.raises(ValueError) as excinfo:
        check_targets(target, 3)
    msg = message(excinfo)
    assert "multi-hot" in msg and "binary_cross_entropy_with_logits" in msg


def test_probabilities():
    probs = cf.softmax(LOGITS, axis=1)
    with pytest.raises(ValueError) as excinfo:
        check_targets(probs, C)
    msg = message(excinfo)
    assert "probabilities" in msg and "argmax" in msg


def test_two_column_integer_target_is_not_one_hot_when_values_are_not_binary():
    target = np.array([[0, 2], [2, 1]])  # (N, d1) with d1 == C, values not 0/1: index target
    summary = no_warnings(check_targets, target, 3, warn_missing=False)
    assert summary.target.shape == (2, 2)


def test_trailing_axis_of_one():
    column = DIGITS[:, None]
    with pytest.raises(ValueError) as excinfo:
        check_targets(column, C)
    msg = message(excinfo)
    assert f"{column.shape}" in msg and "reshape(-1)" in msg and "squeeze(1)" in msg
    assert f"({len(DIGITS)},)" in msg
    err = torch_error(LOGITS, torch.from_numpy(column))
    assert "multi-target not supported" in str(err)
    with pytest.raises(ValueError, match=r"reshape\(-1\)"):
        check_targets(column, C, input=LOGITS)


def test_several_problems_in_one_message():
    # SVHN labels as scipy.io.loadmat gives them: a uint8 column of 1..10 (10 is the digit 0).
    svhn = np.where(DIGITS == 0, 10, DIGITS).astype(np.uint8)[:, None]
    with pytest.raises(ValueError) as excinfo:  # the first problem's type: the shape
        check_targets(svhn, C)
    msg = message(excinfo)
    assert msg.startswith("2 problems with these targets:")
    assert "\n  1. shape (20, 1)" in msg and "\n  2. Target 10 is out of bounds" in msg
    assert "1-based" in msg


def test_dtype_and_range_problems_together():
    labels = (DIGITS + 1).astype(np.int32)
    with pytest.raises(ValueError) as excinfo:
        check_targets(labels, C)
    msg = message(excinfo)
    assert "2 problems" in msg and "int32" in msg and "1-based" in msg


# ----------------------------------------------------------------------------------------------
# Against the logits
# ----------------------------------------------------------------------------------------------

def test_input_with_another_number_of_classes():
    with pytest.raises(ValueError) as excinfo:
        check_targets(DIGITS, C, input=np.zeros((len(DIGITS), C + 1)))
    msg = message(excinfo)
    assert "C = 11" in msg and "num_classes = 10" in msg


def test_input_with_another_batch_size():
    with pytest.raises(ValueError) as excinfo:
        check_targets(DIGITS, C, input=np.zeros((len(DIGITS) - 1, C)))
    msg = message(excinfo)
    assert f"({len(DIGITS) - 1},)" in msg and f"({len(DIGITS)},)" in msg
    err = torch_error(np.zeros((len(DIGITS) - 1, C)), torch.from_numpy(DIGITS))
    assert "batch_size" in str(err) or "match" in str(err)


def test_zero_dim_input_refused():
    with pytest.raises(ValueError, match="class axis"):
        check_targets(np.int64(0), 1, input=np.float64(0.0))


# ----------------------------------------------------------------------------------------------
# Missing classes: a warning
# ----------------------------------------------------------------------------------------------

def test_missing_class_warns_with_the_list():
    labels = np.array([0, 1, 1, 3, 3])
    summary, caught = caught_warnings(check_targets, labels, 5)
    assert summary.missing == (2, 4)
    assert len(caught) == 1 and caught[0].category is TargetWarning
    text = str(caught[0].message)
    assert "2 classes of 5 never occur among the 5 targets: 2, 4." in text
    assert "warn_missing=False" in text


def test_top_classes_missing_suggest_num_classes_too_large():
    _, caught = caught_warnings(check_targets, np.arange(5), 12)
    text = str(caught[0].message)
    assert "7 classes of 12" in text and "largest label is 4" in text and "too large" in text


def test_one_missing_class_grammar():
    _, caught = caught_warnings(check_targets, np.array([0, 1]), 3)
    assert "1 class of 3 never occurs" in str(caught[0].message)


def test_warning_points_at_the_caller():
    _, caught = caught_warnings(check_targets, np.array([0, 1]), 3)
    assert caught[0].filename == __file__


def test_warn_missing_false_is_silent():
    summary = no_warnings(check_targets, np.array([0, 1]), 3, warn_missing=False)
    assert summary.missing == (2,)


def test_mnist_test_labels_have_every_digit():
    pytest.importorskip("celib.datasets")
    from celib.datasets import load_mnist_labels

    try:
        labels = load_mnist_labels("test", download=False)
    except FileNotFoundError:
        pytest.skip("MNIST test labels not available offline (set CELIB_MNIST_DIR)")
    summary = no_warnings(check_targets, labels, C)
    assert summary.counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    with pytest.raises(IndexError, match="1-based"):
        check_targets(labels + 1, C)


# ----------------------------------------------------------------------------------------------
# num_classes
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [0, -1, np.int64(-3), 2**63, 2**70])
def test_num_classes_out_of_range(bad):
    with pytest.raises(ValueError, match=r"num_classes must be at .*" + re.escape(f"got {bad!r}")):
        check_targets(DIGITS, bad)


@pytest.mark.parametrize("bad", [True, False, np.True_, 2.0, np.float64(10.0), "10", None, 10j])
def test_num_classes_that_is_not_an_integer(bad):
    # a bool is not a number of classes, whatever Python says (True == 1): a TypeError
    with pytest.raises(TypeError, match=r"num_classes must be an integer .*"
                       + re.escape(f"got {bad!r}")):
        check_targets(DIGITS, bad)


def test_largest_int64_num_classes_gets_a_clear_memory_error():
    # 2**63 - 1 is a valid int64 C, but its per-class counts cannot be allocated (issue 20:
    # this was an OverflowError from numpy for 2**70)
    with pytest.raises(MemoryError, match=r"num_classes = 9223372036854775807 is too large"):
        check_targets(DIGITS, 2**63 - 1)


@pytest.mark.parametrize("bad", [True, np.False_, 1.0, -100.0, "-100", None])
def test_ignore_index_that_is_not_an_integer(bad):
    with pytest.raises(TypeError, match=r"ignore_index must be an integer .*"
                       + re.escape(f"got {bad!r}")):
        check_targets(DIGITS, C, ignore_index=bad)
    if bad is not None and not isinstance(bad, np.bool_):  # torch: TypeError as well
        with pytest.raises(TypeError, match="ignore_index"):
            F.cross_entropy(torch.from_numpy(LOGITS), torch.from_numpy(DIGITS), ignore_index=bad)


def test_numpy_integer_ignore_index():
    summary = no_warnings(check_targets, np.append(DIGITS, -1), C, ignore_index=np.int32(-1))
    assert summary.num_ignored == 1


@pytest.mark.parametrize("bad", [1, 0, None, "no", np.array([True])])
def test_warn_missing_must_be_a_bool(bad):
    with pytest.raises(TypeError, match=r"warn_missing must be True or False"):
        check_targets(DIGITS, C, warn_missing=bad)


@pytest.mark.parametrize("bad", [[[0, 1], [2]], [0, [1, 2]]])
def test_ragged_target_and_input_are_named(bad):
    with pytest.raises(ValueError, match=r"^target must be a rectangular array, .*ragged"):
        check_targets(bad, 3)
    with pytest.raises(ValueError, match=r"^input must be a rectangular array, .*ragged"):
        check_targets([0, 1], 3, input=bad)


@pytest.mark.parametrize("value, dtype", [(1e30, np.float64), (-1e19, np.float64),
                                          (np.inf, np.float32), (2**64 - 1, np.uint64),
                                          (2.0**63, np.float64)])
def test_values_beyond_int64_are_out_of_range_without_a_warning(value, dtype):
    # they cannot be cast to int64 (numpy would wrap them or warn): named as they are
    labels = np.array([0, 1, value], dtype=dtype)
    if not np.isfinite(labels).all():
        with pytest.raises(ValueError, match="inf"):
            no_warnings(check_targets, labels, 2)
        return
    with pytest.raises((IndexError, ValueError)) as excinfo:
        no_warnings(check_targets, labels, 2)
    assert f"Target {labels[2]} is out of bounds" in message(excinfo)
    assert "[0, 2)" in message(excinfo)


def test_numpy_integer_num_classes():
    summary = no_warnings(check_targets, DIGITS, np.int64(C), warn_missing=False)
    assert summary.num_classes == C and type(summary.num_classes) is int


def test_target_of_the_logits_shape_with_other_values():
    # torch reads any target of the input's shape as one value per class (probabilities).
    with pytest.raises(ValueError, match=r"one value per class.*\(20,\)"):
        check_targets(LOGITS * 3, C, input=LOGITS)


def test_long_list_of_missing_classes_is_abbreviated():
    _, caught = caught_warnings(check_targets, np.array([0, 0]), 15)
    assert "14 classes of 15" in str(caught[0].message)
    assert "1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 4 more" in str(caught[0].message)


# --------------------------------------------------------------------------------------
# the named checks that check_targets composes, one by one
# --------------------------------------------------------------------------------------


def test_named_checks_one_by_one():
    from celib import targets as ct

    assert ct._check_num_classes(np.int64(3)) == 3
    for bad in (True, 2.0):
        with pytest.raises(TypeError, match="num_classes"):
            ct._check_num_classes(bad)
    with pytest.raises(ValueError, match="num_classes"):
        ct._check_num_classes(0)
    assert ct._check_input(None, 3) is None
    assert ct._check_input(np.zeros((2, 3, 4)), 3) == (2, 3, 4)
    with pytest.raises(ValueError, match="C = 4 classes"):
        ct._check_input(np.zeros((2, 4)), 3)
    with pytest.raises(ValueError, match="boolean target"):
        ct._check_value_kind(np.array([True]))
    ct._check_value_kind(np.array([1.5]))  # floats pass here, _check_whole_numbers decides
    with pytest.raises(ValueError, match="one-hot"):
        ct._check_not_rows_of_classes(np.eye(3, dtype=np.int64), 3, None)

    problems = ct._Problems()
    assert ct._check_shape(np.zeros((4, 1), np.int64), None, problems).shape == (4,)
    ct._check_dtype(np.zeros(4, np.int32), None, problems)
    ct._check_dtype(np.zeros(4, np.uint8), None, problems)  # valid: no problem added
    assert [kind for kind, _ in problems.items] == [ValueError, ValueError]

    with pytest.raises(ValueError, match="non-integer values such as 1.5"):
        ct._check_whole_numbers(np.array([1.0, 1.5]), 3)
    ct._check_whole_numbers(np.array([1.0, 2.0]), 3)

    assert ct._looks_one_based(np.array([1, 2, 3]), 3)
    assert not ct._looks_one_based(np.array([0, 1, 3]), 3)
    assert not ct._looks_one_based(np.array([1, 2]), 3)  # valid 0-based labels, 0 missing
    problems = ct._Problems()
    ct._check_range(np.array([0, 1, 2]), 3, -100, problems)
    assert not problems.items
    ct._check_range(np.array([-1, 5]), 3, -100, problems)
    (kind, message), = problems.items
    assert kind is IndexError and "Negative values" in message and "6 or more classes" in message


# ----------------------------------------------------------------------------------------------
# Which dtypes torch takes at each rank of the logits (issue 20): check_targets refuses the rest
# ----------------------------------------------------------------------------------------------

def _torch_accepts(logits: np.ndarray, target: np.ndarray) -> bool:
    """Whether torch 2.13's cross_entropy and nll_loss both take these class indices."""
    x, t = torch.from_numpy(logits), torch.from_numpy(target)
    try:
        F.cross_entropy(x, t, reduction="none")
        F.nll_loss(x, t, reduction="none")
    except RuntimeError:
        return False
    return True


INPUT_SHAPES = [(3,), (4, 3), (4, 3, 2), (2, 3, 2, 2), (1, 3, 2, 1, 2)]
TARGET_DTYPES = [np.int64, np.uint8, np.int32, np.int16, np.int8, np.uint16, np.uint32,
                 np.uint64]


@pytest.mark.parametrize("input_shape", INPUT_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", TARGET_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("with_input", [True, False], ids=["input", "no-input"])
def test_refuses_exactly_the_target_dtypes_torch_refuses(input_shape, dtype, with_input):
    logits = np.random.default_rng(1).standard_normal(input_shape)
    target_shape = () if len(input_shape) == 1 else (input_shape[0],) + input_shape[2:]
    target = (np.arange(int(np.prod(target_shape))) % 3).reshape(target_shape).astype(dtype)
    accepted = _torch_accepts(logits, target)
    kwargs = {"input": logits} if with_input else {}
    if accepted:
        no_warnings(check_targets, target, 3, warn_missing=False, **kwargs)
        return
    with pytest.raises(ValueError) as excinfo:
        check_targets(target, 3, **kwargs)
    assert np.dtype(dtype).name in message(excinfo)
    assert "target.astype(np.int64)" in message(excinfo)


def test_uint8_segmentation_mask_names_the_fix():
    mask = np.zeros((2, 4, 4), dtype=np.uint8)
    with pytest.raises(ValueError) as excinfo:
        check_targets(mask, 3, input=np.zeros((2, 3, 4, 4)), warn_missing=False)
    msg = message(excinfo)
    assert "uint8" in msg and "(N, C)" in msg and "target.astype(np.int64)" in msg
    assert "expected scalar type Long but found Byte" in msg
    err = torch_error(np.zeros((2, 3, 4, 4)), torch.from_numpy(mask))
    assert "expected scalar type Long but found Byte" in str(err)  # the very message torch gives
    no_warnings(check_targets, mask.astype(np.int64), 3, input=np.zeros((2, 3, 4, 4)),
                warn_missing=False)


def test_empty_uint8_k_dimensional_target_is_refused_too():
    # Deliberate difference: torch's 'mean' and 'sum' return early on an empty K-dimensional
    # batch and so take uint8 there, while 'none' refuses it; check_targets knows no reduction
    # and refuses uint8 for every K-dimensional target, empty or not.
    logits, target = np.zeros((0, 3, 4)), np.zeros((0, 4), dtype=np.uint8)
    F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(target), reduction="mean")
    with pytest.raises(RuntimeError, match="found Byte"):
        F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(target), reduction="none")
    with pytest.raises(ValueError, match="uint8"):
        check_targets(target, 3, input=logits)


def test_uint8_with_smoothing_and_weight_fails_in_torch_only():
    # Deliberate difference: torch's gather wants int64 when label smoothing and class weights
    # are both given; check_targets takes neither option and accepts uint8 for (N, C) logits.
    target = DIGITS.astype(np.uint8)
    logits, weight = torch.from_numpy(LOGITS), torch.ones(C, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="int32/int64"):
        F.cross_entropy(logits, torch.from_numpy(target), weight=weight, label_smoothing=0.1)
    F.cross_entropy(logits, torch.from_numpy(target), label_smoothing=0.1)  # either alone is fine
    F.cross_entropy(logits, torch.from_numpy(target), weight=weight)
    no_warnings(check_targets, target, C, input=LOGITS, warn_missing=False)
