"""celib.functional against torch.nn.functional, option by option, branch by branch.

The reference is always torch computing in float64 on the same input values; celib must
return the input's float dtype (see tests/celib_testing.py for the tolerances and why).
"""

from __future__ import annotations


import mpmath
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from celib import functional as cf
from celib.testing import exact_log_softmax, exact_logsumexp, ulp_error
from tests.celib_testing import (
    FLOAT_DTYPES,
    REDUCTIONS,
    SMOOTHING,
    assert_close,
    celib_kwargs,
    make_index_target,
    make_logits,
    make_prob_target,
    make_weight,
    target_shape,
    to_torch64,
    torch_kwargs,
    torch_np,
)

mpmath.mp.dps = 50

def ref_cross_entropy(x, target, **kw):
    return torch_np(F.cross_entropy(to_torch64(x), to_torch64(target), **torch_kwargs(**kw)))


def ref_nll_loss(x, target, **kw):
    return torch_np(F.nll_loss(to_torch64(x), to_torch64(target), **torch_kwargs(**kw)))


def ref_bce(x, target, **kw):
    return torch_np(
        F.binary_cross_entropy_with_logits(to_torch64(x), to_torch64(target), **torch_kwargs(**kw))
    )




# --------------------------------------------------------------------------------------
# logsumexp / softmax / log_softmax
# --------------------------------------------------------------------------------------

AXIS_CASES = [
    ((7,), -1),
    ((7,), 0),
    ((3, 4), -1),
    ((3, 4), 0),
    ((3, 4), 1),
    ((2, 3, 4), 1),
    ((2, 3, 4), -2),
    ((2, 3, 4), 0),
    ((1, 1), 1),
]


@pytest.mark.parametrize("shape,axis", AXIS_CASES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_matches_torch(rng, dtype, shape, axis, keepdims):
    x = make_logits(rng, shape, dtype, scale=10)
    got = cf.logsumexp(x, axis=axis, keepdims=keepdims)
    ref = torch_np(torch.logsumexp(to_torch64(x), dim=axis, keepdim=keepdims))
    assert_close(got, ref, dtype)


def test_logsumexp_default_axis_is_last(rng, dtype):
    x = make_logits(rng, (3, 4, 5), dtype)
    assert_close(cf.logsumexp(x), torch_np(torch.logsumexp(to_torch64(x), dim=-1)), dtype)


@pytest.mark.parametrize("shape,axis", AXIS_CASES)
@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_log_softmax_match_torch(rng, dtype, shape, axis, fn):
    x = make_logits(rng, shape, dtype, scale=10)
    got = getattr(cf, fn)(x, axis=axis)
    ref = torch_np(getattr(torch, fn)(to_torch64(x), dim=axis))
    assert_close(got, ref, dtype)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_default_axis_is_last(rng, dtype, fn):
    x = make_logits(rng, (3, 4, 5), dtype)
    assert_close(getattr(cf, fn)(x), torch_np(getattr(torch, fn)(to_torch64(x), dim=-1)), dtype)


def test_array_likes_are_accepted():
    x = [[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]]
    xt = torch.tensor(x, dtype=torch.float64)
    assert_close(cf.softmax(x), torch_np(torch.softmax(xt, -1)), np.float64)
    assert_close(cf.log_softmax(x), torch_np(torch.log_softmax(xt, -1)), np.float64)
    assert_close(cf.logsumexp(x), torch_np(torch.logsumexp(xt, -1)), np.float64)
    assert_close(
        cf.cross_entropy(x, [2, 0]), torch_np(F.cross_entropy(xt, torch.tensor([2, 0]))), np.float64
    )
    assert_close(
        cf.nll_loss(x, [2, 0]), torch_np(F.nll_loss(xt, torch.tensor([2, 0]))), np.float64
    )


def test_masked_logits_minus_inf():
    x = np.array([[-np.inf, 0.0, 1.0], [2.0, -np.inf, -np.inf]])
    xt = torch.from_numpy(x)
    assert_close(cf.softmax(x), torch_np(torch.softmax(xt, -1)), np.float64)
    assert_close(cf.log_softmax(x), torch_np(torch.log_softmax(xt, -1)), np.float64)
    assert_close(cf.logsumexp(x), torch_np(torch.logsumexp(xt, -1)), np.float64)
    t = np.array([1, 0])
    assert_close(cf.cross_entropy(x, t), ref_cross_entropy(x, t), np.float64)


def test_logsumexp_all_minus_inf_and_plus_inf():
    with np.errstate(all="ignore"):
        got = cf.logsumexp(np.array([[-np.inf, -np.inf], [np.inf, 0.0], [np.inf, np.inf]]))
    assert got[0] == -np.inf
    assert got[1] == np.inf
    assert got[2] == np.inf


def test_logsumexp_empty_axis_is_minus_inf():
    # torch: logsumexp over an empty dimension is -inf (log of an empty sum)
    got = cf.logsumexp(np.zeros((3, 0)), axis=-1)
    ref = torch_np(torch.logsumexp(torch.zeros(3, 0, dtype=torch.float64), -1))
    assert_close(got, ref, np.float64)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_of_empty_batch(dtype, fn):
    x = np.zeros((0, 4), dtype=dtype)
    got = getattr(cf, fn)(x)
    assert got.shape == (0, 4) and got.dtype == dtype


def test_softmax_nontrivial_strides(rng, dtype):
    base = make_logits(rng, (6, 8), dtype)
    for x in (base.T, base[::2, ::3], np.asfortranarray(base)):
        assert_close(cf.softmax(x, axis=0), torch_np(torch.softmax(to_torch64(x), 0)), dtype)
        assert_close(cf.log_softmax(x, axis=1), torch_np(torch.log_softmax(to_torch64(x), 1)),
                     dtype)


# logsumexp over several axes at once, as torch.logsumexp(x, dim=(...)) and numpy reductions
TUPLE_AXES = [
    ((3, 4), (0, 1)),
    ((3, 4), (1, 0)),
    ((3, 4), (-1, -2)),
    ((2, 3, 4), (0, 2)),
    ((2, 3, 4), (2, 0)),
    ((2, 3, 4), (0, 1, 2)),
    ((2, 3, 4), (1,)),
    ((2, 3, 4), [0, -1]),  # a list, as torch also accepts
    ((2, 3, 4, 5), (1, 3)),
    ((2, 1, 4, 5), (0, 1, 3)),
]


@pytest.mark.parametrize("shape,axis", TUPLE_AXES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_over_a_tuple_of_axes_matches_torch(rng, dtype, shape, axis, keepdims):
    x = make_logits(rng, shape, dtype, scale=10)
    got = cf.logsumexp(x, axis=axis, keepdims=keepdims)
    ref = torch_np(torch.logsumexp(to_torch64(x), dim=tuple(axis), keepdim=keepdims))
    assert_close(got, ref, dtype)


def test_logsumexp_over_a_tuple_of_axes_of_a_transposed_array(rng, dtype):
    x = make_logits(rng, (4, 3, 5), dtype).transpose(2, 0, 1)[:, ::2]
    ref = torch_np(torch.logsumexp(to_torch64(x), dim=(0, 2)))
    assert_close(cf.logsumexp(x, axis=(0, 2)), ref, dtype)


@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_over_an_empty_tuple_of_axes_is_minus_inf(dtype, keepdims):
    x = np.zeros((2, 0, 4), dtype=dtype)
    ref = torch_np(torch.logsumexp(torch.zeros(2, 0, 4, dtype=torch.float64), (1, 2),
                                   keepdim=keepdims))
    got = cf.logsumexp(x, axis=(1, 2), keepdims=keepdims)
    assert_close(got, ref, dtype)
    assert np.all(got == -np.inf)


def test_logsumexp_tuple_with_infinities_matches_torch(dtype):
    x = np.array([[[0.0, -np.inf], [np.inf, 1.0]], [[-np.inf, -np.inf], [-np.inf, -np.inf]]], dtype)
    with np.errstate(all="ignore"):
        got = cf.logsumexp(x, axis=(1, 2))
    assert_close(got, torch_np(torch.logsumexp(to_torch64(x), (1, 2))), dtype)


# dtype= on softmax and log_softmax: the input is cast first, the result has that dtype
DTYPE_CASTS = [(np.float32, np.float64), (np.float64, np.float32), (np.float32, np.float32),
               (np.float64, np.float64), (np.float16, np.float32), (np.float32, np.float16)]


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("src,dst", DTYPE_CASTS, ids=lambda d: np.dtype(d).name)
def test_softmax_dtype_argument_matches_torch(rng, fn, src, dst):
    x = make_logits(rng, (5, 7), src, scale=5)
    got = getattr(cf, fn)(x, axis=1, dtype=dst)
    assert got.dtype == np.dtype(dst)
    # torch casts the input to dst first; the reference is that cast input, computed in float64
    ref = torch_np(getattr(F, fn)(to_torch64(x.astype(dst)), 1))
    torch_dtype = {np.dtype(np.float16): torch.float16, np.dtype(np.float32): torch.float32,
                   np.dtype(np.float64): torch.float64}[np.dtype(dst)]
    assert getattr(F, fn)(to_torch64(x), 1, dtype=torch_dtype).dtype == torch_dtype
    if np.dtype(dst) == np.float16:
        assert_close(got, ref, None, rtol=2e-3, atol=1e-3, check_dtype=False)  # float16: 2**-11
    else:
        assert_close(got, ref, dst)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dst", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_softmax_dtype_casts_before_the_operation(fn, dst):
    # 1e39 is beyond float32's range: cast first, it is +inf, and a row holding +inf is nan
    x = np.array([1e39, 0.0])
    torch_dtype = torch.float32 if dst == np.float32 else torch.float64
    ref = torch_np(getattr(F, fn)(torch.from_numpy(x), 0, dtype=torch_dtype))
    with np.errstate(over="ignore"):
        got = getattr(cf, fn)(x, dtype=dst)
    assert got.dtype == np.dtype(dst)
    np.testing.assert_array_equal(got, ref)
    assert np.isnan(got).all() == (dst == np.float32)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dst", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_softmax_dtype_accepts_integer_and_bool_input_like_torch(fn, dst):
    torch_dtype = torch.float32 if dst == np.float32 else torch.float64
    for values in ([1, 2, 3], [True, False, True]):
        x = np.array(values)
        got = getattr(cf, fn)(x, dtype=dst)
        ref = torch_np(getattr(F, fn)(torch.tensor(values), 0, dtype=torch_dtype))
        assert_close(got, ref.astype(np.float64), dst)


# --------------------------------------------------------------------------------------
# accuracy: no spurious overflow / underflow, relative accuracy against mpmath
# --------------------------------------------------------------------------------------


def test_huge_logits_float64():
    x = np.array([1e300, -1e300])
    ls = cf.log_softmax(x)
    assert ls.dtype == np.float64
    assert ls[0] == 0.0 and ls[1] == -2e300
    assert cf.logsumexp(np.array([1e300, 1e300])) == 1e300  # 1e300 + log 2 rounds to 1e300
    assert cf.logsumexp(x) == 1e300
    sm = cf.softmax(x)
    assert sm[0] == 1.0 and sm[1] == 0.0
    z = np.array([[1e300, -1e300]])
    assert cf.cross_entropy(z, np.array([1])) == 2e300
    assert cf.cross_entropy(z, np.array([0])) == 0.0
    assert cf.cross_entropy(z, np.array([[0.5, 0.5]])) == 1e300
    assert cf.nll_loss(cf.log_softmax(z, axis=1), np.array([1])) == 2e300


def test_huge_logits_float32():
    x = np.array([[1e4, 0.0]], dtype=np.float32)
    loss = cf.cross_entropy(x, np.array([1]))
    assert np.asarray(loss).dtype == np.float32
    assert loss == np.float32(1e4)
    assert cf.cross_entropy(x, np.array([0])) == 0.0
    y = np.array([[3e38, -3e38]], dtype=np.float32)
    # values only; whether a RuntimeWarning comes along is tested in FINITE_EXTREMES below
    with np.errstate(over="ignore"):
        ls = cf.log_softmax(y, axis=1)
        ce0 = cf.cross_entropy(y, np.array([0]))
        ce1 = cf.cross_entropy(y, np.array([1]))
        s = cf.softmax(y, axis=1)
    assert ls.dtype == np.float32
    assert ls[0, 0] == 0.0
    assert ls[0, 1] == -np.inf  # exact -6e38 is beyond float32 max: correctly rounds to -inf
    assert ce0 == 0.0
    assert ce1 == np.inf  # exact 6e38 overflows float32
    assert s[0, 0] == 1.0 and s[0, 1] == 0.0
    big = np.array([3e38, 3e38], dtype=np.float32)
    assert cf.logsumexp(big) == np.float32(3e38)  # 3e38 + log 2 rounds to 3e38
    np.testing.assert_array_equal(cf.log_softmax(big), np.float32(-np.log(2.0)))
    assert_close(cf.softmax(big), np.array([0.5, 0.5]), np.float32, rtol=0, atol=0)


def test_tiny_logit_gap_keeps_log1p_accuracy():
    # log_softmax([0, -40])[0] = -log1p(exp(-40)) ~ -4.248e-18 -- not 0.0 (torch gives 0.0)
    got = cf.log_softmax(np.array([0.0, -40.0]))
    exact = -mpmath.log1p(mpmath.exp(-40))
    assert abs(exact - _exact_log_softmax([0.0, -40.0])[0][0]) < 1e-40 * abs(exact)
    assert got[0] != 0.0
    assert ulp_error(got[:1], np.array([exact], dtype=object))[0] <= 4
    np.testing.assert_allclose(got[0], -4.248354255291589e-18, rtol=1e-15)


def _exact_log_softmax(z):
    """celib.testing's exact log_softmax and logsumexp of float values, with the max m and
    log1p(r) = lse - m that the logsumexp bound below needs."""
    lse = exact_logsumexp(z)
    m = mpmath.mpf(float(np.max(np.asarray(z, dtype=np.float64))))
    return exact_log_softmax(z), lse, m, lse - m


ACCURACY_CASES = [
    [0.0, -40.0],
    [0.0, -1.0, -2.0],
    [0.0, -30.0, -35.0, -36.5],
    [10.0, 10.0, -5.0],
    [1e-3, 0.0],
    [0.0, -700.0],
    [5.0, 4.0, 3.0, 2.0, 1.0, 0.0],
    [-0.125, -0.25, -20.0],
    [1e300, 1e300 - 2**944],  # gap of exactly 2**944 ulp-step: log_softmax = -log(1+e^-huge)
    [100.0, 0.0],
]


@pytest.mark.parametrize("z", ACCURACY_CASES, ids=lambda z: str(z)[:30])
def test_log_softmax_relative_accuracy_float64(z):
    z = np.array(z, dtype=np.float64)
    exact, lse, m, l1p = _exact_log_softmax(z)
    got = cf.log_softmax(z)
    err = ulp_error(got, exact)
    assert np.all(err <= 4), f"ulp errors {err} for z={z}, got={got!r}"
    got_lse = cf.logsumexp(z)
    # logsumexp = m + log1p(r) may cancel when m < 0; bound the absolute error by a few
    # ulp of the larger of |m| and log1p(r), plus a few ulp of the result
    scale = max(abs(float(m)), float(l1p))
    bound = 4 * np.spacing(scale) + 4 * np.spacing(abs(float(lse)))
    assert abs(mpmath.mpf(float(got_lse)) - lse) <= bound


@pytest.mark.parametrize("z", ACCURACY_CASES[:8], ids=lambda z: str(z)[:30])
def test_log_softmax_relative_accuracy_float32(z):
    z32 = np.array(z, dtype=np.float32)
    exact = _exact_log_softmax(z32.astype(np.float64))[0]
    got = cf.log_softmax(z32)
    assert got.dtype == np.float32
    err = ulp_error(got, exact)
    assert np.all(err <= 4), f"float32 ulp errors {err} for z={z}, got={got!r}"


@pytest.mark.parametrize("z", ACCURACY_CASES[:8], ids=lambda z: str(z)[:30])
def test_cross_entropy_relative_accuracy(z):
    # the loss of the dominant class is -log_softmax: tiny and must keep its relative accuracy
    z = np.array([z], dtype=np.float64)
    exact = _exact_log_softmax(z[0])[0]
    for c in range(z.shape[1]):
        got = cf.cross_entropy(z, np.array([c]))
        assert ulp_error(np.array([got]), np.array([-exact[c]], dtype=object))[0] <= 4


@pytest.mark.parametrize("z", ACCURACY_CASES[:8], ids=lambda z: str(z)[:30])
def test_softmax_relative_accuracy(z):
    z = np.array(z, dtype=np.float64)
    exact = _exact_log_softmax(z)[0]
    got = cf.softmax(z)
    exact_p = np.array([mpmath.exp(v) for v in exact], dtype=object)
    rel = np.array([float(abs(mpmath.mpf(float(g)) - e) / e)
                    for g, e in zip(got, exact_p, strict=True)])
    # exp of a value of magnitude <= 40 loses at most |a| * 2**-53 ~ 5e-15 relative
    assert np.all(rel <= 1e-14), rel


# --------------------------------------------------------------------------------------
# one_hot
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels,num_classes",
    [
        ([0, 2, 1, 2], -1),
        ([0, 2, 1, 2], 5),
        ([3], -1),
        ([[0, 2], [1, 1]], -1),
        ([[0, 2], [1, 1]], 4),
        ([[[0], [3]], [[1], [2]]], -1),
        (2, 4),  # 0-d label
        (0, -1),
        ([0, 0, 0], 1),
    ],
)
def test_one_hot_matches_torch(labels, num_classes):
    got = cf.one_hot(np.array(labels), num_classes)
    ref = F.one_hot(torch.tensor(labels), num_classes).numpy()
    assert got.dtype == np.int64
    assert got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)


