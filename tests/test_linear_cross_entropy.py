"""celib's linear_cross_entropy and its gradient against torch.nn.functional.linear_cross_entropy.

torch (2.13) is the oracle: the loss with every option, and the gradients with respect to the
input, the linear weight and the bias by autograd, in float32 and float64, with vocabulary
chunks that do and do not divide the number of classes, and every error.

Tolerances: float64 results agree with torch to rtol 1e-10 (celib and torch sum the D products
of a logit, and the classes, in different orders, so the last few bits differ); float32 results
agree to rtol 2e-5 / atol 2e-6 times the size of the values (a float32 logit carries a relative
rounding error of about D · 2**-24 either way).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import celib.functional as cf
import celib.grad as cg
from celib import _linear

N, D, V = 19, 6, 23  # V = 23 is prime: no chunk size from 2 to 22 divides it

TOL = {np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12),
       np.dtype(np.float32): dict(rtol=2e-5, atol=2e-6)}


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture(params=["fused", "recompute"])
def schedule(request):
    """The gradient's two schedules, each checked against torch on its own."""
    return request.param


def _data(dtype, n=N, d=D, v=V, seed=0, out=()):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(dtype)
    w = rng.standard_normal((v,) + out + (d,)).astype(dtype)
    b = rng.standard_normal((v,) + out).astype(dtype)
    cw = rng.uniform(0.2, 2.0, v).astype(dtype)
    return rng, x, w, b, cw


def _t(a):
    return None if a is None else torch.from_numpy(np.ascontiguousarray(a))


def _torch(x, w, target, bias=None, **kw):
    """torch's loss and its gradients (of the sum for 'none'), as numpy arrays."""
    xt = _t(x).requires_grad_()
    wt = _t(w).requires_grad_()
    bt = None if bias is None else _t(bias).requires_grad_()
    if kw.get("weight") is not None:
        kw["weight"] = _t(kw["weight"])
    loss = F.linear_cross_entropy(xt, wt, _t(target), linear_bias=bt, **kw)
    leaves = [xt, wt] + ([bt] if bt is not None else [])
    grads = torch.autograd.grad(loss.sum(), leaves, allow_unused=True)
    grads = [g.numpy() for g in grads] + ([None] if bt is None else [])
    return loss.detach().numpy(), grads


def _check(x, w, target, bias=None, chunk_size=None, scale=1.0, schedule="auto", **kw):
    dtype = x.dtype
    tol = dict(TOL[dtype])
    tol["atol"] *= scale
    expected, grads = _torch(x, w, target, bias, **dict(kw))
    got = cf.linear_cross_entropy(x, w, target, linear_bias=bias, chunk_size=chunk_size, **kw)
    assert np.asarray(got).dtype == dtype
    assert np.shape(got) == expected.shape
    np.testing.assert_allclose(got, expected, **tol)
    ours = cg.linear_cross_entropy_grad(x, w, target, linear_bias=bias, chunk_size=chunk_size,
                                        schedule=schedule, **kw)
    together = cg.linear_cross_entropy_grad(x, w, target, linear_bias=bias,
                                            chunk_size=chunk_size, return_loss=True,
                                            schedule=schedule, **kw)
    # the loss from the gradient's own lse: the forward's bits when the tiles are the same
    # (recompute), the forward's up to rounding when the fused schedule sums the whole row
    if schedule == "recompute":
        np.testing.assert_array_equal(together[0], got)
    else:
        ulps = 8 * np.finfo(dtype).eps
        np.testing.assert_allclose(together[0], got, rtol=ulps, atol=ulps)
    for a, c in zip(together[1:], ours, strict=True):
        if a is None:
            assert c is None
        else:
            np.testing.assert_array_equal(a, c)
    for mine, theirs in zip(ours, grads, strict=True):
        if theirs is None:
            assert mine is None
            continue
        assert mine.dtype == dtype and mine.shape == theirs.shape
        np.testing.assert_allclose(mine, theirs, **tol)


