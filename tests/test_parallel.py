"""celib.parallel on real gloo worlds of 2 and 3 processes over 127.0.0.1, against F.cross_entropy.

Each world is started once and runs every check of its world size in one go (:func:`_world`);
the test then compares what the ranks returned with single-process ``F.cross_entropy`` of the
full logits, in float64 at 1e-12 (absolute, on losses of about log V = 6 and gradients below 1)
and in float32 at 2e-6. Every launch has a timeout, so a broken rank fails the test instead of
hanging it.

The worlds are started with ``fork`` on Linux: the children inherit the imported torch, so a
world starts in well under a second, where ``spawn`` makes every rank import torch afresh
(3 to 10 s on two busy cores). The chapter's page uses ``spawn`` (a Jupyter kernel should not
fork), so nbval of ``book/09b_vocab_parallel.ipynb`` runs that path in ``make test``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cebook.ch09b_mistakes import (megatron_vocab_parallel_cross_entropy,
                                   naive_vocab_parallel_cross_entropy)
from celib.parallel import count_collectives, launch, shard_bounds, vocab_parallel_cross_entropy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORK = "fork" if sys.platform.startswith("linux") else "spawn"
TOL64, TOL32 = 1e-12, 2e-6

# The option sets every world runs: (name, F.cross_entropy keyword arguments, dtype).
CASES = [
    ("mean", {}, torch.float64),
    ("sum", {"reduction": "sum"}, torch.float64),
    ("none", {"reduction": "none"}, torch.float64),
    ("ignore", {"ignore_index": -100}, torch.float64),
    ("ignore7", {"ignore_index": 7}, torch.float64),
    ("weight", {"weight": True}, torch.float64),
    ("weight-sum", {"weight": True, "reduction": "sum"}, torch.float64),
    ("smooth", {"label_smoothing": 0.1}, torch.float64),
    ("smooth-weight-ignore", {"label_smoothing": 0.2, "weight": True, "ignore_index": -100},
     torch.float64),
    ("smooth-weight-none", {"label_smoothing": 0.3, "weight": True, "reduction": "none"},
     torch.float64),
    ("smooth-ignore-sum", {"label_smoothing": 0.1, "reduction": "sum", "ignore_index": 7},
     torch.float64),
    ("float32", {"label_smoothing": 0.1, "weight": True}, torch.float32),
]


def _data(vocab_size: int, n: int, kwargs: dict, dtype, seed: int = 0):
    """The full logits, targets, weights and output-gradient of one case (same on every rank)."""
    g = torch.Generator().manual_seed(seed)
    z = (3 * torch.randn(n, vocab_size, generator=g, dtype=torch.float64)).to(dtype)
    y = torch.randint(0, vocab_size, (n,), generator=g)
    y[-1] = vocab_size - 1          # the last class, owned by the last rank
    y[0] = 0
    ignore = kwargs.get("ignore_index", -100)
    if "ignore_index" in kwargs:
        y[1::5] = ignore            # every fifth row from the second is ignored
    if ignore == 7:
        y[2] = 7                    # class 7 is then ignored wherever it appears
    w = torch.rand(vocab_size, generator=g, dtype=torch.float64).to(dtype) + 0.1
    upstream = torch.randn(n, generator=g, dtype=torch.float64).to(dtype)
    options = {k: v for k, v in kwargs.items() if k != "weight"}
    if kwargs.get("weight"):
        options["weight"] = w
    return z, y, options, upstream


def _backward(loss, options, upstream):
    (loss * upstream).sum().backward() if options.get("reduction") == "none" else loss.backward()


def _world(rank: int, world_size: int, vocab_sizes: list[int], n: int) -> dict:
    """Everything one rank computes: the results of every case, the mistakes, the errors."""
    out = {}
    for vocab_size in vocab_sizes:
        start, end = shard_bounds(vocab_size, world_size)[rank]
        for name, kwargs, dtype in CASES:
            z, y, options, upstream = _data(vocab_size, n, kwargs, dtype)
            local = z[:, start:end].clone().requires_grad_()
            with count_collectives() as forward:
                loss = vocab_parallel_cross_entropy(local, y, vocab_size, **options)
            with count_collectives() as backward:
                _backward(loss, options, upstream)
            out[vocab_size, name] = (loss.detach().numpy(), local.grad.numpy(), forward.calls,
                                     backward.calls)
        # Leading dimensions: (B, T, V_r) logits and (B, T) targets.
        z, y, _, _ = _data(vocab_size, n, {}, torch.float64)
        local = z[:, start:end].reshape(2, n // 2, end - start).clone().requires_grad_()
        loss = vocab_parallel_cross_entropy(local, y.reshape(2, n // 2), vocab_size)
        loss.backward()
        out[vocab_size, "3d"] = (loss.detach().numpy(), local.grad.reshape(n, -1).numpy())

        # The mistake: plain all_reduce inside autograd.
        local = z[:, start:end].clone().requires_grad_()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with count_collectives() as forward:
                loss = naive_vocab_parallel_cross_entropy(local, y, vocab_size)
            loss.backward()
        out[vocab_size, "naive"] = (loss.detach().numpy(), local.grad.numpy(), forward.calls,
                                    [str(w.message) for w in caught])
        # Megatron's local label smoothing (equal shards only).
        if vocab_size % world_size == 0:
            out[vocab_size, "megatron"] = {
                alpha: megatron_vocab_parallel_cross_entropy(
                    z[:, start:end], y, label_smoothing=alpha).numpy()
                for alpha in (0.0, 0.1)}
    # Errors, raised before any collective.
    errors = []
    vocab_size = vocab_sizes[0]
    start, end = shard_bounds(vocab_size, world_size)[rank]
    z, y, _, _ = _data(vocab_size, n, {}, torch.float64)
    for bad in (lambda: vocab_parallel_cross_entropy(z[:, start:end - 1], y, vocab_size),
                lambda: vocab_parallel_cross_entropy(z[:, start:end], y + vocab_size,
                                                     vocab_size),
                lambda: vocab_parallel_cross_entropy(z[:, start:end], y, vocab_size,
                                                     weight=torch.ones(vocab_size - 1)),
                lambda: vocab_parallel_cross_entropy(z[:, start:end], y.int(), vocab_size)):
        try:
            bad()
            errors.append(None)
        except Exception as e:  # noqa: BLE001 - the test checks the type and the message
            errors.append((type(e).__name__, str(e)))
    out["errors"] = errors
    return out


def _reference(vocab_size, n, name, kwargs, dtype):
    z, y, options, upstream = _data(vocab_size, n, kwargs, dtype)
    full = z.clone().requires_grad_()
    loss = F.cross_entropy(full, y, **options)
    _backward(loss, options, upstream)
    return loss.detach().numpy(), full.grad.numpy()


def _close(actual, expected, tol, what):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    error = np.max(np.abs(actual - expected), initial=0.0)
    assert error <= tol, f"{what}: max abs error {error:.3g} > {tol:g}"


def _check_world(results, world_size, vocab_sizes, n):
    assert len(results) == world_size
    for vocab_size in vocab_sizes:
        bounds = shard_bounds(vocab_size, world_size)
        for name, kwargs, dtype in CASES:
            ref_loss, ref_grad = _reference(vocab_size, n, name, kwargs, dtype)
            tol = TOL64 if dtype == torch.float64 else TOL32
            what = f"R={world_size} V={vocab_size} {name}"
            for rank, result in enumerate(results):
                loss, grad, forward, backward = result[vocab_size, name]
                _close(loss, ref_loss, tol, f"{what}: loss on rank {rank}")
                expected = ["all_gather", "all_reduce:MAX", "all_reduce:SUM", "all_reduce:SUM"]
                if kwargs.get("label_smoothing"):
                    expected.append("all_reduce:SUM")
                assert forward == expected, f"{what}: forward collectives {forward}"
                assert backward == [], f"{what}: backward collectives {backward}"
            gathered = np.concatenate([r[vocab_size, name][1] for r in results], axis=1)
            _close(gathered, ref_grad, tol, f"{what}: gathered gradient")
            assert [r[vocab_size, name][1].shape[1] for r in results] == \
                [end - start for start, end in bounds]

        ref_loss, ref_grad = _reference(vocab_size, n, "mean", {}, torch.float64)
        for result in results:
            _close(result[vocab_size, "3d"][0], ref_loss, TOL64, "(B, T, V_r) loss")
        _close(np.concatenate([r[vocab_size, "3d"][1] for r in results], axis=1), ref_grad,
               TOL64, "(B, T, V_r) gradient")

        # The naive version: right loss, same 3 collectives, wrong gradient exactly where the
        # rank does not own the row's target (there it is 0 instead of softmax / N).
        _, y, _, _ = _data(vocab_size, n, {}, torch.float64)
        y = y.numpy()
        for rank, result in enumerate(results):
            loss, grad, forward, caught = result[vocab_size, "naive"]
            start, end = bounds[rank]
            _close(loss, ref_loss, TOL64, "naive loss")
            assert forward == ["all_reduce:MAX", "all_reduce:SUM", "all_reduce:SUM"]
            owned = (y >= start) & (y < end)
            assert owned.any() and (~owned).any()
            _close(grad[owned], ref_grad[owned, start:end], TOL64, "naive gradient, owned rows")
            assert np.all(grad[~owned] == 0), "naive gradient, rows owned elsewhere, is 0"
            assert np.max(np.abs(ref_grad[~owned, start:end])) > 1e-4, "and the truth is not"
            assert any("autograd kernel was not registered" in m for m in caught), caught

        if vocab_size % world_size == 0:
            z, y, _, _ = _data(vocab_size, n, {}, torch.float64)
            plain = F.cross_entropy(z, y, reduction="none").numpy()
            torch_smooth = F.cross_entropy(z, y, reduction="none", label_smoothing=0.1).numpy()
            per_rank = [r[vocab_size, "megatron"][0.1] for r in results]
            for r in results:
                _close(r[vocab_size, "megatron"][0.0], plain, TOL64, "Megatron without smoothing")
            gap_ranks = np.max(np.abs(per_rank[0] - per_rank[1]))
            gap_torch = min(np.max(np.abs(p - torch_smooth)) for p in per_rank)
            assert gap_ranks > 1e-2, f"Megatron's ranks agree ({gap_ranks:.3g})"
            assert gap_torch > 1e-2, f"Megatron equals torch's label smoothing ({gap_torch:.3g})"

    errors = [r["errors"] for r in results]
    for rank_errors in errors:
        kinds = [e and e[0] for e in rank_errors]
        assert kinds == ["ValueError", "IndexError", "ValueError", "ValueError"], rank_errors
        assert "holds classes" in rank_errors[0][1] and "out of bounds" in rank_errors[1][1]


def test_two_ranks():
    """V = 507 over 2 ranks (254 + 253 classes) and V = 508 (254 + 254)."""
    vocab_sizes, n = [507, 508], 24
    results = launch(_world, 2, (vocab_sizes, n), timeout=120, start_method=FORK)
    _check_world(results, 2, vocab_sizes, n)


def test_three_ranks():
    """V = 507 over 3 ranks (3 x 169: it divides) and V = 509 (170 + 170 + 169: it does not)."""
    vocab_sizes, n = [507, 509], 24
    results = launch(_world, 3, (vocab_sizes, n), timeout=120, start_method=FORK)
    _check_world(results, 3, vocab_sizes, n)


def _fail_on_rank_one(rank, world_size):
    import torch.distributed as dist

    if rank == 1:
        raise ArithmeticError("rank 1 broke on purpose")
    dist.barrier()  # rank 0 would wait here forever for rank 1
    return rank


def _sleep(rank, world_size, seconds):
    time.sleep(seconds)


def test_a_failing_rank_fails_the_launch_promptly():
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"(?s)rank 1 of 2 failed first.*broke on purpose"):
        launch(_fail_on_rank_one, 2, timeout=60, start_method=FORK)
    assert time.monotonic() - start < 30, "the launcher waited for the blocked rank"


def test_a_hanging_world_times_out():
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="did not finish within 1"):
        launch(_sleep, 2, (60,), timeout=1, start_method=FORK)
    assert time.monotonic() - start < 30


def test_launch_checks_world_size():
    with pytest.raises(ValueError, match="world_size"):
        launch(_sleep, 0)


def test_shard_bounds():
    for vocab_size in (1, 2, 5, 507, 508, 509, 50257):
        for world_size in range(1, min(vocab_size, 9) + 1):
            bounds = shard_bounds(vocab_size, world_size)
            widths = [end - start for start, end in bounds]
            assert bounds[0][0] == 0 and bounds[-1][1] == vocab_size
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
            assert max(widths) - min(widths) <= 1 and min(widths) >= 1
            assert widths == sorted(widths, reverse=True)
    assert shard_bounds(509, 3) == [(0, 170), (170, 340), (340, 509)]
    for bad in [(0, 1), (5, 0), (3, 4), (5, -2)]:
        with pytest.raises(ValueError):
            shard_bounds(*bad)
    for bad in [(5.0, 1), (True, 1), (5, np.True_), ("5", 1)]:
        with pytest.raises(TypeError):
            shard_bounds(*bad)
    assert shard_bounds(np.int64(509), np.int32(3)) == shard_bounds(509, 3)
    assert all(type(x) is int for bound in shard_bounds(np.int64(5), 2) for x in bound)


def test_needs_a_process_group():
    import torch.distributed as dist

    assert not dist.is_initialized()
    z = torch.zeros(2, 3)
    for f in (lambda: vocab_parallel_cross_entropy(z, torch.tensor([0, 1]), 3),
              lambda: megatron_vocab_parallel_cross_entropy(z, torch.tensor([0, 1]))):
        with pytest.raises(RuntimeError, match="process group"):
            f()


def test_option_errors_on_one_rank():
    """Errors that do not depend on the world, on a one-process group (no network)."""
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        z, y = torch.zeros(2, 3, dtype=torch.float64), torch.tensor([0, 2])
        for kwargs, match in [({"reduction": "avg"}, "reduction"),
                              ({"label_smoothing": 1.5}, "label_smoothing")]:
            with pytest.raises(ValueError, match=match):
                vocab_parallel_cross_entropy(z, y, 3, **kwargs)
        with pytest.raises(TypeError, match="ignore_index"):
            vocab_parallel_cross_entropy(z, y, 3, ignore_index=1.5)
        with pytest.raises(ValueError, match="floating"):
            vocab_parallel_cross_entropy(torch.zeros(2, 3, dtype=torch.int64), y, 3)
        with pytest.raises(ValueError, match="does not match"):
            vocab_parallel_cross_entropy(z, torch.tensor([0, 1, 2]), 3)
        with pytest.raises(IndexError, match=r"Target -1 is out of bounds.*\[0, 3\)"):
            vocab_parallel_cross_entropy(z, torch.tensor([0, -1]), 3)
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            megatron_vocab_parallel_cross_entropy(z, y, label_smoothing=1.0)
        # All targets ignored: nan for 'mean' and a zero gradient, as torch.
        z.requires_grad_()
        loss = vocab_parallel_cross_entropy(z, torch.tensor([-100, -100]), 3)
        loss.backward()
        ref = F.cross_entropy(z.detach(), torch.tensor([-100, -100]))
        assert torch.isnan(loss) and torch.isnan(ref) and torch.all(z.grad == 0)
    finally:
        dist.destroy_process_group()


def test_import_celib_stays_numpy_only():
    code = ("import sys, celib, celib.parallel; "
            "assert 'torch' not in sys.modules, 'celib imported torch'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
