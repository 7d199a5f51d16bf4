"""Counting the ``torch.distributed`` collectives a block of code makes (instrumentation)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable, Iterator

# The torch.distributed functions count_collectives wraps (every collective that moves data).
COLLECTIVES = ("all_reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter",
               "reduce_scatter_tensor", "broadcast", "reduce", "all_to_all",
               "all_to_all_single", "gather", "scatter")
# The reductions, whose reduce op is recorded too (SUM when the call gives none).
REDUCTIONS = ("all_reduce", "reduce", "reduce_scatter", "reduce_scatter_tensor")


@dataclass
class CollectiveCounter:
    """The collectives called inside :func:`count_collectives`, in order.

    ``calls`` holds one string per call, ``"all_reduce:MAX"``, ``"all_reduce:SUM"``, ... (the
    function's name, and the reduction for reductions); ``len(counter)`` is their number.
    Explained in chapter 9 (Cross-entropy at LLM scale, book/09_llm_scale.ipynb).
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
    ``loss.backward()`` to count the backward's: :func:`vocab_parallel_cross_entropy` makes
    the all-gather of its argument check and 3 all-reduces, and 0 (4 all-reduces with label
    smoothing).

    Explained in chapter 9 (Cross-entropy at LLM scale, book/09_llm_scale.ipynb), page
    *Vocab-parallel cross-entropy*.

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
    >>> forward.calls
    ['all_gather', 'all_reduce:MAX', 'all_reduce:SUM', 'all_reduce:SUM']
    >>> len(backward)
    0
    >>> dist.destroy_process_group()
    """
    import torch.distributed as dist

    counter = CollectiveCounter()
    originals = {name: getattr(dist, name) for name in COLLECTIVES if hasattr(dist, name)}

    def wrap(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            op = kwargs.get("op")
            if op is None and name in REDUCTIONS:
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

