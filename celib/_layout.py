"""The class axis, moved last: how every loss sees its input as rows of C logits.

torch puts the classes on axis 1 (axis 0 for a 1-D input) and any extra axes after them,
(N, C, d1, ..., dK). celib's kernels work on rows, (M, C) with M = N·d1···dK, in the order of
the target's elements; :func:`rows` makes that view, :func:`contiguous_rows` makes each row
contiguous where a kernel needs it, and :func:`unrows` goes back to the input's layout.
"""

from __future__ import annotations

import numpy as np


def rows(x: np.ndarray) -> np.ndarray:
    """View the class axis last and everything else flattened: (C,) → (1, C),
    (N, C) → (N, C), (N, C, d1, ..., dK) → (N·d1···dK, C)."""
    if x.ndim == 1:
        return x[None, :]
    if x.ndim == 2:
        return x
    # the row count spelled out: reshape(-1, 0) cannot infer it when there are no classes
    num_rows = x.shape[0] * int(np.prod(x.shape[2:], dtype=np.int64))
    return np.moveaxis(x, 1, -1).reshape(num_rows, x.shape[1])


def contiguous_rows(r: np.ndarray) -> np.ndarray:
    """``r`` with each row contiguous in memory (copied only if it is not)."""
    if r.shape[1] > 1 and r.strides[1] != r.itemsize:
        return np.ascontiguousarray(r)
    return r


def unrows(r: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`rows`: (M, C) back to the input's ``shape``."""
    if len(shape) <= 2:
        return r.reshape(shape)
    moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return np.moveaxis(r.reshape(moved), -1, 1)