# ------------------------------------------------------------------------------------------
# Index targets (every combination of the options: tests/test_option_grid.py)
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk_size", [1, 2, 5, 7, 22, 23, 24, 1000])
def test_chunk_sizes_that_do_not_divide_the_vocabulary(dtype, schedule, chunk_size):
    rng, x, w, b, cw = _data(dtype, seed=1)
    y = rng.integers(0, V, N)
    _check(x, w, y, b, chunk_size=chunk_size, schedule=schedule, weight=cw, label_smoothing=0.1)


def test_many_token_blocks_and_chunks(dtype, schedule, monkeypatch):
    """More rows than one token block, so tiles are (block, chunk) pairs both ways (and fused
    blocks of 8 tokens over the whole vocabulary)."""
    monkeypatch.setattr(_linear, "_MAX_ROWS", 8)
    monkeypatch.setattr(_linear, "_FUSED_BUDGET", 8 * V)
    monkeypatch.setattr(_linear, "_MIN_FUSED_ROWS", 4)
    rng, x, w, b, cw = _data(dtype, n=45, seed=2)
    y = rng.integers(0, V, 45)
    y[::4] = -100
    _check(x, w, y, b, chunk_size=6, schedule=schedule, weight=cw, label_smoothing=0.3)
    _check(x, w, y, None, chunk_size=6, schedule=schedule, reduction="none")


@pytest.mark.parametrize("probs", [False, True], ids=["index", "probs"])
def test_threads_do_not_change_the_result(schedule, probs, monkeypatch):
    """Tiles split by rows among threads give bit-for-bit the same loss and gradients."""
    rng, x, w, b, cw = _data(np.float64, n=300, v=500, seed=3)
    y = rng.integers(0, 500, 300)
    if probs:
        y = rng.random((300, 500))
        y /= y.sum(axis=1, keepdims=True)
    monkeypatch.setattr(_linear, "_MIN_PARALLEL", 1)
    monkeypatch.setattr(_linear, "_FUSED_BUDGET", 100 * 500)  # 3 fused blocks of 100 tokens
    kw = dict(linear_bias=b, chunk_size=64, label_smoothing=0.1)
    previous = _linear._kernels.set_num_threads(1)
    try:
        one = cf.linear_cross_entropy(x, w, y, **kw)
        g_one = cg.linear_cross_entropy_grad(x, w, y, schedule=schedule, **kw)
        _linear._kernels.set_num_threads(3)
        three = cf.linear_cross_entropy(x, w, y, **kw)
        g_three = cg.linear_cross_entropy_grad(x, w, y, schedule=schedule, **kw)
    finally:
        _linear._kernels.set_num_threads(previous)
    assert one == three
    for a, c in zip(g_one, g_three, strict=True):
        np.testing.assert_array_equal(a, c)


def test_uint8_targets(dtype, schedule):
    rng, x, w, b, cw = _data(dtype, seed=4)
    y = rng.integers(0, V, N).astype(np.uint8)
    _check(x, w, y, b, chunk_size=5, schedule=schedule)


def test_unbatched_index_target(dtype, schedule):
    rng, x, w, b, cw = _data(dtype, seed=5)
    for reduction in ("mean", "sum", "none"):  # torch's forward works here (not its backward)
        expected = F.linear_cross_entropy(_t(x[0]), _t(w), torch.tensor(4), linear_bias=_t(b),
                                          reduction=reduction)
        got = cf.linear_cross_entropy(x[0], w, np.array(4), linear_bias=b, reduction=reduction)
        np.testing.assert_allclose(got, expected.numpy(), **TOL[dtype])
    # torch 2.13 itself fails on an unbatched index target in the backward ("size mismatch (got
    # input: [23], target: [1])"), and in the forward with class weights or label smoothing
    # ("output with shape [] doesn't match the broadcast shape [1]"); celib gives the loss and
    # gradients of the batch of one, which is what the definition says.
    for reduction, cwt, smoothing in itertools.product(("mean", "sum", "none"), (None, cw),
                                                       (0.0, 0.25)):
        got = cf.linear_cross_entropy(x[0], w, np.array(4), linear_bias=b, weight=cwt,
                                      label_smoothing=smoothing, reduction=reduction)
        expected, grads = _torch(x[:1], w, np.array([4]), b, weight=cwt,
                                 label_smoothing=smoothing, reduction=reduction)
        assert np.shape(got) == ()
        np.testing.assert_allclose(got, expected.reshape(()), **TOL[dtype])
        ours = cg.linear_cross_entropy_grad(x[0], w, np.array(4), linear_bias=b, weight=cwt,
                                            label_smoothing=smoothing, reduction=reduction,
                                            schedule=schedule)
        np.testing.assert_allclose(ours[0], grads[0][0], **TOL[dtype])
        np.testing.assert_allclose(ours[1], grads[1], **TOL[dtype])
        np.testing.assert_allclose(ours[2], grads[2], **TOL[dtype])


