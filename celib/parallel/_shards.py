"""Which rank holds which classes: the contiguous shards of the vocabulary."""

from __future__ import annotations

from . import _arguments


def shard_bounds(vocab_size: int, world_size: int) -> list[tuple[int, int]]:
    """The contiguous vocabulary shard ``[start, end)`` of each of ``world_size`` ranks.

    When ``world_size`` does not divide ``vocab_size``, the first ``vocab_size % world_size``
    ranks get one class more (as ``numpy.array_split``), so shard widths differ by at most 1.

    Parameters
    ----------
    vocab_size : int
        :math:`V`, the number of classes, at least ``world_size``. A Python or numpy integer.
    world_size : int
        :math:`R`, the number of ranks, at least 1. A Python or numpy integer.

    Returns
    -------
    list of (int, int)
        ``[(start_0, end_0), ..., (start_{R-1}, end_{R-1})]`` with ``start_0 = 0``,
        ``end_r = start_{r+1}`` and ``end_{R-1} = V``, as Python ints.

    Raises
    ------
    TypeError
        If a size is not an integer (a bool, a float or a string).
    ValueError
        If a size is below 1, or ``world_size > vocab_size`` (a rank would hold no class).

    Notes
    -----
    Rank :math:`r` gets :math:`\\lfloor V/R \\rfloor + [r < V \\bmod R]` classes. Megatron-LM
    instead computes rank :math:`r`'s range as :math:`[rK, (r+1)K)` from the local width
    :math:`K`, which assumes equal shards, so it pads the vocabulary to a multiple of :math:`R`.

    Explained in chapter 9 (Cross-entropy at LLM scale, book/09_llm_scale.ipynb), page
    *Vocab-parallel cross-entropy*.

    Examples
    --------
    >>> from celib.parallel import shard_bounds
    >>> shard_bounds(507, 3)
    [(0, 169), (169, 338), (338, 507)]
    >>> shard_bounds(509, 3)     # 509 = 3 * 169 + 2: the first two ranks hold 170 classes
    [(0, 170), (170, 340), (340, 509)]
    """
    vocab = _arguments.positive_int(vocab_size, "vocab_size")
    ranks = _arguments.positive_int(world_size, "world_size")
    if ranks > vocab:
        raise ValueError(f"world_size={ranks} ranks cannot share vocab_size={vocab} "
                         "classes: every rank needs at least one class")
    base, extra = divmod(vocab, ranks)
    bounds, start = [], 0
    for rank in range(ranks):
        end = start + base + (1 if rank < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds
