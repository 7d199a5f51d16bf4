"""celib.info: entropy, cross-entropy and KL divergence of discrete distributions.

Oracles: scipy.stats.entropy / scipy.special.rel_entr / xlogy, the direct formula, torch's
Categorical(probs).entropy() and torch.nn.functional.kl_div(q.log(), p, reduction='sum').
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
import torch.nn.functional as F

from celib import info
from tests.celib_testing import assert_close, to_torch64, torch_np


def random_dist(rng, shape, axis=-1, dtype=np.float64, zeros=False):
    a = rng.gamma(0.7, size=shape)
    if zeros:
        a = np.where(rng.random(shape) < 0.3, 0.0, a)
        # keep at least one positive entry along the axis
        first = [slice(None)] * len(shape)
        first[axis] = 0
        a[tuple(first)] += 0.5
    return (a / a.sum(axis=axis, keepdims=True)).astype(dtype)


SHAPE_AXIS = [((6,), -1), ((6,), 0), ((4, 5), -1), ((4, 5), 0), ((4, 5), 1), ((2, 3, 4), 1),
              ((2, 3, 4), -1)]
BASES = [None, 2, 10, np.e]


def _scale(base):
    return 1.0 if base is None else 1.0 / np.log(base)


# --------------------------------------------------------------------------------------
# entropy
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,axis", SHAPE_AXIS)
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("zeros", [False, True])
def test_entropy_matches_scipy(rng, dtype, shape, axis, base, zeros):
    p = random_dist(rng, shape, axis, dtype, zeros)
    got = info.entropy(p, axis=axis, base=base)
    ref = scipy.stats.entropy(p.astype(np.float64), base=base, axis=axis)
    assert_close(got, np.asarray(ref), dtype)


@pytest.mark.parametrize("zeros", [False, True])
def test_entropy_matches_torch_categorical(rng, dtype, zeros):
    p = random_dist(rng, (5, 7), -1, dtype, zeros)
    ref = torch_np(torch.distributions.Categorical(probs=to_torch64(p)).entropy())
    assert_close(info.entropy(p), ref, dtype)
    assert_close(info.entropy(p, base=2), ref / np.log(2), dtype)


def test_entropy_defaults_nats_last_axis(rng):
    p = random_dist(rng, (3, 4), axis=-1)
    np.testing.assert_allclose(info.entropy(p), -(p * np.log(p)).sum(-1), rtol=1e-13)


def test_entropy_known_values(dtype):
    assert_close(info.entropy(np.array([0.5, 0.5], dtype=dtype), base=2), np.float64(1.0), dtype)
    assert_close(info.entropy(np.full(8, 1 / 8, dtype=dtype), base=2), np.float64(3.0), dtype)
    assert_close(info.entropy(np.full(4, 0.25, dtype=dtype)), np.float64(np.log(4)), dtype)
    assert_close(info.entropy(np.full(10, 0.1, dtype=dtype), base=10), np.float64(1.0), dtype)
    # 0 log 0 = 0: a point mass has zero entropy, not nan
    assert_close(info.entropy(np.array([0.0, 1.0, 0.0], dtype=dtype)), np.float64(0.0), dtype)
    assert_close(info.entropy(np.array([0.0, 0.5, 0.5], dtype=dtype), base=2), np.float64(1.0),
                 dtype)


def test_entropy_accepts_lists():
    got = info.entropy([0.25, 0.25, 0.5], base=2)
    assert np.asarray(got).dtype == np.float64
    np.testing.assert_allclose(got, 1.5, rtol=1e-15)


def test_entropy_returns_reduced_shape(rng):
    p = random_dist(rng, (2, 3, 4), axis=1)
    assert np.shape(info.entropy(p, axis=1)) == (2, 4)
    assert np.shape(info.entropy(random_dist(rng, (5,)))) == ()


# --------------------------------------------------------------------------------------
# cross-entropy H(p, q)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,axis", SHAPE_AXIS)
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("zeros", [False, True])
def test_cross_entropy_matches_direct_formula(rng, dtype, shape, axis, base, zeros):
    p = random_dist(rng, shape, axis, dtype, zeros)
    q = random_dist(rng, shape, axis, dtype, False)
    p64, q64 = p.astype(np.float64), q.astype(np.float64)
    ref = -scipy.special.xlogy(p64, q64).sum(axis=axis) * _scale(base)
    assert_close(info.cross_entropy(p, q, axis=axis, base=base), ref, dtype)


def test_cross_entropy_matches_torch_soft_target_loss(rng, dtype):
    # H(p, q) is torch's cross_entropy with probability targets p and logits log q
    p = random_dist(rng, (6, 4), -1, dtype)
    q = random_dist(rng, (6, 4), -1, dtype)
    log_q = to_torch64(np.log(q.astype(np.float64)))
    ref = torch_np(F.cross_entropy(log_q, to_torch64(p), reduction="none"))
    assert_close(info.cross_entropy(p, q), ref, dtype)


def test_cross_entropy_zero_handling(dtype):
    p = np.array([0.0, 0.5, 0.5], dtype=dtype)
    q0 = np.array([0.0, 0.5, 0.5], dtype=dtype)  # q = 0 where p = 0: the term is 0
    assert_close(info.cross_entropy(p, q0, base=2), np.float64(1.0), dtype)
    q1 = np.array([0.5, 0.5, 0.0], dtype=dtype)  # q = 0 where p > 0: infinite
    with np.errstate(divide="ignore", invalid="ignore"):
        got = info.cross_entropy(p, q1)
    assert np.asarray(got).dtype == dtype
    assert got == np.inf


def test_cross_entropy_of_p_with_itself_is_entropy(rng, dtype):
    p = random_dist(rng, (5, 6), -1, dtype, zeros=True)
    assert_close(info.cross_entropy(p, p), info.entropy(p).astype(np.float64), dtype)


# --------------------------------------------------------------------------------------
# KL divergence
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,axis", SHAPE_AXIS)
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("zeros", [False, True])
def test_kl_matches_scipy(rng, dtype, shape, axis, base, zeros):
    p = random_dist(rng, shape, axis, dtype, zeros)
    q = random_dist(rng, shape, axis, dtype, False)
    p64, q64 = p.astype(np.float64), q.astype(np.float64)
    ref = scipy.special.rel_entr(p64, q64).sum(axis=axis) * _scale(base)
    assert_close(info.kl_divergence(p, q, axis=axis, base=base), ref, dtype)
    ref2 = scipy.stats.entropy(p.astype(np.float64), q.astype(np.float64), base=base, axis=axis)
    assert_close(info.kl_divergence(p, q, axis=axis, base=base), np.asarray(ref2), dtype)


def test_kl_matches_torch_kl_div(rng, dtype):
    p = random_dist(rng, (7,), -1, dtype)
    q = random_dist(rng, (7,), -1, dtype)
    ref = torch_np(F.kl_div(to_torch64(q).log(), to_torch64(p), reduction="sum"))
    assert_close(info.kl_divergence(p, q), ref, dtype)
    P = random_dist(rng, (4, 5), -1, dtype)
    Q = random_dist(rng, (4, 5), -1, dtype)
    ref = torch_np(F.kl_div(to_torch64(Q).log(), to_torch64(P), reduction="none").sum(-1))
    assert_close(info.kl_divergence(P, Q), ref, dtype)


def test_kl_zero_handling(dtype):
    p = np.array([0.0, 0.25, 0.75], dtype=dtype)
    q = np.array([0.0, 0.5, 0.5], dtype=dtype)  # 0 log(0/0) = 0
    expected = 0.25 * np.log(0.5) + 0.75 * np.log(1.5)
    assert_close(info.kl_divergence(p, q), np.float64(expected), dtype)
    q_bad = np.array([0.5, 0.5, 0.0], dtype=dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        got = info.kl_divergence(p, q_bad)
    assert np.asarray(got).dtype == dtype
    assert got == np.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        got = info.kl_divergence(np.array([[0.5, 0.5], [1.0, 0.0]], dtype=dtype),
                                 np.array([[1.0, 0.0], [1.0, 0.0]], dtype=dtype))
    assert got[0] == np.inf and got[1] == 0.0


def test_kl_of_identical_distributions_is_zero(rng, dtype):
    p = random_dist(rng, (5, 6), -1, dtype, zeros=True)
    np.testing.assert_allclose(info.kl_divergence(p, p), 0.0,
                               atol=1e-15 if dtype == np.float64 else 1e-6)


def test_decomposition_cross_entropy_is_entropy_plus_kl(rng, dtype):
    p = random_dist(rng, (5, 6), -1, dtype, zeros=True)
    q = random_dist(rng, (5, 6), -1, dtype)
    for base in BASES:
        lhs = info.cross_entropy(p, q, base=base)
        rhs = info.entropy(p, base=base).astype(np.float64) + info.kl_divergence(p, q, base=base)
        assert_close(lhs, rhs, dtype, rtol=1e-11 if dtype == np.float64 else 1e-5)


def test_kl_is_asymmetric():
    p = np.array([0.9, 0.1])
    q = np.array([0.5, 0.5])
    assert abs(info.kl_divergence(p, q) - info.kl_divergence(q, p)) > 0.05


def test_info_does_not_mutate_inputs(rng):
    p = random_dist(rng, (3, 4), zeros=True)
    q = random_dist(rng, (3, 4))
    pc, qc = p.copy(), q.copy()
    info.entropy(p, base=2)
    info.cross_entropy(p, q)
    info.kl_divergence(p, q, base=2)
    np.testing.assert_array_equal(p, pc)
    np.testing.assert_array_equal(q, qc)


# --------------------------------------------------------------------------------------
# bad input: a clear ValueError, never a number computed from something that is not a distribution
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad,pattern", [
    (np.array(["a", "b"]), "real probabilities"),
    (np.float64(1.0), "axis of outcomes"),
    (np.array([0.5, -0.1, 0.6]), "non-negative"),
    (np.array([0.5, np.nan, 0.5]), "non-negative"),
    (np.array([2.0, -1.0, 0.5]), "non-negative"),
    (np.array([1.0, 2.0, 3.0]),
     r"sum to 1 .* a sum is 6; if these are logits, apply celib.functional.softmax"),
])
def test_info_refuses_what_is_not_a_distribution(bad, pattern):
    from celib import info
    for call in (lambda: info.entropy(bad), lambda: info.cross_entropy(bad, np.full(3, 1 / 3)),
                 lambda: (info.kl_divergence(np.full(3, 1 / 3), bad) if np.ndim(bad)
                          else info.kl_divergence(bad, bad))):
        with pytest.raises(ValueError, match=pattern):
            call()


@pytest.mark.parametrize("base", [0, -2, 1, 1.0, np.nan, np.inf, -np.inf, np.float32(1.0)])
@pytest.mark.parametrize("fn", ["entropy", "cross_entropy", "kl_divergence"])
def test_info_refuses_a_meaningless_base(fn, base):
    args = ([0.5, 0.5],) * (1 if fn == "entropy" else 2)
    with pytest.raises(ValueError, match=r"base must be a finite number > 0 and not 1 .*got "
                       + re.escape(repr(base))):
        getattr(info, fn)(*args, base=base)


@pytest.mark.parametrize("base", [True, False, np.True_, "2", 2j, [2]])
@pytest.mark.parametrize("fn", ["entropy", "cross_entropy", "kl_divergence"])
def test_info_refuses_a_base_that_is_not_a_real_number(fn, base):
    args = ([0.5, 0.5],) * (1 if fn == "entropy" else 2)
    with pytest.raises(TypeError, match=r"base must be None or a real number .*got "
                       + re.escape(repr(base))):
        getattr(info, fn)(*args, base=base)


@pytest.mark.parametrize("base", [np.int64(2), np.float32(2.0), 0.5, 1e-300])
def test_info_accepts_numpy_and_unusual_bases(base):
    p, q = np.array([0.25, 0.75]), np.array([0.5, 0.5])
    ref = scipy.stats.entropy(p, q, base=float(base))
    np.testing.assert_allclose(info.kl_divergence(p, q, base=base), ref, rtol=1e-14)


def test_info_reads_integer_distributions_as_float64():
    from celib import info
    assert info.entropy(np.array([1, 0])) == 0.0
    assert info.entropy(np.array([1, 0])).dtype == np.float64


# --------------------------------------------------------------------------------------
# arguments at the edges (issue 20): axis, shapes, ragged lists, extreme ratios, warnings
# --------------------------------------------------------------------------------------

FUNCTIONS = {
    "entropy": lambda p, **kw: info.entropy(p, **kw),
    "cross_entropy": lambda p, **kw: info.cross_entropy(p, p, **kw),
    "kl_divergence": lambda p, **kw: info.kl_divergence(p, p, **kw),
}


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("axis", [1.0, "0", None, True, np.float64(0.0)])
def test_axis_must_be_an_integer(fn, axis):
    with pytest.raises(TypeError, match=r"axis must be an integer .*got " + re.escape(repr(axis))):
        FUNCTIONS[fn](np.full((2, 2), 0.5), axis=axis)


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("axis", [2, -3, 10**30])
def test_axis_out_of_range(fn, axis):
    with pytest.raises(ValueError, match=rf"axis {axis} is out of range .*\[-2, 2\)"):
        FUNCTIONS[fn](np.full((2, 2), 0.5), axis=axis)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_numpy_integer_axis_is_accepted(fn):
    p = np.full((2, 4), 0.25)
    assert np.array_equal(FUNCTIONS[fn](p, axis=np.int64(1)), FUNCTIONS[fn](p, axis=1))


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_ragged_lists_are_named(fn):
    ragged = [[0.5, 0.5], [1.0]]
    with pytest.raises(ValueError, match=r"^p must be a rectangular array.*ragged"):
        FUNCTIONS[fn](ragged)
    if fn != "entropy":
        with pytest.raises(ValueError, match=r"^q must be a rectangular array.*ragged"):
            getattr(info, fn)([[0.5, 0.5], [1.0, 0.0]], ragged)


@pytest.mark.parametrize("fn", ["cross_entropy", "kl_divergence"])
def test_shape_mismatch_names_both_shapes(fn):
    with pytest.raises(ValueError, match=r"p and q must have the same shape .*p of shape "
                       r"\(3,\) and q of shape \(2,\)"):
        getattr(info, fn)(np.full(3, 1 / 3), [0.5, 0.5])


@pytest.mark.parametrize("fn", ["cross_entropy", "kl_divergence"])
def test_broadcasting_over_other_axes_matches_torch(rng, fn):
    p = random_dist(rng, (4, 5))
    q = random_dist(rng, (5,))
    got = getattr(info, fn)(p, q)
    log_q = torch.from_numpy(np.log(q)).expand(4, 5)
    pt = torch.from_numpy(p)
    ref = (F.kl_div(log_q, pt, reduction="none") if fn == "kl_divergence"
           else -pt * log_q).sum(-1).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-13)


@pytest.mark.parametrize("fn", ["cross_entropy", "kl_divergence"])
def test_q_broadcast_along_the_outcomes_is_not_a_distribution(fn):
    # q = [1.0] broadcast to three outcomes sums to 3: refused, not read as a distribution
    with pytest.raises(ValueError, match=r"q must sum to 1 .* a sum is 3"):
        getattr(info, fn)(np.full(3, 1 / 3), [1.0])


@pytest.mark.parametrize("q_small", [5e-324, 1e-310, 2.0 ** -1070])
def test_kl_with_a_subnormal_q_is_finite_as_in_torch(q_small):
    # p / q overflows float64; the term p log(p/q) does not (issue 20: no inf, no warning)
    p = np.array([0.5, 0.5])
    q = np.array([1.0 - q_small, q_small])
    ref = F.kl_div(torch.from_numpy(q).log(), torch.from_numpy(p), reduction="sum").item()
    with np.errstate(divide="raise", over="raise", invalid="raise"):
        got = info.kl_divergence(p, q)
    assert np.isfinite(got)
    np.testing.assert_allclose(got, ref, rtol=1e-14)


def test_kl_with_a_subnormal_p_is_not_minus_inf():
    # p / q underflows to 0: log(0) would make the term -inf; the term is about -3.7e-321
    p = np.array([1.0 - 5e-324, 5e-324])
    q = np.array([0.5, 0.5])
    ref = F.kl_div(torch.from_numpy(q).log(), torch.from_numpy(p), reduction="sum").item()
    with np.errstate(divide="raise", over="raise", invalid="raise"):
        got = info.kl_divergence(p, q)
    np.testing.assert_allclose(got, ref, rtol=1e-14)


def test_float16_kl_does_not_overflow():
    # in float16, 0.5 / 6e-8 overflows (max 65504); celib computes float16 in float32, as torch
    p = np.array([0.5, 0.5], dtype=np.float16)
    q = np.array([1.0, 6e-8], dtype=np.float16)
    ref = F.kl_div(torch.from_numpy(q.astype(np.float64)).log(),
                   torch.from_numpy(p.astype(np.float64)), reduction="sum").item()
    with np.errstate(divide="raise", over="raise", invalid="raise"):
        got = info.kl_divergence(p, q)
    assert got.dtype == np.float16
    np.testing.assert_allclose(float(got), ref, rtol=1e-3)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_no_runtime_warning_on_well_defined_inputs(fn):
    cases = [np.array([0.0, 1.0]), np.array([[1.0, 0.0], [0.0, 1.0]]), np.zeros((0, 3)),
             np.array([5e-324, 1.0]), np.array([0.0, 1.0], dtype=np.float16)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for p in cases:
            FUNCTIONS[fn](p, base=2)
        if fn != "entropy":
            getattr(info, fn)([1.0, 0.0], [0.0, 1.0])  # inf, by the documented convention


@pytest.mark.skipif(np.dtype(np.longdouble) == np.dtype(np.float64), reason="no wider longdouble")
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_longdouble_is_refused_as_everywhere_in_celib(fn):
    # celib computes in float16/32/64 as torch does on the CPU; longdouble is a TypeError in every
    # module (it used to be computed here and refused elsewhere)
    with pytest.raises(TypeError, match=r"p has dtype float128.*astype\(np.float64\)"):
        FUNCTIONS[fn](np.array([0.5, 0.5], np.longdouble))


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_big_endian_and_strided_inputs_give_the_same_numbers(fn):
    p = np.array([[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]])
    expected = FUNCTIONS[fn](p)
    for variant in (p.astype(">f8"), np.asfortranarray(p), p[::-1][::-1], p.T.copy().T):
        np.testing.assert_array_equal(FUNCTIONS[fn](variant), expected)
