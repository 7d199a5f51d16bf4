"""Every public function and argument of celib.parallel, given a bad value: a clear error.

One row per (function, argument, bad value): the exception type and a message that names the
argument (wrong type, bool where a number is expected or None -> TypeError; wrong value, shape
or dtype, out of range, non-finite -> ValueError; a class index out of range -> IndexError, as
in torch). numpy's or Python's internal messages would not name the argument, so they fail the
table. Then the values that must be accepted (numpy integers and floats), and the non-finite
class weights torch accepts too.
"""

from __future__ import annotations

import math
import operator

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from celib.parallel import launch, shard_bounds, vocab_parallel_cross_entropy

Z = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]], dtype=torch.float64)
Y = torch.tensor([0, 2])
W = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)


@pytest.fixture(scope="module")
def one_rank():
    """A gloo process group of one process (no network)."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def loss(**changes):
    """vocab_parallel_cross_entropy on the good arguments above, with some of them changed."""
    kwargs = {"logits": Z, "target": Y, "vocab_size": 3, **changes}
    return vocab_parallel_cross_entropy(kwargs.pop("logits"), kwargs.pop("target"),
                                        kwargs.pop("vocab_size"), **kwargs)


# (argument, bad value, expected exception)
LOSS_TABLE = [
    ("logits", Z.numpy(), TypeError), ("logits", Z.tolist(), TypeError),
    ("logits", None, TypeError), ("logits", 3.0, TypeError),
    ("logits", Z.long(), ValueError), ("logits", Z.bool(), ValueError),
    ("logits", Z.to(torch.complex128), ValueError), ("logits", torch.tensor(1.0), ValueError),
    ("logits", Z[:, :2], ValueError), ("logits", Z[:1], ValueError),
    ("target", Y.numpy(), TypeError), ("target", [0, 2], TypeError), ("target", None, TypeError),
    ("target", Y.int(), ValueError), ("target", Y.double(), ValueError),
    ("target", Y.bool(), ValueError), ("target", Y.to(torch.uint8), ValueError),
    ("target", Y[:, None], ValueError),
    ("target", torch.tensor([0, 3]), IndexError), ("target", torch.tensor([-1, 0]), IndexError),
    ("vocab_size", None, TypeError), ("vocab_size", 3.0, TypeError),
    ("vocab_size", "3", TypeError), ("vocab_size", True, TypeError),
    ("vocab_size", np.True_, TypeError), ("vocab_size", np.float64(3), TypeError),
    ("vocab_size", math.inf, TypeError), ("vocab_size", math.nan, TypeError),
    ("vocab_size", 0, ValueError), ("vocab_size", -3, ValueError),
    ("vocab_size", 4, ValueError), ("vocab_size", 2**70, ValueError),
    ("weight", W.numpy(), TypeError), ("weight", [1.0, 2.0, 0.5], TypeError),
    ("weight", 1.0, TypeError), ("weight", W[:2], ValueError), ("weight", W[None], ValueError),
    ("weight", W.float(), ValueError), ("weight", W.long(), ValueError),
    ("ignore_index", 1.5, TypeError), ("ignore_index", 1.0, TypeError),
    ("ignore_index", "1", TypeError), ("ignore_index", None, TypeError),
    ("ignore_index", True, TypeError), ("ignore_index", math.nan, TypeError),
    ("reduction", None, TypeError), ("reduction", 1, TypeError), ("reduction", True, TypeError),
    ("reduction", "avg", ValueError), ("reduction", "", ValueError),
    ("reduction", "MEAN", ValueError),
    ("label_smoothing", None, TypeError), ("label_smoothing", "0.1", TypeError),
    ("label_smoothing", True, TypeError), ("label_smoothing", np.True_, TypeError),
    ("label_smoothing", torch.tensor(0.1), TypeError),
    ("label_smoothing", -0.1, ValueError), ("label_smoothing", 1.5, ValueError),
    ("label_smoothing", math.nan, ValueError), ("label_smoothing", math.inf, ValueError),
    ("group", "default", TypeError), ("group", 0, TypeError),
    ("check_ranks", None, TypeError), ("check_ranks", "yes", TypeError),
    ("check_ranks", 1, TypeError),
]


@pytest.mark.parametrize("argument,value,expected", LOSS_TABLE,
                         ids=[f"{a}={v!r:.20}" for a, v, _ in LOSS_TABLE])
def test_vocab_parallel_cross_entropy_refuses(one_rank, argument, value, expected):
    with pytest.raises(expected) as caught:
        loss(**{argument: value})
    assert type(caught.value) is expected, f"{type(caught.value).__name__}: {caught.value}"
    assert argument.lower() in str(caught.value).lower(), str(caught.value)


SHARD_TABLE = [
    (("vocab_size", None), TypeError), (("vocab_size", 5.0), TypeError),
    (("vocab_size", "5"), TypeError), (("vocab_size", True), TypeError),
    (("vocab_size", 0), ValueError), (("vocab_size", -5), ValueError),
    (("world_size", None), TypeError), (("world_size", 2.0), TypeError),
    (("world_size", np.True_), TypeError), (("world_size", math.nan), TypeError),
    (("world_size", 0), ValueError), (("world_size", 6), ValueError),
]


@pytest.mark.parametrize("change,expected", SHARD_TABLE,
                         ids=[f"{a}={v!r}" for (a, v), _ in SHARD_TABLE])
def test_shard_bounds_refuses(change, expected):
    kwargs = {"vocab_size": 5, "world_size": 2, change[0]: change[1]}
    with pytest.raises(expected) as caught:
        shard_bounds(**kwargs)
    assert type(caught.value) is expected
    assert change[0] in str(caught.value), str(caught.value)


LAUNCH_TABLE = [
    (("fn", None), TypeError), (("fn", 3), TypeError), (("fn", "operator.mul"), TypeError),
    (("world_size", None), TypeError), (("world_size", 2.0), TypeError),
    (("world_size", True), TypeError), (("world_size", 0), ValueError),
    (("world_size", -1), ValueError),
    (("args", None), TypeError), (("args", 5), TypeError), (("args", "ab"), TypeError),
    (("timeout", None), TypeError), (("timeout", "10"), TypeError),
    (("timeout", True), TypeError), (("timeout", 0), ValueError), (("timeout", -1.0), ValueError),
    (("timeout", math.nan), ValueError), (("timeout", math.inf), ValueError),
    (("start_method", None), TypeError), (("start_method", 1), TypeError),
    (("start_method", "thread"), ValueError), (("start_method", "Spawn"), ValueError),
]


@pytest.mark.parametrize("change,expected", LAUNCH_TABLE,
                         ids=[f"{a}={v!r}" for (a, v), _ in LAUNCH_TABLE])
def test_launch_refuses_before_starting_anything(change, expected):
    kwargs = {"fn": operator.mul, "world_size": 2, "args": (), "timeout": 30.0,
              "start_method": "spawn", change[0]: change[1]}
    with pytest.raises(expected) as caught:
        launch(kwargs.pop("fn"), kwargs.pop("world_size"), **kwargs)
    assert type(caught.value) is expected
    assert change[0] in str(caught.value), str(caught.value)


def test_launch_refuses_to_fork_a_process_group(one_rank):
    with pytest.raises(RuntimeError, match="start_method='fork'"):
        launch(operator.mul, 2, start_method="fork")


def test_numpy_numbers_are_accepted(one_rank):
    """numpy integers where an int is expected, a numpy float for label_smoothing."""
    ref = F.cross_entropy(Z, Y, ignore_index=1, label_smoothing=0.25)
    mine = loss(vocab_size=np.int64(3), ignore_index=np.int32(1),
                label_smoothing=np.float32(0.25), check_ranks=np.True_)
    torch.testing.assert_close(mine, ref, rtol=0, atol=1e-12)
    assert shard_bounds(np.int16(5), np.uint8(2)) == [(0, 3), (3, 5)]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_class_weights_give_torchs_answer(one_rank, bad):
    """torch accepts non-finite class weights (and computes with them); so does celib."""
    w = W.clone()
    w[1] = bad
    for reduction in ("mean", "sum", "none"):
        torch.testing.assert_close(loss(weight=w, reduction=reduction),
                                   F.cross_entropy(Z, Y, weight=w, reduction=reduction),
                                   rtol=0, atol=1e-12, equal_nan=True)
