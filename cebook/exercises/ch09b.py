"""Checkers for the exercises of chapter 9's page *Vocab-parallel cross-entropy*.

Exercise 2's logits come from :func:`cebook.ch09b_helpers.exercise2_data`, the same function
the page calls, so the checker depends on nothing the page defines.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from celib.functional import cross_entropy
from celib.parallel import shard_bounds

from . import as_number, call_reader, checker, correct, require

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


# The joins that rebuild the full logits from the blocks: exercise 2 forbids them.
_JOINS = {np.concatenate, np.hstack, np.column_stack, np.block, np.append, np.stack}


class _RankBlock(np.ndarray):
    """One rank's block of logits: numpy works on it as usual, but refuses to join 2-D blocks
    into wider ones, which is what a rank that holds only its own block could not do."""

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        result = super().__array_function__(func, types, args, kwargs)
        blocks = [a for a in _flatten(args) if isinstance(a, _RankBlock) and a.ndim == 2]
        require(func not in _JOINS or not blocks or np.ndim(result) < 2
                or np.shape(result)[-1] <= max(b.shape[1] for b in blocks),
                f"your function joins the shards with np.{func.__name__}: a rank holds only "
                "its own block, so take the target logit from the shard that owns the target")
        return result


def _flatten(args: Iterable[Any]) -> Iterator[Any]:
    for a in args:
        if isinstance(a, list | tuple):
            yield from _flatten(a)
        else:
            yield a


def _reader_loss(ex2_loss: Any, shards: list[np.ndarray], y: np.ndarray) -> float:
    blocks = [np.ascontiguousarray(b).view(_RankBlock) for b in shards]
    loss = call_reader(ex2_loss, blocks, y.copy(), SMOOTHING, what="ex2_loss")
    return as_number(np.asarray(loss, dtype=np.float64), "what ex2_loss returns")


@checker
def check_ex2(ex2_loss) -> None:
    """Exercise 2: a function of the shards that gives the label-smoothed mean loss from
    per-shard maxima, sums and the owning shard's target logit."""
    from cebook.ch09b_helpers import exercise2_data

    shards, y = exercise2_data()
    loss = _reader_loss(ex2_loss, shards, y)
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
    # Other logits, V = 11 in uneven shards of 4, 4 and 3 classes: no number typed in passes.
    rng = np.random.default_rng(10)
    z_other, y_other = 3 * rng.standard_normal((6, 11)), rng.integers(0, 11, size=6)
    other_loss = _reader_loss(ex2_loss, np.split(z_other, [4, 8], axis=1), y_other)
    require(np.isclose(other_loss, float(cross_entropy(z_other, y_other,
                                                       label_smoothing=SMOOTHING)),
                       rtol=1e-9, atol=0),
            "right on the exercise's logits but not on other ones (V = 11 in shards of 4, 4 "
            "and 3 classes): compute V and each shard's first class from the shards")
    correct(f"{loss:.6f}, equal to F.cross_entropy(z, y, label_smoothing={SMOOTHING}), from "
            "the shards alone.")


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
