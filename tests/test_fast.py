"""celib._fast: the numba backend computes what the numpy backend computes.

Both backends run the same cases (the ``backend`` fixture, or the two side by side): float32
results must be the same bit for bit, float64 results within celib's error bound. The
compiled kernels must also give the same bits on AVX2 and AVX-512 and on 1 or 2 threads
(the book prints them), keep nan and inf, import lazily, and run beside torch's OpenMP.
numba compiles each kernel once and caches it (``cache=True``), so only a first run is slow.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import celib.functional as cf
import celib.grad as cg
from celib import _kernels as K
from celib import _proven as P
from celib.testing import exact_cross_entropy, exact_log_softmax, exact_logsumexp, ulp_error

pytest.importorskip("numba")

ROOT = Path(__file__).resolve().parents[1]
F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
# numba compiling for an AVX2 machine (as `make test-portable ISA=avx2`): the CPU name alone
# leaves the host's features, AVX-512 included; a feature list, even this short one, replaces them
AVX2_ENV = {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "-avx512f"}


@pytest.fixture(params=["numpy", "numba"])
def backend(request, monkeypatch):
    """Run the test once per backend (CELIB_BACKEND is read at every kernel call)."""
    monkeypatch.setenv("CELIB_BACKEND", request.param)
    return request.param


def _with_backend(monkeypatch, name, call):
    monkeypatch.setenv("CELIB_BACKEND", name)
    assert K.get_backend() == name
    with np.errstate(all="raise"):  # nothing may leak a floating-point warning
        return np.asarray(call())


def _inputs(rng, shape, dtype):
    """Logits with the rows that matter: only -inf, ties, nan, +inf, some -inf, a dominant
    logit, a tiny loss; and targets with an ignored element."""
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    n, c = shape
    x[0] = -np.inf
    x[1, :] = 5.0
    x[2, c // 2] = np.nan
    x[3, -1] = np.inf
    x[4, :3] = -np.inf
    x[5, -1] = 40.0
    x[7] = -60.0
    x[7, 0] = 0.0  # loss of target 0: about C·e^-60, far below an ulp of 1
    y = rng.integers(0, c, size=n)
    y[6] = -100
    y[7] = 0
    return x, y


def _bits(a):
    """The bytes of ``a``, every nan made the same (the sign of a nan means nothing)."""
    return np.where(np.isnan(a), np.nan, a).tobytes()


def _weights(c, dtype):
    return np.linspace(0.5, 2, c).astype(dtype)


CALLS = {
    "logsumexp": lambda x, y: cf.logsumexp(x, axis=1),
    "log_softmax": lambda x, y: cf.log_softmax(x, axis=1),
    "softmax": lambda x, y: cf.softmax(x, axis=1),
    "ce none": lambda x, y: cf.cross_entropy(x, y, reduction="none"),
    "ce mean": lambda x, y: cf.cross_entropy(x, y),
    "ce sum weighted": lambda x, y: cf.cross_entropy(x, y, weight=_weights(x.shape[1], x.dtype),
                                                     reduction="sum"),
    "ce smoothed weighted": lambda x, y: cf.cross_entropy(
        x, y, weight=_weights(x.shape[1], x.dtype), label_smoothing=0.1, reduction="none"),
    "ce probabilities": lambda x, y: cf.cross_entropy(
        x, cf.softmax(np.nan_to_num(x[::-1], posinf=0, neginf=0), axis=1), reduction="none"),
    "grad": lambda x, y: cg.cross_entropy_grad(x, y),
    "grad smoothed": lambda x, y: cg.cross_entropy_grad(x, y, label_smoothing=0.2,
                                                       reduction="sum"),
    "grad smoothed weighted": lambda x, y: cg.cross_entropy_grad(
        x, y, weight=_weights(x.shape[1], x.dtype), label_smoothing=0.1),
    "grad probabilities": lambda x, y: cg.cross_entropy_grad(
        x, cf.softmax(np.nan_to_num(x[::-1], posinf=0, neginf=0), axis=1)),
}


@pytest.mark.parametrize("shape", [(64, 10), (300, 1000), (8, 3000)], ids=str)
@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
def test_both_backends_give_the_same_results(monkeypatch, dtype, shape):
    x, y = _inputs(np.random.default_rng(0), shape, dtype)
    for name, call in CALLS.items():
        a = _with_backend(monkeypatch, "numpy", lambda: call(x, y))  # noqa: B023 (called at once)
        b = _with_backend(monkeypatch, "numba", lambda: call(x, y))  # noqa: B023
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
        if dtype == F32:  # float64 inside, one rounding at the end: the same bits
            assert _bits(a) == _bits(b), name
        else:  # both within a few ulp; the smoothed gradient a·q - b·w cancels near 0
            atol = 8 * np.finfo(F64).eps * np.nanmax(np.abs(a[np.isfinite(a)]), initial=0)
            np.testing.assert_allclose(b, a, rtol=4 * np.finfo(F64).eps, atol=atol,
                                       err_msg=name)


@pytest.mark.parametrize("shape", [(0, 5), (3, 1), (2, 200_003)], ids=str)
def test_empty_single_class_and_huge_rows(monkeypatch, shape):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 5).astype(np.float32)
    y = rng.integers(0, shape[1], size=shape[0])
    for name, call in CALLS.items():
        a = _with_backend(monkeypatch, "numpy", lambda: call(x, y))  # noqa: B023 (called at once)
        b = _with_backend(monkeypatch, "numba", lambda: call(x, y))  # noqa: B023
        assert _bits(a) == _bits(b), name


@pytest.mark.parametrize("gap", [40.0, 700.0, 720.0, 744.0])
def test_a_tiny_float64_loss_keeps_its_digits(backend, gap):
    """Loss e^-gap (subnormal beyond 708): the max term is left out of the sum."""
    x = np.full((1, 2), -gap)
    x[0, 0] = 0.0
    got = cf.cross_entropy(x, np.array([0]), reduction="none")
    exact = exact_cross_entropy(x[0], 0)
    assert got[0] > 0
    assert ulp_error(got, exact, F64).max() <= 1.0


def test_float64_within_two_ulp_of_mpmath(backend):
    rng = np.random.default_rng(2)
    for scale in (1.0, 10.0, 300.0):
        x = rng.standard_normal((20, 50)) * scale
        got = cf.logsumexp(x, axis=1)
        exact = np.array([exact_logsumexp(row) for row in x], dtype=object)
        assert ulp_error(got, exact, F64).max() <= 2.0, scale


def test_the_exp_is_within_an_ulp_and_keeps_its_ends():
    from celib import _fast

    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-745, 709.7, 100_000), rng.uniform(-1, 1, 10_000)])
    exact = np.exp(x.astype(np.longdouble))  # 64-bit significand: exact enough here
    err = np.abs(_fast.exp(x) - exact) / np.spacing(np.exp(x))
    assert err.max() <= 1.0
    ends = np.array([-np.inf, -800.0, -745.2, -745.1, -720.0, 0.0, 709.78, 709.79, 800.0,
                     np.inf, np.nan])
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(_fast.exp(ends), np.exp(ends))


def test_backend_names(monkeypatch):
    for value, expected in [("", "numpy"), ("numpy", "numpy"), ("NUMBA", "numba"),
                            (" auto ", "numba")]:
        monkeypatch.setenv("CELIB_BACKEND", value)
        assert K.get_backend() == expected
    monkeypatch.setenv("CELIB_BACKEND", "fortran")
    with pytest.raises(ValueError, match="CELIB_BACKEND must be one of numpy, numba, auto"):
        K.get_backend()


def _python(code: str, **env: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, cwd=ROOT, env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_celib_imports_numba_lazily_and_works_without_it():
    out = _python("import sys, celib, celib.functional as cf, celib.grad\n"
                  "print('numba' in sys.modules)", CELIB_BACKEND="numba")
    assert out.split() == ["False"]
    out = _python(
        "import sys; sys.modules['numba'] = None\n"  # numba not installed
        "import numpy as np, celib.functional as cf; from celib import _kernels as K\n"
        "print(K.get_backend(), cf.cross_entropy(np.array([[1.0, 2.0]]), [1]))\n"
        "import os; os.environ['CELIB_BACKEND'] = 'numba'\n"
        "try:\n    K.get_backend()\nexcept ImportError as e:\n    print(e)\n",
        CELIB_BACKEND="auto")
    assert out.splitlines() == [f"numpy {np.log1p(np.exp(-1.0))!r}".replace("np.float64(", "")
                                .rstrip(")"),
                                "CELIB_BACKEND=numba needs numba: pip install 'celib[fast]'"]


_BITS = """
import sys, numpy as np, celib, celib.functional as cf, celib.grad as cg
celib.set_num_threads(int(sys.argv[1]))
rng = np.random.default_rng(4)
x = rng.standard_normal((300, 1000)) * 3
y = rng.integers(0, 1000, 300)
narrow = rng.standard_normal((15000, 10)) * 3  # rows computed a block at a time
y_narrow = rng.integers(0, 10, 15000)
out = []
for dt in (np.float32, np.float64):
    xx = x.astype(dt)
    out += [cf.logsumexp(xx, axis=1), cf.softmax(xx, axis=1),
            cf.cross_entropy(xx, y, reduction='none', label_smoothing=0.1),
            cg.cross_entropy_grad(xx, y), cf.logsumexp(narrow.astype(dt), axis=1),
            cf.cross_entropy(narrow.astype(dt), y_narrow, reduction='none')]
