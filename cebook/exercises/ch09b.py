"""Checkers for the exercises of chapter 9's page *Vocab-parallel cross-entropy*.

Exercise 2's logits come from :func:`cebook.ch09b_helpers.exercise2_data`, the same function
the page calls, so the checker depends on nothing the page defines.
"""

from __future__ import annotations

import numpy as np

from celib.functional import cross_entropy
from celib.parallel import shard_bounds

from . import as_number, checker, correct, require

__all__ = ["check_ex1", "check_ex2", "check_ex3"]

VOCAB, RANKS, CLASS = 50257, 4, 25000   # exercise 1: GPT-2's vocabulary over 4 ranks
SMOOTHING = 0.1                         # exercise 2


def _as_int(value, what: str) -> int:
    number = as_number(value, what)
    require(number == int(number), f"{what} should be a whole number, not {value!r}")
    return int(number)


@checker
def check_ex1(rank, column) -> None:
    """Exercise 1: the rank holding class 25,000 of V = 50,257 over 4 ranks, and its column."""
    rank = _as_int(rank, "the rank")
    column = _as_int(column, "the local column")
    bounds = shard_bounds(VOCAB, RANKS)
    owner = next(r for r, (start, end) in enumerate(bounds) if start <= CLASS < end)
    require(0 <= rank < RANKS, f"there are {RANKS} ranks, numbered 0 to {RANKS - 1}")
    require(rank == owner, f"rank {rank} holds classes [{bounds[rank][0]}, {bounds[rank][1]}): "
            f"is {CLASS} in there?")
    require(column != CLASS - rank * (VOCAB // RANKS),
            "that is the column with equal shards of V // R classes: 50,257 is not a multiple "
            "of 4, so which ranks hold one class more?")
    require(column == CLASS - bounds[rank][0],
            "the local column is the class minus the first class of the rank's shard")
    correct(f"class {CLASS} is column {column} of rank {rank}, whose shard is "
            f"[{bounds[rank][0]}, {bounds[rank][1]}).")


@checker
def check_ex2(loss) -> None:
    """Exercise 2: the label-smoothed mean loss of the 3-shard logits, from per-shard sums."""
    from cebook.ch09b_helpers import exercise2_data

    loss = as_number(loss, "the loss")
    shards, y = exercise2_data()
    z = np.concatenate(shards, axis=1)
    v = z.shape[1]
    expected = float(cross_entropy(z, y, label_smoothing=SMOOTHING))
    plain = float(cross_entropy(z, y))
    other = float(cross_entropy(z, y, label_smoothing=SMOOTHING * v / (v - 1)))
    require(not np.isclose(loss, plain, rtol=1e-9, atol=0),
            "that is the loss without label smoothing")
    require(not np.isclose(loss, other, rtol=1e-9, atol=0),
            "that spreads epsilon over the V - 1 other classes (Megatron's convention on one "
            "rank), not epsilon / V over all V classes as torch does")
    require(np.isclose(loss, expected, rtol=1e-9, atol=0),
            "not torch's label-smoothed loss: the smoothing term needs the sum of the logits "
            "over the whole vocabulary (all three shards) and V = 12, not one shard's mean")
    correct(f"{loss:.6f}, equal to F.cross_entropy(z, y, label_smoothing={SMOOTHING}).")


@checker
def check_ex3(without_smoothing, with_smoothing) -> None:
    """Exercise 3: the fewest all-reduces a safe forward needs, without and with smoothing."""
    a = _as_int(without_smoothing, "the count without label smoothing")
    b = _as_int(with_smoothing, "the count with label smoothing")
    require(a >= 2, "the sum of exp(z - m) needs the global max m first, and that max cannot "
            "travel in the same all-reduce as a sum: one op per all-reduce")
    require(b >= a, "label smoothing only adds work")
    require((a, b) != (3, 4), "that is what celib and Megatron-LM do, not the fewest possible")
    require(a == 2, "after the MAX, everything left is a SUM: how many SUMs do you need if you "
            "stack the tensors?")
    require(b == 2, "the sum of the logits is a SUM too, and it does not depend on the max")
    correct("2 and 2: a MAX, then one SUM of the stacked [sum-exp, target logit, sum of logits].")
