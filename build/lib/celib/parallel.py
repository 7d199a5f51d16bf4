"""Vocab-parallel cross-entropy on ``torch.distributed``: the loss when no rank has all the logits.

With tensor parallelism (Megatron-LM, PyTorch's ``loss_parallel``) the output layer is split
along the vocabulary: rank :math:`r` of :math:`R` holds the logits :math:`z_{i,c}` of its
contiguous shard of classes :math:`c \\in [a_r, b_r)` only. The loss of row :math:`i` with target
:math:`y_i`,

.. math:: \\ell_i = \\log\\sum_{c=0}^{V-1} e^{z_{i,c}} - z_{i,y_i},

then needs three all-reduces and nothing else: the MAX of the rows' maxima :math:`m_i`, the SUM
of the shards' :math:`\\sum_c e^{z_{i,c}-m_i}`, and the SUM of the target logit, which only the
rank owning :math:`y_i` contributes (the others add 0). The gradient
:math:`\\partial\\ell_i/\\partial z_{i,c} = \\operatorname{softmax}(z_i)_c - [c = y_i]` is local
to each shard once the forward has the global log-sum-exp, so the backward needs no collective.

This module holds :func:`vocab_parallel_cross_entropy` (a ``torch.autograd.Function`` with
torch's ``F.cross_entropy`` semantics: weights, ``ignore_index``, label smoothing, reductions),
two wrong versions kept to be run and measured (:func:`naive_vocab_parallel_cross_entropy`, a
plain ``all_reduce`` inside autograd, and :func:`megatron_vocab_parallel_cross_entropy`, the
local-partition label smoothing of Megatron-LM), :func:`shard_bounds`, the collective counter
:func:`count_collectives`, and :func:`launch`, which runs a function on a real gloo world of
processes on 127.0.0.1.

torch is imported inside the functions: ``import celib.parallel`` needs numpy only. Chapter 9
(Cross-entropy at LLM scale), on its page *Vocab-parallel cross-entropy*, explains it.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pickle
import socket
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Iterator

from . import _checks

if TYPE_CHECKING:  # torch is imported inside the functions that need it
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp

__all__ = [
    "shard_bounds",
    "vocab_parallel_cross_entropy",
    "naive_vocab_parallel_cross_entropy",
    "megatron_vocab_parallel_cross_entropy",
    "count_collectives",
    "CollectiveCounter",
    "launch",
    "free_port",
]

# The torch.distributed functions count_collectives wraps (every collective that moves data).
COLLECTIVES = ("all_reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter",
               "reduce_scatter_tensor", "broadcast", "reduce", "all_to_all",
               "all_to_all_single", "gather", "scatter")


def shard_bounds(vocab_size: int, world_size: int) -> list[tuple[int, int]]:
    """The contiguous vocabulary shard ``[start, end)`` of each of ``world_size`` ranks.

    When ``world_size`` does not divide ``vocab_size``, the first ``vocab_size % world_size``
    ranks get one class more (as ``numpy.array_split``), so shard widths differ by at most 1.

    Parameters
    ----------
    vocab_size : int
        :math:`V`, the number of classes, at least ``world_size``.
    world_size : int
        :math:`R`, the number of ranks, at least 1.

    Returns
    -------
    list of (int, int)
        ``[(start_0, end_0), ..., (start_{R-1}, end_{R-1})]`` with ``start_0 = 0``,
        ``end_r = start_{r+1}`` and ``end_{R-1} = V``.

    Raises
    ------
    ValueError
        If a size is not a positive integer, or ``world_size > vocab_size`` (a rank would hold
        no class).

    Notes
    -----
    Rank :math:`r` gets :math:`\\lfloor V/R \\rfloor + [r < V \\bmod R]` classes. Megatron-LM
    instead computes rank :math:`r`'s range as :math:`[rK, (r+1)K)` from the local width
    :math:`K`, which assumes equal shards, so it pads the vocabulary to a multiple of :math:`R`.

    Explained in chapter 9 (Cross-entropy at LLM scale), page *Vocab-parallel cross-entropy*.

    Examples
    --------
    >>> from celib.parallel import shard_bounds
    >>> shard_bounds(507, 3)
    [(0, 169), (169, 338), (338, 507)]
    >>> shard_bounds(509, 3)     # 509 = 3 * 169 + 2: the first two ranks hold 170 classes
    [(0, 170), (170, 340), (340, 509)]
    """
    for name, value in (("vocab_size", vocab_size), ("world_size", world_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if world_size > vocab_size:
        raise ValueError(f"world_size={world_size} ranks cannot share vocab_size={vocab_size} "
                         "classes: every rank needs at least one class")
    base, extra = divmod(vocab_size, world_size)
    bounds, start = [], 0
    for rank in range(world_size):
        end = start + base + (1 if rank < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


# --------------------------------------------------------------------------------------------
# Counting collectives
# --------------------------------------------------------------------------------------------

@dataclass
class CollectiveCounter:
    """The collectives called inside :func:`count_collectives`, in order.

    ``calls`` holds one string per call, ``"all_reduce:MAX"``, ``"all_reduce:SUM"``, ... (the
    function's name, and the reduction for reductions); ``len(counter)`` is their number.
    Explained in chapter 9 (Cross-entropy at LLM scale).
    """

    calls: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.calls)


def _op_name(op: Any) -> str:
    text = str(op)
    return text.rsplit(".", 1)[-1] if "." in text else text


@contextlib.contextmanager
def count_collectives() -> Iterator[CollectiveCounter]:
    """Count the ``torch.distributed`` collectives called inside a ``with`` block.

    Every data-moving collective of ``torch.distributed`` (``all_reduce``, ``all_gather``,
    ``reduce_scatter``, ``broadcast``, ``all_to_all``, ...) is replaced, for the block, by a
    wrapper that records the call and then makes it; the originals are restored on exit.

    Yields
    ------
    CollectiveCounter
        Its ``calls`` list grows as the block runs.

    Notes
    -----
    The wrappers replace the attributes of the ``torch.distributed`` module, so they see the
    calls made through it (``dist.all_reduce(...)``, as celib and Megatron-LM write them), not
    calls through a name imported before the block (``from torch.distributed import
    all_reduce``). Use it around the forward to count the forward's collectives and around
    ``loss.backward()`` to count the backward's: :func:`vocab_parallel_cross_entropy` makes 3
    and 0 (4 and 0 with label smoothing).

    Explained in chapter 9 (Cross-entropy at LLM scale), page *Vocab-parallel cross-entropy*.

    Examples
    --------
    A one-process gloo group is enough to count (the chapter runs 2 and 3 processes):

    >>> import torch, torch.distributed as dist
    >>> from celib.parallel import count_collectives, vocab_parallel_cross_entropy
    >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    >>> z = torch.tensor([[2.0, 1.0, 0.1]], requires_grad=True)
    >>> with count_collectives() as forward:
    ...     loss = vocab_parallel_cross_entropy(z, torch.tensor([0]), 3)
    >>> with count_collectives() as backward:
    ...     loss.backward()
    >>> forward.calls, len(backward)
    (['all_reduce:MAX', 'all_reduce:SUM', 'all_reduce:SUM'], 0)
    >>> dist.destroy_process_group()
    """
    import torch.distributed as dist

    counter = CollectiveCounter()
    originals = {name: getattr(dist, name) for name in COLLECTIVES if hasattr(dist, name)}

    def wrap(name, original):
        def counted(*args, **kwargs):
            op = kwargs.get("op")
            if op is None and name in ("all_reduce", "reduce", "reduce_scatter",
                                       "reduce_scatter_tensor"):
                op = dist.ReduceOp.SUM  # the default of every reduction
            counter.calls.append(name if op is None else f"{name}:{_op_name(op)}")
            return original(*args, **kwargs)
        return counted

    for name, original in originals.items():
        setattr(dist, name, wrap(name, original))
    try:
        yield counter
    finally:
        for name, original in originals.items():
            setattr(dist, name, original)


# --------------------------------------------------------------------------------------------
# The vocab-parallel loss
# --------------------------------------------------------------------------------------------

def _prepare(logits, target, vocab_size, weight, ignore_index, reduction, label_smoothing,
             group):
    """Check the arguments on this rank; return the flat tensors and this rank's shard."""
    import torch
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("vocab-parallel cross-entropy needs a process group: call "
                           "torch.distributed.init_process_group first (celib.parallel.launch "
                           "does it for each rank)")
    _checks.check_reduction(reduction)
    epsilon = _checks.check_label_smoothing(label_smoothing)
    ignore_index = _checks.check_ignore_index(ignore_index)
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() < 1:
        raise ValueError("logits must be a floating torch.Tensor of shape (..., V_r), the "
                         f"rank's shard on the last dimension, got {logits!r:.80}")
    if not isinstance(target, torch.Tensor) or target.dtype != torch.int64:
        raise ValueError("target must be a torch.Tensor of class indices with dtype int64, "
                         f"got {getattr(target, 'dtype', type(target).__name__)}")
    if tuple(target.shape) != tuple(logits.shape[:-1]):
        raise ValueError(f"target shape {tuple(target.shape)} does not match logits shape "
                         f"{tuple(logits.shape)} without its last (class) dimension")
    rank, world_size = dist.get_rank(group), dist.get_world_size(group)
    start, end = shard_bounds(vocab_size, world_size)[rank]
    if logits.shape[-1] != end - start:
        raise ValueError(f"rank {rank} of {world_size} holds classes [{start}, {end}) of "
                         f"vocab_size={vocab_size}, {end - start} columns, but its logits have "
                         f"{logits.shape[-1]} (shape {tuple(logits.shape)})")
    flat_target = target.reshape(-1)
    kept = flat_target != ignore_index
    bad = kept & ((flat_target < 0) | (flat_target >= vocab_size))
    if bool(bad.any()):
        value = int(flat_target[bad][0])
        raise IndexError(f"Target {value} is out of bounds: class indices must be in "
                         f"[0, {vocab_size}) (or ignore_index={ignore_index})")
    if weight is not None:
        if not isinstance(weight, torch.Tensor) or tuple(weight.shape) != (vocab_size,):
            raise ValueError(f"weight must be a torch.Tensor of shape ({vocab_size},), the full "
                             "class-weight vector on every rank, got shape "
                             f"{tuple(getattr(weight, 'shape', ()))}")
        weight = weight.to(logits.dtype)
    return (logits.reshape(-1, logits.shape[-1]), flat_target, kept, weight, start, end,
            epsilon, group)


def _parallel_forward(z, target, kept, weight, start: int, vocab_size: int, reduction: str,
                      epsilon: float, group):
    """The forward on one rank: the all-reduces, the per-token losses and the reduction.
    Returns the output, the tensors the backward needs, and Σ_c w_c."""
    import torch
    import torch.distributed as dist

    n, width = z.shape
    local = target - start
    owned = kept & (local >= 0) & (local < width)
    # 1. the row maxima, MAX over the ranks: every rank then shifts by the global max.
    m = z.detach().amax(dim=1) if n else z.new_zeros(0)
    dist.all_reduce(m, op=dist.ReduceOp.MAX, group=group)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    # 2. the sum of exp(z - m), SUM over the ranks: the global log-sum-exp.
    s = torch.exp(z - m[:, None]).sum(dim=1)
    dist.all_reduce(s, op=dist.ReduceOp.SUM, group=group)
    lse = m + torch.log(s)
    # 3. the target logit: the owning rank contributes it, the others 0.
    picked = z.gather(1, local.clamp(0, width - 1)[:, None])[:, 0]
    z_y = torch.where(owned, picked, torch.zeros_like(picked))
    dist.all_reduce(z_y, op=dist.ReduceOp.SUM, group=group)

    zero = torch.zeros((), dtype=z.dtype)
    if weight is None:
        w_y = kept.to(z.dtype)
        w_total = float(vocab_size)
    else:
        w_y = torch.where(kept, weight[target.clamp(0, vocab_size - 1)], zero)
        w_total = weight.sum()
    loss = torch.where(kept, w_y * (lse - z_y), zero)
    if epsilon > 0:
        # 4. label smoothing: sum_c w_c z_c over the whole vocabulary, SUM over ranks.
        w_local = None if weight is None else weight[start:start + width]
        z_sum = (z.sum(dim=1) if w_local is None else z @ w_local)
        dist.all_reduce(z_sum, op=dist.ReduceOp.SUM, group=group)
        smooth = torch.where(kept, w_total * lse - z_sum, zero)
        loss = (1 - epsilon) * loss + (epsilon / vocab_size) * smooth
    denominator = w_y.sum()
    if reduction == "sum":
        out = loss.sum()
    elif reduction == "mean":
        out = loss.sum() / denominator
    else:
        out = loss
    saved = (z, lse, local, kept, owned, w_y, denominator, weight)
    return out, saved, w_total


def _parallel_backward(grad_out, saved, options):
    """The backward on one rank, from the forward's saved tensors: no collective."""
    import torch

    z, lse, local, kept, owned, w_y, denominator, weight = saved
    start, vocab_size, reduction, epsilon, w_total = options
    n, width = z.shape
    if reduction == "none":
        g = grad_out
    elif reduction == "sum":
        g = grad_out.expand(n)
    else:
        g = (grad_out / denominator).expand(n)
    g = torch.where(kept, g, torch.zeros_like(g))
    # No collective: softmax of the local columns (from the global lse) minus the
    # local one-hot, with the options' coefficients.
    q = torch.exp(z - lse[:, None])
    coef = (1 - epsilon) * w_y
    grad = q * (coef + (epsilon / vocab_size) * w_total)[:, None]
    rows = torch.nonzero(owned)[:, 0]
    grad[rows, local[rows]] -= coef[rows]
    if epsilon > 0:
        w_local = (torch.ones(width, dtype=z.dtype) if weight is None
                   else weight[start:start + width])
        grad = grad - (epsilon / vocab_size) * w_local[None, :]
    grad = grad * g[:, None]
    return grad


@cache
def _autograd_function():
    """The torch.autograd.Function, built on first use so that torch is imported lazily."""
    import torch

    class VocabParallelCrossEntropy(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z, target, kept, weight, start, vocab_size, reduction, epsilon, group):
            out, saved, w_total = _parallel_forward(z, target, kept, weight, start, vocab_size,
                                                    reduction, epsilon, group)
            ctx.save_for_backward(*saved)
            ctx.options = (start, vocab_size, reduction, epsilon, w_total)
            return out

        @staticmethod
        def backward(ctx, grad_out):
            grad = _parallel_backward(grad_out, ctx.saved_tensors, ctx.options)
            return grad, None, None, None, None, None, None, None, None

    return VocabParallelCrossEntropy


def vocab_parallel_cross_entropy(logits: torch.Tensor, target: torch.Tensor, vocab_size: int, *,
                                 weight: torch.Tensor | None = None, ignore_index: int = -100,
                                 reduction: str = "mean", label_smoothing: float = 0.0,
                                 group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """Cross-entropy of logits split along the vocabulary across the ranks of a process group.

    Each rank calls it with its own shard of the logits and the same ``target``; every rank
    gets the same loss, equal to ``torch.nn.functional.cross_entropy`` of the full logits, and
    autograd gives each rank the gradient of its shard.

    Parameters
    ----------
    logits : torch.Tensor
        Shape ``(..., V_r)``, floating: this rank's columns ``[start, end)`` of the logits, with
        ``(start, end) = shard_bounds(vocab_size, world_size)[rank]``. The class dimension is
        the last one (as in Megatron-LM), not dimension 1 as in ``F.cross_entropy``.
    target : torch.Tensor
        Shape ``(...)``, int64 class indices in ``[0, vocab_size)`` or ``ignore_index``; the
        same on every rank.
    vocab_size : int
        :math:`V`, the total number of classes.
    weight : torch.Tensor, optional
        Class weights, shape ``(V,)``: the **full** vector on every rank (it is small; each rank
        uses its slice, and all ranks need :math:`w_{y_i}` for the mean's denominator without
        a collective).
    ignore_index : int, default -100
        Targets equal to it contribute nothing, to the loss or to the mean's denominator.
    reduction : {'mean', 'sum', 'none'}
        As in ``F.cross_entropy``: ``'mean'`` divides by :math:`\\sum_i w_{y_i}` over the kept
        rows (their count without weights); ``'none'`` returns the target's shape.
    label_smoothing : float, default 0.0
        :math:`\\varepsilon \\in [0, 1]`, torch's global form (see Notes).
    group : torch.distributed.ProcessGroup, optional
        The group the vocabulary is split over (the default group if None).

    Returns
    -------
    torch.Tensor
        The loss: a scalar, or per element for ``reduction='none'`` (0 where ignored).

    Raises
    ------
    RuntimeError
        If no process group is initialized.
    ValueError
        For a wrong reduction, label smoothing, dtype or shape, including logits whose last
        dimension is not this rank's shard width (the message gives the shard).
    IndexError
        For a target outside ``[0, vocab_size)`` that is not ``ignore_index``.

    Notes
    -----
    With :math:`m_i = \\max_c z_{i,c}` (all-reduce MAX),
    :math:`s_i = \\sum_c e^{z_{i,c} - m_i}` (all-reduce SUM) and
    :math:`\\operatorname{lse}_i = m_i + \\log s_i`, row :math:`i`'s loss is

    .. math::

        \\ell_i = (1-\\varepsilon)\\, w_{y_i} (\\operatorname{lse}_i - z_{i,y_i})
          + \\frac{\\varepsilon}{V} \\sum_{c=0}^{V-1} w_c (\\operatorname{lse}_i - z_{i,c}),

    where :math:`z_{i,y_i}` comes from a third all-reduce SUM to which only the owning rank
    contributes, and (only when :math:`\\varepsilon > 0`) :math:`\\sum_c w_c z_{i,c}` from a
    fourth; :math:`w \\equiv 1` without weights. So the forward makes exactly 3 all-reduces
    (MAX, SUM, SUM), 4 with label smoothing. The second term is the global mean over all
    :math:`V` classes, which is what ``F.cross_entropy(..., label_smoothing=ε)`` computes;
    :func:`megatron_vocab_parallel_cross_entropy` shows the local version that is not.

    The backward makes none: with :math:`q_i = \\operatorname{softmax}(z_i)` computed on the
    local columns from the saved :math:`\\operatorname{lse}_i`,

    .. math::

        \\frac{\\partial \\ell_i}{\\partial z_{i,c}} = (1-\\varepsilon)\\, w_{y_i} (q_{i,c} -
          [c = y_i]) + \\frac{\\varepsilon}{V}\\Big(q_{i,c}\\sum_{c'} w_{c'} - w_c\\Big),

    scaled by the incoming gradient (and divided by the mean's denominator). It is a
    ``torch.autograd.Function`` because a plain ``dist.all_reduce`` inside autograd is not
    differentiated as a collective (see :func:`naive_vocab_parallel_cross_entropy`).

    Explained in chapter 9 (Cross-entropy at LLM scale), page *Vocab-parallel cross-entropy*.

    References
    ----------
    .. [1] M. Shoeybi et al., "Megatron-LM: Training Multi-Billion Parameter Language Models
       Using Model Parallelism", arXiv:1909.08053, 2019.
    .. [2] PyTorch, ``torch.distributed.tensor.parallel.loss_parallel``.

    Examples
    --------
    On a one-process gloo group the shard is the whole vocabulary, and the loss is torch's
    (:func:`launch` runs several processes; the chapter runs 2 and 3):

    >>> import torch, torch.distributed as dist
    >>> import torch.nn.functional as F
    >>> from celib.parallel import vocab_parallel_cross_entropy
    >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    >>> z = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]], dtype=torch.float64)
    >>> y = torch.tensor([0, 2])
    >>> loss = vocab_parallel_cross_entropy(z, y, 3, label_smoothing=0.1)
    >>> round(loss.item(), 6), round(F.cross_entropy(z, y, label_smoothing=0.1).item(), 6)
    (2.000104, 2.000104)
    >>> dist.destroy_process_group()
    """
    z, t, kept, w, start, _, epsilon, group = _prepare(
        logits, target, vocab_size, weight, ignore_index, reduction, label_smoothing, group)
    out = _autograd_function().apply(z, t, kept, w, start, vocab_size, reduction, epsilon, group)
    return out.reshape(target.shape) if reduction == "none" else out


def naive_vocab_parallel_cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                                       vocab_size: int, *,
                                       group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """The mistake: vocab-parallel cross-entropy written with plain ``dist.all_reduce`` calls.

    Same forward value as :func:`vocab_parallel_cross_entropy` (mean over the rows, no options)
    with the same three all-reduces, but written as ordinary differentiable torch code: each
    rank computes the log-probability of the targets it owns (0 for the others), and an
    all-reduce SUM adds the ranks' contributions. Kept to be run and measured: its gradient
    is wrong.

    Parameters
    ----------
    logits : torch.Tensor
        Shape ``(N, V_r)``: this rank's shard, as in :func:`vocab_parallel_cross_entropy`.
    target : torch.Tensor
        Shape ``(N,)``, int64, in ``[0, vocab_size)`` (no ``ignore_index``).
    vocab_size : int
        :math:`V`.
    group : torch.distributed.ProcessGroup, optional
        The group (the default group if None).

    Returns
    -------
    torch.Tensor
        The mean loss, right in value on every rank.

    Notes
    -----
    ``dist.all_reduce`` works in place and has no autograd formula: torch differentiates
    through it as if it were the identity (and warns, at backward, that this "may lead to
    silently incorrect behavior"). Rank :math:`r`'s autograd therefore sees only its own term
    of the sum: for a row whose target another rank owns, that term is the constant 0, and the
    gradient of the rank's columns comes out 0 instead of :math:`q_{i,c}/N`. The rank owning
    the target gets the right :math:`(q_{i,c} - [c = y_i])/N`, because the sum-exp went through
    the all-reduce before the ``log`` (whose backward uses the reduced value). The error of a
    rank's gradient is thus exactly the softmax mass :math:`q_{i,c}/N` of the rows it does not
    own.

    Explained in chapter 9 (Cross-entropy at LLM scale), page *Vocab-parallel cross-entropy*.

    Examples
    --------
    With one rank every target is owned, so the mistake does not show (the chapter runs it on
    2 ranks, where it does):

    >>> import torch, torch.distributed as dist, warnings
    >>> from celib.parallel import naive_vocab_parallel_cross_entropy
    >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    >>> z = torch.tensor([[2.0, 1.0, 0.1]], requires_grad=True)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     naive_vocab_parallel_cross_entropy(z, torch.tensor([0]), 3).backward()
    >>> z.grad
    tensor([[-0.3410,  0.2424,  0.0986]])
    >>> dist.destroy_process_group()
    """
    import torch
    import torch.distributed as dist

    z, t, kept, _, start, _, _, group = _prepare(logits, target, vocab_size, None, -100,
                                                 "mean", 0.0, group)
    width = z.shape[1]
    m = z.detach().amax(dim=1)
    dist.all_reduce(m, op=dist.ReduceOp.MAX, group=group)
    s = torch.exp(z - m[:, None]).sum(dim=1)
    dist.all_reduce(s, op=dist.ReduceOp.SUM, group=group)
    log_q = z - (m + torch.log(s))[:, None]          # log-softmax of the local columns
    local = t - start
    owned = (local >= 0) & (local < width)
    picked = log_q.gather(1, local.clamp(0, width - 1)[:, None])[:, 0]
    nll = -torch.where(owned, picked, torch.zeros_like(picked))   # this rank's part of -log q_y
    dist.all_reduce(nll, op=dist.ReduceOp.SUM, group=group)      # invisible to autograd
    return nll.mean()


def megatron_vocab_parallel_cross_entropy(logits: torch.Tensor, target: torch.Tensor, *,
                                          label_smoothing: float = 0.0,
                                          group: dist.ProcessGroup | None = None,
                                          ) -> torch.Tensor:
    """Megatron-LM's vocab-parallel loss, label smoothing included: per-token, forward only.

    A re-implementation (not a copy) of the forward of ``vocab_parallel_cross_entropy`` in
    Megatron-LM's ``megatron/core/tensor_parallel/cross_entropy.py``, to measure what its label
    smoothing computes when the vocabulary is split.

    Parameters
    ----------
    logits : torch.Tensor
        Shape ``(N, K)``: this rank's shard. As in Megatron, every rank must hold ``K``
        columns, rank ``r`` the classes ``[rK, (r+1)K)`` (so ``V = RK``: Megatron pads the
        vocabulary); with unequal shards the target ownership would be wrong.
    target : torch.Tensor
        Shape ``(N,)``, int64 class indices (Megatron has no ``ignore_index``; it masks the
        per-token losses afterwards).
    label_smoothing : float, default 0.0
        Megatron's :math:`\\alpha \\in [0, 1)`.
    group : torch.distributed.ProcessGroup, optional
        The tensor-parallel group (the default group if None).

    Returns
    -------
    torch.Tensor
        The per-token loss as this rank computes it, shape ``(N,)``.

    Notes
    -----
    The three all-reduces are the same as :func:`vocab_parallel_cross_entropy`'s (MAX, then
    the SUM of the target logit, then the SUM of the sum-exp), and without smoothing the loss
    is torch's. With :math:`\\alpha > 0`, Megatron uses the *local* width :math:`K`
    (``vocab_size = exp_logits.size(-1)``) and the *local* mean of the log-probabilities, with
    no further collective:

    .. math::

        \\ell_i^{(r)} = (1 - \\beta)(\\operatorname{lse}_i - z_{i,y_i})
            - \\frac{\\beta}{K} \\sum_{c \\in \\text{shard } r} \\log q_{i,c},
        \\qquad \\beta = \\frac{\\alpha K}{K - 1}.

    On one rank (:math:`K = V`) this is the target that puts :math:`1-\\alpha` on :math:`y_i`
    and :math:`\\alpha/(V-1)` on every other class, i.e. torch's ``label_smoothing`` with
    :math:`\\varepsilon = \\alpha V/(V-1)`. Split over :math:`R > 1` ranks, the mean runs over
    the rank's own shard only, so the loss is neither that nor torch's, and it differs from
    rank to rank. (Megatron's backward uses the same local :math:`K`.) Megatron-LM issue #737
    (open, 2024) reports the local mean; issue #7464 (open) reports the local size and mean.

    Explained in chapter 9 (Cross-entropy at LLM scale), page *Vocab-parallel cross-entropy*.

    Examples
    --------
    On one rank it is torch's label smoothing with ``ε = αV/(V-1)``:

    >>> import torch, torch.distributed as dist, torch.nn.functional as F
    >>> from celib.parallel import megatron_vocab_parallel_cross_entropy
    >>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    >>> z = torch.tensor([[2.0, 1.0, 0.1, -1.0]], dtype=torch.float64)
    >>> y = torch.tensor([0])
    >>> mega = megatron_vocab_parallel_cross_entropy(z, y, label_smoothing=0.3)
    >>> ref = F.cross_entropy(z, y, label_smoothing=0.3 * 4 / 3)
    >>> f"{mega.item():.6f} {ref.item():.6f}"
    '1.039313 1.039313'
    >>> dist.destroy_process_group()
    """
    import torch
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("megatron_vocab_parallel_cross_entropy needs a process group")
    if not 0.0 <= float(label_smoothing) < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1) (Megatron asserts it), "
                         f"got {label_smoothing}")
    with torch.no_grad():
        z = logits.detach().clone()
        width = z.shape[-1]
        rank = dist.get_rank(group)
        start, end = rank * width, (rank + 1) * width
        m = z.amax(dim=-1)
        dist.all_reduce(m, op=dist.ReduceOp.MAX, group=group)
        z -= m[:, None]
        outside = (target < start) | (target >= end)
        local = (target - start).masked_fill(outside, 0)
        predicted = z.gather(1, local[:, None])[:, 0].masked_fill(outside, 0.0)
        dist.all_reduce(predicted, op=dist.ReduceOp.SUM, group=group)
        exp_z = torch.exp(z)
        sum_exp = exp_z.sum(dim=-1)
        dist.all_reduce(sum_exp, op=dist.ReduceOp.SUM, group=group)
        loss = torch.log(sum_exp) - predicted
        if label_smoothing > 0:
            beta = label_smoothing * width / (width - 1)
            log_q = torch.log(exp_z / sum_exp[:, None])
            loss = (1.0 - beta) * loss - beta * log_q.mean(dim=-1)
    return loss