sys.stdout.write(''.join(a.tobytes().hex() for a in out))
"""


def test_the_same_bits_on_avx2_and_here_on_one_and_two_threads():
    def bits(threads, **env):
        return _python(f"import sys; sys.argv[1:] = ['{threads}']\n" + _BITS,
                       CELIB_BACKEND="numba", **env)

    here = bits(2)
    assert bits(1) == here
    assert bits(1, **AVX2_ENV) == here


@pytest.mark.parametrize("layer", ["tbb", "workqueue"])
def test_beside_torch_and_from_two_python_threads(layer):
    """torch's OpenMP and numba's pool in one process, called in turn, at once from three
    Python threads, and from a forked child: with TBB (chosen when the ``tbb`` wheel is
    installed, as requirements.txt has it) and with workqueue (a layer the user names
    stands)."""
    env = {"NUMBA_THREADING_LAYER": "workqueue"} if layer == "workqueue" else {}
    out = _python(
        "import os, threading, numpy as np, torch, torch.nn.functional as F, celib\n"
        "import celib.functional as cf; from celib import _kernels as K\n"
        "torch.set_num_threads(2); celib.set_num_threads(2)\n"
        "x = np.random.default_rng(5).standard_normal((4096, 100)).astype(np.float32)\n"
        "y = np.zeros(4096, dtype=np.int64)\n"
        "ref = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y)).item()\n"
        "got = []\n"
        "def work():\n"
        "    for _ in range(20):\n"
        "        got.append(float(cf.cross_entropy(x, y)))\n"
        "        F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y))\n"
        "ts = [threading.Thread(target=work) for _ in range(3)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "pid = os.fork()\n"
        "if pid == 0:  # the child's pool: a fresh one (TBB) or none yet\n"
        "    os._exit(0 if float(cf.cross_entropy(x, y)) == got[0] else 3)\n"
        "import numba\n"
        "print(K.get_backend(), numba.threading_layer(), len(set(got)),\n"
        "      abs(got[0] - ref) < 1e-5, os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n",
        CELIB_BACKEND="numba", **env)
    assert out.split() == ["numba", layer, "1", "True", "0"]


def test_without_tbb_the_layer_is_workqueue_and_small_inputs_stay_on_one_thread():
    """Where the tbb wheel is missing, numba's own workqueue runs the kernels, and inputs
    below 131,072 entries stay on the calling thread (waking that pool costs more)."""
    out = _python(
        "import os; os.environ.pop('NUMBA_THREADING_LAYER', None)\n"
        "import importlib.metadata as m\n"
        "def missing(name):\n    raise m.PackageNotFoundError(name)\n"
        "m.files = missing\n"
        "import numba, numpy as np, celib.functional as cf; from celib import _fast\n"
        "x = np.ones((4096, 100), np.float32)\n"
        "loss, want = cf.cross_entropy(x, np.zeros(4096, np.int64)), np.float32(np.log(100))\n"
        "print(numba.config.THREADING_LAYER, _fast.MIN_PARALLEL, loss == want)\n",
        CELIB_BACKEND="numba")
    assert out.split() == ["workqueue", "131072", "True"]


def test_numpy_only_options_still_work(monkeypatch):
    """float16 rows are computed as float32, on numpy, whatever the backend."""
    monkeypatch.setenv("CELIB_BACKEND", "numba")
    x = np.array([[1.0, 2.0, 3.0]], dtype=np.float16)
    assert cf.softmax(x, axis=1).dtype == np.float16
    threads = K.get_num_threads()
    assert threads >= 1


def test_a_wide_float64_row_keeps_its_log_softmax_within_the_ulp_bound(monkeypatch):
    """The largest entry of a float64 log_softmax is -log1p(s): the sum's relative error is
    all of its error. Eight plain lanes over 10,000 terms were up to 28 ulp off
    (``benchmarks.accuracy``'s 'random N(0,10), C=10000'); in blocks of 64 added by TwoSum the
    sum keeps numpy's accuracy."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 10_000)) * 10
    got = _with_backend(monkeypatch, "numba", lambda: cf.log_softmax(x, axis=1))
    top = np.argmax(x, axis=1)
    worst = max(float(ulp_error(got[i, top[i]], exact_log_softmax(x[i])[top[i]])) for i in range(8))
    assert worst <= 2


# --------------------------------------------------------------------------------------------
# The rough float32 pass and its proof (celib._fast_checked)
# --------------------------------------------------------------------------------------------

def test_the_rough_exp_and_log_stay_within_their_stated_errors():
    """EXP_ERROR and LOG_ERROR are what the bounds rest on: measured against mpmath (the
    rough exp over a whole reduction interval and beyond, the log from 1 to a vocabulary)."""
    import mpmath

    from celib import _fast_checked as fc

    rng = np.random.default_rng(4)
    d = np.concatenate([-np.linspace(0, 0.7, 20_001), rng.uniform(-700, 0, 5_000)])
    s = np.concatenate([np.linspace(1, 2, 10_001), np.exp(rng.uniform(0, 13, 5_000))])
    got, logs = fc.exp_rough(d), fc.log_rough(s)
    with mpmath.workdps(30):
        worst = max(abs(mpmath.mpf(g) / mpmath.exp(mpmath.mpf(v)) - 1)
                    for g, v in zip(got, d, strict=True))
        slack = max(abs(mpmath.mpf(g) - mpmath.log(mpmath.mpf(v))) - 4 * 2.0**-53 * abs(g)
                    for g, v in zip(logs, s, strict=True))
    assert 2e-9 < worst < fc.EXP_ERROR  # the polynomial's error, and no more
    assert slack < fc.LOG_ERROR


@pytest.mark.parametrize("scale", [0.3, 2.0, 30.0])
def test_every_rough_loss_lies_within_its_bound(scale):
    """The bound is a proof only if it holds: each rough loss against the exact one (mpmath),
    narrow and wide rows, weighted, with -inf logits, a dominant logit, rising logits."""
    from celib import _fast_checked as fc

    rng = np.random.default_rng(5)
    for c, rows in ((3, 40), (10, 40), (100, 40), (7000, 12)):
        x = (rng.standard_normal((rows, c)) * scale).astype(np.float32)
        x[0, : c // 2] = -np.inf
        x[1, 0] = 60.0
        x[2] = np.linspace(-3, 3, c) * scale  # a new max in every chunk of a wide row
        y = rng.integers(0, c, rows)
        y[0] = c - 1
        w = rng.uniform(0.5, 2, rows)
        rough = fc.rough_cross_entropy_rows(x, y, np.zeros(rows, bool), w, 1)
        exact = np.array([float(w[i] * exact_cross_entropy(x[i], int(y[i]))) for i in range(rows)])
        assert np.all(np.abs(rough.values - exact) <= rough.bounds), (c, scale)
        assert np.all(rough.bounds < 1e-7 * (1 + np.abs(exact)))  # and it is tight enough
        lse = fc.rough_logsumexp_rows(x, 1)  # without targets: each row's log-sum-exp
        exact = np.array([float(exact_logsumexp(x[i])) for i in range(rows)])
        assert np.all(np.abs(lse.values - exact) <= lse.bounds), (c, scale)


def test_a_narrow_block_with_an_outlier_leaves_its_rows_open(monkeypatch):
    """Narrow rows are taken a block at a time against the block's max: a logit 700 above the
    rest leaves the other rows of its block open (their sums underflow), a nan or an infinity
    leaves its whole block open (nan, bound inf); the rows decided lie within their bounds
    (mpmath), and the accurate kernel computes the others: the result is numpy's."""
    from celib import _fast_checked as fc

    rng = np.random.default_rng(8)
    x = (rng.standard_normal((1000, 10)) * 2).astype(np.float32)
    y = rng.integers(0, 10, 1000)
    x[3, 4], x[500, 2], x[900, 1] = 700.0, np.nan, np.inf
    rough = fc.rough_cross_entropy_rows(x, y, np.zeros(1000, bool), None, 1)
    block = np.arange(1000) // (fc._NARROW_BLOCK // 10)
    want_open = np.isin(block, block[[3, 500, 900]])
    want_open[3] = False  # the outlier's own row is decided
    assert np.array_equal(np.isinf(rough.bounds), want_open)
    assert np.array_equal(np.isnan(rough.values), want_open)
    for i in [3, *np.flatnonzero(~want_open)[::40]]:
        assert abs(rough.values[i] - float(exact_cross_entropy(x[i], int(y[i])))) <= rough.bounds[i]
    for reduction in ("none", "mean", "sum"):
        loss = functools.partial(cf.cross_entropy, x[:480], y[:480], reduction=reduction)
        assert (_with_backend(monkeypatch, "numba", loss).tobytes()
                == _with_backend(monkeypatch, "numpy", loss).tobytes())


def _counting_again(monkeypatch):
    """Count the rows computed again by the accurate kernels after the rough pass."""
    calls = []
    original = P._compute_again

    def spy(x, targets, weight, values, bounds, rows):
        calls.append(rows.size)
        return original(x, targets, weight, values, bounds, rows)

    monkeypatch.setattr(P, "_compute_again", spy)
    return calls


def test_undecided_rows_are_computed_again_and_match_numpy(monkeypatch):
    """A loss near 2 has an ulp of 2.4e-7; a narrow row's bound of 3e-9 leaves about 2.5 % of
    the rows undecided. They, and only they, are computed again: the result is numpy's, bit for
    bit."""
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((4096, 10)) * 2).astype(np.float32)
    y = rng.integers(0, 10, 4096)
    want = _with_backend(monkeypatch, "numpy", lambda: cf.cross_entropy(x, y, reduction="none"))
    calls = _counting_again(monkeypatch)
    got = _with_backend(monkeypatch, "numba", lambda: cf.cross_entropy(x, y, reduction="none"))
    assert got.tobytes() == want.tobytes()
    assert 0 < sum(calls) < 4096 // 5


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_a_logsumexp_takes_the_rough_pass_and_computes_again_only_the_rows_it_leaves(
        monkeypatch, dtype):
    """float32 logsumexp on the numba backend: the rough pass without targets, its bound
    tested against the rounding to the result's dtype (float16 for float16 input); the rows
    it leaves (a few %, near a rounding boundary, and every row of a narrow block holding an
    infinity) are computed again, and the result is numpy's, bit for bit."""
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((4096, 10)) * 2).astype(dtype)
    x[100, 3] = np.inf
    again = []
    original = K.logsumexp_rows

    def spy(rows):
        again.append(rows.shape[0])
        return original(rows)

    monkeypatch.setattr(K, "logsumexp_rows", spy)
    loss = functools.partial(cf.logsumexp, x, axis=1)
    want = _with_backend(monkeypatch, "numpy", loss)
    del again[:]
    got = _with_backend(monkeypatch, "numba", loss)
    assert got.dtype == dtype and _bits(got) == _bits(want)
    per = 2048 // 10  # the block of row 100, left open whole
    assert per <= sum(again) < 4096 // 10


