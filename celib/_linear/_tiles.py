"""Tiles, threads and the online log-sum-exp: the one loop over the vocabulary.

This module owns the tiling of the N x V logits (token blocks of at most ``_MAX_ROWS`` rows,
outside, times vocabulary chunks, inside), the default chunk size, the scratch buffer every
tile lives in, the sharing out of a tile's rows among celib's threads, and :func:`row_lse`:
the per-row log-sum-exp by the online-softmax merge of running ``(max, sum)`` pairs, the
forward's pass over the vocabulary and the recompute schedule's first pass. The sizes are read
from the package at call time (see :mod:`celib._linear`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TypeAlias

import numpy as np
from numpy.typing import DTypeLike

from .. import _kernels
from .. import _linear as package

RowStats: TypeAlias = tuple[np.ndarray, np.ndarray | None]
"""What a pass over the vocabulary gives per row of a position (float64, N): the lse, and
``sum_c t[i, c] * z[i, c]`` for a dense target ``t`` (None for index targets)."""


def default_chunk_size(num_rows: int, num_classes: int) -> int:
    """The default vocabulary chunk: ``min(V, max(256, 2**22 // min(N, 1024)))`` (at least 1)."""
    rows = max(1, min(num_rows, package._MAX_ROWS))
    return max(1, min(num_classes, max(package._MIN_CHUNK, package._TILE // rows)))


# --------------------------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------------------------

def _split_rows(num_rows: int, width: int) -> list[tuple[int, int]]:
    """Row ranges of one tile for the threads (a single range for a small tile)."""
    threads = _kernels.get_num_threads()
    if threads <= 1 or num_rows * width < package._MIN_PARALLEL or num_rows < 2:
        return [(0, num_rows)]
    threads = min(threads, num_rows)
    step = -(-num_rows // threads)
    return [(a, min(num_rows, a + step)) for a in range(0, num_rows, step)]


def run_on_threads(num_rows: int, width: int, work: Callable[[int, int], None]) -> None:
    """Call ``work(a, b)`` on row ranges covering ``[0, num_rows)``, on celib's threads."""
    ranges = _split_rows(num_rows, width)
    if len(ranges) == 1:
        work(0, num_rows)
        return
    pool = _kernels._executor(len(ranges) - 1)
    futures = [pool.submit(work, a, b) for a, b in ranges[1:]]
    try:
        work(*ranges[0])
    finally:
        for future in futures:
            future.result()


# --------------------------------------------------------------------------------------------
# Tiles
# --------------------------------------------------------------------------------------------

def tiles(num_rows: int, num_classes: int, chunk: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(r0, r1, c0, c1)`` for every tile, token blocks outside, chunks inside."""
    block = max(1, min(num_rows, package._MAX_ROWS))
    for r0 in range(0, num_rows, block):
        r1 = min(num_rows, r0 + block)
        for c0 in range(0, num_classes, chunk):
            yield r0, r1, c0, min(num_classes, c0 + chunk)


class TileBuffer:
    """One flat scratch array reused by every tile (a tile is a contiguous view into it)."""

    def __init__(self, num_rows: int, num_classes: int, chunk: int, dtype: DTypeLike) -> None:
        size = max(1, min(num_rows, package._MAX_ROWS)) * max(1, min(num_classes, chunk))
        self.flat = np.empty(size, dtype=dtype)

    def logits(self, x_block: np.ndarray, weight_chunk: np.ndarray) -> np.ndarray:
        """The tile ``x_block @ weight_chunk.T`` (without the bias), in the buffer."""
        rows, cols = x_block.shape[0], weight_chunk.shape[0]
        z = self.flat[: rows * cols].reshape(rows, cols)
        # an inf or nan in the input, or float32 logits beyond float32's range, give inf or
        # nan logits: the loss and gradients carry them (as torch's do, silently)
        with np.errstate(invalid="ignore", over="ignore"):
            np.matmul(x_block, weight_chunk.T, out=z)
        return z


# --------------------------------------------------------------------------------------------
# The online log-sum-exp
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Running:
    """Per-row running statistics of the online softmax, float64, N each (updated in place):
    the maximum ``m`` of the logits seen so far, the sum ``s`` of their ``e^{z - m}``, and the
    dots ``sum_c t[i, c] z[i, c]`` with a dense target (else None)."""

    row_max: np.ndarray
    sum_exp: np.ndarray
    dots: np.ndarray | None

    def merge(self, rows: slice, tile_max: np.ndarray, tile_sum: np.ndarray) -> None:
        """The online-softmax merge of the pairs ``(m, s)`` of ``rows`` with a tile's, in
        float64: ``m' = max(m1, m2)``, ``s' = s1 e^{m1 - m'} + s2 e^{m2 - m'}`` (a pair with
        ``m = -inf``, no logit above -inf yet, counts as 0)."""
        row_max, sum_exp = self.row_max[rows], self.sum_exp[rows]
        tile_max64 = tile_max.astype(np.float64)
        top = np.maximum(row_max, tile_max64)
        keep = np.where(np.isneginf(row_max), 0.0, np.exp(row_max - top))
        new = np.where(np.isneginf(tile_max64), 0.0, np.exp(tile_max64 - top))
        self.sum_exp[rows] = sum_exp * keep + tile_sum * new
        self.row_max[rows] = top


def _fold_rows(a: int, e: int, *, logits: np.ndarray, bias: np.ndarray | None,
               target: np.ndarray | None, running: _Running, first_row: int) -> None:
    """Fold rows ``[a, e)`` of one tile (rows ``first_row + a`` onwards of the problem) into
    the running statistics; the tile's logits are overwritten with ``e^{z - max}``."""
    z, rows = logits[a:e], slice(first_row + a, first_row + e)
    with np.errstate(all="ignore"):
        if bias is not None:
            np.add(z, bias, out=z)
        if running.dots is not None and target is not None:  # (both exist, or neither)
            running.dots[rows] += np.einsum("ij,ij->i", z, target[a:e], dtype=np.float64)
        tile_max = z.max(axis=1)
        shift = np.where(np.isneginf(tile_max), 0, tile_max).astype(z.dtype)
        np.subtract(z, shift[:, None], out=z)
        np.exp(z, out=z)
        tile_sum = np.einsum("ij->i", z, dtype=np.float64)
        running.merge(rows, tile_max, tile_sum)


def row_lse(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, chunk: int,
            target: np.ndarray | None = None) -> RowStats:
    """Per-row log-sum-exp of ``x @ weight.T + bias`` (float64), by online softmax over the
    chunks.

    If ``target`` (N, V) is given, also return the per-row ``sum_c target[i, c] * z[i, c]``
    (float64), else None.
    """
    num_rows, num_classes = x.shape[0], weight.shape[0]
    running = _Running(np.full(num_rows, -np.inf), np.zeros(num_rows),
                       np.zeros(num_rows) if target is not None else None)
    buffer = TileBuffer(num_rows, num_classes, chunk, x.dtype)
    for r0, r1, c0, c1 in tiles(num_rows, num_classes, chunk):
        logits = buffer.logits(x[r0:r1], weight[c0:c1])
        work = partial(_fold_rows, logits=logits, bias=None if bias is None else bias[c0:c1],
                       target=None if target is None else target[r0:r1, c0:c1],
                       running=running, first_row=r0)
        run_on_threads(r1 - r0, c1 - c0, work)
    with np.errstate(all="ignore"):
        lse = np.where(np.isneginf(running.row_max), -np.inf,
                       running.row_max + np.log(running.sum_exp))
    return lse, running.dots
