"""Ranks that disagree: every rank raises a clear error, at once, and no rank is left waiting.

Without the check, a rank with another batch size or dtype blocked the others in a collective
until the launch timeout (or gloo aborted the process), and ranks with other targets or options
each computed a different loss in silence. Each case below runs on a real gloo world over
127.0.0.1 (:func:`celib.parallel.launch`); every rank catches its error and then joins a
barrier and a correct call, which proves that no rank is stuck in a collective and that the
group still works. The world has a short timeout, so a rank that hangs fails the test.
"""

from __future__ import annotations

import sys
import time

import pytest
import torch
import torch.distributed as dist

from celib.parallel import (RankMismatchError, count_collectives, launch, shard_bounds,
                            vocab_parallel_cross_entropy)

FORK = "fork" if sys.platform.startswith("linux") else "spawn"
V, N = 8, 6
TIMEOUT = 60


def _arguments(rank: int, world_size: int, case: str, odd: int) -> tuple[tuple, dict]:
    """The arguments of one rank: the same on every rank, except on rank ``odd``."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(N, V + 1, generator=g, dtype=torch.float64)   # V + 1: see "vocab_size"
    y = torch.randint(0, V, (N,), generator=g)
    vocab, options = V, {}
    start, end = shard_bounds(V, world_size)[rank]
    if rank == odd:
        if case == "batch":
            z, y = torch.cat([z, z[:1]]), torch.cat([y, y[:1]])
        elif case == "dtype":
            z = z.float()
        elif case == "targets":
            y[3] = (y[3] + 1) % V
        elif case == "vocab_size":     # the last rank holds 4 columns with V = 8 or V = 9
            vocab, (start, end) = V + 1, shard_bounds(V + 1, world_size)[rank]
        elif case == "local error":
            y[2] = V + 5
        else:                          # an option: reduction, label_smoothing, ...
            options = dict([OPTION_CASES[case]])
    return (z[:, start:end].clone().requires_grad_(), y, vocab), options


OPTION_CASES = {"reduction": ("reduction", "sum"), "label_smoothing": ("label_smoothing", 0.1),
                "ignore_index": ("ignore_index", 3),
                "weight": ("weight", torch.ones(V, dtype=torch.float64))}
CASES = ["batch", "dtype", "targets", "vocab_size", "local error", *OPTION_CASES]


def _disagree(rank: int, world_size: int, odd: int) -> dict:
    """Run every case on this rank; return the error each raised, then prove the world works."""
    out = {}
    for case in CASES:
        args, options = _arguments(rank, world_size, case, odd)
        start = time.monotonic()
        with count_collectives() as counted:
            try:
                vocab_parallel_cross_entropy(*args, **options)
                out[case] = None
            except Exception as e:  # noqa: BLE001 - the test checks the type and the message
                out[case] = (type(e).__name__, str(e), counted.calls, time.monotonic() - start)
        dist.barrier()             # every rank got here: none is blocked in a collective
    args, _ = _arguments(rank, world_size, "none", odd=-1)
    out["after"] = vocab_parallel_cross_entropy(*args).item()
    return out


# What each rank's message must say: the field, and each value as the user wrote it.
EXPECTED = {
    "batch": ["target shape: (6,) on rank", "(7,) on rank"],
    "dtype": ["logits dtype: torch.float64 on rank", "torch.float32 on rank"],
    "targets": ["target values: fingerprint"],
    "vocab_size": ["vocab_size: 8 on rank", "9 on rank"],
    "reduction": ["reduction: 'mean' on rank", "'sum' on rank"],
    "label_smoothing": ["label_smoothing: 0.0 on rank", "0.1 on rank"],
    "ignore_index": ["ignore_index: -100 on rank", "3 on rank"],
    "weight": ["weight: None on rank", "a tensor (fingerprint"],
}


@pytest.mark.parametrize("world_size,odd", [(2, 1), (3, 1)])
def test_every_rank_names_the_mismatch(world_size, odd):
    begin = time.monotonic()
    results = launch(_disagree, world_size, (odd,), timeout=TIMEOUT, start_method=FORK)
    assert time.monotonic() - begin < TIMEOUT
    others = [r for r in range(world_size) if r != odd]
    for rank, out in enumerate(results):
        for case in CASES:
            assert out[case] is not None, f"{case}: rank {rank} raised nothing"
            kind, message, calls, seconds = out[case]
            assert calls == ["all_gather"], f"{case}: rank {rank} went past the check: {calls}"
            assert seconds < 10, f"{case}: rank {rank} waited {seconds:.1f} s"
            if case == "local error":
                continue
            assert kind == "RankMismatchError", (case, rank, kind, message)
            assert f"the {world_size} ranks disagree" in message, (case, message)
            for part in EXPECTED[case]:
                assert part in message, (case, rank, message)
            odd_line = next(line for line in message.splitlines() if line.startswith("  "))
            assert f"on rank {odd}" in odd_line and (
                f"on rank {others[0]}" if len(others) == 1 else
                "on ranks " + ", ".join(map(str, others))) in odd_line, odd_line
        assert out["after"] == results[0]["after"], "the group works after the errors"


@pytest.mark.parametrize("world_size", [2, 3])
def test_a_rank_that_refuses_its_arguments_stops_every_rank(world_size):
    """Rank 1's target is out of range: it raises IndexError, the others a RankMismatchError
    naming rank 1, all after the one all-gather."""
    results = launch(_disagree, world_size, (1,), timeout=TIMEOUT, start_method=FORK)
    for rank, out in enumerate(results):
        kind, message, calls, _ = out["local error"]
        assert calls == ["all_gather"]
        if rank == 1:
            assert kind == "IndexError" and "Target 13 is out of bounds" in message
        else:
            assert kind == "RankMismatchError", message
            assert f"rank 1 of {world_size} refused its arguments (IndexError" in message


def test_the_check_is_one_all_gather_and_can_be_skipped():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        z = torch.tensor([[2.0, 1.0, 0.1]], requires_grad=True)
        for check, expected in [(True, ["all_gather", "all_reduce:MAX", "all_reduce:SUM",
                                        "all_reduce:SUM"]),
                                (False, ["all_reduce:MAX", "all_reduce:SUM", "all_reduce:SUM"])]:
            with count_collectives() as counted:
                vocab_parallel_cross_entropy(z, torch.tensor([0]), 3, check_ranks=check)
            assert counted.calls == expected
        assert issubclass(RankMismatchError, ValueError)
    finally:
        dist.destroy_process_group()
