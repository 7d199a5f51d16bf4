"""celib.parallel on non-finite logits, against torch's F.cross_entropy and its autograd gradient.

torch's rule (its log_softmax): a row whose maximum is +inf, nan, or -inf (every logit -inf)
has a nan log-sum-exp, hence a nan loss and a nan gradient on the whole row, even when the row's
target is ignored; a -inf logit in an otherwise finite row has probability 0 (an infinite loss
if it is the target's, nan if that target's class weight is 0). Checked on a world of one
process (in this process) and on real gloo worlds of 2 and 3 processes, with the non-finite
values placed in different ranks' shards, for every reduction, class weights, label smoothing
and ignored rows; then a hypothesis property on one rank. Also pinned: 'mean' with class
weights whose sum over the kept targets is exactly 0 divides by 0 (±inf or nan), as torch.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from celib.parallel import launch, shard_bounds, vocab_parallel_cross_entropy

FORK = "fork" if sys.platform.startswith("linux") else "spawn"
INF, NAN = float("inf"), float("nan")
V = 7

# (name, F.cross_entropy keyword arguments); "weight": True means the WEIGHT vector below.
OPTIONS = [
    ("mean", {}), ("sum", {"reduction": "sum"}), ("none", {"reduction": "none"}),
    ("weight", {"weight": True}), ("weight-none", {"weight": True, "reduction": "none"}),
    ("smooth", {"label_smoothing": 0.1}),
    ("smooth-weight-sum", {"label_smoothing": 0.2, "weight": True, "reduction": "sum"}),
    ("ignore", {"ignore_index": -100}), ("ignore-smooth-none",
                                         {"ignore_index": 3, "label_smoothing": 0.1,
                                          "reduction": "none"}),
]
WEIGHT = [0.0, 1.0, 2.0, 0.5, 1.5, 3.0, 0.25]      # class 0 weighs 0: 0 * inf = nan


def nonfinite_data(ignore_index: int = -100):
    """Rows of every non-finite pattern, in several shards; their targets and an upstream grad."""
    z = torch.linspace(-2.0, 2.0, 12 * V, dtype=torch.float64).reshape(12, V).sin() * 3
    targets = [2, 1, 4, 5, 3, 0, 1, 2, 6, 0, 0, 0]
    z[1, 1] = INF                   # +inf in the first shard
    z[2, 6] = INF                   # +inf in the last shard
    z[3, 5] = NAN                   # nan
    z[4, :] = -INF                  # every logit -inf
    z[5, 0] = -INF                  # the target's logit -inf (class 0: weight 0)
    z[6, 2:5] = -INF                # some -inf, the target finite
    z[7, 2] = -INF                  # the target's logit -inf (class 2: weight 2)
    z[8, 4:] = -INF                 # the last shard(s) all -inf, the max elsewhere
    z[9, 0] = NAN                   # nan in a row that will be ignored
    z[10, 3] = INF                  # +inf in a row that will be ignored
    z[11, 1] = -INF                 # -inf in a row that will be ignored
    y = torch.tensor(targets)
    y[9:] = ignore_index            # the last three rows are ignored (3 is also a class)
    upstream = torch.linspace(0.5, 1.5, 12, dtype=torch.float64)
    return z, y, upstream


def _case(kwargs: dict):
    z, y, upstream = nonfinite_data(kwargs.get("ignore_index", -100))
    options = {k: v for k, v in kwargs.items() if k != "weight"}
    if kwargs.get("weight"):
        options["weight"] = torch.tensor(WEIGHT, dtype=torch.float64)
    return z, y, options, upstream


def _backward(loss, options, upstream):
    (loss * upstream).sum().backward() if options.get("reduction") == "none" else loss.backward()


def torch_answer(kwargs: dict):
    z, y, options, upstream = _case(kwargs)
    full = z.clone().requires_grad_()
    loss = F.cross_entropy(full, y, **options)
    _backward(loss, options, upstream)
    return loss.detach(), full.grad


def rank_answers(rank: int, world_size: int) -> dict:
    """Every option's loss and shard gradient on this rank (run by each process)."""
    out = {}
    for name, kwargs in OPTIONS:
        z, y, options, upstream = _case(kwargs)
        start, end = shard_bounds(V, world_size)[rank]
        local = z[:, start:end].clone().requires_grad_()
        loss = vocab_parallel_cross_entropy(local, y, V, **options)
        _backward(loss, options, upstream)
        out[name] = (loss.detach(), local.grad)
    return out


def _same(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """Equal within 1e-12, with nan where torch has nan and the same infinities."""
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-12, equal_nan=True,
                               msg=lambda m: f"{what}: {m}")


