"""Checkers for the exercises of chapter 9, Cross-entropy at LLM scale.

They rebuild what they need (the micro-batches of exercise 3 come from
:func:`cebook.ch09_helpers.padded_microbatches`), so they depend on nothing the page defines.
"""

from __future__ import annotations

import math

import numpy as np

from cebook.ch09_helpers import padded_microbatches, token_losses

from . import as_number, call_reader, checker, correct, require, WrongAnswer

__all__ = ["check_ex1", "check_ex2", "check_ex3", "check_ex4"]


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


# Exercise 4: Llama-3-8B's head, N tokens per step, in bf16 (2 bytes), answers in GiB.
LLAMA_N, LLAMA_V, LLAMA_D, LIGER_CHUNK = 8192, 128_256, 4096, 256
_UNIT = LLAMA_N * LLAMA_V * 2  # the bf16 logits, in bytes
_GRADS = (LLAMA_N + LLAMA_V) * LLAMA_D * 2  # dL/dX and dL/dW in bf16


def exercise4_answers() -> dict[str, float]:
    """The peaks of exercise 4 in GiB: torch's default path (six logits-sized units, the
    chapter's measurement without a soft-cap), Liger-Kernel (one bf16 chunk of 256 tokens'
    logits, turned into its gradient in place, plus the two gradients) and CCE (the two
    gradients)."""
    return {"torch": 6 * _UNIT / 2**30, "liger": (LIGER_CHUNK * LLAMA_V * 2 + _GRADS) / 2**30,
            "cce": _GRADS / 2**30}


@checker
def check_ex4(torch_gib, liger_gib, cce_gib) -> None:
    """Exercise 4: the loss's peak memory for Llama-3-8B's head under torch's default path,
    Liger-Kernel and CCE, in GiB."""
    got = {"torch": as_number(torch_gib, "torch_gib"), "liger": as_number(liger_gib, "liger_gib"),
           "cce": as_number(cce_gib, "cce_gib")}
    right = exercise4_answers()
    close = {k: math.isclose(got[k], right[k], rel_tol=0.01) for k in right}
    units = got["torch"] * 2**30 / _UNIT
    require(close["torch"] or not math.isclose(units, 1, rel_tol=0.01),
            "torch: that counts only the logits; what else is live at the forward's peak, and "
            "what does the backward add?")
    require(close["torch"] or not math.isclose(units, 2, rel_tol=0.01),
            "torch: that is the logits and their gradient, the table's lower bound; the loss "
            "upcasts the bf16 logits to fp32 and saves an fp32 log-softmax")
    require(close["torch"] or not math.isclose(units, 3, rel_tol=0.01),
            "torch: that is the loss computed in bf16; F.cross_entropy(logits.float(), y) "
            "makes an fp32 copy (two units) and an fp32 log-softmax (two more)")
    require(close["torch"] or not math.isclose(units, 5, rel_tol=0.01),
            "torch: that is the forward's peak; the backward adds fp32 gradients while the "
            "log-softmax is still held")
    require(close["torch"], "torch: count the live arrays in units of the bf16 logits, as the "
            "chapter measured without a soft-cap, and convert N x V x 2 bytes to GiB")
    require(not math.isclose(got["liger"], 1 * _UNIT / 2**30, rel_tol=0.01),
            "Liger: it never holds the whole N x V logits, only one chunk of tokens at a time")
    require(not math.isclose(got["liger"], LIGER_CHUNK * LLAMA_V * 2 / 2**30, rel_tol=0.01),
            "Liger: the chunk is right, but it also holds the gradients of X and W it fills")
    require(close["liger"], "Liger: one bf16 chunk of 256 tokens over the whole vocabulary, "
            "plus dL/dX (N x D) and dL/dW (V x D) in bf16")
    require(got["cce"] > 0.01, "CCE: the logits are never stored, but the gradients are")
    require(not math.isclose(got["cce"], LLAMA_V * LLAMA_D * 2 / 2**30, rel_tol=0.01),
            "CCE: dL/dW is there; dL/dX (N x D) is too")
    require(close["cce"], "CCE: only the gradients dL/dX (N x D) and dL/dW (V x D), in bf16 "
            "(its per-token vectors are a few MiB)")
    correct(f"torch {right['torch']:.2f} GiB, Liger {right['liger']:.2f} GiB, "
            f"CCE {right['cce']:.2f} GiB.")
