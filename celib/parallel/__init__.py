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
Before the three, one all-gather of a small signature checks that the ranks' calls agree.

The package, one concern per module:

- the algorithm: :func:`vocab_parallel_cross_entropy` (``_loss``: a ``torch.autograd.Function``
  with torch's ``F.cross_entropy`` semantics: weights, ``ignore_index``, label smoothing,
  reductions, non-finite logits) and :func:`shard_bounds` (``_shards``);
- one rank's call, checked on that rank (``_call``), and the ranks' agreement:
  :class:`RankMismatchError` (``_agreement``), raised on every rank when their calls differ;
- instrumentation: :func:`count_collectives` and :class:`CollectiveCounter` (``_counting``);
- a launcher: :func:`launch` and :func:`free_port` (``_launch``), which run a function on a
  real gloo world of processes on 127.0.0.1;
- the argument checks and their messages (``_arguments``).

The two wrong versions the chapter runs and measures (a plain ``all_reduce`` inside autograd,
and Megatron-LM's local label smoothing) are not part of the library: they live next to the
chapter, in ``cebook.ch09b_mistakes``.

torch is imported inside the functions: ``import celib.parallel`` needs numpy only. Chapter 9
(Cross-entropy at LLM scale, book/09_llm_scale.ipynb), on its page *Vocab-parallel cross-entropy*,
explains it. """

from __future__ import annotations

from ._agreement import RankMismatchError
from ._counting import CollectiveCounter, count_collectives
from ._launch import free_port, launch
from ._loss import vocab_parallel_cross_entropy
from ._shards import shard_bounds

__all__ = [
    "vocab_parallel_cross_entropy",
    "shard_bounds",
    "RankMismatchError",
    "count_collectives",
    "CollectiveCounter",
    "launch",
    "free_port",
]