def check_world(results: list[dict]) -> None:
    """Each rank's loss is torch's, and the ranks' gradients side by side are torch's."""
    for name, kwargs in OPTIONS:
        loss_ref, grad_ref = torch_answer(kwargs)
        assert not torch.isfinite(grad_ref).all(), "the case has a non-finite gradient"
        for rank, out in enumerate(results):
            _same(out[name][0], loss_ref, f"{name}: the loss on rank {rank}")
        _same(torch.cat([out[name][1] for out in results], dim=1), grad_ref,
              f"{name}: the gathered gradient")


@pytest.mark.parametrize("world_size", [2, 3])
def test_nonfinite_on_real_worlds(world_size):
    check_world(launch(rank_answers, world_size, timeout=120, start_method=FORK))


@pytest.fixture(scope="module")
def one_rank():
    """A gloo process group of one process (no network)."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_the_issue_reproducer(one_rank):
    """Issue 20: [[inf, 1, 2]] with target 1 gave loss inf and gradient [nan, -1, 0]."""
    z = torch.tensor([[INF, 1.0, 2.0]], requires_grad=True)
    loss = vocab_parallel_cross_entropy(z, torch.tensor([1]), 3)
    loss.backward()
    assert torch.isnan(loss) and torch.isnan(z.grad).all()
    ref = torch.tensor([[INF, 1.0, 2.0]], requires_grad=True)
    F.cross_entropy(ref, torch.tensor([1])).backward()
    assert torch.isnan(ref.grad).all()


def test_nonfinite_on_one_rank(one_rank):
    check_world([rank_answers(0, 1)])


def test_mean_with_weights_summing_to_zero_is_ieee_division(one_rank):
    """Σ w_y = 0 over the kept targets: 'mean' is x / 0 (±inf, or nan for 0 / 0), as torch."""
    z = torch.tensor([[2.0, 0.5, -1.0], [0.1, 1.0, 0.3], [1.0, 1.0, 1.0]], dtype=torch.float64)
    for weight, y, eps in [([1.0, -1.0, 2.0], [0, 1, -100], 0.0),
                           ([1.0, -1.0, 2.0], [1, 0, -100], 0.0), ([0.0, 1.0, 2.0], [0, 0, 0], 0.0),
                           ([1.0, -1.0, 2.0], [0, 1, -100], 0.2)]:
        w, t = torch.tensor(weight, dtype=torch.float64), torch.tensor(y)
        mine = z.clone().requires_grad_()
        loss = vocab_parallel_cross_entropy(mine, t, 3, weight=w, label_smoothing=eps)
        loss.backward()
        full = z.clone().requires_grad_()
        ref = F.cross_entropy(full, t, weight=w, label_smoothing=eps)
        ref.backward()
        assert not torch.isfinite(ref)
        torch.testing.assert_close(loss, ref.detach(), equal_nan=True, rtol=0, atol=0)
        torch.testing.assert_close(mine.grad, full.grad, equal_nan=True, rtol=0, atol=1e-12)


finite_or_not = st.one_of(st.floats(-30, 30), st.sampled_from([INF, -INF, NAN]))


@given(values=st.lists(finite_or_not, min_size=12, max_size=12),
       y=st.lists(st.integers(-1, 3), min_size=3, max_size=3),
       reduction=st.sampled_from(["mean", "sum", "none"]),
       smoothing=st.sampled_from([0.0, 0.3]), weighted=st.booleans())
def test_nonfinite_property_on_one_rank(one_rank, values, y, reduction, smoothing, weighted):
    """Any mix of finite, ±inf and nan logits: torch's loss and gradient (-1: ignored)."""
    z = torch.tensor(np.reshape(values, (3, 4)), dtype=torch.float64)
    t = torch.tensor(y)
    options = {"reduction": reduction, "label_smoothing": smoothing, "ignore_index": -1}
    if weighted:
        options["weight"] = torch.tensor([0.0, 0.5, 1.0, 2.0], dtype=torch.float64)
    results = []
    for fn in (lambda a: vocab_parallel_cross_entropy(a, t, 4, **options),
               lambda a: F.cross_entropy(a, t, **options)):
        a = z.clone().requires_grad_()
        loss = fn(a)
        loss.sum().backward()
        results.append((loss.detach(), a.grad))
    (loss, grad), (loss_ref, grad_ref) = results
    torch.testing.assert_close(loss, loss_ref, rtol=1e-12, atol=1e-12, equal_nan=True)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-12, atol=1e-12, equal_nan=True)
