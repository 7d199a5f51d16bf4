"""celib._kernels: the blocked, multi-threaded kernels give the same answers on every path.

The public functions are tested against torch elsewhere; here the paths that only large or
unusual inputs take are forced on small ones (column chunks, tiny blocks, several threads, the
float32 e^x·e^-m path and its fallback), and their results are compared with each other,
with float64 references, and with torch where semantics are at stake. No timings: speed is
measured by ``python -m benchmarks.speed``.
"""

from __future__ import annotations

import multiprocessing
import re
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import celib.functional as cf
import celib.grad as cg
from celib import _kernels as K
from celib.testing import traced_peak

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)


@pytest.fixture
def threads():
    """Restore celib's thread count after the test."""
    previous = K.get_num_threads()
    yield
    K.set_num_threads(previous)


@pytest.fixture(autouse=True)
def numpy_backend(monkeypatch):
    """These tests force the numpy kernels' own paths (tests/test_fast.py tests numba's)."""
    monkeypatch.setenv("CELIB_BACKEND", "numpy")


def _inputs(rng, shape, dtype):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    n, c = shape
    x[0] = -np.inf  # a row of -inf: nan results
    x[1, :] = 5.0  # all tied
    x[2, c // 2] = np.nan
    x[3, -1] = np.inf
    x[4, :3] = -np.inf  # some -inf, finite max
    x[5, -1] = 40.0  # dominant logit in the last column
    y = rng.integers(0, c, size=n)
    y[6] = -100
    return x, y


CALLS = {
    "logsumexp": lambda x, y: cf.logsumexp(x, axis=1),
    "log_softmax": lambda x, y: cf.log_softmax(x, axis=1),
    "softmax": lambda x, y: cf.softmax(x, axis=1),
    "ce none": lambda x, y: cf.cross_entropy(x, y, reduction="none"),
    "ce mean": lambda x, y: cf.cross_entropy(x, y),
    "ce smoothed weighted": lambda x, y: cf.cross_entropy(
        x, y, weight=np.linspace(0.5, 2, x.shape[1]).astype(x.dtype), label_smoothing=0.1,
        reduction="none"),
    "grad": lambda x, y: cg.cross_entropy_grad(x, y),
    "grad smoothed weighted": lambda x, y: cg.cross_entropy_grad(
        x, y, weight=np.linspace(0.5, 2, x.shape[1]).astype(x.dtype), label_smoothing=0.1,
        reduction="sum"),
}


def _run_all(x, y):
    with np.errstate(all="raise"):  # nothing may leak a floating-point warning
        return {name: np.asarray(call(x, y)) for name, call in CALLS.items()}


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
def test_results_do_not_depend_on_the_number_of_threads(threads, monkeypatch, dtype, backend):
    if backend == "numba":
        pytest.importorskip("numba")
    monkeypatch.setenv("CELIB_BACKEND", backend)
    rng = np.random.default_rng(0)
    x, y = _inputs(rng, (300, 1000), dtype)  # above the size that goes parallel
    results = []
    for n in (1, 2, 3):
        K.set_num_threads(n)
        results.append(_run_all(x, y))
    for other in results[1:]:
        for name in CALLS:
            np.testing.assert_array_equal(other[name], results[0][name], err_msg=name)


@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
def test_column_chunks_and_tiny_blocks_agree_with_the_default_path(threads, monkeypatch, dtype):
    rng = np.random.default_rng(1)
    x, y = _inputs(rng, (40, 37), dtype)
    x[7, 20] = 30.0  # a max in a middle chunk
    default = _run_all(x, y)
    monkeypatch.setattr(K, "_MAX_COLS", 5)
    monkeypatch.setattr(K, "_BLOCK", 3)
    monkeypatch.setattr(K, "_MIN_BLOCK", 1)
    monkeypatch.setattr(K, "_MIN_PARALLEL", 0)
    K.set_num_threads(2)
    chunked = _run_all(x, y)
    # only the summation order differs (a float32 result can move by one rounding); the
    # smoothed gradient a·p - b·w cancels, hence the small absolute tolerance
    rtol, atol = (2.4e-7, 1e-9) if dtype == F32 else (1e-14, 1e-16)
    for name in CALLS:
        np.testing.assert_allclose(chunked[name], default[name], rtol=rtol, atol=atol,
                                   err_msg=name)


def test_float32_fast_path_and_shift_path_agree_to_an_ulp(monkeypatch):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((64, 500)) * 4).astype(np.float32)
    x[0, 3] = 60.0
    y = rng.integers(0, 500, size=64)
    y[0] = 3
    fast = _run_all(x, y)
    monkeypatch.setattr(K, "_FAST_LO", np.inf)  # no block qualifies: e^(x - m) everywhere
    shifted = _run_all(x, y)
    for name in CALLS:
        a, b = fast[name], shifted[name]
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_array_less(np.abs(a - b), np.spacing(np.abs(b)) * 1.01 + 1e-38,
                                     err_msg=name)


@pytest.mark.parametrize("offset", [650.0, -650.0, 705.0, -1e4])
def test_float32_rows_outside_the_fast_range_stay_accurate(offset):
    rng = np.random.default_rng(3)
    x = (offset + rng.standard_normal((8, 100)) * 3).astype(np.float32)
    y = rng.integers(0, 100, size=8)
    x64 = x.astype(np.float64)
    for got, ref in [
        (cf.logsumexp(x, axis=1), cf.logsumexp(x64, axis=1)),
        (cf.log_softmax(x, axis=1), cf.log_softmax(x64, axis=1)),
        (cf.cross_entropy(x, y, reduction="none"), cf.cross_entropy(x64, y, reduction="none")),
        (cf.softmax(x, axis=1), cf.softmax(x64, axis=1)),
    ]:
        assert got.dtype == np.float32
        assert np.all(np.isfinite(got))
        # float64 is exact to far below a float32 ulp: celib's float32 is its rounding
        assert np.all(np.abs(got - ref) <= 0.5 * np.spacing(np.abs(got).astype(np.float32)) * 1.0001
                      + 1e-45)


