"""celib.accuracy: the ulp helpers, the exact reference, and celib's accuracy targets.

The targets of issue 6 are correctness, not speed, so they are tests: on the stress inputs
(one dominant logit, huge magnitudes, nearly equal logits, C from 2 to 1000 here), the worst
error of logsumexp, log_softmax and the per-sample cross-entropy is at most 4 ulp in float64
and 1 ulp in float32, and a float32 'mean' never overflows when the true mean is finite.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import celib.functional as cf
from celib import accuracy as acc

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)


# --------------------------------------------------------------------------------------
# ulp
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "hi, lo, dtype, expected",
    [
        (1.0, 0.0, F64, 2.0**-52),
        (1.0, -1e-30, F64, 2.0**-53),  # just below 1: the ulp of the binade below
        (1.0, +1e-30, F64, 2.0**-52),
        (-1.0, +1e-30, F64, 2.0**-53),  # |v| just below 1
        (3.0, 0.0, F64, 2.0**-51),
        (3.0, 0.0, F32, 2.0**-22),
        (1e-310, 0.0, F64, 2.0**-1074),  # subnormal: the smallest gap
        (0.0, 0.0, F64, 2.0**-1074),
        (0.0, 0.0, F32, 2.0**-149),
        (1e-40, 0.0, F32, 2.0**-149),
        (2.0**-126, 0.0, F32, 2.0**-149),  # smallest normal float32
        (1e300, 0.0, F64, float(np.spacing(1e300))),
        (123.456, 0.0, F32, float(np.spacing(np.float32(123.456)))),
    ],
)
def test_ulp(hi, lo, dtype, expected):
    assert float(acc.ulp(np.array(hi), np.array(lo), dtype)) == expected


def test_ulp_matches_numpy_spacing_away_from_powers_of_two():
    rng = np.random.default_rng(1)
    for dtype in (F32, F64):
        v = (rng.standard_normal(1000) * 10.0 ** rng.integers(-30, 30, 1000)).astype(dtype)
        v = v[np.abs(np.frexp(np.abs(v))[0] - 0.5) > 1e-3]  # not at a power of two
        got = acc.ulp(v.astype(np.float64), np.zeros(len(v)), dtype)
        np.testing.assert_array_equal(got, np.spacing(np.abs(v)).astype(np.float64))


def test_ulp_error_units():
    one = np.float32(1.0)
    up = np.nextafter(one, np.float32(2))
    assert float(acc.ulp_error(one, 1.0, 0.0, F32)) == 0.0
    assert float(acc.ulp_error(up, 1.0, 0.0, F32)) == 1.0
    # an exact value halfway between two floats: both neighbours are half an ulp away
    mid_hi = 1.0 + 2.0**-24
    assert float(acc.ulp_error(one, mid_hi, 0.0, F32)) == 0.5
    assert float(acc.ulp_error(up, mid_hi, 0.0, F32)) == 0.5
    # the lo part counts
    assert float(acc.ulp_error(1.0, 1.0, 2.0**-54, F64)) == 0.25


def test_ulp_error_correctly_rounded_is_at_most_half():
    rng = np.random.default_rng(2)
    with mpmath.workdps(40):
        for dtype in (F32, F64):
            for x in rng.uniform(-30, 30, 50):
                exact = mpmath.exp(mpmath.mpf(float(x)))
                hi = float(exact)
                lo = float(exact - mpmath.mpf(hi))
                rounded = dtype.type(hi) if dtype == F64 else np.float32(exact)
                assert float(acc.ulp_error(rounded, hi, lo, dtype)) <= 0.5 + 1e-9


def test_ulp_error_non_finite():
    assert np.isinf(acc.ulp_error(np.nan, 1.0, 0.0, F64))
    assert np.isinf(acc.ulp_error(np.inf, 1.0, 0.0, F64))
    assert np.isinf(acc.ulp_error(-np.inf, 1.0, 0.0, F32))
    # an exact value beyond float32's range: inf is the correctly rounded answer
    assert float(acc.ulp_error(np.float32(np.inf), 6e38, 0.0, F32)) == 0.0
    assert np.isinf(acc.ulp_error(np.finfo(np.float32).max, 6e38, 0.0, F32))
    assert float(acc.ulp_error(-np.inf, -np.inf, 0.0, F64)) == 0.0
    assert np.isinf(acc.ulp_error(np.inf, -np.inf, 0.0, F64))
    # just below the float32 overflow threshold the largest float is correct
    big = float(np.finfo(np.float32).max)
    assert float(acc.ulp_error(np.float32(big), big + 2.0**100, 0.0, F32)) < 0.5


# --------------------------------------------------------------------------------------
# the exact reference
# --------------------------------------------------------------------------------------

def _reference(row, targets, digits=120):
    """An independent reference: the textbook formulas at very high precision."""
    with mpmath.workdps(digits):
        xs = [mpmath.mpf(float(v)) for v in row]
        lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in xs))
        return lse, [v - lse for v in xs], [lse - xs[int(t)] for t in targets]


@pytest.mark.parametrize(
    "row",
    [
        [0.0, 0.0],
        [1.0, 2.0, 3.0],
        [0.0, -40.0],
        [50.0, 0.0, -3.0, 1.5],
        [1e4, 1e4 - 1e-9, 1e4 + 2e-9],
        [-700.25, -701.5, -3000.0],
        [-0.6931471805599453, -0.6931471805599453],  # lse close to 0
    ],
)
def test_exact_row_matches_high_precision_textbook_formulas(row):
    row = np.array(row)
    targets = list(range(len(row)))
    ref = acc.exact_row(row, targets)
    lse, log_sm, loss = _reference(row, targets)
    with mpmath.workdps(120):
        def check(pair, value):
            got = mpmath.mpf(float(pair[0])) + mpmath.mpf(float(pair[1]))
            assert abs(got - value) <= abs(value) * mpmath.mpf(10) ** -30 + mpmath.mpf(10) ** -300

        check(ref["logsumexp"], lse)
        for j in range(len(row)):
            check(ref["log_softmax"][:, j], log_sm[j])
            check(ref["cross_entropy"][:, j], loss[j])


def test_exact_row_dominant_logit_keeps_the_tiny_loss():
    ref = acc.exact_row(np.array([0.0, -40.0]), [0, 1])
    assert ref["cross_entropy"][0, 0] == float(mpmath.log1p(mpmath.exp(-40)))
    assert ref["log_softmax"][0, 0] == -ref["cross_entropy"][0, 0]
    np.testing.assert_allclose(ref["cross_entropy"][0, 1], 40.0, rtol=1e-15)


def test_exact_row_huge_logits_round_to_inf_where_they_must():
    ref = acc.exact_row(np.array([1.7e308, -1.7e308]), [1])
    assert ref["logsumexp"][0] == 1.7e308
    assert ref["log_softmax"][0, 1] == -np.inf  # -3.4e308 is beyond float64
    assert ref["cross_entropy"][0, 0] == np.inf


# --------------------------------------------------------------------------------------
# stress set and targets
# --------------------------------------------------------------------------------------

def test_stress_cases_are_deterministic_and_cover_the_families():
    for dtype in (F32, F64):
        a = acc.stress_cases(dtype, quick=True)
        b = acc.stress_cases(dtype, quick=True)
        assert [c.name for c in a] == [c.name for c in b]
        for ca, cb in zip(a, b, strict=True):
            np.testing.assert_array_equal(ca.logits, cb.logits)
            np.testing.assert_array_equal(ca.targets, cb.targets)
            assert ca.logits.dtype == dtype
            assert np.all(np.isfinite(ca.logits))
            assert ca.targets.shape == (len(ca.logits), 2)
            np.testing.assert_array_equal(ca.targets[:, 0], ca.logits.argmax(axis=1))
        names = " ".join(c.name for c in a)
        for family in ("dominant", "huge", "offset", "near-equal", "random"):
            assert family in names
    full = acc.stress_cases(F64)
    widths = {c.logits.shape[1] for c in full}
    assert min(widths) == 2 and max(widths) == 10000


@pytest.fixture(scope="module")
def quick_table():
    return acc.error_table(quick=True)


@pytest.mark.parametrize("function", acc.FUNCTIONS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_celib_meets_the_accuracy_targets(quick_table, function, dtype):
    worst = quick_table[(function, dtype)]["celib"]
    assert worst.ulp <= acc.TARGET_ULP[np.dtype(dtype)], (function, dtype, worst)


def test_the_stress_set_breaks_the_naive_formulas(quick_table):
    for function in acc.FUNCTIONS:
        for dtype in ("float32", "float64"):
            assert np.isinf(quick_table[(function, dtype)]["naive"].ulp)


def test_log_of_one_plus_s_loses_every_digit_where_log1p_keeps_them(quick_table):
    # scipy's log_softmax computes log(1 + s); on a dominant logit its relative error is ~1
    # (about 2**24 ulp in float32, 2**53 in float64), celib's is under an ulp
    for dtype, lost in (("float32", 2.0**22), ("float64", 2.0**50)):
        assert quick_table[("log_softmax", dtype)]["scipy"].ulp > lost
        assert quick_table[("log_softmax", dtype)]["celib"].ulp < 4


def test_format_table_lists_every_method(quick_table):
    text = acc.format_table(quick_table, show_cases=True)
    for word in ("celib", "naive", "logsumexp", "log_softmax", "cross_entropy", "worst case"):
        assert word in text
    coarse = acc.format_table(quick_table, coarse=True)
    assert "≤ 0.51" in coarse and "> 1e+06" in coarse and "inf" in coarse


@pytest.mark.parametrize("value, text", [(0.5, "≤ 0.51"), (0.6, "≤ 1"), (3.9, "≤ 4"),
                                         (50.0, "≤ 100"), (2.0**24, "> 1e+06"), (np.inf, "inf")])
def test_coarse_bounds(value, text):
    assert acc._fmt_ulp(value, coarse=True) == text


def test_float32_mean_does_not_overflow_when_the_true_mean_is_finite():
    rows = acc.mean_overflow_table()
    for row in rows:
        assert np.isfinite(row["true mean"])
        assert np.isfinite(row["celib"]), row
        np.testing.assert_allclose(row["celib"], row["true mean"], rtol=1e-6)


def test_float32_mean_of_huge_losses():
    x = np.array([[3e38, -3e38], [0.0, 0.0]], dtype=np.float32)
    loss = cf.cross_entropy(x, np.array([1, 0]))
    assert loss.dtype == np.float32
    np.testing.assert_allclose(float(loss), 3e38, rtol=1e-6)
    per = cf.cross_entropy(x, np.array([1, 0]), reduction="none")
    assert per[0] == np.inf  # 6e38 itself is beyond float32
    np.testing.assert_allclose(float(cf.cross_entropy(x, np.array([1, 0]), reduction="sum")),
                               np.inf)  # and so is the sum


def test_main_quick_prints_the_tables(capsys):
    assert acc.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "Worst error in ulp" in out
    assert "celib meets every target" in out
    assert "'mean'" in out
