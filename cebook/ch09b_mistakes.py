"""Two wrong vocab-parallel losses, reproduced to be run and measured on the page
*Vocab-parallel cross-entropy* (chapter 9).

Not part of celib: a user of :mod:`celib.parallel` needs the right loss,
:func:`celib.parallel.vocab_parallel_cross_entropy`; these reproduce other systems' mistakes so
that the chapter can measure them on a real gloo world (``cebook.ch09b_helpers.chapter_world``
runs them on every rank):

- :func:`naive_vocab_parallel_cross_entropy`: the forward written with plain
  ``dist.all_reduce`` calls inside autograd, whose gradient is silently wrong;
- :func:`megatron_vocab_parallel_cross_entropy`: Megatron-LM's label smoothing, which averages
  over the rank's own shard of the vocabulary instead of all of it;
- :func:`disagreeing_world`: the user's mistake of ranks that pass different arguments, and
  what celib's check of the ranks' agreement makes of it.

Neither checks that the ranks agree (the mistakes are the point); both check their own
arguments. torch is imported inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from celib.parallel import shard_bounds

if TYPE_CHECKING:
    import torch
    import torch.distributed as dist

__all__ = ["naive_vocab_parallel_cross_entropy", "megatron_vocab_parallel_cross_entropy",
           "disagreeing_world"]


def _check_shard(logits, target, group) -> None:
    """A process group, (N, K) floating logits and (N,) int64 targets: the common checks."""
    import torch
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("this vocab-parallel loss needs a process group: call "
                           "torch.distributed.init_process_group first")
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() \
            or logits.dim() != 2:
        raise ValueError(f"logits must be a floating torch.Tensor of shape (N, V_r), got "
                         f"{getattr(logits, 'shape', type(logits).__name__)}")
    if not isinstance(target, torch.Tensor) or target.dtype != torch.int64 \
            or tuple(target.shape) != (logits.shape[0],):
        raise ValueError(f"target must be an int64 torch.Tensor of shape ({logits.shape[0]},), "
                         f"got {getattr(target, 'dtype', type(target).__name__)}")


def naive_vocab_parallel_cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                                       vocab_size: int, *,
                                       group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """The mistake: vocab-parallel cross-entropy written with plain ``dist.all_reduce`` calls.

    Same forward value as :func:`celib.parallel.vocab_parallel_cross_entropy` (mean over the
    rows, no options) with the same three all-reduces, but written as ordinary differentiable
    torch code: each rank computes the log-probability of the targets it owns (0 for the
    others), and an all-reduce SUM adds the ranks' contributions. Kept to be run and measured:
    its gradient is wrong.

    Parameters
    ----------
    logits : torch.Tensor
        Shape ``(N, V_r)``: this rank's shard, as in
        :func:`celib.parallel.vocab_parallel_cross_entropy`.
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
    >>> from cebook.ch09b_mistakes import naive_vocab_parallel_cross_entropy
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

    _check_shard(logits, target, group)
    rank, world_size = dist.get_rank(group), dist.get_world_size(group)
    start, end = shard_bounds(vocab_size, world_size)[rank]
    if logits.shape[1] != end - start:
        raise ValueError(f"rank {rank} holds classes [{start}, {end}): its logits need "
                         f"{end - start} columns, not {logits.shape[1]}")
    if bool(((target < 0) | (target >= vocab_size)).any()):
        raise IndexError(f"targets must be class indices in [0, {vocab_size})")
    z, t = logits, target
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
    The three all-reduces are the same as celib's ``vocab_parallel_cross_entropy`` (MAX, then
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
    >>> from cebook.ch09b_mistakes import megatron_vocab_parallel_cross_entropy
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

    _check_shard(logits, target, group)
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



def disagreeing_world(rank: int, world_size: int, vocab_size: int, n: int) -> dict:
    """The page's ranks that disagree: what each rank gets when the last rank's call differs.

    Every rank builds the page's logits (``cebook.ch09b_helpers.chapter_data``) and keeps its
    shard; the last rank then passes, in turn, one row fewer (another batch size) and
    ``reduction='sum'`` instead of the mean. Returns, for ``'batch'`` and ``'reduction'``,
    ``(exception type name, message, collectives called)`` as each rank caught it, and for
    ``'unchecked'`` the loss each rank computes with the other reduction and
    ``check_ranks=False`` (the silent failure the check prevents). Each case ends with a
    barrier, so a rank left waiting would hang the run (the launch's timeout would end it).
    """
    import torch.distributed as dist

    from cebook.ch09b_helpers import chapter_data
    from celib.parallel import count_collectives, vocab_parallel_cross_entropy

    z, y = chapter_data(vocab_size, n)
    start, end = shard_bounds(vocab_size, world_size)[rank]
    local, last = z[:, start:end], rank == world_size - 1
    calls = {"batch": ((local[:-1], y[:-1]) if last else (local, y), {}),
             "reduction": ((local, y), {"reduction": "sum"} if last else {})}
    out: dict = {}
    for case, (args, options) in calls.items():
        with count_collectives() as counted:
            try:
                vocab_parallel_cross_entropy(*args, vocab_size, **options)
                out[case] = None
            except ValueError as e:
                out[case] = (type(e).__name__, str(e), counted.calls)
        dist.barrier()
    options = calls["reduction"][1]
    out["unchecked"] = vocab_parallel_cross_entropy(local, y, vocab_size, check_ranks=False,
                                                    **options).item()
    return out
