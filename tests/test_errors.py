"""Bad input: the right exception type, and a message that names the offending value and
what was expected.  Never a silent wrong number.

Messages are matched loosely (regexes below) so wording can change; what may not change is
that the value and the valid range / expected shape appear in the message.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from celib import functional as cf
from celib import grad as cg


def num_re(v) -> str:
    """The number v as a whole token (10 but not 100 or 1.0)."""
    return rf"(?<![\d.]){re.escape(str(v))}(?![\d])"


def range_re(C: int) -> str:
    """The valid class range [0, C) in any of the usual spellings."""
    return (
        rf"\[\s*0\s*,\s*{C}\s*\)"  # [0, C)
        rf"|\[\s*0\s*,\s*{C - 1}\s*\]"  # [0, C-1]
        rf"|\b0\s*(?:to|\.\.\.?|-|–|and)\s*{C - 1}\b"  # 0 to C-1, 0..C-1, 0-C-1
        rf"|0\s*<=?\s*\w*\s*<\s*{C}\b"  # 0 <= t < C
        rf"|range\(\s*(?:0\s*,\s*)?{C}\s*\)"  # range(C)
    )


def shape_re(shape) -> str:
    """A shape like (3, 4) written as (3, 4), [3, 4] or 3x4."""
    inner = r"\s*,\s*".join(str(s) for s in shape)
    if len(shape) == 1:
        inner += r"\s*,?"
    return rf"[(\[]\s*{inner}\s*[)\]]|" + r"\s*[x×]\s*".join(str(s) for s in shape)


def assert_msg(excinfo, *patterns):
    msg = str(excinfo.value)
    for p in patterns:
        assert re.search(p, msg), f"message {msg!r} does not match {p!r}"


X = np.random.default_rng(0).standard_normal((3, 4))
X3 = np.random.default_rng(1).standard_normal((2, 4, 3))


def losses_with_index_targets():
    """Every public entry point that takes index targets: (name, callable(input, target, **kw))."""
    return [
        ("cross_entropy", cf.cross_entropy),
        ("cross_entropy_ls", lambda x, t, **kw: cf.cross_entropy(x, t, label_smoothing=0.1, **kw)),
        ("nll_loss", cf.nll_loss),
        ("cross_entropy_grad", cg.cross_entropy_grad),
    ]


LOSSES = losses_with_index_targets()
LOSS_IDS = [n for n, _ in LOSSES]
LOSS_FNS = [f for _, f in LOSSES]


# --------------------------------------------------------------------------------------
# out-of-range class indices: IndexError naming the value and the valid range
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", LOSS_FNS, ids=LOSS_IDS)
@pytest.mark.parametrize("bad", [4, 7, 100, -1, -3, -101])
def test_out_of_range_target_raises_index_error(fn, bad):
    t = np.array([0, bad, 2])
    with pytest.raises(IndexError) as ei:
        fn(X, t)
    assert_msg(ei, num_re(bad), range_re(4))


@pytest.mark.parametrize("fn", LOSS_FNS, ids=LOSS_IDS)
def test_out_of_range_target_k_dim(fn):
    t = np.array([[0, 1, 2], [3, 9, 0]])
    with pytest.raises(IndexError) as ei:
        fn(X3, t)
    assert_msg(ei, num_re(9), range_re(4))


@pytest.mark.parametrize("fn", LOSS_FNS, ids=LOSS_IDS)
def test_out_of_range_scalar_target(fn):
    with pytest.raises(IndexError) as ei:
        fn(X[0], np.array(6))
    assert_msg(ei, num_re(6), range_re(4))
    with pytest.raises(IndexError):
        fn(X[0], 6)


@pytest.mark.parametrize("fn", LOSS_FNS, ids=LOSS_IDS)
def test_out_of_range_target_with_weight_and_custom_ignore_index(fn):
    # ignore_index=7 skips 7 but 8 is still out of range; -100 is no longer ignored
    with pytest.raises(IndexError) as ei:
        fn(X, np.array([7, 8, 0]), ignore_index=7, weight=np.ones(4))
    assert_msg(ei, num_re(8), range_re(4))
    with pytest.raises(IndexError) as ei:
        fn(X, np.array([7, -100, 0]), ignore_index=7)
    assert_msg(ei, num_re(-100), range_re(4))


@pytest.mark.parametrize("fn", LOSS_FNS, ids=LOSS_IDS)
def test_out_of_range_unsigned_target(fn):
    with pytest.raises(IndexError) as ei:
        fn(X, np.array([0, 200, 1], dtype=np.uint8))
    assert_msg(ei, num_re(200), range_re(4))


@pytest.mark.parametrize("fn", LOSS_FNS, ids=LOSS_IDS)
def test_out_of_range_even_in_sum_and_none(fn):
    for reduction in ("sum", "none"):
        with pytest.raises(IndexError):
            fn(X, np.array([0, 4, 1]), reduction=reduction)


@pytest.mark.parametrize("bad,C", [(5, 3), (3, 3), (10, 10)])
def test_one_hot_out_of_range(bad, C):
    with pytest.raises(IndexError) as ei:
        cf.one_hot(np.array([0, bad, 1]), C)
    assert_msg(ei, num_re(bad), range_re(C))


def test_one_hot_negative_label():
    with pytest.raises(IndexError) as ei:
        cf.one_hot(np.array([0, -1, 1]), 3)
    assert_msg(ei, num_re(-1), range_re(3))
    with pytest.raises(IndexError) as ei:
        cf.one_hot(np.array([0, -2, 1]))  # inferred num_classes: still refused
    assert_msg(ei, num_re(-2))


def test_one_hot_bad_labels():
    with pytest.raises((ValueError, TypeError)):
        cf.one_hot(np.array([0.0, 1.0]), 2)
    with pytest.raises(ValueError):
        cf.one_hot(np.zeros(0, dtype=np.int64))  # cannot infer the number of classes


# --------------------------------------------------------------------------------------
# shapes: ValueError saying what was expected
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", LOSS_FNS, ids=LOSS_IDS)
def test_batch_size_mismatch(fn):
    with pytest.raises(ValueError) as ei:
        fn(X, np.array([0, 1]))
    assert_msg(ei, num_re(3), num_re(2))


@pytest.mark.parametrize("fn", LOSS_FNS, ids=LOSS_IDS)
def test_k_dim_target_shape_mismatch(fn):
    with pytest.raises(ValueError) as ei:
        fn(X3, np.array([[0, 1], [1, 1]]))
    assert_msg(ei, shape_re((2, 3)))
    with pytest.raises(ValueError):
        fn(X3, np.array([0, 1]))  # (N,) target for an (N, C, d1) input
    with pytest.raises(ValueError):
        fn(X, np.array([[0], [1], [2]]))  # (N, 1) target for an (N, C) input


@pytest.mark.parametrize("fn", LOSS_FNS, ids=LOSS_IDS)
def test_scalar_input_refused(fn):
    with pytest.raises(ValueError):
        fn(np.float64(1.0), np.array(0))
    with pytest.raises(ValueError):
        fn(np.array(1.0), np.array(0))


@pytest.mark.parametrize("fn", LOSS_FNS, ids=LOSS_IDS)
def test_index_target_of_input_shape_refused(fn):
    # an integer target shaped like the input is neither an index target nor a probability
    # target (probabilities must be floating)
    with pytest.raises(ValueError):
        fn(X, np.zeros((3, 4), dtype=np.int64))


@pytest.mark.parametrize("fn", [cf.cross_entropy, cg.cross_entropy_grad], ids=["cross_entropy", "grad"])
def test_float_target_of_other_shape(fn):
    with pytest.raises(ValueError) as ei:
        fn(X, np.full((3, 5), 0.2))
    assert_msg(ei, shape_re((3, 4)))
    # float target holding whole numbers, shape (N,): a probability target of the wrong
    # shape (torch: "expected ... Long"), never silently cast to indices
    with pytest.raises(ValueError) as ei:
        fn(X, np.array([0.0, 1.0, 2.0]))
    assert_msg(ei, shape_re((3, 4)))
    with pytest.raises(ValueError):
        fn(X3, np.array([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]]))


def test_nll_loss_float_target_refused():
    with pytest.raises(ValueError):
        cf.nll_loss(X, np.array([0.0, 1.0, 2.0]))
    with pytest.raises((ValueError, TypeError)):
        cf.nll_loss(X, np.full((3, 4), 0.25))


@pytest.mark.parametrize("fn", LOSS_FNS, ids=LOSS_IDS)
def test_bool_target_refused(fn):
    with pytest.raises(ValueError) as ei:
        fn(X, np.array([True, False, True]))
    assert_msg(ei, r"(?i)bool")
    with pytest.raises(ValueError):
        fn(X, np.ones((3, 4), dtype=bool))


# --------------------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------------------

ALL_REDUCING = LOSSES + [
    ("bce", lambda x, t, **kw: cf.binary_cross_entropy_with_logits(x, np.zeros_like(x), **kw)),
    ("cross_entropy_prob", lambda x, t, **kw: cf.cross_entropy(x, np.full_like(x, 0.25), **kw)),
]


@pytest.mark.parametrize("fn", [f for _, f in ALL_REDUCING], ids=[n for n, _ in ALL_REDUCING])
@pytest.mark.parametrize("reduction", ["avg", "MEAN", "", "elementwise_mean", None])
def test_unknown_reduction(fn, reduction):
    with pytest.raises(ValueError) as ei:
        fn(X, np.array([0, 1, 2]), reduction=reduction)
    assert_msg(ei, re.escape(repr(reduction)) + "|" + re.escape(str(reduction)) if reduction else r".")
    assert_msg(ei, r"mean")  # names the valid choices


@pytest.mark.parametrize("ls", [-0.1, 1.5, 2.0, float("nan"), float("inf")])
@pytest.mark.parametrize("fn", [cf.cross_entropy, cg.cross_entropy_grad], ids=["cross_entropy", "grad"])
def test_label_smoothing_outside_unit_interval(fn, ls):
    with pytest.raises(ValueError) as ei:
        fn(X, np.array([0, 1, 2]), label_smoothing=ls)
    assert_msg(ei, r"(?i)label.?smoothing")
    if np.isfinite(ls):
        assert_msg(ei, re.escape(str(ls)))
    with pytest.raises(ValueError):
        fn(X, np.full((3, 4), 0.25), label_smoothing=ls)


@pytest.mark.parametrize("fn", LOSS_FNS + [cf.cross_entropy], ids=LOSS_IDS + ["cross_entropy_prob"])
@pytest.mark.parametrize("w", [np.ones(3), np.ones(5), np.ones((1, 4)), np.ones((4, 1)), np.ones(())])
def test_weight_of_wrong_length(fn, w):
    target = np.full((3, 4), 0.25) if fn is cf.cross_entropy else np.array([0, 1, 2])
    with pytest.raises(ValueError) as ei:
        fn(X, target, weight=w)
    assert_msg(ei, r"(?i)weight", num_re(4))


@pytest.mark.parametrize("ign", [0, 1, 3, 7])
@pytest.mark.parametrize("fn", [cf.cross_entropy, cg.cross_entropy_grad], ids=["cross_entropy", "grad"])
def test_probability_targets_refuse_ignore_index(fn, ign):
    # torch: "ignore_index is not supported for floating point target" for any ignore_index
    # >= 0 (a negative one is accepted: see test_functional)
    with pytest.raises(ValueError) as ei:
        fn(X, np.full((3, 4), 0.25), ignore_index=ign)
    assert_msg(ei, r"(?i)ignore.?index")


# --------------------------------------------------------------------------------------
# binary_cross_entropy_with_logits
# --------------------------------------------------------------------------------------


def test_bce_target_shape_mismatch():
    with pytest.raises(ValueError) as ei:
        cf.binary_cross_entropy_with_logits(X, np.zeros(3))
    assert_msg(ei, shape_re((3, 4)))
    with pytest.raises(ValueError):
        cf.binary_cross_entropy_with_logits(X, np.zeros((3, 4, 1)))


def test_bce_weight_not_broadcastable():
    with pytest.raises(ValueError):
        cf.binary_cross_entropy_with_logits(X, np.zeros((3, 4)), weight=np.ones(3))
    with pytest.raises(ValueError):
        cf.binary_cross_entropy_with_logits(X, np.zeros((3, 4)), pos_weight=np.ones(3))
    with pytest.raises(ValueError):
        cf.binary_cross_entropy_with_logits(X, np.zeros((3, 4)), pos_weight=np.ones((2, 1)))


# --------------------------------------------------------------------------------------
# grad helpers
# --------------------------------------------------------------------------------------


def test_softmax_jacobian_needs_a_vector():
    with pytest.raises(ValueError):
        cg.softmax_jacobian(np.zeros((2, 3)))
    with pytest.raises(ValueError):
        cg.softmax_jacobian(np.float64(1.0))