def test_k_dimensional_loss(dtype, schedule):
    """A weight of shape (C, d1, D) gives logits (N, C, d1): one softmax per position."""
    rng, x, w, b, cw = _data(dtype, seed=6, out=(3,))
    y = rng.integers(0, V, (N, 3))
    y[0, 1] = -100
    for reduction in ("mean", "sum", "none"):
        _check(x, w, y, b, chunk_size=5, schedule=schedule, reduction=reduction, weight=cw,
               label_smoothing=0.1)
    q = rng.random((N, V, 3)).astype(dtype)
    q /= q.sum(axis=1, keepdims=True)
    _check(x, w, q, None, chunk_size=4, schedule=schedule, reduction="mean")


# ------------------------------------------------------------------------------------------
# Probability targets
# ------------------------------------------------------------------------------------------

def test_unbatched_probability_target(dtype, schedule):
    rng, x, w, b, cw = _data(dtype, seed=8)
    q = rng.random(V).astype(dtype)
    q /= q.sum()
    _check(x[0], w, q, b, chunk_size=10, schedule=schedule, weight=cw)


# ------------------------------------------------------------------------------------------
# Edge cases
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["all_ignored", "zero_weights"])
def test_mean_over_zero_total_weight_is_nan(dtype, schedule, case):
    rng, x, w, b, cw = _data(dtype, seed=9)
    y = rng.integers(0, V, N)
    if case == "all_ignored":
        y[:] = -100
    else:
        cw[:] = 0
        y[:5] = -100
    for smoothing in (0.0, 0.2):
        got = cf.linear_cross_entropy(x, w, y, linear_bias=b, weight=cw,
                                      label_smoothing=smoothing)
        assert np.isnan(got)
        _check(x, w, y, b, weight=cw, label_smoothing=smoothing, chunk_size=4,
               schedule=schedule)


def test_large_logits_do_not_overflow(dtype, schedule):
    """Logits of about ±1000: every exponent is ≤ 0 after the running max is subtracted."""
    rng, x, w, b, cw = _data(dtype, seed=10)
    x = (x * 150).astype(dtype)
    y = rng.integers(0, V, N)
    got = cf.linear_cross_entropy(x, w, y, chunk_size=5, reduction="none")
    assert np.all(np.isfinite(got))
    _check(x, w, y, None, chunk_size=5, schedule=schedule, scale=1000.0)


def test_minus_infinity_bias_masks_classes(dtype, schedule):
    """A bias of -inf removes classes from the softmax (padded vocabulary), also when a whole
    chunk is masked; the loss and gradients stay finite, as in torch."""
    rng, x, w, b, cw = _data(dtype, seed=11)
    b[:8] = -np.inf  # chunk_size=4: the first two chunks are entirely masked
    y = rng.integers(8, V, N)
    got = cf.linear_cross_entropy(x, w, y, linear_bias=b, chunk_size=4, reduction="none")
    assert np.all(np.isfinite(got))
    expected, grads = _torch(x, w, y, b, reduction="none")
    np.testing.assert_allclose(got, expected, **TOL[dtype])
    gx, gw, _ = cg.linear_cross_entropy_grad(x, w, y, linear_bias=b, chunk_size=4,
                                             reduction="none", schedule=schedule)
    np.testing.assert_allclose(gx, grads[0], **TOL[dtype])
    np.testing.assert_allclose(gw, grads[1], **TOL[dtype])


