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
from celib.calibration import focal_loss


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


@pytest.mark.parametrize("fn", [cf.cross_entropy, cg.cross_entropy_grad],
                         ids=["cross_entropy", "grad"])
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
    pattern = re.escape(repr(reduction)) + "|" + re.escape(str(reduction)) if reduction else r"."
    assert_msg(ei, pattern)
    assert_msg(ei, r"mean")  # names the valid choices


@pytest.mark.parametrize("ls", [-0.1, 1.5, 2.0, float("nan"), float("inf")])
@pytest.mark.parametrize("fn", [cf.cross_entropy, cg.cross_entropy_grad],
                         ids=["cross_entropy", "grad"])
def test_label_smoothing_outside_unit_interval(fn, ls):
    with pytest.raises(ValueError) as ei:
        fn(X, np.array([0, 1, 2]), label_smoothing=ls)
    assert_msg(ei, r"(?i)label.?smoothing")
    if np.isfinite(ls):
        assert_msg(ei, re.escape(str(ls)))
    with pytest.raises(ValueError):
        fn(X, np.full((3, 4), 0.25), label_smoothing=ls)


@pytest.mark.parametrize("fn", LOSS_FNS + [cf.cross_entropy], ids=LOSS_IDS + ["cross_entropy_prob"])
@pytest.mark.parametrize("w", [np.ones(3), np.ones(5), np.ones((1, 4)), np.ones((4, 1)),
                               np.ones(())])
def test_weight_of_wrong_length(fn, w):
    target = np.full((3, 4), 0.25) if fn is cf.cross_entropy else np.array([0, 1, 2])
    with pytest.raises(ValueError) as ei:
        fn(X, target, weight=w)
    assert_msg(ei, r"(?i)weight", num_re(4))


@pytest.mark.parametrize("ign", [0, 1, 3, 7])
@pytest.mark.parametrize("fn", [cf.cross_entropy, cg.cross_entropy_grad],
                         ids=["cross_entropy", "grad"])
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


# --------------------------------------------------------------------------------------
# arguments torch refuses: integer logits, a string label_smoothing, a float ignore_index
# --------------------------------------------------------------------------------------

LOGIT_LOSSES = LOSSES + [
    ("bce", lambda x, t, **kw: cf.binary_cross_entropy_with_logits(x, np.zeros(x.shape), **kw)),
]


@pytest.mark.parametrize("fn", [f for _, f in LOGIT_LOSSES], ids=[n for n, _ in LOGIT_LOSSES])
@pytest.mark.parametrize("int_dtype", [np.int64, np.int32, np.uint8])
def test_integer_logits_are_refused_like_torch(fn, int_dtype):
    import torch
    import torch.nn.functional as F

    with pytest.raises(NotImplementedError, match="Long"):  # torch refuses Long logits
        F.cross_entropy(torch.tensor([[1, 2, 3]]), torch.tensor([0]))
    logits = np.array([[1, 2, 3, 4], [0, 1, 0, 1], [4, 3, 2, 1]], dtype=int_dtype)
    with pytest.raises(ValueError) as ei:
        fn(logits, np.array([0, 1, 2]))
    assert_msg(ei, r"floating", re.escape(np.dtype(int_dtype).name), r"astype\(np\.float32\)")


@pytest.mark.parametrize("ls", ["0.1", None, True, np.array([0.1]), [0.1]],
                         ids=["str", "None", "bool", "array", "list"])
@pytest.mark.parametrize("fn", [cf.cross_entropy, cg.cross_entropy_grad],
                         ids=["cross_entropy", "grad"])
def test_label_smoothing_that_is_not_a_number(fn, ls):
    with pytest.raises(ValueError) as ei:
        fn(X, np.array([0, 1, 2]), label_smoothing=ls)
    assert_msg(ei, r"label_smoothing must be a number", re.escape(repr(ls)))


@pytest.mark.parametrize("ls", [0, 1, np.float32(0.25), np.float64(0.5), np.int64(0)])
def test_label_smoothing_accepts_any_real_number_type(ls):
    ref = cf.cross_entropy(X, np.array([0, 1, 2]), label_smoothing=float(ls))
    assert cf.cross_entropy(X, np.array([0, 1, 2]), label_smoothing=ls) == ref


@pytest.mark.parametrize("ign", [1.5, 1.0, -100.0, True, "1", None, np.float64(2.0)],
                         ids=["1.5", "1.0", "-100.0", "True", "str", "None", "np.float64"])
@pytest.mark.parametrize("fn", LOSS_FNS + [cf.cross_entropy], ids=LOSS_IDS + ["cross_entropy_prob"])
def test_ignore_index_that_is_not_an_integer(fn, ign):
    import torch
    import torch.nn.functional as F

    with pytest.raises(TypeError, match="must be int"):  # torch refuses it, even 1.0
        F.cross_entropy(torch.zeros(3, 4), torch.tensor([0, 1, 2]), ignore_index=1.0)
    target = np.full((3, 4), 0.25) if fn is cf.cross_entropy else np.array([0, 1, 2])
    with pytest.raises(ValueError) as ei:
        fn(X, target, ignore_index=ign)
    assert_msg(ei, r"ignore_index must be an integer", re.escape(repr(ign)))


