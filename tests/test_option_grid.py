"""One option grid, every entry point with torch's cross-entropy semantics, torch as the oracle.

The rules these entry points share (which targets count, the 'mean' denominator, a mean over
nothing, label smoothing) are written once, in ``celib._core``. This grid checks that every
entry point applies them as torch does, on the same cases: the shapes, class weights or none,
every kind of ``ignore_index``, the three reductions, label smoothing 0, 0.1 and 1, index and
probability targets, in float32 and float64. For each case it runs:

* ``cross_entropy`` and its gradient ``cross_entropy_grad`` (against autograd);
* ``nll_loss`` on ``log_softmax(x)`` (index targets, no smoothing);
* ``linear_cross_entropy`` and ``linear_cross_entropy_grad`` on both schedules, with the logits
  made by a linear layer with a bias, in vocabulary chunks of 2 (1-D and 2-D inputs);
* ``focal_loss`` and ``focal_loss_grad`` at γ = 0 (index targets that are all kept, no weights,
  no smoothing: then the focal loss is cross-entropy);
* ``vocab_parallel_cross_entropy`` on a world of one process (2-D index targets).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from celib import calibration as cc
from celib import functional as cf
from celib import grad as cg
from tests.celib_testing import (
    IGNORE,
    NOT_GIVEN,
    REDUCTIONS,
    SHAPES,
    SMOOTHING,
    assert_close,
    celib_kwargs,
    make_index_target,
    make_logits,
    make_prob_target,
    make_weight,
    n_classes,
    to_torch64,
    torch_kwargs,
    torch_np,
)

D = 4  # the hidden size of the linear layer that makes the logits of linear_cross_entropy
# A float32 logit of a linear layer carries D roundings, so its loss and gradients are compared
# a little more loosely in float32 (test_linear_cross_entropy explains the tolerances).
LINEAR_TOL = {np.dtype(np.float32): dict(rtol=2e-5, atol=2e-6), np.dtype(np.float64): {}}

GRID = [case for case in itertools.product(SHAPES, ("index", "probability"), (False, True),
                                           IGNORE, REDUCTIONS, SMOOTHING)
        if case[1] == "index" or IGNORE[case[3]] is NOT_GIVEN]


def _case(rng, dtype, shape_id, kind, weighted, ign_id):
    """Logits, a target and the options of one grid point."""
    shape = SHAPES[shape_id]
    ign = IGNORE[ign_id]
    if n_classes(shape) == 1 and ign is not NOT_GIVEN and 0 <= ign:
        ign = 7  # with one class an ignore_index of 0 or 2 would ignore all or nothing
    x = make_logits(rng, shape, dtype)
    if kind == "index":
        target = make_index_target(rng, shape, None if ign is NOT_GIVEN else ign)
    else:
        target = make_prob_target(rng, shape, dtype)
    weight = make_weight(rng, n_classes(shape), dtype) if weighted else None
    return x, target, weight, ign


def _autograd(fn, *leaves):
    """The gradients of ``fn(*leaves).sum()`` with respect to each float64 leaf."""
    leaves = [to_torch64(a).requires_grad_(True) for a in leaves]
    return [torch_np(g) for g in torch.autograd.grad(fn(*leaves).sum(), leaves)]


def _linear_layer(rng, x_shape, dtype):
    """Hidden states and a (C, D) weight whose logits play the part of the case's ``x``."""
    hidden = rng.standard_normal(x_shape[:-1] + (D,) if len(x_shape) == 2 else (D,))
    weight = rng.standard_normal((x_shape[-1] if len(x_shape) == 2 else x_shape[0], D))
    return hidden.astype(dtype), weight.astype(dtype)


