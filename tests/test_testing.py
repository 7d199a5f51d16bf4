"""celib.testing against independent computations: the ulp of an exact value, errors in ulps,
the exact mpmath references, and the traced memory peak of a call."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

import mpmath
import numpy as np
import pytest

from celib.testing import (
    exact_cross_entropy,
    exact_log_softmax,
    exact_logsumexp,
    traced_peak,
    ulp,
    ulp_error,
)

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
S64 = 2.0**-1074  # float64's smallest subnormal


def mp(value, digits=60):
    """An mpmath number from a string or an exact expression, with ``digits`` digits."""
    with mpmath.workdps(digits):
        return mpmath.mpf(value) if isinstance(value, (str, float, int)) else value()


# --------------------------------------------------------------------------------------
# ulp
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "x, dtype, expected",
    [
        (1.0, F64, 2.0**-52),
        (lambda: 1 - mpmath.mpf(2) ** -80, F64, 2.0**-53),  # just below 1: the gap below
        (lambda: 1 + mpmath.mpf(2) ** -80, F64, 2.0**-52),
        (lambda: -(1 - mpmath.mpf(2) ** -80), F64, 2.0**-53),  # |v| just below 1
        (3.0, F64, 2.0**-51),
        (3.0, F32, 2.0**-22),
        (1.0, F16, 2.0**-10),
        (1e-310, F64, S64),  # subnormal: the smallest gap
        ("1e-400", F64, S64),  # below every float64
        (0.0, F64, S64),
        (0.0, F32, 2.0**-149),
        (0.0, F16, 2.0**-24),
        (1e-40, F32, 2.0**-149),
        (2.0**-126, F32, 2.0**-149),  # smallest normal float32
        (1e300, F64, float(np.spacing(1e300))),
        (float(np.float32(123.456)), F32, float(np.spacing(np.float32(123.456)))),
    ],
)
def test_ulp(x, dtype, expected):
    value = mp(x) if callable(x) or isinstance(x, str) else x
    assert float(ulp(value, dtype)) == expected


def test_ulp_is_the_gap_to_the_next_float_away_from_powers_of_two():
    rng = np.random.default_rng(1)
    for dtype in (F16, F32, F64):
        v = np.abs(rng.standard_normal(1000) * 10.0 ** rng.integers(-4, 4, 1000)).astype(dtype)
        v = v[(np.frexp(v)[0] != 0.5) & np.isfinite(v) & (v > 0)]  # not at a power of two
        gap = (np.nextafter(v, dtype.type(np.inf)) - v).astype(np.float64)
        np.testing.assert_array_equal(ulp(v, dtype), gap)
        as_mpmath = np.array([mpmath.mpf(float(x)) for x in v], dtype=object)
        np.testing.assert_array_equal(ulp(as_mpmath, dtype), gap)


def test_ulp_of_a_power_of_two_is_the_gap_above_and_just_below_it_the_gap_below():
    for k in (-20, 0, 7, 100):
        p = 2.0**k
        assert float(ulp(p, F64)) == np.nextafter(p, np.inf) - p
        below = mp(lambda p=p: mpmath.mpf(p) * (1 - mpmath.mpf(2) ** -70))
        assert float(ulp(below, F64)) == p - np.nextafter(p, 0.0)


def test_ulp_shapes_non_finite_and_dtypes():
    assert ulp([1.0, 2.0, 4.0], F64).shape == (3,)
    assert ulp(1.0, F64).shape == ()
    assert np.isnan(ulp(np.inf, F64)) and np.isnan(ulp(np.nan, F32))
    assert np.isnan(ulp(mpmath.mpf("-inf"), F64))
    assert float(ulp(mpmath.mpf("1e400"), F64)) == np.inf  # beyond float64's range
    for bad in (np.int64, np.longdouble, np.complex128):
        if np.dtype(bad) != F64:
            with pytest.raises(ValueError, match="float16, float32 or float64"):
                ulp(1.0, bad)


# --------------------------------------------------------------------------------------
# ulp_error
# --------------------------------------------------------------------------------------

def test_ulp_error_units():
    one = np.float32(1.0)
    up = np.nextafter(one, np.float32(2))
    assert float(ulp_error(one, 1.0)) == 0.0
    assert float(ulp_error(up, 1.0)) == 1.0
    # an exact value halfway between two floats: both neighbours are half an ulp away
    middle = 1.0 + 2.0**-24
    assert float(ulp_error(one, middle)) == 0.5 and float(ulp_error(up, middle)) == 0.5
    # the digits beyond float64 count when the exact value is an mpmath number
    assert float(ulp_error(1.0, mp(lambda: 1 + mpmath.mpf(2) ** -54))) == 0.25
    # the unit is dtype's: a float64 result measured in float32 ulps
    assert float(ulp_error(1.0 + 2.0**-25, 1.0, np.float32)) == 0.25


def test_ulp_error_of_correctly_rounded_values_is_at_most_half_and_of_the_next_float_about_1():
    rng = np.random.default_rng(2)
    for dtype in (F32, F64):
        for x in rng.uniform(-30, 30, 40):
            exact = mp(lambda x=x: mpmath.exp(mpmath.mpf(float(x))))
            near, other = _nearest_two(exact, dtype)  # the nearest float and its other neighbour
            assert float(ulp_error(near, exact)) <= 0.5
            up = np.nextafter(near, dtype.type(np.inf))
            assert 0.5 <= float(ulp_error(up, exact)) <= 1.5
            assert 0.5 <= float(ulp_error(other, exact)) <= 1.0


def _nearest_two(exact, dtype):
    """The float of dtype nearest to the mpmath number ``exact``, and the one on its other
    side, found by stepping with nextafter, independently of celib.testing."""
    with mpmath.workdps(60):
        return _nearest_two_at_60_digits(exact, dtype)


def _nearest_two_at_60_digits(exact, dtype):
    x = dtype.type(float(exact))
    while mpmath.mpf(float(x)) > exact:
        x = np.nextafter(x, dtype.type(-np.inf))
    while mpmath.mpf(float(np.nextafter(x, dtype.type(np.inf)))) <= exact:
        x = np.nextafter(x, dtype.type(np.inf))
    lo, hi = x, np.nextafter(x, dtype.type(np.inf))  # lo <= exact < hi
    if abs(mpmath.mpf(float(hi)) - exact) < abs(exact - mpmath.mpf(float(lo))):
        return hi, lo
    return lo, hi


def test_ulp_error_uses_the_ulp_of_the_exact_value_below_a_power_of_two():
    # v lies 0.4 of the gap below 1, in the binade below 1 (gap 2**-53): 1.0 is correctly
    # rounded (0.4 ulp) and the float below it is not (0.6 ulp). In units of the spacing
    # above the rounded value, 1.0, both would look correctly rounded (0.2 and 0.3).
    v = mp(lambda: 1 - mpmath.mpf("0.4") * mpmath.mpf(2) ** -53)
    assert float(ulp_error(1.0, v)) == pytest.approx(0.4, abs=1e-12)
    assert float(ulp_error(np.nextafter(1.0, 0.0), v)) == pytest.approx(0.6, abs=1e-12)


def test_ulp_error_is_exact_below_float64s_normal_range():
    # an exact value of 2.3 smallest subnormals: a float64 reference would be 2 of them
    v = mp(lambda: mpmath.mpf("2.3") * mpmath.ldexp(1, -1074))
    assert float(ulp_error(2 * S64, v)) == pytest.approx(0.3, abs=1e-12)
    assert float(ulp_error(3 * S64, v)) == pytest.approx(0.7, abs=1e-12)
    assert float(ulp_error(0.0, mp("1e-400"))) == pytest.approx(0.0, abs=1e-70)


def test_ulp_error_floats_and_mpmath_numbers_agree_for_float32_results():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(200) * 50
    exact = np.array([mp(lambda v=v: mpmath.exp(mpmath.mpf(float(v)) / 10)) for v in x],
                     dtype=object)
    computed = np.exp(x.astype(np.float32) / np.float32(10))
    from_mpmath = ulp_error(computed, exact)
    from_floats = ulp_error(computed, np.array([float(v) for v in exact]))
    np.testing.assert_allclose(from_floats, from_mpmath, rtol=0, atol=1e-7)


def test_ulp_error_does_not_depend_on_mpmaths_working_precision():
    v = mp(lambda: mpmath.mpf(1) / 3, digits=80)
    got = np.float64(1 / 3)
    with mpmath.workdps(15):
        low = float(ulp_error(got, v))
    with mpmath.workdps(200):
        high = float(ulp_error(got, v))
    assert low == high and 0 < low <= 0.5


def test_ulp_error_non_finite():
    for exact in (1.0, mpmath.mpf(1)):
        assert np.isinf(ulp_error(np.nan, exact, F64))
        assert np.isinf(ulp_error(np.inf, exact, F64))
        assert np.isinf(ulp_error(-np.inf, exact, F32))
    # an exact value beyond float32's range: inf is the correctly rounded answer
    for exact in (6e38, mpmath.mpf("6e38")):
        assert float(ulp_error(np.float32(np.inf), exact)) == 0.0
        assert np.isinf(ulp_error(np.finfo(np.float32).max, exact))
    assert float(ulp_error(np.inf, mpmath.mpf("1e400"))) == 0.0
    assert float(ulp_error(-np.inf, -np.inf)) == 0.0 and np.isinf(ulp_error(np.inf, -np.inf))
    assert np.isnan(ulp_error(1.0, np.nan)) and np.isnan(ulp_error(1.0, mpmath.mpf("nan")))
    # just below the float32 overflow threshold the largest float is correct
    big = float(np.finfo(np.float32).max)
    assert float(ulp_error(np.float32(big), big + 2.0**100)) < 0.5
    # a finite error too large for float64 arithmetic: computed without overflow
    assert float(ulp_error(1.7e308, -1.7e308)) == 2 * (1.7e308 / 2.0**971)


def test_ulp_error_shapes_and_default_dtype():
    assert ulp_error(np.ones(3, np.float32), 1.0).shape == (3,)
    assert ulp_error(np.ones((2, 3)), [1.0, 1.0, 1.0]).shape == (2, 3)
    assert ulp_error(1.0, mpmath.mpf(1)).shape == ()
    # the unit follows computed's dtype: the same distance is 2**29 times more float64 ulps
    small = float(ulp_error(np.float32(1.0), 1.0 + 2.0**-30))
    assert float(ulp_error(1.0, 1.0 + 2.0**-30)) == small * 2.0**29
    with pytest.raises(ValueError, match="float16, float32 or float64"):
        ulp_error(np.longdouble(1), 1.0)


# --------------------------------------------------------------------------------------
# exact references
# --------------------------------------------------------------------------------------

def _textbook(row, digits=150):
    """An independent reference: the textbook formulas at very high precision."""
    with mpmath.workdps(digits):
        xs = [mpmath.mpf(float(v)) for v in row]
        lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in xs))
        return lse, [v - lse for v in xs]


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
def test_exact_references_match_the_textbook_formulas_at_high_precision(row):
    lse, log_sm = _textbook(row)
    with mpmath.workdps(150):
        assert abs(exact_logsumexp(row) - lse) <= abs(lse) * mpmath.mpf(10) ** -40
        ls = exact_log_softmax(row)
        assert ls.shape == (len(row),) and ls.dtype == object
        for j in range(len(row)):
            assert abs(ls[j] - log_sm[j]) <= abs(log_sm[j]) * mpmath.mpf(10) ** -55
            loss = exact_cross_entropy(row, j)
            assert abs(loss + log_sm[j]) <= abs(log_sm[j]) * mpmath.mpf(10) ** -55


def test_the_tiny_loss_of_a_dominant_logit_keeps_every_digit():
    with mpmath.workdps(60):
        expected = mpmath.log1p(mpmath.exp(-40))
    loss = exact_cross_entropy([0.0, -40.0], 0)
    assert abs(loss - expected) <= expected * mpmath.mpf(10) ** -58
    assert exact_log_softmax([0.0, -40.0])[0] == mpmath.fneg(loss, exact=True)
    assert float(exact_cross_entropy([0.0, -40.0], 1)) == 40.0
    assert float(exact_logsumexp([0.0, -40.0])) == float(loss)


def test_exact_references_take_huge_and_minus_infinite_logits():
    assert float(exact_logsumexp([1.7e308, -1.7e308])) == 1.7e308
    assert float(exact_log_softmax([1.7e308, -1.7e308])[1]) == -np.inf  # beyond float64
    assert float(exact_cross_entropy([1.7e308, -1.7e308], 1)) == np.inf
    assert exact_logsumexp([0.0, -np.inf]) == 0
    assert list(exact_log_softmax([0.0, -np.inf])) == [0, mpmath.mpf("-inf")]
    assert exact_cross_entropy([0.0, -np.inf], 1) == mpmath.mpf("inf")
    # terms far below every float still count: the loss is e^-2000, not 0
    loss = exact_cross_entropy([0.0, -2000.0], 0)
    with mpmath.workdps(60):
        assert loss > 0 and abs(mpmath.log(loss) + 2000) < mpmath.mpf(10) ** -50


def test_exact_references_convert_float32_and_float16_exactly():
    x32 = np.array([0.1, -3.7, 2.2], dtype=np.float32)
    assert exact_logsumexp(x32) == exact_logsumexp(x32.astype(np.float64))
    assert exact_logsumexp(x32) != exact_logsumexp([0.1, -3.7, 2.2])
    x16 = np.array([0.1, 1.0], dtype=np.float16)
    assert exact_cross_entropy(x16, 0) == exact_cross_entropy(x16.astype(np.float64), 0)


def test_exact_references_carry_the_digits_asked_for_whatever_mpmaths_precision():
    with mpmath.workdps(15):
        default = exact_logsumexp([0.5, -1.25, 3.0])
        thirty = exact_logsumexp([0.5, -1.25, 3.0], digits=30)
    with mpmath.workdps(100):
        assert abs(default - thirty) < mpmath.mpf(10) ** -28
        assert abs(default - thirty) > 0  # 60 digits are not 30
        assert default == exact_logsumexp([0.5, -1.25, 3.0])


@pytest.mark.parametrize("x", [[], [[0.0, 1.0]], [0.0, np.nan], [0.0, np.inf],
                               [-np.inf, -np.inf], ["a", "b"], np.ones(2, np.complex128)])
def test_exact_references_refuse_what_is_not_a_row_of_logits(x):
    for function in (exact_logsumexp, exact_log_softmax):
        with pytest.raises(ValueError):
            function(x)
    with pytest.raises(ValueError):
        exact_cross_entropy(x, 0)


def test_exact_references_refuse_bad_digits_and_targets():
    with pytest.raises(ValueError, match="digits"):
        exact_logsumexp([0.0, 1.0], digits=0)
    with pytest.raises(ValueError, match="digits"):
        exact_log_softmax([0.0, 1.0], digits=2.5)  # type: ignore[arg-type]
    for target in (2, -1):
        with pytest.raises(IndexError, match="out of bounds"):
            exact_cross_entropy([0.0, 1.0], target)
    with pytest.raises(TypeError):
        exact_cross_entropy([0.0, 1.0], 1.0)  # type: ignore[arg-type]
    assert exact_cross_entropy([0.0, 1.0], np.int64(1)) == exact_cross_entropy([0.0, 1.0], 1)


# --------------------------------------------------------------------------------------
# traced_peak
# --------------------------------------------------------------------------------------

def test_traced_peak_of_an_allocation_of_known_size():
    peak, ones = traced_peak(np.ones, 1_000_000)
    assert ones.shape == (1_000_000,) and ones.dtype == np.float64
    assert 8_000_000 <= peak < 8_000_000 + 64 * 1024


def test_traced_peak_counts_temporaries_and_passes_keyword_arguments():
    def sum_of_a_big_temporary(n, *, value):
        return float(np.full(n, value).sum())  # 8n bytes, freed before the return

    peak, total = traced_peak(sum_of_a_big_temporary, 2_000_000, value=0.5)
    assert total == 1_000_000.0
    assert 16_000_000 <= peak < 16_000_000 + 64 * 1024


def test_traced_peak_leaves_tracemalloc_as_it_found_it():
    assert not tracemalloc.is_tracing()
    traced_peak(np.zeros, 10)
    assert not tracemalloc.is_tracing()
    tracemalloc.start()
    try:
        traced_peak(np.zeros, 10)
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()
    with pytest.raises(ZeroDivisionError):
        traced_peak(lambda: 1 / 0)
    assert not tracemalloc.is_tracing()


# --------------------------------------------------------------------------------------
# the module
# --------------------------------------------------------------------------------------

def test_importing_celib_testing_imports_numpy_only():
    code = ("import sys, celib.testing; "
            "print(sorted({'mpmath', 'torch', 'scipy'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_missing_mpmath_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpmath", None)  # makes `import mpmath` fail
    with pytest.raises(ImportError, match="pip install mpmath"):
        exact_logsumexp([0.0, 1.0])
    with pytest.raises(ImportError, match="does not depend on"):
        ulp_error(1.0, np.array([object()], dtype=object))
    assert float(ulp_error(1.0, 1.0)) == 0.0  # floats need no mpmath