@pytest.mark.parametrize("fn", LOSS_FNS, ids=LOSS_IDS)
def test_ignore_index_of_a_numpy_integer_type_is_accepted(fn):
    t = np.array([0, 1, 2])
    np.testing.assert_array_equal(fn(X, t, ignore_index=np.int64(1)), fn(X, t, ignore_index=1))
    np.testing.assert_array_equal(fn(X, t, ignore_index=np.uint8(2)), fn(X, t, ignore_index=2))


@pytest.mark.parametrize("dt", [np.int64, np.bool_, np.complex128, "U3", object, "torch"],
                         ids=["int64", "bool", "complex", "str", "object", "torch"])
@pytest.mark.parametrize("fn", [cf.softmax, cf.log_softmax])
def test_softmax_dtype_must_be_floating(fn, dt):
    if dt == "torch":
        import torch

        dt = torch.float64  # not a numpy dtype: convert it (torch.float64 -> np.float64)
    with pytest.raises(ValueError, match=r"dtype must be a (numpy )?floating dtype"):
        fn(X, dtype=dt)


@pytest.mark.parametrize("bad", [np.array([1 + 2j, 3j]), np.array(["a", "b"])],
                         ids=["complex", "str"])
def test_softmax_dtype_does_not_cast_non_real_input(bad):
    with pytest.raises(ValueError, match="real floating array"):
        cf.softmax(bad, dtype=np.float64)


@pytest.mark.parametrize(
    "axis,match",
    [((0, 0), "more than once"), ((1, -1), "more than once"), ((), "no axis"),
     ((0, 2), "axis 2 is out of range"), ((0, 1.0), "tuple of integers"), (1.0, "integer"),
     ("0", "integer")],
)
def test_logsumexp_bad_axes(axis, match):
    with pytest.raises(ValueError, match=match):
        cf.logsumexp(X, axis=axis)


@pytest.mark.parametrize("fn", [cf.softmax, cf.log_softmax])
@pytest.mark.parametrize("axis", [(0,), 1.0, None])
def test_softmax_axis_must_be_one_integer(fn, axis):
    with pytest.raises(ValueError, match="axis must be an integer"):
        fn(X, axis=axis)


def test_cross_entropy_options_is_the_one_place_for_the_option_checks():
    # cross_entropy, cross_entropy_grad and linear_cross_entropy all call it
    from celib import _checks

    opts = _checks.cross_entropy_options(4, np.dtype(np.float32), weight=[1, 2, 3, 4],
                                         ignore_index=np.int64(2), reduction="sum",
                                         label_smoothing=np.float32(0.5))
    assert opts.weight.dtype == np.float32 and opts.weight.tolist() == [1, 2, 3, 4]
    assert (opts.ignore_index, opts.reduction, opts.label_smoothing) == (2, "sum", 0.5)
    assert type(opts.ignore_index) is int and type(opts.label_smoothing) is float
    defaults = _checks.cross_entropy_options(3, np.dtype(np.float64))
    assert (defaults.weight, defaults.ignore_index, defaults.reduction,
            defaults.label_smoothing) == (None, -100, "mean", 0.0)
    for kw in ({"reduction": "avg"}, {"label_smoothing": "0.1"}, {"ignore_index": 1.5},
               {"weight": np.ones(2)}):
        for fn in (cf.cross_entropy, cg.cross_entropy_grad):
            with pytest.raises(ValueError) as from_fn:
                fn(X, np.array([0, 1, 2]), **kw)
            with pytest.raises(ValueError) as direct:
                _checks.cross_entropy_options(4, np.dtype(np.float64), **kw)
            assert str(from_fn.value) == str(direct.value)


@pytest.mark.parametrize("eps", [0.0, -1e-6, np.inf, np.nan])
def test_numerical_grad_needs_a_positive_step(eps):
    with pytest.raises(ValueError, match=f"eps must be a finite number > 0, got {eps}"):
        cg.numerical_grad(lambda v: float(np.sum(v)), [1.0], eps=eps)


@pytest.mark.parametrize("loss", [cf.cross_entropy, cf.nll_loss, cg.cross_entropy_grad,
                                  focal_loss])
def test_swapped_arguments_are_named_as_such(loss):
    """Targets first and logits second is the usual slip: say so, rather than suggest
    converting the targets to floats (which leads to the next error)."""
    logits, target = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 2.0]]), np.array([0, 2])
    with pytest.raises(ValueError, match="the arguments look swapped"):
        loss(target, logits)
    with pytest.raises(ValueError, match=r"convert them: input\.astype"):
        loss(logits.astype(np.int64), target)  # integer logits, not a swap