def test_one_hot_default_num_classes_is_inferred():
    np.testing.assert_array_equal(cf.one_hot(np.array([1, 3])),
                                  F.one_hot(torch.tensor([1, 3])).numpy())


def test_one_hot_accepts_lists_and_int_dtypes():
    ref = F.one_hot(torch.tensor([0, 2, 1]), 3).numpy()
    for dt in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint64):
        got = cf.one_hot(np.array([0, 2, 1], dtype=dt), 3)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(cf.one_hot([0, 2, 1], num_classes=3), ref)


def test_one_hot_empty_with_explicit_num_classes():
    got = cf.one_hot(np.zeros(0, dtype=np.int64), 3)
    assert got.shape == (0, 3) and got.dtype == np.int64
    got = cf.one_hot(np.zeros((2, 0), dtype=np.int64), 3)
    assert got.shape == (2, 0, 3)


# --------------------------------------------------------------------------------------
# nll_loss: defaults and scalar targets (the option grid is tests/test_option_grid.py)
# --------------------------------------------------------------------------------------

def test_nll_loss_defaults(rng, dtype):
    x = make_logits(rng, (6, 4), dtype)
    t = np.array([0, 1, 2, 3, -100, 1])
    assert_close(cf.nll_loss(x, t), ref_nll_loss(x, t), dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_scalar_target(rng, dtype, reduction):
    x = make_logits(rng, (5,), dtype)
    for t in (np.array(3), np.int64(3), 3):
        got = cf.nll_loss(x, t, reduction=reduction)
        assert_close(got, ref_nll_loss(x, np.array(3), reduction=reduction), dtype)
        assert np.shape(got) == ()


# --------------------------------------------------------------------------------------
# cross_entropy: index targets (the option grid is tests/test_option_grid.py)
# --------------------------------------------------------------------------------------

INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def _torch_takes_target(x: np.ndarray, t: np.ndarray) -> bool:
    """Ask torch whether it takes class indices of ``t``'s dtype beside ``x``."""
    try:
        F.nll_loss(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(t))
    except (RuntimeError, TypeError):
        return False
    return True


@pytest.mark.parametrize("int_dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(6, 4), (6, 4, 2)], ids=["2d", "kdim"])
def test_index_target_dtypes_follow_torch(rng, dtype, int_dtype, shape):
    # torch takes int64 class indices, and uint8 only beside a 1-D or 2-D input; so does celib
    x = make_logits(rng, shape, dtype)
    t = make_index_target(rng, x.shape, int_dtype=int_dtype)
    w = make_weight(rng, 4, dtype)
    assert _torch_takes_target(x, t) == (int_dtype == np.int64
                                         or (int_dtype == np.uint8 and x.ndim <= 2))
    for kw in (dict(), dict(weight=w, label_smoothing=0.2, reduction="sum")):
        nll_kw = {k: v for k, v in kw.items() if k != "label_smoothing"}
        if _torch_takes_target(x, t):
            t64 = t.astype(np.int64)
            assert_close(cf.cross_entropy(x, t, **kw), ref_cross_entropy(x, t64, **kw), dtype)
            assert_close(cf.nll_loss(x, t, **nll_kw), ref_nll_loss(x, t64, **nll_kw), dtype)
        else:
            with pytest.raises(ValueError, match=rf"int64.*got dtype {np.dtype(int_dtype).name}"):
                cf.cross_entropy(x, t, **kw)
            with pytest.raises(ValueError, match="int64"):
                cf.nll_loss(x, t, **nll_kw)


@pytest.mark.parametrize("int_dtype", [np.int8, np.int16, np.int32], ids=lambda d: np.dtype(d).name)
def test_torch_really_refuses_narrow_integer_targets(int_dtype):
    with pytest.raises(RuntimeError, match="Long or Byte"):
        torch.nn.functional.cross_entropy(torch.zeros(2, 3),
                                          torch.from_numpy(np.array([0, 1], dtype=int_dtype)))


def test_cross_entropy_negative_ignore_index_other_than_default(rng, dtype):
    x = make_logits(rng, (5, 3), dtype)
    t = np.array([0, -1, 2, -1, 1])
    assert_close(cf.cross_entropy(x, t, ignore_index=-1), ref_cross_entropy(x, t, ignore_index=-1),
                 dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ls", SMOOTHING)
@pytest.mark.parametrize("use_weight", [False, True])
def test_cross_entropy_1d_input_scalar_target(rng, dtype, reduction, ls, use_weight):
    x = make_logits(rng, (5,), dtype)
    w = make_weight(rng, 5, dtype) if use_weight else None
    kw = dict(weight=w, reduction=reduction, label_smoothing=ls)
    for t in (np.array(3), np.int64(3), 3):
        got = cf.cross_entropy(x, t, **celib_kwargs(**kw))
        assert np.shape(got) == ()
        assert_close(got, ref_cross_entropy(x, np.array(3), **kw), dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ls", SMOOTHING)
def test_cross_entropy_1d_input_ignored_scalar_target(rng, dtype, reduction, ls):
    x = make_logits(rng, (5,), dtype)
    kw = dict(reduction=reduction, label_smoothing=ls)
    got = cf.cross_entropy(x, np.array(-100), **kw)
    ref = ref_cross_entropy(x, np.array(-100), **kw)  # mean: nan; sum/none: 0
    assert_close(got, ref, dtype)
    got = cf.cross_entropy(x, np.array(1), ignore_index=1, **kw)
    assert_close(got, ref_cross_entropy(x, np.array(1), ignore_index=1, **kw), dtype)


# --------------------------------------------------------------------------------------
# cross_entropy: probability targets
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("ign", [-100, -1, -7])
def test_cross_entropy_probability_targets_negative_ignore_index(rng, dtype, ign):
    # torch refuses only a non-negative ignore_index with probability targets (it could name
    # a class); a negative one can never match a class and is accepted and has no effect
    x = make_logits(rng, (4, 3), dtype)
    y = make_prob_target(rng, (4, 3), dtype)
    for ls in (0.0, 0.2):
        got = cf.cross_entropy(x, y, ignore_index=ign, label_smoothing=ls)
        assert_close(got, ref_cross_entropy(x, y, ignore_index=ign, label_smoothing=ls), dtype)


def test_cross_entropy_unnormalised_probability_targets(rng, dtype):
    # torch does not require targets to sum to one: loss = -sum_c y_c log p_c
    x = make_logits(rng, (4, 3, 2), dtype)
    y = rng.uniform(0, 2, size=x.shape).astype(dtype)
    for reduction in REDUCTIONS:
        assert_close(cf.cross_entropy(x, y, reduction=reduction),
                     ref_cross_entropy(x, y, reduction=reduction), dtype)


def test_cross_entropy_whole_number_float_target_is_probability_target(dtype):
    x = np.array([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]], dtype=dtype)
    y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=dtype)
    assert_close(cf.cross_entropy(x, y), ref_cross_entropy(x, y), dtype)
    assert_close(cf.cross_entropy(x, y), ref_cross_entropy(x, np.array([1, 0])), dtype)


def test_cross_entropy_probability_target_of_other_float_dtype(rng, dtype):
    other = np.float64 if dtype == np.float32 else np.float32
    x = make_logits(rng, (4, 3), dtype)
    y = make_prob_target(rng, (4, 3), other)
    assert_close(cf.cross_entropy(x, y), ref_cross_entropy(x, y), dtype)


def test_weight_dtype_does_not_change_result_dtype(rng, dtype):
    x = make_logits(rng, (4, 3), dtype)
    t = np.array([0, 1, 2, 1])
    w = [0.5, 1.0, 2.0]  # a list: float64 once converted
    assert_close(cf.cross_entropy(x, t, weight=w), ref_cross_entropy(x, t, weight=np.array(w)),
                 dtype)
    assert_close(cf.nll_loss(x, t, weight=w), ref_nll_loss(x, t, weight=np.array(w)), dtype)


# --------------------------------------------------------------------------------------
# the documented corner cases: empty batch, all ignored, zero total weight
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(0, 4), (0, 4, 3), (2, 4, 0)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ls", [0.0, 0.1])
@pytest.mark.parametrize("kind", ["index", "prob"])
def test_empty_batch(dtype, shape, reduction, ls, kind):
    x = np.zeros(shape, dtype=dtype)
    if kind == "index":
        y = np.zeros(target_shape(shape), dtype=np.int64)
    else:
        y = np.zeros(shape, dtype=dtype)
    got = cf.cross_entropy(x, y, reduction=reduction, label_smoothing=ls)
    ref = ref_cross_entropy(x, y, reduction=reduction, label_smoothing=ls)
    assert_close(got, ref, dtype)
    if reduction == "mean":
        assert np.isnan(got)
    elif reduction == "sum":
        assert got == 0
    else:
        assert np.shape(got) == target_shape(shape)
    if kind == "index":
        got = cf.nll_loss(x, y, reduction=reduction)
        assert_close(got, ref_nll_loss(x, y, reduction=reduction), dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ls", SMOOTHING)
@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("ign", [-100, 1])
def test_all_targets_ignored(rng, dtype, reduction, ls, use_weight, ign):
    x = make_logits(rng, (4, 3, 2), dtype)
    t = np.full((4, 2), ign)
    w = make_weight(rng, 3, dtype) if use_weight else None
    kw = dict(weight=w, ignore_index=ign, reduction=reduction, label_smoothing=ls)
    got = cf.cross_entropy(x, t, **celib_kwargs(**kw))
    assert_close(got, ref_cross_entropy(x, t, **kw), dtype)
    if reduction == "mean":
        assert np.isnan(got)
    elif reduction == "sum":
        assert got == 0
    else:
        np.testing.assert_array_equal(got, np.zeros((4, 2)))
    kw.pop("label_smoothing")
    assert_close(cf.nll_loss(x, t, **celib_kwargs(**kw)), ref_nll_loss(x, t, **kw), dtype)


def test_ignored_elements_are_zero_under_none(rng, dtype):
    x = make_logits(rng, (6, 4), dtype)
    t = np.array([0, 3, -100, 1, -100, 2])
    for ls in SMOOTHING:
        got = cf.cross_entropy(x, t, reduction="none", label_smoothing=ls,
                               weight=make_weight(rng, 4, dtype))
        assert got[2] == 0 and got[4] == 0
        assert np.all(got[[0, 1, 3, 5]] > 0)


@pytest.mark.parametrize("ls", [0.0, 0.3])
def test_zero_total_weight_mean_is_nan(rng, dtype, ls):
    x = make_logits(rng, (3, 4), dtype)
    t = np.array([0, 0, 0])
    w = np.array([0.0, 1.0, 1.0, 1.0], dtype=dtype)
    got = cf.cross_entropy(x, t, weight=w, label_smoothing=ls)
    assert_close(got, ref_cross_entropy(x, t, weight=w, label_smoothing=ls), dtype)


# --------------------------------------------------------------------------------------
# the mean denominators, spelled out (independent of torch)
# --------------------------------------------------------------------------------------


def test_weighted_mean_divides_by_target_weights_not_count(dtype):
    x = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]], dtype=np.float64))
    x = x.astype(dtype)
    t = np.array([0, 2, -100])
    w = np.array([2.0, 1.0, 3.0], dtype=dtype)
    num = 2.0 * -np.log(0.5) + 3.0 * -np.log(0.7)
    assert_close(cf.cross_entropy(x, t, weight=w), np.float64(num / 5.0), dtype)
    assert_close(cf.nll_loss(x, t, weight=w), np.float64(num / 5.0), dtype)


