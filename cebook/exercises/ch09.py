"""Checkers for the exercises of chapter 9, Cross-entropy at LLM scale.

They rebuild what they need (the micro-batches of exercise 3 come from
:func:`cebook.ch09_helpers.padded_microbatches`), so they depend on nothing the page defines.
"""

from __future__ import annotations

import math

import numpy as np

from cebook.ch09_helpers import padded_microbatches, token_losses

from . import as_number, call_reader, checker, correct, require, WrongAnswer

__all__ = ["check_ex1", "check_ex2", "check_ex3"]


@checker
def check_ex1(gib) -> None:
    """Logits plus their gradient, 8192 tokens x 128,256 classes in bf16, in GiB (2**30 bytes)."""
    value = as_number(gib, "the memory in GiB")
    exact = 2 * 8192 * 128_256 * 2 / 2**30
    require(not math.isclose(value, exact / 2, rel_tol=1e-3),
            "that is the logits alone: the backward needs their gradient too, of the same size")
    require(not math.isclose(value, exact * 2**30 / 1e9, rel_tol=1e-3),
            "that is in GB (10**9 bytes); the question asks for GiB (2**30 bytes)")
    require(not math.isclose(value, 2 * exact, rel_tol=1e-3),
            "bf16 takes 2 bytes per number, not 4")
    require(math.isclose(value, exact, rel_tol=1e-3),
            "count two arrays of N x V numbers of 2 bytes each, and divide by 2**30")
    correct(f"{exact:.3f} GiB for the logits and their gradient of one micro-batch.")


@checker
def check_ex2(merge3) -> None:
    """``merge3(m1, s1, t1, m2, s2, t2) -> (m, s, t)``: the online merge that also carries
    ``t = sum_c z_c exp(z_c - m)``, checked through the entropy ``m + log s - t/s``."""
    require(callable(merge3), "pass your function merge3 itself, not its result")
    rng = np.random.default_rng(9)
    z = rng.normal(0.0, 5.0, (6, 40))
    z[1] += 700.0  # e**700 overflows: the triple must stay relative to the max
    z[2, 25:] -= 60.0  # a chunk far below the first one
    q = np.exp(z - z.max(axis=1, keepdims=True))
    q /= q.sum(axis=1, keepdims=True)
    exact = -np.sum(q * np.log(q), axis=1)
    m, s, t = np.full(6, -np.inf), np.zeros(6), np.zeros(6)
    for c0 in (0, 25):
        chunk = z[:, c0:c0 + 25]
        mc = chunk.max(axis=1)
        e = np.exp(chunk - mc[:, None])
        out = call_reader(merge3, m, s, t, mc, e.sum(axis=1), (chunk * e).sum(axis=1),
                          what="merge3")
        try:
            m, s, t = (np.asarray(v, dtype=np.float64) for v in out)
        except (TypeError, ValueError):
            raise WrongAnswer("merge3 should return (m, s, t): three arrays") from None
        require(m.shape == s.shape == t.shape == (6,),
                "merge3 should return (m, s, t): three arrays with one entry per row")
    with np.errstate(all="ignore"):
        entropy = m + np.log(s) - t / s
    require(np.all(np.isfinite(entropy)),
            "some entropies came out inf or nan: the first merge starts from m = -inf, s = t = "
            "0, and exp(-inf - -inf) is nan; and logits near 700 overflow exp unless shifted")
    require(np.allclose(entropy, exact, rtol=1e-9, atol=1e-9),
            "the merged entropy is wrong: t must be rescaled to the new max by the same "
            "factor as s")
    correct("your merge3 gives the entropy of the softmax, chunk by chunk.")


@checker
def check_ex3(loss) -> None:
    """The token-mean loss of the two padded micro-batches of ``padded_microbatches(seed=1)``."""
    value = as_number(loss, "the loss")
    sums, counts = token_losses(padded_microbatches(seed=1))
    right = float(sums.sum() / counts.sum())
    require(not math.isclose(value, float(np.mean(sums / counts)), rel_tol=1e-9),
            "that is the mean of the per-micro-batch means: the short micro-batch gets the "
            "same say as the long one")
    require(not math.isclose(value, float(sums.sum()) / len(sums), rel_tol=1e-9),
            "dividing the summed loss by the number of micro-batches is not a mean per token")
    require(not math.isclose(value, len(sums) * right, rel_tol=1e-9),
            "the factor R = 2 makes up for DDP dividing the gradients by its number of ranks; "
            "the loss of the whole batch at once has no such factor")
    require(math.isclose(value, right, rel_tol=1e-9),
            "sum the token losses of both micro-batches and divide by the number of kept "
            "(not -100) tokens in both")
    correct(f"{right:.4f} nats per token, the loss of the whole batch at once.")
