"""The ranks agree before they compute: one all-gather of a small signature of each call.

Every collective of the loss has a size that depends on the arguments (``N`` numbers) and a
meaning that depends on them (the same targets, the same reduction). If one rank's arguments
differ, the collectives no longer match: gloo blocks until its timeout or aborts the process,
or, when the sizes happen to match, every rank silently computes a different loss. So before
its first real collective, every rank all-gathers a fixed-size int64 signature of its call
(:data:`FIELDS`): the same size on every rank whatever the arguments, so this collective
itself always matches. Then every rank compares all the signatures and, if any differ or any
rank refused its arguments, every rank raises, before any other collective: no rank is left
waiting.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported inside the functions that need it
    import torch
    import torch.distributed as dist

REDUCTION_CODES = ("none", "mean", "sum")
DTYPE_NAMES = ("float16", "bfloat16", "float32", "float64")
MAX_DIMS = 8                 # target dimensions spelled out in the signature (more: numel only)
PRIME = 2**31 - 1            # fingerprints are sums of terms mod this prime
NO_WEIGHT = -1               # a fingerprint is >= 0: -1 says "weight=None"
ERROR_CODES = ("TypeError", "ValueError", "IndexError")


class RankMismatchError(ValueError):
    """The ranks of a vocab-parallel call disagree: raised on every rank, before any collective
    of the loss (the message names each differing field, its value on each rank, and the ranks).

    Also raised on the ranks whose arguments were fine when another rank refused its own (that
    rank raises its own ``TypeError``, ``ValueError`` or ``IndexError``).
    """


@dataclass(frozen=True)
class Call:
    """What every rank must agree on; the target and the weight as fingerprints."""

    vocab_size: int
    dtype: Any                   # the logits' torch.dtype
    reduction: str
    label_smoothing: float
    ignore_index: int
    target_shape: tuple[int, ...]
    target: torch.Tensor         # flat int64 targets
    weight: torch.Tensor | None


# The signature: one int64 per slot, in this order. A field spans ``width`` slots.
FIELDS = (("status", 1), ("vocab_size", 1), ("logits dtype", 1), ("reduction", 1),
          ("label_smoothing", 1), ("ignore_index", 1), ("weight", 1),
          ("target shape", MAX_DIMS + 2), ("target values", 1))
SIZE = sum(width for _, width in FIELDS)


def fingerprint(values: torch.Tensor) -> torch.Tensor:
    """:math:`\\sum_i (v_i \\bmod P)\\,a_i \\bmod P`, with :math:`P = 2^{31}-1` and position
    weights :math:`a_i = 1 + (48271\\, i \\bmod (P-1))`, distinct and nonzero for
    :math:`i < P - 1`: one changed value, or two swapped ones, always changes it. O(N), and
    no int64 overflow (each term is below :math:`2^{31}`, the sum below :math:`2^{63}`)."""
    flat = values.reshape(-1)
    terms = (flat.remainder(PRIME) * _position_weights(flat.numel(), flat.device))
    return terms.remainder(PRIME).sum()


@lru_cache(maxsize=4)
def _position_weights(n: int, device: Any) -> torch.Tensor:
    """The :math:`a_i` of :func:`fingerprint`, kept for the last few sizes (a batch size is
    usually the same from call to call)."""
    import torch

    position = torch.arange(n, dtype=torch.int64, device=device)
    return 1 + (position * 48271).remainder(PRIME - 1)


def _float_bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", x))[0]


def _bits_float(n: int) -> float:
    return struct.unpack("<d", struct.pack("<q", n))[0]


def _dtype_code(dtype: Any) -> int:
    name = str(dtype).removeprefix("torch.")
    return DTYPE_NAMES.index(name) if name in DTYPE_NAMES else len(DTYPE_NAMES)


def signature(call: Call | None, error: BaseException | None, device: Any) -> torch.Tensor:
    """This rank's signature: the call's fields, or only a status code if it refused them."""
    import torch

    sig = torch.zeros(SIZE, dtype=torch.int64, device=device)
    if error is not None or call is None:
        kind = type(error).__name__
        sig[0] = 1 + (ERROR_CODES.index(kind) if kind in ERROR_CODES else len(ERROR_CODES))
        return sig
    shape = list(call.target_shape[:MAX_DIMS]) + [-1] * (MAX_DIMS - len(call.target_shape))
    numel = call.target.numel()
    sig[1:SIZE - 1] = torch.tensor(
        [call.vocab_size, _dtype_code(call.dtype), REDUCTION_CODES.index(call.reduction),
         _float_bits(call.label_smoothing), call.ignore_index, NO_WEIGHT,
         len(call.target_shape), *shape, numel], dtype=torch.int64)
    if call.weight is not None:
        bits = call.weight.detach().to(torch.float64).view(torch.int64)
        sig[6] = fingerprint(bits)
    sig[SIZE - 1] = fingerprint(call.target)
    return sig


def _show(name: str, values: list[int]) -> str:
    """A field's slots, as the user wrote the value."""
    value = values[0]
    if name == "logits dtype":
        return f"torch.{DTYPE_NAMES[value]}" if value < len(DTYPE_NAMES) else "another dtype"
    if name == "reduction":
        return repr(REDUCTION_CODES[value])
    if name == "label_smoothing":
        return repr(_bits_float(value))
    if name == "weight":
        return "None" if value == NO_WEIGHT else f"a tensor (fingerprint {value:#x})"
    if name == "target shape":
        ndim, numel = values[0], values[-1]
        if ndim > MAX_DIMS:
            return f"{ndim} dimensions, {numel} elements"
        return str(tuple(values[1:1 + ndim]))
    if name == "target values":
        return f"fingerprint {value:#x}"
    return str(value)


