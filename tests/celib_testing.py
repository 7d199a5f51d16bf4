"""Shared helpers for the celib test-suite: torch as the oracle, tolerances, data generation.

Every comparison against torch computes the *reference* in float64 from the very same
input values (a float32 array converts to float64 exactly), so a float32 celib result is
measured against (almost) the exact answer, not against torch's own float32 rounding.
Test modules import them as ``from tests.celib_testing import ...``.
"""

from __future__ import annotations

import numpy as np
import torch


# --------------------------------------------------------------------------------------
# Tolerances (celib result vs. a float64 torch/scipy/mpmath reference).
#
# float64: celib and the reference both work in double precision; they differ only in
#   summation order and in the exp/log/log1p implementations, i.e. a few ulp (~1e-16
#   relative) on O(1) values.  rtol=atol=1e-12 leaves ~4 orders of magnitude of margin
#   while still catching any formula mistake (a wrong denominator, a missing weight or a
#   smoothing term is an O(1e-2) relative error or bigger).
# float32: celib must return float32; its rounding error on O(1)..O(100) values is a few
#   float32 ulp (eps32 = 1.19e-7), i.e. < 1e-6 relative.  rtol=1e-5 gives a 10-100x margin;
#   atol=1e-6 covers values that are O(1e-7) after cancellation (gradients p - y, etc.).
# --------------------------------------------------------------------------------------
FLOAT_DTYPES = (np.float32, np.float64)
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}
ATOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-6}


def tol(dtype) -> dict:
    """``dict(rtol=..., atol=...)`` for a float dtype."""
    dt = np.dtype(dtype)
    return {"rtol": RTOL[dt], "atol": ATOL[dt]}


def to_torch(x, dtype=None) -> torch.Tensor:
    """A numpy array / array-like / scalar as a torch tensor (copied).

    Integer arrays of any width become int64 (torch's losses only take Long targets);
    floating arrays keep their dtype unless ``dtype`` (a numpy or torch dtype) is given.
    """
    a = np.asarray(x)
    if a.dtype.kind in "iu":
        a = a.astype(np.int64)
    if dtype is not None:
        if isinstance(dtype, torch.dtype):
            return torch.from_numpy(np.array(a, copy=True)).to(dtype)
        a = a.astype(dtype)
    return torch.from_numpy(np.array(a, copy=True))


def to_torch64(x) -> torch.Tensor:
    """Like :func:`to_torch` but floating arrays become float64 (exact for float32 input)."""
    a = np.asarray(x)
    if a.dtype.kind == "f":
        a = a.astype(np.float64)
    return to_torch(a)


def torch_np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def assert_close(actual, expected, dtype=None, *, rtol=None, atol=None, check_dtype=True):
    """celib result vs. reference: exact shape, exact dtype, nan where the reference is nan,
    equal infinities, and ``|a - e| <= atol + rtol * |e|`` elsewhere."""
    expected = np.asarray(expected)
    assert isinstance(actual, (np.ndarray, np.generic)), (
        f"celib must return numpy, got {type(actual).__name__}"
    )
    actual_arr = np.asarray(actual)
    if dtype is not None and check_dtype:
        assert actual_arr.dtype == np.dtype(dtype), (
            f"dtype: got {actual_arr.dtype}, expected {np.dtype(dtype)}"
        )
    assert actual_arr.shape == expected.shape, (
        f"shape: got {actual_arr.shape}, expected {expected.shape}"
    )
    t = tol(dtype if dtype is not None else np.float64)
    if rtol is not None:
        t["rtol"] = rtol
    if atol is not None:
        t["atol"] = atol
    np.testing.assert_allclose(
        actual_arr.astype(np.float64), expected.astype(np.float64), equal_nan=True, **t
    )


# Class-index target dtypes: torch accepts Long (int64) at every input rank and Byte (uint8)
# only beside a 1-D or 2-D input (celib._checks.index_dtypes), and refuses the rest; celib
# refuses the same ones with a ValueError.
TORCH_INDEX_DTYPES = (np.int64, np.uint8)


# --------------------------------------------------------------------------------------
# data generation and option plumbing shared by the test modules
# --------------------------------------------------------------------------------------

NOT_GIVEN = object()


def class_dim(shape):
    return 0 if len(shape) == 1 else 1


def n_classes(shape):
    return shape[class_dim(shape)]


def target_shape(shape):
    if len(shape) == 1:
        return ()
    return (shape[0],) + tuple(shape[2:])


def make_logits(rng, shape, dtype, scale=3.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def make_index_target(rng, shape, ignore_index=None, frac_ignored=0.3, int_dtype=np.int64):
    """Index target for an input of ``shape``; with ``ignore_index`` some entries (at least
    one, but never all, when there are >= 2 elements) are replaced by it."""
    C = n_classes(shape)
    tshape = target_shape(shape)
    t = rng.integers(0, C, size=tshape)
    if ignore_index is not None and t.size >= 2:
        mask = rng.random(tshape) < frac_ignored
        flat = mask.reshape(-1)
        flat[0] = True
        flat[-1] = False
        t = np.where(mask, ignore_index, t)
        # an ignore_index inside [0, C) may appear as an ordinary target too; make sure
        # at least one element stays un-ignored so 'mean' is finite
        if 0 <= ignore_index < C:
            t.reshape(-1)[-1] = (ignore_index + 1) % C
    return np.asarray(t).astype(int_dtype)


def make_prob_target(rng, shape, dtype):
    cd = class_dim(shape)
    z = rng.standard_normal(shape) * 2
    z = z - z.max(axis=cd, keepdims=True) if z.size else z
    e = np.exp(z)
    return (e / e.sum(axis=cd, keepdims=True)).astype(dtype) if e.size else e.astype(dtype)


def make_weight(rng, C, dtype):
    return rng.uniform(0.2, 2.0, size=C).astype(dtype)


def celib_kwargs(weight=None, ignore_index=NOT_GIVEN, reduction=NOT_GIVEN,
                 label_smoothing=NOT_GIVEN, pos_weight=None):
    kw = {}
    if weight is not None:
        kw["weight"] = weight
    if pos_weight is not None:
        kw["pos_weight"] = pos_weight
    if ignore_index is not NOT_GIVEN:
        kw["ignore_index"] = ignore_index
    if reduction is not NOT_GIVEN:
        kw["reduction"] = reduction
    if label_smoothing is not NOT_GIVEN:
        kw["label_smoothing"] = label_smoothing
    return kw


def torch_kwargs(**options):
    """celib_kwargs, with the weight arrays turned into float64 tensors for the torch oracle."""
    kw = celib_kwargs(**options)
    for name in ("weight", "pos_weight"):
        if name in kw:
            kw[name] = to_torch64(kw[name])
    return kw


SHAPES = {
    "C": (5,),
    "NC": (6, 5),
    "NCd1": (3, 5, 4),
    "NCd1d2": (2, 5, 3, 2),
    "N1": (4, 1),  # a single class
}
REDUCTIONS = ("none", "sum", "mean")
IGNORE = {
    "default": NOT_GIVEN,
    "neg100": -100,
    "in0": 0,
    "in2": 2,
    "pos7": 7,  # positive, outside [0, C)
    "neg1": -1,
}
SMOOTHING = (0.0, 0.1, 1.0)
