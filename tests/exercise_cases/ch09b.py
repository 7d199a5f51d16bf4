"""Exercise cases for chapter 9's page Vocab-parallel cross-entropy (cebook/exercises/ch09b.py)."""

import numpy as np

from cebook.ch09b_helpers import exercise2_data
from celib.functional import cross_entropy

_shards, _y = exercise2_data()
_z = np.concatenate(_shards, axis=1)
_right = float(cross_entropy(_z, _y, label_smoothing=0.1))


def _megatron_rank0():
    """Rank 0's loss with Megatron's local label smoothing (K = 4 columns, local mean)."""
    lse = np.log(np.sum(np.exp(_z), axis=1))
    log_q = _z - lse[:, None]
    beta = 0.1 * 4 / 3
    nll = -log_q[np.arange(len(_y)), _y]
    return float(np.mean((1 - beta) * nll - beta * log_q[:, 0:4].mean(axis=1)))


def _per_shard_loss(shards, y, eps):
    """The solution: per-shard max, sum-exp, owning shard's target logit and sum of logits."""
    n, starts = len(y), np.cumsum([0] + [b.shape[1] for b in shards[:-1]])
    vocab = sum(b.shape[1] for b in shards)
    m = np.max([b.max(axis=1) for b in shards], axis=0)
    lse = m + np.log(np.sum([np.exp(b - m[:, None]).sum(axis=1) for b in shards], axis=0))
    z_y = np.sum([np.where((y >= a) & (y < a + b.shape[1]),
                           b[np.arange(n), np.clip(y - a, 0, b.shape[1] - 1)], 0.0)
                  for a, b in zip(starts, shards, strict=True)], axis=0)
    z_sum = np.sum([b.sum(axis=1) for b in shards], axis=0)
    return np.mean((1 - eps) * (lse - z_y) + eps * (lse - z_sum / vocab))


def _joined_loss(shards, y, eps):
    """The old solution: right number, but z_y from the concatenated logits (breaks the rule)."""
    z = np.concatenate(shards, axis=1)
    lse = np.log(np.exp(z).sum(axis=1))
    return np.mean((1 - eps) * (lse - z[np.arange(len(y)), y]) + eps * (lse - z.mean(axis=1)))


CASES = {
    "check_ex1": {
        "accept": [(1, 12435)],
        "reject": [
            (1, 12436),           # equal shards of 50257 // 4 = 12564 classes (Megatron's rK)
            (2, 25000 - 25129),   # the wrong rank (off-by-one in the shard's end)
            (1, 25000),           # the global class index, not the local column
        ],
    },
    "check_ex2": {
        "accept": [(_per_shard_loss,)],
        "reject": [
            (_joined_loss,),                                          # joins the shards
            (lambda shards, y, eps: float(cross_entropy(_z, _y)),),   # forgot the smoothing
            (lambda shards, y, eps:                                   # eps / (V - 1)
             float(cross_entropy(_z, _y, label_smoothing=0.1 * 12 / 11)),),
            (lambda shards, y, eps: _megatron_rank0(),),              # one shard's mean
            (lambda shards, y, eps: _right,),                         # the number typed in
            (_right,),                                                # a number, not a function
        ],
    },
    "check_ex3": {
        "accept": [(2, 2)],
        "reject": [
            (3, 4),    # the counts of the chapter's implementation
            (1, 1),    # one SUM of exp(z) without the max: overflows
            (2, 3),    # a separate all-reduce for the sum of the logits
        ],
    },
}