def test_probability_target_mean_divides_by_element_count_not_weights(dtype):
    x = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.2, 0.7]], dtype=np.float64)).astype(dtype)
    y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=dtype)
    w = np.array([2.0, 1.0, 3.0], dtype=dtype)
    expected = (2.0 * -np.log(0.5) + 3.0 * -np.log(0.7)) / 2.0
    assert_close(cf.cross_entropy(x, y, weight=w), np.float64(expected), dtype)


def test_label_smoothing_formula_spelled_out(dtype):
    # (1-eps) NLL_w + (eps/C) sum_c w_c (-log p_c), ignored excluded, same denominator
    logp = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]]))
    x = logp.astype(dtype)
    logp = x.astype(np.float64)
    t = np.array([0, 2, 1])
    w = np.array([2.0, 1.0, 3.0])
    eps, C = 0.2, 3
    keep = np.array([True, True, False])  # ignore_index=1 drops the third row
    nll = -(w[t] * logp[np.arange(3), t])
    smooth = -(logp * w).sum(axis=1)
    per = (1 - eps) * nll + eps / C * smooth
    per[~keep] = 0
    got = cf.cross_entropy(x, t, weight=w.astype(dtype), ignore_index=1, label_smoothing=eps,
                           reduction="none")
    assert_close(got, per, dtype)
    got = cf.cross_entropy(x, t, weight=w.astype(dtype), ignore_index=1, label_smoothing=eps)
    assert_close(got, np.float64(per.sum() / w[t][keep].sum()), dtype)