# --------------------------------------------------------------------------------------------
# Running a real world of processes
# --------------------------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it: bind to port 0).

    Explained in chapter 9 (Cross-entropy at LLM scale).

    Examples
    --------
    >>> from celib.parallel import free_port
    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loopback_interface() -> str | None:
    names = [name for _, name in socket.if_nameindex()] if hasattr(socket, "if_nameindex") else []
    return next((n for n in names if n.startswith("lo")), None)


def _run_rank(rank, fn, world_size, port, folder, args, timeout):
    """The body of each spawned process: join the gloo world, run ``fn``, save its result."""
    import torch
    import torch.distributed as dist

    interface = _loopback_interface()
    if interface:  # gloo must talk over loopback, not whatever the hostname resolves to
        os.environ.setdefault("GLOO_SOCKET_IFNAME", interface)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world_size,
                            timeout=datetime.timedelta(seconds=timeout))
    try:
        result = fn(rank, world_size, *args)
    except BaseException:
        # Saved with the time, so that the launcher can name the rank that failed first (the
        # others then fail too, in their next collective, with "Connection closed by peer").
        with open(os.path.join(folder, f"rank{rank}.err"), "w", encoding="utf-8") as f:
            f.write(f"{time.time():.6f}\n{traceback.format_exc()}")
        dist.destroy_process_group()
        raise
    with open(os.path.join(folder, f"rank{rank}.pkl"), "wb") as f:
        pickle.dump(result, f)
    # Leave only when every rank has saved its result (rank 0 hosts the group's TCP store), and
    # leave at once: tearing down gloo's threads and torch's static objects in a normal exit
    # aborted a rank now and then (SIGABRT, "terminate called without an active exception")
    # after its work was done.
    dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _stop(context) -> None:
    for process in context.processes:
        if process.is_alive():
            process.terminate()
        process.join(5)


