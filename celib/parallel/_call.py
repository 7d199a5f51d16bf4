"""One rank's call of the loss, checked on that rank (no collective): the :class:`Shard` the
forward computes on, and the :class:`~celib.parallel._agreement.Call` every rank must agree on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _agreement, _arguments
from ._shards import shard_bounds

if TYPE_CHECKING:  # torch is imported inside the functions that need it
    import torch
    import torch.distributed as dist


@dataclass(frozen=True)
class Shard:
    """One rank's part of a checked call: its logits as rows, and where its columns start."""

    z: torch.Tensor              # (n, width): the rank's columns, one row per target
    start: int                   # the rank's first class
    kept: torch.Tensor           # (n,) bool: the targets that are not ignore_index
    call: _agreement.Call        # what every rank must agree on


def _check_logits(logits: Any, rank: int, world_size: int, vocab_size: int) -> int:
    """The logits: a floating tensor whose last dimension is this rank's shard; its start."""
    _arguments.tensor(logits, "logits", "this rank's shard of the logits, shape (..., V_r)")
    if not logits.is_floating_point() or logits.is_complex():
        raise ValueError(f"logits must have a floating dtype (float16, bfloat16, float32 or "
                         f"float64), got {logits.dtype}")
    if logits.dim() < 1:
        raise ValueError("logits must have a class dimension, the last one: shape (..., V_r), "
                         "got a 0-d tensor")
    start, end = shard_bounds(vocab_size, world_size)[rank]
    if logits.shape[-1] != end - start:
        raise ValueError(f"rank {rank} of {world_size} holds classes [{start}, {end}) of "
                         f"vocab_size={vocab_size}, {end - start} columns, but its logits have "
                         f"{logits.shape[-1]} (shape {tuple(logits.shape)})")
    return start


def _check_target(target: Any, logits: torch.Tensor, vocab_size: int,
                  ignore_index: int) -> torch.Tensor:
    """The targets: int64 class indices of the logits' leading shape; the kept mask."""
    import torch

    _arguments.tensor(target, "target", "int64 class indices, the same on every rank")
    if target.dtype != torch.int64:
        raise ValueError(f"target must be a tensor of class indices with dtype int64 "
                         f"(torch.long), got {target.dtype}")
    if tuple(target.shape) != tuple(logits.shape[:-1]):
        raise ValueError(f"target shape {tuple(target.shape)} does not match logits shape "
                         f"{tuple(logits.shape)} without its last (class) dimension")
    flat = target.reshape(-1)
    kept = flat != ignore_index
    bad = kept & ((flat < 0) | (flat >= vocab_size))
    if bool(bad.any()):
        raise IndexError(f"Target {int(flat[bad][0])} is out of bounds: class indices must be "
                         f"in [0, {vocab_size}) (or ignore_index={ignore_index})")
    return kept


def _check_weight(weight: Any, logits: torch.Tensor, vocab_size: int) -> torch.Tensor | None:
    """The class weights: None, or the full (V,) vector in the logits' dtype (as torch)."""
    if weight is None:
        return None
    _arguments.tensor(weight, "weight", f"the full class-weight vector, shape ({vocab_size},)")
    if tuple(weight.shape) != (vocab_size,):
        raise ValueError(f"weight must have shape ({vocab_size},), the full class-weight "
                         f"vector on every rank, got shape {tuple(weight.shape)}")
    if weight.dtype != logits.dtype:
        raise ValueError(f"weight must have the logits' dtype {logits.dtype}, as torch "
                         f"requires (it refuses other dtypes), got {weight.dtype}")
    return weight


def parse(logits: Any, target: Any, vocab_size: Any, weight: Any, ignore_index: Any,
          reduction: Any, label_smoothing: Any, group: dist.ProcessGroup | None) -> Shard:
    """Check every argument on this rank (no collective); raise the first mistake."""
    import torch.distributed as dist

    vocab = _arguments.positive_int(vocab_size, "vocab_size")
    rank, world_size = dist.get_rank(group), dist.get_world_size(group)
    if world_size > vocab:
        raise ValueError(f"vocab_size={vocab} classes cannot be split over {world_size} ranks: "
                         "every rank needs at least one class")
    mode = _arguments.check_reduction(reduction)
    epsilon = _arguments.check_label_smoothing(label_smoothing)
    ignore = _arguments.check_ignore_index(ignore_index)
    start = _check_logits(logits, rank, world_size, vocab)
    kept = _check_target(target, logits, vocab, ignore)
    w = _check_weight(weight, logits, vocab)
    call = _agreement.Call(vocab_size=vocab, dtype=logits.dtype, reduction=mode,
                           label_smoothing=epsilon, ignore_index=ignore,
                           target_shape=tuple(target.shape), target=target.reshape(-1),
                           weight=w)
    return Shard(z=logits.reshape(-1, logits.shape[-1]), start=start, kept=kept, call=call)
