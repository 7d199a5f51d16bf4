"""Plumbing for the page *Vocab-parallel cross-entropy* (chapter 9): the data and the ranks' work.

``torch.multiprocessing`` with the ``spawn`` start method starts fresh interpreters that import
the function they run by name, so the function every rank runs, :func:`chapter_world`, lives
here and not in a notebook cell. The page starts one world of 2 processes with
``celib.parallel.launch(chapter_world, 2, ...)`` and compares what the ranks return with
single-process ``torch.nn.functional.cross_entropy`` of :func:`chapter_data`.
"""

from __future__ import annotations

import warnings

__all__ = ["chapter_data", "chapter_world", "exercise2_data", "megatron_fused_cross_entropy"]


def chapter_data(vocab_size: int, n: int, seed: int = 0):
    """The page's full logits (float64, ``3 * N(0, 1)``), shape ``(n, vocab_size)``, and targets.

    The same on every rank and in the notebook: a seeded ``torch.Generator``. Row 0's target is
    class 0 (owned by rank 0) and the last row's is class ``vocab_size - 1`` (the last rank).
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    z = 3 * torch.randn(n, vocab_size, generator=g, dtype=torch.float64)
    y = torch.randint(0, vocab_size, (n,), generator=g)
    y[0], y[-1] = 0, vocab_size - 1
    return z, y


def megatron_fused_cross_entropy(logits, target, group=None):
    """Megatron-LM's fused vocab-parallel loss, forward only: per-token, no label smoothing.

    A re-implementation (not a copy) of the forward of ``_VocabParallelCrossEntropy`` in
    Megatron-LM's ``megatron/core/fusions/fused_cross_entropy.py``: an all-reduce MAX of the
    row maxima, then **one** all-reduce SUM of the concatenated target logits and sum-exps
    (``torch.cat((predicted_logits, sum_exp_logits))``), where the unfused version makes two.
    Like Megatron, rank ``r`` of the group holds the classes ``[rK, (r+1)K)``.
    """
    import torch
    import torch.distributed as dist

    with torch.no_grad():
        z = logits.detach().clone()
        n, width = z.shape
        start = dist.get_rank(group) * width
        m = z.amax(dim=-1)
        dist.all_reduce(m, op=dist.ReduceOp.MAX, group=group)
        z -= m[:, None]
        outside = (target < start) | (target >= start + width)
        local = (target - start).masked_fill(outside, 0)
        predicted = z.gather(1, local[:, None])[:, 0].masked_fill(outside, 0.0)
        both = torch.cat((predicted, torch.exp(z).sum(dim=-1)))
        dist.all_reduce(both, op=dist.ReduceOp.SUM, group=group)  # one SUM for the two
        predicted, sum_exp = both[:n], both[n:]
        return torch.log(sum_exp) - predicted


def _differentiable_collectives_loss(local, y, start):
    """The mean loss with ``torch.distributed.nn.functional.all_reduce``, which autograd sees."""
    import torch
    import torch.distributed as dist
    import torch.distributed.nn.functional as dist_nn

    width = local.shape[1]
    m = local.detach().amax(dim=1)
    dist.all_reduce(m, op=dist.ReduceOp.MAX)
    s = dist_nn.all_reduce(torch.exp(local - m[:, None]).sum(dim=1))
    owned = (y >= start) & (y < start + width)
    picked = local.gather(1, (y - start).clamp(0, width - 1)[:, None])[:, 0]
    z_y = dist_nn.all_reduce(torch.where(owned, picked, torch.zeros_like(picked)))
    return (m + torch.log(s) - z_y).mean()


def chapter_world(rank: int, world_size: int, vocab_size: int, n: int, alpha: float,
                  seed: int = 0) -> dict:
    """What one rank computes for the page, returned as numpy arrays and lists of calls.

    - ``'loss'``, ``'grad'``, ``'forward'``, ``'backward'``: :func:`celib.parallel.
      vocab_parallel_cross_entropy` (mean), its gradient on the rank's shard, and the
      collectives counted in the forward (the all-gather of the ranks' agreement check, then
      the loss's all-reduces) and in ``loss.backward()``;
    - ``'naive_loss'``, ``'naive_grad'``, ``'naive_warnings'``: the same with
      :func:`cebook.ch09b_mistakes.naive_vocab_parallel_cross_entropy`;
    - ``'dnf_grad'``: the gradient when the two SUMs are made with
      ``torch.distributed.nn.functional.all_reduce`` (differentiable);
    - ``'megatron'``: Megatron-LM's per-token loss with label smoothing ``alpha``, as this
      rank computes it (:func:`cebook.ch09b_mistakes.megatron_vocab_parallel_cross_entropy`);
      ``'smooth_loss'``, ``'smooth_forward'``: celib's per-token loss with
      ``label_smoothing=alpha`` and its forward collectives;
    - ``'fused_loss'``, ``'fused_forward'``: Megatron-LM's fused variant
      (:func:`megatron_fused_cross_entropy`) and its collectives;
    - ``'megatron_underflow'``, ``'celib_underflow'``: Megatron's smoothed loss and celib's on
      fp32 logits where one class of row 0 lies 200 below the row's max.
    """
    import torch

    from cebook.ch09b_mistakes import (megatron_vocab_parallel_cross_entropy,
                                       naive_vocab_parallel_cross_entropy)
    from celib.parallel import count_collectives, shard_bounds, vocab_parallel_cross_entropy

    z, y = chapter_data(vocab_size, n, seed)
    start, end = shard_bounds(vocab_size, world_size)[rank]
    out = {"shard": (start, end)}

    local = z[:, start:end].clone().requires_grad_()
    with count_collectives() as forward:
        loss = vocab_parallel_cross_entropy(local, y, vocab_size)
    with count_collectives() as backward:
        loss.backward()
    out.update(loss=loss.item(), grad=local.grad.numpy(), forward=forward.calls,
               backward=backward.calls)

    local = z[:, start:end].clone().requires_grad_()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = naive_vocab_parallel_cross_entropy(local, y, vocab_size)
        loss.backward()
    out.update(naive_loss=loss.item(), naive_grad=local.grad.numpy(),
               naive_warnings=[str(w.message) for w in caught])

    local = z[:, start:end].clone().requires_grad_()
    with warnings.catch_warnings():  # torch 2.13 deprecates torch.distributed.nn.functional
        warnings.simplefilter("ignore", FutureWarning)
        _differentiable_collectives_loss(local, y, start).backward()
    out["dnf_grad"] = local.grad.numpy()

    out["megatron"] = megatron_vocab_parallel_cross_entropy(
        z[:, start:end], y, label_smoothing=alpha).numpy()
    with count_collectives() as forward, torch.no_grad():
        smooth = vocab_parallel_cross_entropy(z[:, start:end], y, vocab_size, reduction="none",
                                              label_smoothing=alpha)
    out.update(smooth_loss=smooth.numpy(), smooth_forward=forward.calls)

    with count_collectives() as forward:
        fused = megatron_fused_cross_entropy(z[:, start:end], y)
    out.update(fused_loss=fused.numpy(), fused_forward=forward.calls)

    # log(0): fp32 logits, as Megatron computes them, with one class of row 0 (the last class,
    # on the last rank) 200 below the row's max, so that its exp underflows to 0.
    z32 = z.float()
    z32[0, -1] = z32[0].max() - 200.0
    out["megatron_underflow"] = megatron_vocab_parallel_cross_entropy(
        z32[:, start:end], y, label_smoothing=alpha).numpy()
    with torch.no_grad():
        out["celib_underflow"] = vocab_parallel_cross_entropy(
            z32[:, start:end], y, vocab_size, reduction="none", label_smoothing=alpha).numpy()
    return out


def exercise2_data():
    """Exercise 2's logits, already split over 3 ranks, and targets (numpy, seeded).

    Returns ``(shards, y)``: ``shards`` is a list of three ``(5, 4)`` float64 arrays, the
    columns ``[0, 4)``, ``[4, 8)`` and ``[8, 12)`` of ``2 * N(0, 1)`` logits with
    ``default_rng(9)``, and ``y`` the 5 int64 targets in ``[0, 12)``.
    """
    import numpy as np

    rng = np.random.default_rng(9)
    z = 2 * rng.standard_normal((5, 12))
    y = rng.integers(0, 12, size=5)
    return [z[:, 0:4], z[:, 4:8], z[:, 8:12]], y