@pytest.mark.parametrize("shape_id,kind,weighted,ign_id,reduction,ls", GRID)
def test_every_entry_point_matches_torch(rng, dtype, shape_id, kind, weighted, ign_id, reduction,
                                         ls):
    x, target, weight, ign = _case(rng, dtype, shape_id, kind, weighted, ign_id)
    kw = dict(weight=weight, ignore_index=ign, reduction=reduction, label_smoothing=ls)
    ours, theirs = celib_kwargs(**kw), torch_kwargs(**kw)
    t = to_torch64(target)

    def ce(z):
        return F.cross_entropy(z, t, **theirs)

    assert_close(cf.cross_entropy(x, target, **ours), torch_np(ce(to_torch64(x))), dtype)
    assert_close(cg.cross_entropy_grad(x, target, **ours), _autograd(ce, x)[0], dtype)
    if kind == "index" and ls == 0:
        nll_kw = {k: v for k, v in ours.items() if k != "label_smoothing"}
        log_q = cf.log_softmax(x, axis=0 if x.ndim == 1 else 1)
        ref = F.nll_loss(to_torch64(log_q), t, **{k: v for k, v in theirs.items()
                                                   if k != "label_smoothing"})
        assert_close(cf.nll_loss(log_q, target, **nll_kw), torch_np(ref), dtype)
    if len(x.shape) <= 2:
        _check_linear(rng, x.shape, target, dtype, ours, theirs)
    kept = kind == "index" and ign is NOT_GIVEN and not np.any(target == -100)
    if kept and weight is None and ls == 0:
        assert_close(cc.focal_loss(x, target, gamma=0.0, reduction=reduction),
                     torch_np(ce(to_torch64(x))), dtype)
        assert_close(cc.focal_loss_grad(x, target, gamma=0.0, reduction=reduction),
                     _autograd(ce, x)[0], dtype)


def _check_linear(rng, x_shape, target, dtype, ours, theirs):
    """linear_cross_entropy and its gradient, both schedules, against torch's, on one case:
    with a bias, and vocabulary chunks of 2 (which divide no odd vocabulary)."""
    hidden, weight = _linear_layer(rng, x_shape, dtype)
    bias = rng.standard_normal(weight.shape[0]).astype(dtype)
    t = to_torch64(target)

    def loss(h, w, b):
        return F.linear_cross_entropy(h, w, t, linear_bias=b, **theirs)

    tol = LINEAR_TOL[np.dtype(dtype)]
    ref = torch_np(loss(to_torch64(hidden), to_torch64(weight), to_torch64(bias)))
    mine = dict(ours, linear_bias=bias, chunk_size=2)
    assert_close(cf.linear_cross_entropy(hidden, weight, target, **mine), ref, dtype, **tol)
    expected = _autograd(loss, hidden, weight, bias)
    for schedule in ("recompute", "fused"):
        value, *grads = cg.linear_cross_entropy_grad(hidden, weight, target, return_loss=True,
                                                     schedule=schedule, **mine)
        assert_close(value, ref, dtype, **tol)
        for got, want in zip(grads, expected, strict=True):
            assert_close(got, want, dtype, **tol)


@pytest.fixture(scope="module")
def one_rank():
    """A gloo process group of one process (no network), for celib.parallel."""
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


PARALLEL_GRID = [case for case in GRID if case[0] in ("NC", "N1") and case[1] == "index"]


@pytest.mark.parametrize("shape_id,kind,weighted,ign_id,reduction,ls", PARALLEL_GRID)
def test_vocab_parallel_on_one_rank_matches_torch(one_rank, rng, dtype, shape_id, kind, weighted,
                                                  ign_id, reduction, ls):
    from celib.parallel import vocab_parallel_cross_entropy

    x, target, weight, ign = _case(rng, dtype, shape_id, kind, weighted, ign_id)
    kw = dict(weight=weight, ignore_index=ign, reduction=reduction, label_smoothing=ls)
    theirs = torch_kwargs(**kw)
    mine = {k: (to_torch64(v) if k == "weight" else v) for k, v in celib_kwargs(**kw).items()}
    t = to_torch64(target)
    z = to_torch64(x).requires_grad_(True)
    loss = vocab_parallel_cross_entropy(z, t, x.shape[1], **mine)
    loss.sum().backward()
    ref, = _autograd(lambda a: F.cross_entropy(a, t, **theirs), x)
    np.testing.assert_allclose(torch_np(loss.detach()),
                               torch_np(F.cross_entropy(to_torch64(x), t, **theirs)),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(torch_np(z.grad), ref, rtol=1e-10, atol=1e-12)