def test_ignored_rows_lose_zero_whatever_their_logits_and_their_gradient_is_torchs():
    # an ignored row's loss is 0 whatever its logits; its gradient is 0 where its softmax is
    # finite and nan where it is not (a nan or +inf logit, or only -inf): torch's 0 * nan
    x = np.array([[np.nan, 1.0], [-np.inf, 1.0], [np.inf, 0.0], [-np.inf, -np.inf], [0.0, 1.0]])
    y = np.array([-100, -100, -100, -100, 1])
    for kw in ({}, {"label_smoothing": 0.1}, {"weight": np.array([0.5, 2.0])}):
        torch_kw = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                    for k, v in kw.items()}
        xt = torch.from_numpy(x).requires_grad_(True)
        ref = F.cross_entropy(xt, torch.from_numpy(y), reduction="none", **torch_kw)
        ref.sum().backward()
        got = cf.cross_entropy(x, y, reduction="none", **kw)
        np.testing.assert_array_equal(got[:4], 0.0)
        np.testing.assert_allclose(got, ref.detach().numpy(), rtol=1e-12)
        g = cg.cross_entropy_grad(x, y, reduction="none", **kw)
        np.testing.assert_array_equal(g[1], 0.0)
        assert np.isnan(g[[0, 2, 3]]).all()
        np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-12, equal_nan=True)


def test_confident_gradient_keeps_p_minus_one():
    # p_y = 1/(1 + e^-40) rounds to 1, yet the gradient -e^-40/(1 + e^-40) is representable
    for dtype in (F32, F64):
        x = np.array([[40.0, 0.0]], dtype=dtype)
        g = cg.cross_entropy_grad(x, np.array([0]))
        exact = -np.exp(-40.0) / (1 + np.exp(-40.0))
        np.testing.assert_allclose(g[0, 0], exact, rtol=1e-6)
        np.testing.assert_allclose(g[0, 1], -exact, rtol=1e-6)


def test_thread_count_setting(threads, monkeypatch):
    K.set_num_threads(3)
    assert K.get_num_threads() == 3
    assert K.set_num_threads(1) == 3
    with pytest.raises(ValueError, match="at least 1"):
        K.set_num_threads(0)
    monkeypatch.setenv("CELIB_NUM_THREADS", "5")
    K.set_num_threads(None)
    assert K.get_num_threads() == 5
    monkeypatch.setenv("CELIB_NUM_THREADS", " ")  # blank counts as unset
    K.set_num_threads(None)
    assert K.get_num_threads() >= 1


@pytest.mark.parametrize("value", ["abc", "many", "0", "-2", "1.5", "2 threads"])
def test_a_bad_thread_count_in_the_environment_is_an_error(threads, monkeypatch, value):
    monkeypatch.setenv("CELIB_NUM_THREADS", value)
    monkeypatch.setattr(K, "_num_threads", None)  # as in a fresh process: not read yet
    message = f"CELIB_NUM_THREADS must be a positive integer, got {value!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        K.get_num_threads()  # read when first needed, not when celib is imported
    with pytest.raises(ValueError, match=re.escape(message)):
        cf.softmax(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=re.escape(message)):
        K.set_num_threads(2)  # which returns the previous count: the default, unreadable
    monkeypatch.setattr(K, "_num_threads", 3)  # a count known before the variable went bad
    assert K.set_num_threads(2) == 3
    with pytest.raises(ValueError, match=re.escape(message)):
        K.set_num_threads(None)  # back to the default: read again, and refused
    assert K.get_num_threads() == 2  # unchanged


def _child(queue):
    x = np.random.default_rng(4).standard_normal((400, 1000))
    queue.put(float(cf.cross_entropy(x, np.zeros(400, dtype=np.int64))))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork")
def test_the_thread_pool_survives_a_fork(threads):
    K.set_num_threads(2)
    x = np.random.default_rng(4).standard_normal((400, 1000))
    expected = float(cf.cross_entropy(x, np.zeros(400, dtype=np.int64)))  # pool now exists
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue,))
    proc.start()
    got = queue.get(timeout=60)
    proc.join(timeout=60)
    assert got == expected


@pytest.mark.parametrize("shape", [(4096, 10), (1024, 1000), (64, 50257), (8, 128000)])
@pytest.mark.parametrize("dtype", [F32, F64], ids=str)
def test_cross_entropy_needs_less_extra_memory_than_its_input(shape, dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(dtype)
    y = rng.integers(0, shape[1], size=shape[0])
    cf.cross_entropy(x, y)
    peak, _ = traced_peak(cf.cross_entropy, x, y)
    assert peak <= x.nbytes, peak / x.nbytes


def test_rows_are_not_copied_when_already_contiguous():
    x = np.zeros((3, 4))
    rows, rest = cf._last_axis_rows(x, 1)
    assert rows.base is x or rows is x
    rows, rest = cf._last_axis_rows(x, 0)  # the class axis first: a copy, rows contiguous
    assert rows.shape == (4, 3) and rows.strides[1] == rows.itemsize and rest == (4,)
