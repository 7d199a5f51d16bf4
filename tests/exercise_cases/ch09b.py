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
        "accept": [(_right,)],
        "reject": [
            (float(cross_entropy(_z, _y)),),                              # forgot the smoothing
            (float(cross_entropy(_z, _y, label_smoothing=0.1 * 12 / 11)),),  # eps / (V - 1)
            (_megatron_rank0(),),                                         # one shard's mean
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
