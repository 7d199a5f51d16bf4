"""Linear cross-entropy that never forms the logits: the loss and its gradients, chunk by chunk.

Private: :func:`celib.functional.linear_cross_entropy` and
:func:`celib.grad.linear_cross_entropy_grad` are the public names. Chapter 9 (Cross-entropy at LLM
scale, book/09_llm_scale.ipynb) explains the method.

How it works
------------
The logits :math:`Z = X W^\\top + b` of ``N`` tokens over a vocabulary of ``V`` classes are
computed one *tile* at a time: a block of at most ``_MAX_ROWS`` (1024) tokens times a chunk of
``chunk_size`` classes. Each tile is reduced at once to per-row statistics and then dropped:

* **forward**: the row maximum :math:`m` and the sum :math:`s = \\sum_c e^{z_c - m}` of a tile
  are merged into the running pair with the online-softmax rule (Milakov & Gimelshein, 2018)

  .. math:: m' = \\max(m_1, m_2), \\qquad s' = s_1 e^{m_1 - m'} + s_2 e^{m_2 - m'},

  which is exact, so :math:`\\mathrm{lse} = m + \\log s` comes out of one pass over the
  vocabulary. The target logit is a row-wise dot product :math:`x_i \\cdot W_{y_i} + b_{y_i}`,
  and label smoothing's :math:`\\sum_c w_c z_c = x_i \\cdot (W^\\top w) + w \\cdot b` needs no
  logits at all.
* **gradient**, two schedules. *Fused* (``schedule='fused'``, Liger-Kernel's order): a
  block of R tokens gets its logits over the whole vocabulary at once (an R x V scratch, with
  R = min(N, 2**25 // V)), from which m, s, lse and, in place, :math:`E = e^{z - m}` follow,
  with :math:`G = \\operatorname{diag}(a_i / s_i)\\,E` (the row factor is applied to the R x D
  sides of the products), and :math:`\\partial L/\\partial X_b = G W`,
  :math:`\\partial L/\\partial W \\mathrel{+}= G^\\top X_b`: 3 matrix products of size N·D·V in
  all. *Recompute* (the default, Cut Cross-Entropy's order): a first
  pass over the tiles gives the per-row log-sum-exp, a second computes each tile's logits
  again and turns them into
  :math:`a_i\\,\\operatorname{softmax}(z_i) = e^{z_i - \\mathrm{lse}_i + \\log a_i}` in place (one
  exponential per entry), then multiplied into
  :math:`\\partial L/\\partial X \\mathrel{+}= G W_c`, :math:`\\partial L/\\partial W_c
  \\mathrel{+}= G^\\top X_b` and :math:`\\partial L/\\partial b_c \\mathrel{+}= 1^\\top G`: 4 matrix
  products. In both, the one-hot and smoothing parts of ``softmax - target`` are rank-one or
  sparse and are added outside the loop (a gather, a scatter-add and two outer products).

The default ``chunk_size`` is ``min(V, max(256, 2**22 // min(N, 1024)))``: token blocks of at
most 1024 rows, and tiles of about 2**22 elements (16 MiB in float32, 32 MiB in float64)
whatever N and V, so the extra memory does not grow with the vocabulary. The fused gradient's
block is bigger, at most 2**25 elements (128 MiB in float32), because its update of the
V x D weight gradient is a rank-R product, memory-bound when R is small; it too is bounded
whatever N and V. The elementwise work of a tile or block is shared out among celib's threads
by rows; the matrix products use numpy's BLAS.
float16 is computed in float32 (as the other losses do), float32 in float32 with the running
statistics and the per-row losses in float64, float64 in float64.

The package
-----------
One module per piece, each saying what it owns: ``_problem`` (the checked arguments, a frozen
dataclass), ``_tiles`` (tiles, threads and the online log-sum-exp), ``_forward`` (the loss and
:func:`linear_cross_entropy`), ``_coefficients`` (what both gradient schedules share),
``_recompute`` and ``_fused`` (one schedule each) and ``_gradient`` (the choice of schedule
and :func:`linear_cross_entropy_grad`). The sizes below live here, in the package, and the
modules read them from it at call time (``package._MAX_ROWS``), so that setting
``celib._linear._MAX_ROWS`` (as the tests do, to get many tiles from a small problem) reaches
every module; the same goes for the two schedules, ``_fused_grad`` and ``_recompute_grad``.
"""

from __future__ import annotations

from .. import _kernels as _kernels  # re-exported: the tests set celib's threads through it
from . import _fused, _recompute
from ._forward import forward, linear_cross_entropy
from ._fused import fused_rows
from ._gradient import SCHEDULES, gradient, linear_cross_entropy_grad
from ._tiles import default_chunk_size

__all__ = ["SCHEDULES", "default_chunk_size", "forward", "fused_rows", "gradient",
           "linear_cross_entropy", "linear_cross_entropy_grad"]

# The sizes, read at call time by the modules as ``package._NAME`` (see the docstring).
_TILE = 1 << 22  # elements of one tile (token block x vocabulary chunk)
_MAX_ROWS = 1024  # tokens per block
_MIN_CHUNK = 256  # the default chunk is never narrower than this (nor wider than V)
_MIN_PARALLEL = 1 << 16  # tiles smaller than this are done on the calling thread
_FUSED_BUDGET = 1 << 25  # elements of a fused block (R tokens x whole vocabulary), 128 MiB f32
_MIN_FUSED_ROWS = 64  # fewer tokens per block than this: 'auto' recomputes instead
_FUSED_GROUP = 1 << 17  # elements of the rows a thread turns into G in one go (in cache)

# The two gradient schedules, called through these names by _gradient, so that they can be
# wrapped (the tests check which one runs).
_fused_grad = _fused.fused_grad
_recompute_grad = _recompute.recompute_grad