def _ranks(ranks: list[int]) -> str:
    return f"rank {ranks[0]}" if len(ranks) == 1 else "ranks " + ", ".join(map(str, ranks))


def _differences(rows: list[list[int]]) -> list[str]:
    """One line per field whose value is not the same on every rank."""
    lines: list[str] = []
    slot = 0
    for name, width in FIELDS:
        by_value: dict[tuple[int, ...], list[int]] = {}
        for rank, row in enumerate(rows):
            by_value.setdefault(tuple(row[slot:slot + width]), []).append(rank)
        redundant = name == "target values" and any("target shape:" in x for x in lines)
        if len(by_value) > 1 and name != "status" and not redundant:
            parts = [f"{_show(name, list(value))} on {_ranks(ranks)}"
                     for value, ranks in by_value.items()]
            lines.append(f"  {name}: " + "; ".join(parts))
        slot += width
    return lines


def agree(call: Call | None, error: BaseException | None, device: Any,
          group: dist.ProcessGroup | None) -> None:
    """All-gather every rank's signature (one collective); raise on every rank if they differ.

    This rank raises its own ``error`` if it has one; the other ranks raise
    :class:`RankMismatchError` naming the rank(s) that refused their arguments. When every rank
    accepted its arguments but the signatures differ, every rank raises
    :class:`RankMismatchError` listing each field that differs, with its value on each rank.
    """
    import torch
    import torch.distributed as dist

    mine = signature(call, error, device)
    world_size = dist.get_world_size(group)
    gathered = [torch.empty_like(mine) for _ in range(world_size)]
    dist.all_gather(gathered, mine, group=group)
    if error is not None:
        raise error
    if bool((torch.stack(gathered) == mine).all()):
        return                 # the usual case: every rank's call is this one, accepted
    rows = [row.tolist() for row in gathered]
    refused = [rank for rank, row in enumerate(rows) if row[0] != 0]
    if refused:
        kinds = sorted({(ERROR_CODES + ("another exception",))[rows[r][0] - 1] for r in refused})
        raise RankMismatchError(
            f"vocab_parallel_cross_entropy: {_ranks(refused)} of {world_size} refused its "
            f"arguments ({' or '.join(kinds)}: see that rank's own error); this rank's were "
            "accepted, and every rank stops here rather than wait for the others")
    differences = _differences(rows)
    if differences:
        raise RankMismatchError(
            f"vocab_parallel_cross_entropy: the {world_size} ranks disagree on their "
            "arguments; every rank must pass the same target, vocab_size, weight and options, "
            "and logits of the same dtype (each with its own shard of the classes):\n"
            + "\n".join(differences))