def test_the_compiled_rounding_test_is_rounds_alike():
    """open_rows is _core.rounds_alike compiled for float32: the same verdict on every row,
    midpoints between float32 numbers, bounds straddling 0, nan, inf and float32 overflow."""
    from celib import _core
    from celib import _fast_checked as fc

    rng = np.random.default_rng(10)
    f32 = rng.standard_normal(3000).astype(np.float32) * 4
    mids = (f32.astype(np.float64) + np.nextafter(f32, np.float32(np.inf)).astype(np.float64)) / 2
    values = np.concatenate([mids + rng.uniform(-1e-8, 1e-8, 3000), rng.uniform(-1e-9, 1e-9, 50),
                             [np.nan, np.inf, -np.inf, 3.5e38, -3.5e38, 0.0]])
    bounds = np.concatenate([rng.uniform(0, 2e-8, values.size - 3), [np.inf, 0.0, np.nan]])
    skip = rng.random(values.size) < 0.1
    want = np.flatnonzero(~(skip | _core.rounds_alike(values, bounds + 1e-12 + 2e-16 * np.abs(
        values), np.dtype(np.float32))))
    got = fc.open_rows(values, bounds, 1e-12, 2e-16, skip)
    assert np.array_equal(got, want) and 0 < got.size < values.size