# --------------------------------------------------------------------------------------
# binary_cross_entropy_with_logits
# --------------------------------------------------------------------------------------

BCE_CASES = [
    # input shape, weight shape, pos_weight shape
    ((5,), None, None),
    ((5,), (5,), None),
    ((5,), None, (5,)),
    ((5,), (), ()),
    ((4, 3), None, None),
    ((4, 3), (3,), None),
    ((4, 3), (4, 1), None),
    ((4, 3), (4, 3), (3,)),
    ((4, 3), None, (3,)),
    ((4, 3), None, (1,)),
    ((4, 3), (1, 3), (4, 3)),
    ((2, 3, 4), (3, 1), (4,)),
    ((2, 3, 4), (2, 3, 4), (3, 1)),
    ((0, 3), None, (3,)),
]


@pytest.mark.parametrize("shape,wshape,pwshape", BCE_CASES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("soft", [False, True])
def test_bce_with_logits_matches_torch(rng, dtype, shape, wshape, pwshape, reduction, soft):
    x = make_logits(rng, shape, dtype, scale=4)
    if soft:
        y = rng.uniform(0, 1, size=shape).astype(dtype)
    else:
        y = rng.integers(0, 2, size=shape).astype(dtype)
    w = None if wshape is None else rng.uniform(0.2, 2, size=wshape).astype(dtype)
    pw = None if pwshape is None else rng.uniform(0.2, 3, size=pwshape).astype(dtype)
    kw = dict(weight=w, pos_weight=pw, reduction=reduction)
    got = cf.binary_cross_entropy_with_logits(x, y, **celib_kwargs(**kw))
    assert_close(got, ref_bce(x, y, **kw), dtype)


def test_bce_with_logits_defaults(rng, dtype):
    x = make_logits(rng, (7,), dtype)
    y = rng.uniform(0, 1, size=7).astype(dtype)
    assert_close(cf.binary_cross_entropy_with_logits(x, y), ref_bce(x, y), dtype)


def _softplus_exact(v):
    return mpmath.log1p(mpmath.exp(mpmath.mpf(float(v))))


@pytest.mark.parametrize(
    "dtype_,big", [(np.float32, 1e4), (np.float32, 3e38), (np.float64, 1e4), (np.float64, 1e300)]
)
@pytest.mark.parametrize("use_pw", [False, True])
def test_bce_with_logits_extreme_logits(dtype_, big, use_pw):
    x = np.array([big, -big, big, -big, -big, big, 0.0], dtype=dtype_)
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.25, 0.75, 1.0], dtype=dtype_)
    pw = np.array([2.0], dtype=dtype_) if use_pw else None
    with np.errstate(over="ignore"):  # exact results beyond float32 max round to inf
        got = cf.binary_cross_entropy_with_logits(x, y, reduction="none", pos_weight=pw)
        total = cf.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction="sum")
    assert got.dtype == dtype_
    p = 2.0 if use_pw else 1.0
    exact = np.array(
        [p * float(yy) * _softplus_exact(-float(xx)) + (1 - float(yy)) * _softplus_exact(float(xx))
         for xx, yy in zip(x.astype(np.float64), y.astype(np.float64), strict=True)],
        dtype=object,
    )
    with np.errstate(over="ignore"):
        expected = np.array([float(e) for e in exact]).astype(dtype_)  # 2 * 3e38 -> inf in float32
        exact_total = dtype_(float(sum(exact)))  # inf when the exact sum exceeds the dtype's max
    assert np.all(np.isfinite(got) == np.isfinite(expected)), (got, expected)
    fin = np.isfinite(expected)
    np.testing.assert_allclose(got[fin], expected[fin],
                               rtol=1e-6 if dtype_ == np.float32 else 1e-14)
    assert got[0] == 0 and got[1] == 0
    assert np.isfinite(total) == np.isfinite(exact_total)
    if np.isfinite(exact_total):
        np.testing.assert_allclose(total, exact_total, rtol=1e-6 if dtype_ == np.float32 else 1e-14)


# --------------------------------------------------------------------------------------
# no function mutates its arguments
# --------------------------------------------------------------------------------------


def test_inputs_are_not_mutated(rng, dtype):
    x = make_logits(rng, (4, 3, 2), dtype)
    t = make_index_target(rng, x.shape, ignore_index=-100)
    y = make_prob_target(rng, x.shape, dtype)
    w = make_weight(rng, 3, dtype)
    copies = [a.copy() for a in (x, t, y, w)]
    cf.softmax(x, axis=1)
    cf.log_softmax(x, axis=1)
    cf.logsumexp(x, axis=1)
    cf.cross_entropy(x, t, weight=w, label_smoothing=0.1)
    cf.cross_entropy(x, y, weight=w, label_smoothing=0.1)
    cf.nll_loss(x, t, weight=w)
    cf.one_hot(np.maximum(t, 0), 3)
    cf.binary_cross_entropy_with_logits(x, y, weight=w[None, :, None], pos_weight=w[:, None])
    for a, c in zip((x, t, y, w), copies, strict=True):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("dt", FLOAT_DTYPES)
def test_results_are_numpy(dt):
    x = np.array([[1.0, 2.0], [0.0, -1.0]], dtype=dt)
    for r in (cf.cross_entropy(x, np.array([0, 1])), cf.nll_loss(x, np.array([0, 1])),
              cf.binary_cross_entropy_with_logits(x, np.ones_like(x))):
        assert isinstance(r, (np.ndarray, np.generic)) and np.asarray(r).dtype == dt


