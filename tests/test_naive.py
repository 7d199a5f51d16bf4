"""celib.naive: the textbook formulas. They agree with the stable versions on benign input
and break (inf / nan / -inf) on input the stable versions handle."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from celib import functional as cf
from celib import naive
from tests.celib_testing import assert_close, make_logits, to_torch64, torch_np

# naive.cross_entropy takes logits (softmax first, log after); naive.cross_entropy_from_probs
# takes probabilities: the mean of -log probs[target].


# --------------------------------------------------------------------------------------
# benign input: same numbers as the stable versions (and torch)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,axis", [((5,), -1), ((4, 3), -1), ((4, 3), 0), ((2, 3, 4), 1)])
def test_naive_softmax_matches_stable_on_benign_input(rng, dtype, shape, axis):
    z = make_logits(rng, shape, dtype, scale=3)
    got = naive.softmax(z, axis=axis)
    assert_close(got, torch_np(torch.softmax(to_torch64(z), axis)), dtype)
    assert_close(got, cf.softmax(z, axis=axis).astype(np.float64), dtype)


@pytest.mark.parametrize("shape,axis", [((5,), -1), ((4, 3), -1), ((4, 3), 0), ((2, 3, 4), 1)])
def test_naive_log_softmax_matches_stable_on_benign_input(rng, dtype, shape, axis):
    z = make_logits(rng, shape, dtype, scale=3)
    got = naive.log_softmax(z, axis=axis)
    assert_close(got, torch_np(torch.log_softmax(to_torch64(z), axis)), dtype)


def test_naive_default_axis_is_last(rng):
    z = make_logits(rng, (3, 4), np.float64)
    np.testing.assert_allclose(naive.softmax(z), cf.softmax(z, axis=-1), rtol=1e-13)
    np.testing.assert_allclose(naive.log_softmax(z), cf.log_softmax(z, axis=-1), rtol=1e-13,
                               atol=1e-14)


def test_naive_softmax_is_the_textbook_formula(rng):
    z = make_logits(rng, (4, 5), np.float64)
    e = np.exp(z)
    np.testing.assert_allclose(naive.softmax(z), e / e.sum(-1, keepdims=True), rtol=1e-15)


def test_naive_cross_entropy_2d_matches_stable(rng, dtype):
    z = make_logits(rng, (6, 4), dtype)
    p = cf.softmax(z, axis=1)
    t = np.array([0, 3, 1, 2, 2, 0])
    got = naive.cross_entropy_from_probs(p, t)
    assert np.asarray(got).dtype == dtype
    assert np.shape(got) == ()
    assert_close(got, np.asarray(cf.cross_entropy(z, t), dtype=np.float64), dtype)
    # from probabilities: mean of -log p[target]
    expected = -np.mean(np.log(p.astype(np.float64)[np.arange(6), t]))
    assert_close(got, np.float64(expected), dtype)


def test_naive_cross_entropy_1d(dtype):
    p = np.array([0.2, 0.5, 0.3], dtype=dtype)
    for t in (1, np.array(1), np.int64(1)):
        got = naive.cross_entropy_from_probs(p, t)
        assert np.shape(got) == ()
        assert_close(got, np.float64(-np.log(np.float64(p[1]))), dtype)


def test_naive_cross_entropy_of_probability_lists():
    got = naive.cross_entropy_from_probs([[0.25, 0.75], [0.5, 0.5]], [1, 0])
    np.testing.assert_allclose(got, -(np.log(0.75) + np.log(0.5)) / 2, rtol=1e-15)


# --------------------------------------------------------------------------------------
# hostile input: the textbook formulas overflow / underflow where the stable ones do not
# --------------------------------------------------------------------------------------


def test_naive_softmax_overflows_where_stable_does_not():
    z = np.array([1000.0, 1.0])
    with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        s = naive.softmax(z)
    assert not np.all(np.isfinite(s)), s  # exp(1000) = inf, inf / inf = nan
    assert np.isnan(s[0])
    np.testing.assert_array_equal(cf.softmax(z), [1.0, np.exp(-999.0)])


def test_naive_softmax_overflow_emits_numpy_warning_under_default_errstate():
    z = np.array([1000.0, 1.0])
    with np.errstate(all="warn"), pytest.warns(RuntimeWarning):
        naive.softmax(z)


def test_naive_softmax_underflows_to_nan():
    z = np.array([-1000.0, -1001.0])  # exp underflows to 0: 0 / 0
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        s = naive.softmax(z)
    assert np.all(np.isnan(s))
    np.testing.assert_allclose(cf.softmax(z), [1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1))],
                               rtol=1e-14)


def test_naive_log_softmax_breaks_where_stable_does_not():
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        a = naive.log_softmax(np.array([1000.0, 1.0]))
        b = naive.log_softmax(np.array([0.0, -1000.0]))  # softmax underflows to 0: log 0 = -inf
    assert not np.all(np.isfinite(a))
    assert b[1] == -np.inf
    np.testing.assert_allclose(cf.log_softmax(np.array([1000.0, 1.0])), [-np.exp(-999.0), -999.0],
                               rtol=1e-15)
    assert cf.log_softmax(np.array([0.0, -1000.0]))[1] == -1000.0


def test_naive_cross_entropy_infinite_where_stable_is_finite():
    z = np.array([[0.0, -1000.0]])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        p = naive.softmax(z)
        loss = naive.cross_entropy_from_probs(p, np.array([1]))
        from_logits = naive.cross_entropy(z, np.array([1]))
    assert loss == np.inf and from_logits == np.inf  # -log(0)
    assert cf.cross_entropy(z, np.array([1])) == 1000.0


def test_naive_float32_overflows_earlier():
    z = np.array([100.0, 0.0], dtype=np.float32)  # exp(100) > float32 max
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        s = naive.softmax(z)
    assert s.dtype == np.float32
    assert not np.all(np.isfinite(s))
    s_stable = cf.softmax(z)
    assert s_stable.dtype == np.float32 and s_stable[0] == 1.0


def test_naive_does_not_mutate_inputs(rng):
    z = make_logits(rng, (3, 4), np.float64)
    zc = z.copy()
    naive.softmax(z)
    naive.log_softmax(z)
    p = cf.softmax(z)
    pc = p.copy()
    naive.cross_entropy(p, np.array([0, 1, 2]))
    np.testing.assert_array_equal(z, zc)
    np.testing.assert_array_equal(p, pc)


def test_naive_cross_entropy_from_logits_is_softmax_then_log(rng, dtype):
    z = make_logits(rng, (6, 4), dtype)
    t = np.array([0, 3, 1, 2, 2, 0])
    assert_close(naive.cross_entropy(z, t), np.float64(cf.cross_entropy(z, t)), dtype)