def test_a_mean_near_a_rounding_boundary_is_refined_until_proven(monkeypatch):
    """Some batches' means lie within the bound of a float32 rounding boundary: the roughest
    rows are computed again until the rest of the bound proves the rounding (or every row is
    accurate). Whatever it takes, the result is numpy's."""
    calls = _counting_again(monkeypatch)
    refined = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        x = (rng.standard_normal((256, 10)) * 2).astype(np.float32)
        y = rng.integers(0, 10, 256)
        for reduction in ("mean", "sum"):
            del calls[:]
            loss = functools.partial(cf.cross_entropy, x, y, reduction=reduction)
            want = _with_backend(monkeypatch, "numpy", loss)
            got = _with_backend(monkeypatch, "numba", loss)
            assert got.tobytes() == want.tobytes(), (seed, reduction)
            refined += bool(calls)
    assert refined >= 5  # 14 of these 400 batches


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_the_proof_rounds_to_float16_and_to_overflow_as_numpy_does(monkeypatch, reduction):
    """float16 logits are computed in float32 and rounded to float16: the proof tests that
    rounding. Losses beyond float32's range (3e38 apart) are inf on both backends."""
    rng = np.random.default_rng(7)
    x16 = (rng.standard_normal((300, 50)) * 3).astype(np.float16)
    big = np.zeros((4, 5), np.float32)
    big[:, 0], big[:, 1] = 3e38, -3e38
    for x, y in ((x16, rng.integers(0, 50, 300)), (big, np.array([1, 1, 0, 2]))):
        loss = functools.partial(cf.cross_entropy, x, y, reduction=reduction)
        with np.errstate(over="ignore"):
            want = _with_backend(monkeypatch, "numpy", loss)
            got = _with_backend(monkeypatch, "numba", loss)
        assert got.dtype == x.dtype and got.tobytes() == want.tobytes()
