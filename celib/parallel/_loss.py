"""The vocab-parallel loss: local checks, the agreement, three all-reduces, a local backward."""

from __future__ import annotations

import math
from functools import cache
from typing import TYPE_CHECKING, Any

from . import _agreement, _arguments, _call
from ._call import Shard

if TYPE_CHECKING:  # torch is imported inside the functions that need it
    import torch
    import torch.distributed as dist


def _global_lse(z: torch.Tensor, group: dist.ProcessGroup | None) -> torch.Tensor:
    """Each row's log-sum-exp over the whole vocabulary: an all-reduce MAX, then a SUM.

    A row whose global maximum is not finite (a +inf, a nan, or only -inf) gets nan, as in
    torch's log_softmax: there inf - inf, or -inf - (-inf), is nan.
    """
    import torch
    import torch.distributed as dist

    m = z.detach().amax(dim=1) if z.shape[0] else z.new_zeros(0)
    # A MAX over the ranks need not propagate nan (it compares); +inf poisons the row alike.
    m = torch.where(torch.isnan(m), torch.full_like(m, math.inf), m)
    dist.all_reduce(m, op=dist.ReduceOp.MAX, group=group)
    finite = torch.isfinite(m)
    shift = torch.where(finite, m, torch.zeros_like(m))
    s = torch.exp(z - shift[:, None]).sum(dim=1)
    dist.all_reduce(s, op=dist.ReduceOp.SUM, group=group)
    return torch.where(finite, shift + torch.log(s), torch.full_like(m, math.nan))


def _target_logit(z: torch.Tensor, owned: torch.Tensor, local: torch.Tensor,
                  group: dist.ProcessGroup | None) -> torch.Tensor:
    """z_{i, y_i}: an all-reduce SUM to which only the rank owning y_i contributes."""
    import torch
    import torch.distributed as dist

    width = z.shape[1]
    picked = z.gather(1, local.clamp(0, width - 1)[:, None])[:, 0]
    z_y = torch.where(owned, picked, torch.zeros_like(picked))
    dist.all_reduce(z_y, op=dist.ReduceOp.SUM, group=group)
    return z_y


def _smoothing_term(z: torch.Tensor, lse: torch.Tensor, kept: torch.Tensor, start: int,
                    weight: torch.Tensor | None, w_total: Any,
                    group: dist.ProcessGroup | None) -> torch.Tensor:
    """Σ_c w_c (lse - z_c) over the whole vocabulary: the sum of w_c z_c is a 4th all-reduce."""
    import torch
    import torch.distributed as dist

    width = z.shape[1]
    z_sum = z.sum(dim=1) if weight is None else z @ weight[start:start + width]
    dist.all_reduce(z_sum, op=dist.ReduceOp.SUM, group=group)
    return torch.where(kept, w_total * lse - z_sum, torch.zeros_like(lse))


def _forward(z: torch.Tensor, shard: Shard, group: dist.ProcessGroup | None,
             ) -> tuple[torch.Tensor, tuple[torch.Tensor | None, ...], float | torch.Tensor]:
    """The forward on one rank (``z`` is ``shard.z``, as autograd sees it): the all-reduces,
    the per-token losses and the reduction. Returns the output, the tensors the backward
    needs, and Σ_c w_c."""
    import torch

    kept, start, call = shard.kept, shard.start, shard.call
    target, weight = call.target, call.weight
    vocab_size, epsilon = call.vocab_size, call.label_smoothing
    local = target - start
    owned = kept & (local >= 0) & (local < z.shape[1])
    lse = _global_lse(z, group)
    z_y = _target_logit(z, owned, local, group)
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    w_total: float | torch.Tensor
    if weight is None:
        w_y, w_total = kept.to(z.dtype), float(vocab_size)
    else:
        w_y = torch.where(kept, weight[target.clamp(0, vocab_size - 1)], zero)
        w_total = weight.sum()
    # torch reduces the two terms separately, then mixes them: (1 - ε) nll + (ε / V) smooth
    # (so 'mean' over weights summing to 0 is ±inf, or inf - inf = nan, exactly as in torch).
    terms = [(1 - epsilon, torch.where(kept, w_y * (lse - z_y), zero))]
    if epsilon > 0:
        smooth = _smoothing_term(z, lse, kept, start, weight, w_total, group)
        terms.append((epsilon / vocab_size, smooth))
    denominator = w_y.sum()     # 'mean': Σ w_y over the kept rows, ±inf or nan if it is 0
    if call.reduction == "none":
        reduced = [term for _, term in terms]
    elif call.reduction == "sum":
        reduced = [term.sum() for _, term in terms]
    else:
        reduced = [term.sum() / denominator for _, term in terms]
    out = reduced[0] if epsilon == 0 else terms[0][0] * reduced[0] + terms[1][0] * reduced[1]
    saved = (z, lse, local, kept, owned, w_y, denominator, weight)
    return out, saved, w_total


