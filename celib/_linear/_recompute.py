"""The recompute schedule (the default; Cut Cross-Entropy's order): the logits twice, 4 GEMMs.

This module owns :func:`recompute_grad`. A first pass over the tiles gives each row's
log-sum-exp (:func:`celib._linear._tiles.row_lse`, as the forward does); a second computes
each tile's logits again and turns them, in place, into ``G = a_i softmax(z_i) - scale t_i``
(``t``: a dense target, if any) with one exponential per entry, then multiplies the tile into
the three gradients. The extra memory is one tile, whatever the vocabulary.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from ._coefficients import Coefficients, PositionGrads, exp_in_place
from ._problem import Position
from ._tiles import RowStats, TileBuffer, row_lse, run_on_threads, tiles


def recompute_grad(position: Position, coefs: Coefficients, grads: PositionGrads,
                   chunk: int) -> RowStats:
    """Add the position's gradient (but for its sparse parts) into ``grads``, tile by tile;
    return the ``(lse, dots)`` of the first pass, from which the loss follows."""
    x, weight, bias = position.x, position.weight, position.bias
    num_rows, num_classes = x.shape[0], weight.shape[0]
    dense = coefs.dense_target
    lse, dots = row_lse(x, weight, bias, chunk, dense)
    shift, mult = coefs.exp_shift(lse, slice(None), x.dtype)
    buffer = TileBuffer(num_rows, num_classes, chunk, x.dtype)
    for r0, r1, c0, c1 in tiles(num_rows, num_classes, chunk):
        z = buffer.logits(x[r0:r1], weight[c0:c1])
        work = partial(_logits_to_g, logits=z, bias=None if bias is None else bias[c0:c1],
                       shift=shift[r0:r1], mult=None if mult is None else mult[r0:r1],
                       target=None if dense is None else dense[r0:r1, c0:c1],
                       scale=coefs.scale)
        run_on_threads(r1 - r0, c1 - c0, work)
        with np.errstate(invalid="ignore", over="ignore"):  # nan in G: the results carry it
            grads.input[r0:r1] += z @ weight[c0:c1]
            grads.weight[c0:c1] += z.T @ x[r0:r1]
            if grads.bias is not None:
                grads.bias[c0:c1] += z.sum(axis=0)
    return lse, dots


def _logits_to_g(a: int, e: int, *, logits: np.ndarray, bias: np.ndarray | None,
                 shift: np.ndarray, mult: np.ndarray | None, target: np.ndarray | None,
                 scale: float) -> None:
    """Turn rows ``[a, e)`` of a tile's logits (without the bias) into ``G`` in place:
    ``exp(z + bias - shift) * mult - scale * target`` (see :meth:`Coefficients.exp_shift`)."""
    z = logits[a:e]
    with np.errstate(all="ignore"):
        if bias is not None:
            np.add(z, bias, out=z)
        exp_in_place(z, shift[a:e], None if mult is None else mult[a:e])
        if target is not None:
            z -= scale * target[a:e]