def _failure(folder: str, world_size: int,
             error: mp.ProcessRaisedException | mp.ProcessExitedException) -> str:
    """The message for a failed run: the traceback of the rank that failed first."""
    reports = []
    for rank in range(world_size):
        path = os.path.join(folder, f"rank{rank}.err")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                stamp, _, text = f.read().partition("\n")
            reports.append((float(stamp), rank, text))
    if not reports:
        return f"rank {error.error_index} of {world_size} failed: {error}"
    reports.sort()
    _, rank, text = reports[0]
    others = [r for _, r, _ in reports[1:]]
    also = f" (then rank(s) {others} failed too)" if others else ""
    return f"rank {rank} of {world_size} failed first{also}:\n{text}"


def launch(fn: Callable[..., Any], world_size: int, args: tuple = (), *,
           timeout: float = 120.0, start_method: str = "spawn") -> list:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` processes joined in a gloo group.

    Each process sets ``torch.set_num_threads(1)``, joins a gloo process group over
    ``tcp://127.0.0.1:PORT`` on a free port (with ``GLOO_SOCKET_IFNAME`` set to the loopback
    interface), runs ``fn`` and returns its result, which must pickle.

    Parameters
    ----------
    fn : callable
        ``fn(rank, world_size, *args)``. With the ``'spawn'`` start method it must be
        importable from a module (not defined in a notebook or a doctest).
    world_size : int
        The number of processes, at least 1.
    args : tuple
        Extra arguments for ``fn``; they must pickle.
    timeout : float, default 120.0
        Seconds for the whole run, and the process group's timeout for each collective.
    start_method : {'spawn', 'fork', 'forkserver'}
        How ``torch.multiprocessing`` starts the processes. ``'spawn'`` starts fresh
        interpreters (each imports torch: about a second); ``'fork'`` is faster on Linux.

    Returns
    -------
    list
        ``fn``'s result on each rank, in rank order.

    Raises
    ------
    RuntimeError
        As soon as one rank fails: the other ranks are stopped, and the message gives the
        number and the traceback of the rank that failed first.
    TimeoutError
        If the ranks have not finished after ``timeout`` seconds (they are stopped).
    ValueError
        If ``world_size`` is not a positive integer.

    Notes
    -----
    A rank that raises would leave the others blocked in their next collective; the launcher
    notices the failure within 0.1 s and terminates them, so a failing rank never hangs the
    caller.

    Explained in chapter 9 (Cross-entropy at LLM scale), page *Vocab-parallel cross-entropy*.

    Examples
    --------
    ``operator.mul(rank, world_size)`` on two ranks (a function importable from a module):

    >>> import operator
    >>> from celib.parallel import launch
    >>> launch(operator.mul, 2, start_method="fork")
    [0, 2]
    """
    import torch.multiprocessing as mp

    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="celib-parallel-") as folder:
        with warnings.catch_warnings():
            # Python 3.12+ warns that fork() in a process with threads may deadlock; the
            # children here only run torch code that starts its own threads after the fork.
            warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
            context = mp.start_processes(
                _run_rank, args=(fn, world_size, port, folder, tuple(args), timeout),
                nprocs=world_size, join=False, start_method=start_method)
        deadline = time.monotonic() + timeout
        try:
            while not context.join(timeout=0.1):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the {world_size} ranks did not finish within "
                                       f"{timeout} s")
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as e:
            _stop(context)
            raise RuntimeError(_failure(folder, world_size, e)) from None
        finally:
            _stop(context)
        results = []
        for rank in range(world_size):
            with open(os.path.join(folder, f"rank{rank}.pkl"), "rb") as f:
                results.append(pickle.load(f))
    return results