def _backward(grad_out: torch.Tensor, saved: tuple, options: tuple) -> torch.Tensor:
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
    # softmax of the local columns (from the global lse) minus the local one-hot, with the
    # options' coefficients, each row's scale applied first as torch does (so that an infinite
    # scale, 'mean' over weights summing to 0, gives torch's inf and nan). A row whose lse is
    # nan gets nan, ignored or not: torch's log_softmax backward, g - exp(log q) Σ g, does too.
    on_target = (1 - epsilon) * w_y * g            # the coefficient of -[c = y]
    q = torch.exp(z - lse[:, None])
    if epsilon == 0:
        grad = q * on_target[:, None]
    else:
        on_class = (epsilon / vocab_size) * g       # the coefficient of -w_c
        w_local = (torch.ones(width, dtype=z.dtype, device=z.device) if weight is None
                   else weight[start:start + width])
        grad = q * (on_target + _class_total(on_class, weight, w_total))[:, None] \
            - on_class[:, None] * w_local
    rows = torch.nonzero(owned)[:, 0]
    grad[rows, local[rows]] -= on_target[rows]
    return grad


def _class_total(on_class: torch.Tensor, weight: torch.Tensor | None,
                 w_total: Any) -> torch.Tensor:
    """Σ_c on_class · w_c. Where on_class is infinite (an infinite scale: 'mean' over weights
    summing to 0), torch's backward sums the terms one by one, nan if the w_c have both signs
    or a 0: the full weight vector is on every rank, so do the same there, with no collective."""
    import torch

    total = on_class * w_total
    if weight is not None:
        blown = ~torch.isfinite(on_class)
        if bool(blown.any()):
            total = torch.where(blown, (on_class[:, None] * weight).sum(dim=1), total)
    return total


@cache
def _autograd_function() -> type[torch.autograd.Function]:
    """The torch.autograd.Function, built on first use so that torch is imported lazily."""
    import torch

    class VocabParallelCrossEntropy(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, z: torch.Tensor, shard: Shard,
                    group: dist.ProcessGroup | None) -> torch.Tensor:
            out, saved, w_total = _forward(z, shard, group)
            ctx.save_for_backward(*saved)
            call = shard.call
            ctx.options = (shard.start, call.vocab_size, call.reduction, call.label_smoothing,
                           w_total)
            return out

        @staticmethod
        def backward(ctx: Any,
                     grad_out: torch.Tensor) -> tuple[torch.Tensor, None, None]:
            return _backward(grad_out, ctx.saved_tensors, ctx.options), None, None

    return VocabParallelCrossEntropy