def test_equals_cross_entropy_on_the_logits(dtype):
    """The definition: cross_entropy(x @ W.T + b, target) with the same options."""
    rng, x, w, b, cw = _data(dtype, seed=12)
    y = rng.integers(0, V, N)
    y[1] = 5
    got = cf.linear_cross_entropy(x, w, y, linear_bias=b, weight=cw, ignore_index=5,
                                  label_smoothing=0.1, chunk_size=3, reduction="none")
    z = (x.astype(np.float64) @ w.T.astype(np.float64) + b).astype(dtype)
    expected = cf.cross_entropy(z, y, weight=cw, ignore_index=5, label_smoothing=0.1,
                                reduction="none")
    np.testing.assert_allclose(got, expected, **TOL[dtype])


def test_default_chunk_rule():
    assert _linear.default_chunk_size(2048, 32000) == 4096
    assert _linear.default_chunk_size(1024, 128256) == 4096
    assert _linear.default_chunk_size(64, 128256) == 65536
    assert _linear.default_chunk_size(64, 1000) == 1000
    assert _linear.default_chunk_size(100000, 50) == 50
    assert _linear.default_chunk_size(1, 0) == 1


def test_float16_is_computed_in_float32():
    rng, x, w, b, cw = _data(np.float32, seed=13)
    y = rng.integers(0, V, N)
    got = cf.linear_cross_entropy(x.astype(np.float16), w.astype(np.float16), y)
    assert got.dtype == np.float16
    x32, w32 = x.astype(np.float16).astype(np.float32), w.astype(np.float16).astype(np.float32)
    expected = cf.linear_cross_entropy(x32, w32, y)
    assert abs(float(got) - float(expected)) <= 2e-3 * abs(float(expected))


# ------------------------------------------------------------------------------------------
# Errors: each is a ValueError (or IndexError) where torch raises
# ------------------------------------------------------------------------------------------