# --------------------------------------------------------------------------------------
# more corners: huge logits with smoothing, float warnings, global state, big batches
# --------------------------------------------------------------------------------------


def test_huge_logits_with_label_smoothing_and_weights():
    z = np.array([[1e300, -1e300, 0.0]])
    # smoothing term: (eps/C) * sum_c -log p_c = (0.1/3) * (0 + 2e300 + 1e300) = 1e299
    got = cf.cross_entropy(z, np.array([0]), label_smoothing=0.1)
    np.testing.assert_allclose(got, 1e299, rtol=1e-14)
    w = np.array([1.0, 2.0, 3.0])
    got = cf.cross_entropy(z, np.array([0]), label_smoothing=0.1, weight=w, reduction="sum")
    np.testing.assert_allclose(got, 0.1 / 3 * (2 * 2e300 + 3 * 1e300), rtol=1e-14)
    z32 = np.array([[1e4, -1e4, 0.0]], dtype=np.float32)
    got = cf.cross_entropy(z32, np.array([0]), label_smoothing=0.3)
    assert np.asarray(got).dtype == np.float32
    np.testing.assert_allclose(got, 0.3 / 3 * 3e4, rtol=1e-6)


def test_logsumexp_near_float64_max_stays_finite():
    big = np.finfo(np.float64).max / 2
    assert cf.logsumexp(np.array([big, big])) == big  # big + log 2 rounds to big
    x = np.array([1.7e308, -1.7e308])
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(cf.softmax(x), [1.0, 0.0])
        assert cf.logsumexp(x) == 1.7e308
        assert cf.cross_entropy(x[None, :], np.array([0])) == 0.0