def vocab_parallel_cross_entropy(logits: torch.Tensor, target: torch.Tensor, vocab_size: int, *,
                                 weight: torch.Tensor | None = None, ignore_index: int = -100,
                                 reduction: str = "mean", label_smoothing: float = 0.0,
                                 group: dist.ProcessGroup | None = None,
                                 check_ranks: bool = True) -> torch.Tensor:
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
        :math:`V`, the total number of classes (a Python or numpy integer), at least the
        number of ranks.
    weight : torch.Tensor, optional
        Class weights, shape ``(V,)`` and the logits' dtype: the **full** vector on every rank
        (it is small; each rank uses its slice, and all ranks need :math:`w_{y_i}` for the
        mean's denominator without a collective).
    ignore_index : int, default -100
        Targets equal to it contribute nothing, to the loss or to the mean's denominator.
    reduction : {'mean', 'sum', 'none'}
        As in ``F.cross_entropy``: ``'mean'`` divides by :math:`\\sum_i w_{y_i}` over the kept
        rows (their count without weights); ``'none'`` returns the target's shape.
    label_smoothing : float, default 0.0
        :math:`\\varepsilon \\in [0, 1]`, torch's global form (see Notes).
    group : torch.distributed.ProcessGroup, optional
        The group the vocabulary is split over (the default group if None).
    check_ranks : bool, default True
        Check, with one all-gather of a small signature, that every rank passes the same
        arguments, before the loss's collectives (see Notes). It must be the same on every
        rank.

    Returns
    -------
    torch.Tensor
        The loss: a scalar, or per element for ``reduction='none'`` (0 where ignored).

    Raises
    ------
    RuntimeError
        If no process group is initialized.
    TypeError
        For an argument of the wrong type: a logits, target or weight that is not a tensor, a
        bool, float or string ``vocab_size`` or ``ignore_index``, a non-numeric
        ``label_smoothing``, a non-string ``reduction``.
    ValueError
        For a wrong value, dtype or shape, including logits whose last dimension is not this
        rank's shard width (the message gives the shard).
    IndexError
        For a target outside ``[0, vocab_size)`` that is not ``ignore_index``.
    RankMismatchError
        (A ``ValueError``.) On every rank, when the ranks' arguments differ: target shape or
        values, ``vocab_size``, logits dtype, ``weight``, ``ignore_index``, ``reduction`` or
        ``label_smoothing`` (the message names each field, its values and the ranks); or on
        the other ranks when one rank refused its arguments. Only with ``check_ranks=True``.

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
    fourth; :math:`w \\equiv 1` without weights. So the loss makes exactly 3 all-reduces
    (MAX, SUM, SUM), 4 with label smoothing. The second term is the global mean over all
    :math:`V` classes, which is what ``F.cross_entropy(..., label_smoothing=ε)`` computes.

    Before them, with ``check_ranks=True``, one all-gather of an 18-number int64 signature
    per rank (the fields above, the targets and the weight as O(N) fingerprints mod
    :math:`2^{31}-1`) lets every rank see every rank's call: a rank that passes another batch
    size, dtype, target or option would otherwise block the others in a collective until the
    group's timeout, crash gloo, or give each rank a different loss in silence. Its cost is
    one small latency-bound collective, of the order of one of the three all-reduces when
    :math:`N` is small, plus reading the gathered signature (a host synchronisation on a
    GPU); ``check_ranks=False`` skips it, for a loop whose ranks are known to agree.

    Non-finite logits give torch's answer: a row holding a nan or a +inf, or only -inf, has a
    nan log-sum-exp, hence a nan loss and a nan gradient (on every rank's columns, ignored row
    or not, as torch's log_softmax backward); a -inf logit in an otherwise finite row only
    has probability 0, and an infinite loss if it is the target's. With class weights whose
    sum over the kept targets is 0, ``'mean'`` divides by 0 and gives ±inf or nan (IEEE), as
    torch does.

    The backward makes no collective: with :math:`q_i = \\operatorname{softmax}(z_i)`
    computed on the local columns from the saved :math:`\\operatorname{lse}_i`,

    .. math::

        \\frac{\\partial \\ell_i}{\\partial z_{i,c}} = (1-\\varepsilon)\\, w_{y_i} (q_{i,c} -
          [c = y_i]) + \\frac{\\varepsilon}{V}\\Big(q_{i,c}\\sum_{c'} w_{c'} - w_c\\Big),

    scaled by the incoming gradient (and divided by the mean's denominator). It is a
    ``torch.autograd.Function`` because a plain ``dist.all_reduce`` inside autograd is not
    differentiated as a collective (the chapter measures what goes wrong).

    Explained in chapter 9 (Cross-entropy at LLM scale, book/09_llm_scale.ipynb), page
    *Vocab-parallel cross-entropy*.

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
    >>> inf = float("inf")
    >>> vocab_parallel_cross_entropy(torch.tensor([[inf, 1.0, 2.0]]), torch.tensor([1]), 3)
    tensor(nan)
    >>> dist.destroy_process_group()
    """
    group = _arguments.process_group(group)
    check = _arguments.flag(check_ranks, "check_ranks")
    try:
        shard, error = _call.parse(logits, target, vocab_size, weight, ignore_index,
                                   reduction, label_smoothing, group), None
    except Exception as e:  # any refusal: the other ranks must hear of it, not wait for us
        shard, error = None, e
    if check:
        device = logits.device if shard is not None else getattr(logits, "device", "cpu")
        _agreement.agree(None if shard is None else shard.call, error, device, group)
    elif error is not None:
        raise error
    assert shard is not None
    out = _autograd_function().apply(shard.z, shard, group)
    return out.reshape(target.shape) if shard.call.reduction == "none" else out