def _both_raise(exc, match, x, w, target, **kw):
    torch_kw = {k: (_t(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()
                if k != "chunk_size"}
    with pytest.raises((RuntimeError, ValueError, IndexError)):
        F.linear_cross_entropy(_t(x), _t(w), _t(target), **torch_kw)
    for fn in (cf.linear_cross_entropy, cg.linear_cross_entropy_grad):
        with pytest.raises(exc, match=match):
            fn(x, w, target, **kw)


def test_shape_errors_name_both_shapes():
    rng, x, w, b, cw = _data(np.float64, seed=14)
    y = rng.integers(0, V, N)
    _both_raise(ValueError, r"input of shape \(19, 6\) and linear_weight of shape \(23, 5\)",
                x, w[:, :5], y)
    _both_raise(ValueError, r"linear_bias must have shape \(23,\).*\(23, 6\).*\(22,\)",
                x, w, y, linear_bias=b[:22])
    _both_raise(ValueError, r"shape \(D,\) or \(N, D\)", x[None], w, y)
    _both_raise(ValueError, r"linear_weight must have shape \(C, D\)", x, w[0], y)
    _both_raise(ValueError, r"needs a batched input", x[0], w[:, None, :], np.array([1]))


def test_dtype_mismatch():
    rng, x, w, b, cw = _data(np.float64, seed=15)
    y = rng.integers(0, V, N)
    _both_raise(ValueError, "linear_weight must have the input's dtype", x,
                w.astype(np.float32), y)
    _both_raise(ValueError, "linear_bias must have the input's dtype", x, w, y,
                linear_bias=b.astype(np.float32))


def test_return_loss_must_be_a_bool():
    rng, x, w, b, cw = _data(np.float64, seed=18)
    with pytest.raises(ValueError, match="return_loss must be True or False"):
        cg.linear_cross_entropy_grad(x, w, rng.integers(0, V, N), return_loss="yes")


def test_integer_input_is_refused():
    rng, x, w, b, cw = _data(np.float64, seed=19)
    y = rng.integers(0, V, N)
    _both_raise(ValueError, "input must be a real floating array, got dtype int64",
                x.astype(np.int64), w.astype(np.int64), y)
    with pytest.raises(ValueError, match="linear_weight must be a real floating array"):
        cf.linear_cross_entropy(x, w.astype(np.int64), y)


@pytest.mark.parametrize("chunk_size", [0, -4])
def test_chunk_size_must_be_positive(chunk_size):
    rng, x, w, b, cw = _data(np.float64, seed=16)
    y = rng.integers(0, V, N)
    for fn in (cf.linear_cross_entropy, cg.linear_cross_entropy_grad):
        with pytest.raises(ValueError, match=f"positive integer.*got {chunk_size}"):
            fn(x, w, y, chunk_size=chunk_size)
        with pytest.raises(ValueError, match="positive integer"):
            fn(x, w, y, chunk_size=2.5)


def test_cross_entropy_errors():
    """The option and target errors of cross_entropy, with the same messages."""
    rng, x, w, b, cw = _data(np.float64, seed=17)
    y = rng.integers(0, V, N)
    _both_raise(ValueError, "reduction must be one of", x, w, y, reduction="avg")
    _both_raise(ValueError, "label_smoothing must be between", x, w, y, label_smoothing=1.5)
    _both_raise(ValueError, "weight must have shape", x, w, y, weight=cw[:5])
    _both_raise(ValueError, "int64", x, w, y.astype(np.int32))
    _both_raise(ValueError, "expected a class-index target of shape", x, w, y[:5])
    bad = y.copy()
    bad[4] = V
    _both_raise(IndexError, f"Target {V} is out of bounds", x, w, bad)
    bad[4] = -1
    _both_raise(IndexError, "Target -1 is out of bounds", x, w, bad)
    q = np.full((N, V), 1.0 / V)
    _both_raise(ValueError, "cannot be given when the target holds class probabilities",
                x, w, q, ignore_index=-100)
    _both_raise(ValueError, "must be floating point", x, w, q.astype(np.int64))


# ------------------------------------------------------------------------------------------
# The gradient's two schedules
# ------------------------------------------------------------------------------------------

def _spy_schedules(monkeypatch) -> list:
    """Record which schedule each position's gradient runs."""
    calls = []
    for name in ("_fused_grad", "_recompute_grad"):
        real = getattr(_linear, name)

        def spy(*args, real=real, name=name):
            calls.append(name)
            return real(*args)

        monkeypatch.setattr(_linear, name, spy)
    return calls


def test_auto_schedule_follows_the_budget(monkeypatch):
    rng, x, w, b, cw = _data(np.float64, n=300, v=500, seed=20)
    y = rng.integers(0, 500, 300)
    calls = _spy_schedules(monkeypatch)
    expected = cg.linear_cross_entropy_grad(x, w, y, schedule="recompute")
    assert calls == ["_recompute_grad"]
    cg.linear_cross_entropy_grad(x, w, y)  # the default is recompute: one tile of memory
    assert calls[1:] == ["_recompute_grad"]
    calls.pop()
    cg.linear_cross_entropy_grad(x, w, y, schedule="auto")  # 300 x 500 fits: fused, one block
    assert calls[1:] == ["_fused_grad"]
    assert _linear.fused_rows(300, 500) == 300
    assert _linear.fused_rows(2048, 32000) == _linear._FUSED_BUDGET // 32000
    monkeypatch.setattr(_linear, "_FUSED_BUDGET", 63 * 500)  # fewer than 64 rows would fit
    assert _linear.fused_rows(300, 500) == 0
    got = cg.linear_cross_entropy_grad(x, w, y, schedule="auto")
    assert calls[2:] == ["_recompute_grad"]
    for a, c in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, c)
    cg.linear_cross_entropy_grad(x, w, y, schedule="fused")  # forced: 64-row blocks
    assert calls[3:] == ["_fused_grad"]
    assert _linear.fused_rows(50, 500) == 50  # a short batch fits whole


def test_schedule_must_be_known():
    rng, x, w, b, cw = _data(np.float64, seed=21)
    with pytest.raises(ValueError, match="schedule must be one of 'auto', 'fused', 'recompute'"):
        cg.linear_cross_entropy_grad(x, w, rng.integers(0, V, N), schedule="liger")


def _both_schedules(x, w, target, **kw):
    return [cg.linear_cross_entropy_grad(x, w, target, return_loss=True, schedule=s, **kw)
            for s in ("fused", "recompute")]


@pytest.mark.parametrize(
    "probs,reduction,weighted,smoothing,with_bias",
    list(itertools.product((False, True), ("mean", "sum", "none"), (False, True), (0.0, 0.3),
                           (False, True))))
def test_fused_and_recompute_agree(probs, reduction, weighted, smoothing, with_bias,
                                   monkeypatch):
    """float64, several fused blocks (of 16 tokens) and token blocks x chunks (8 x 13)."""
    monkeypatch.setattr(_linear, "_FUSED_BUDGET", 16 * 60)
    monkeypatch.setattr(_linear, "_MIN_FUSED_ROWS", 16)
    monkeypatch.setattr(_linear, "_MAX_ROWS", 8)
    rng, x, w, b, cw = _data(np.float64, n=53, v=60, seed=22, out=(2,) if probs else ())
    if probs:
        target = rng.random((53, 60, 2))
        target /= target.sum(axis=1, keepdims=True)
    else:
        target = rng.integers(0, 60, 53)
        target[::5] = -100
    fused, recompute = _both_schedules(x, w, target, linear_bias=b if with_bias else None,
                                       weight=cw if weighted else None, reduction=reduction,
                                       label_smoothing=smoothing, chunk_size=13)
    for a, c in zip(fused, recompute, strict=True):
        if c is None:
            assert a is None
        else:
            np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("case", ["index", "smoothing", "probs", "negative_probs"])
def test_extreme_logits_give_the_same_results_on_both_schedules(dtype, case):
    """Rows whose logits are all -inf, all +inf, or +inf and nan (overflowing finite inputs),
    kept or ignored: the fused schedule gives the recompute schedule's numbers and nan's."""
    rng, x, w, b, cw = _data(dtype, seed=23)
    huge = np.finfo(dtype).max / 2
    w[:, 0] = np.abs(w[:, 0]) + 4  # so that x = (±huge, 0, ...) overflows every logit
    w[:, 1] = np.where(np.arange(V) % 2, 3.0, -5.0)
    x[2] = x[3] = 0
    x[2, 0] = x[3, 0] = -huge  # every logit -inf
    x[5, 0] = huge  # every logit +inf
    x[7, :2] = huge  # +inf and nan (inf - inf) logits
    kw = dict(linear_bias=b, reduction="none", chunk_size=5)
    if case in ("index", "smoothing"):
        b[4] = -np.inf  # a masked class (with probability targets its 0 * -inf would be nan)
        target = rng.integers(0, V, N)
        target[[3, 9]] = -100  # row 3 is ignored and all -inf
        kw.update(weight=cw, label_smoothing=0.2 if case == "smoothing" else 0.0)
    else:
        target = rng.random((N, V)).astype(dtype)
        target /= target.sum(axis=1, keepdims=True)
        target[3] = 0
        if case == "negative_probs":
            target[6, 1] = -0.5  # a negative coefficient: exp(z - lse) * a, not exp(z - shift)
    with np.errstate(over="ignore"):  # the logits overflow in the matrix products
        fused, recompute = _both_schedules(x, w, target, **kw)
    assert np.isnan(recompute[0]).any() and np.isfinite(recompute[0]).any()
    for a, c in zip(fused, recompute, strict=True):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(c))
        finite = np.isfinite(c)
        # gx sums terms of opposite signs: the tolerance is relative to the largest of them
        size = max(1.0, float(np.max(np.abs(c[finite]), initial=0.0)))
        np.testing.assert_allclose(a, c, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * size)