def _ok(name, call):
    return pytest.param(name, call, id=name)


FINITE_EXTREMES = [
    _ok("softmax f32 +-3e38", lambda: cf.softmax(np.array([3e38, -3e38], dtype=np.float32))),
    _ok("logsumexp f32 +-3e38", lambda: cf.logsumexp(np.array([3e38, -3e38], dtype=np.float32))),
    _ok("ce f32 +-3e38 target 0",
        lambda: cf.cross_entropy(np.array([[3e38, -3e38]], dtype=np.float32), np.array([0]))),
    _ok("softmax f64 +-1.7e308", lambda: cf.softmax(np.array([1.7e308, -1.7e308]))),
    _ok("ce f64 +-1.7e308 target 0",
        lambda: cf.cross_entropy(np.array([[1.7e308, -1.7e308]]), np.array([0]))),
    _ok("softmax f64 +-1e300", lambda: cf.softmax(np.array([1e300, -1e300]))),
    _ok("log_softmax f64 +-1e300", lambda: cf.log_softmax(np.array([1e300, -1e300]))),
    _ok("ce f64 1e300 smoothing",
        lambda: cf.cross_entropy(np.array([[1e300, -1e300]]), np.array([0]), label_smoothing=0.1)),
    _ok("bce f64 1e300",
        lambda: cf.binary_cross_entropy_with_logits(np.array([1e300, -1e300]),
                                                    np.array([0.0, 1.0]))),
    _ok("log_softmax f64 [0, -800]", lambda: cf.log_softmax(np.array([0.0, -800.0]))),
]


@pytest.mark.parametrize("name,call", FINITE_EXTREMES)
def test_stable_functions_raise_no_float_warnings_when_result_is_finite(name, call):
    # the stable versions are the point of the book: when every exact result is finite,
    # nothing may overflow along the way -- not even a RuntimeWarning
    # (underflow is allowed: exp(-2e300) = 0 is the correctly rounded value)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        out = call()
    assert np.all(np.isfinite(out))


def test_numpy_error_state_is_left_alone():
    before = np.geterr()
    x = np.array([[1e300, -1e300], [0.0, 1.0]])
    with np.errstate(all="ignore"):
        cf.cross_entropy(x, np.array([1, 0]), label_smoothing=0.1)
        cf.binary_cross_entropy_with_logits(x, np.zeros_like(x))
    cf.softmax(x)
    cf.log_softmax(x)
    assert np.geterr() == before


def test_large_batch_float32_mean_is_accurate(rng):
    x = make_logits(rng, (20000, 10), np.float32)
    t = rng.integers(0, 10, size=20000)
    w = make_weight(rng, 10, np.float32)
    for kw in (dict(), dict(weight=w, label_smoothing=0.1), dict(reduction="sum")):
        assert_close(cf.cross_entropy(x, t, **kw), ref_cross_entropy(x, t, **kw), np.float32)


def test_uint8_targets_with_ignore_index_255(dtype, rng):
    x = make_logits(rng, (5, 3), dtype)
    t = np.array([0, 255, 2, 1, 255], dtype=np.uint8)
    for ls in (0.0, 0.2):
        got = cf.cross_entropy(x, t, ignore_index=255, label_smoothing=ls)
        assert_close(got, ref_cross_entropy(x, t, ignore_index=255, label_smoothing=ls), dtype)


def test_losses_on_noncontiguous_inputs(rng, dtype):
    base = make_logits(rng, (4, 3, 5), dtype)
    x = base.transpose(0, 2, 1)  # (N=4, C=5, d1=3), not C-contiguous
    t = make_index_target(rng, x.shape, ignore_index=-100)
    y = make_prob_target(rng, x.shape, dtype)[:, :, ::-1]
    w = make_weight(rng, 10, dtype)[::2]
    for target in (t, y):
        for red in REDUCTIONS:
            kw = dict(weight=w, reduction=red, label_smoothing=0.1)
            assert_close(cf.cross_entropy(x, target, **kw), ref_cross_entropy(x, target, **kw),
                         dtype)


def test_bce_weight_dtype_does_not_change_result_dtype(rng, dtype):
    x = make_logits(rng, (4, 3), dtype)
    y = rng.uniform(0, 1, size=(4, 3)).astype(dtype)
    w, pw = [0.5, 1.0, 2.0], [2.0, 1.0, 0.5]
    ref = ref_bce(x, y, weight=np.array(w), pos_weight=np.array(pw))
    assert_close(cf.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw), ref, dtype)
