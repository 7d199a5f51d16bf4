"""Plumbing for chapter 9, Cross-entropy at LLM scale: data, measurements and plots, so the page
shows the ideas (the merge rule, the chunked loss, the denominator) and not the bookkeeping."""

from __future__ import annotations

import numpy as np

import celib.functional as cf
import celib.grad as cg
from celib.datasets import load_mnist

VOCABULARIES = {"GPT-2": 50_257, "Llama 3": 128_256, "Gemma": 256_000}
TOKENS = (4096, 8192, 16384, 32768)
BYTES = {"bf16": 2, "fp32": 4}
THRESHOLD = 2.0 ** -12  # CCE's gradient filter: below this a bf16 gradient entry is lost


def memory_rows() -> list[dict]:
    """Logits and their gradient (two N x V arrays) for every vocabulary, token count and dtype."""
    rows = []
    for name, v in VOCABULARIES.items():
        for n in TOKENS:
            for dt, size in BYTES.items():
                rows.append({"model": name, "V": v, "N": n, "dtype": dt,
                             "logits_GB": n * v * size / 1e9,
                             "with_grad_GB": 2 * n * v * size / 1e9})
    return rows


def lm_head_problem(n: int, d: int, v: int, seed: int = 0):
    """Hidden states X (n, d), a head W (v, d) and targets y, float32, like a small LM head."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32)
    w = (rng.standard_normal((v, d), dtype=np.float32) / np.float32(np.sqrt(d)))
    return x, w, rng.integers(0, v, size=n)


def train_mnist_softmax(steps: int = 150, lr: float = 0.5, seed: int = 0):
    """Softmax regression on 8,000 MNIST test images (trained with celib), evaluated on the
    other 2,000: returns (held-out logits, held-out labels, held-out accuracy)."""
    images, labels = load_mnist("test", download=False, progress=False)
    x = images.reshape(len(images), -1).astype(np.float64) / 255.0
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    train, held = order[:8000], order[8000:]
    w = np.zeros((10, x.shape[1]))
    b = np.zeros(10)
    for _ in range(steps):
        batch = train[rng.integers(0, len(train), 500)]
        g = cg.cross_entropy_grad(x[batch] @ w.T + b, labels[batch].astype(np.int64))
        w -= lr * g.T @ x[batch]
        b -= lr * g.sum(axis=0)
    logits = x[held] @ w.T + b
    accuracy = float(np.mean(np.argmax(logits, axis=1) == labels[held]))
    return logits, labels[held].astype(np.int64), accuracy


def zipf_logits(n: int, v: int, exponent: float = 1.1, noise: float = 1.0, seed: int = 0):
    """Logits of n tokens over v classes whose average softmax follows a Zipf law
    (p_c proportional to rank**-exponent), with per-token Gaussian noise; the classes are in a
    random order, as token ids are not sorted by frequency."""
    rng = np.random.default_rng(seed)
    base = -exponent * np.log(np.arange(1, v + 1))
    z = base[None, :] + noise * rng.standard_normal((n, v))
    return z[:, rng.permutation(v)]


def small_fraction(p: np.ndarray, threshold: float = THRESHOLD) -> float:
    """The fraction of softmax entries below ``threshold``."""
    return float(np.mean(p < threshold))


def tile_keep_rate(p: np.ndarray, rows: int = 16, cols: int = 128,
                   threshold: float = THRESHOLD) -> float:
    """The fraction of (rows x cols) tiles holding at least one entry >= threshold: the tiles a
    CCE-style backward must compute (the others contribute nothing it can represent)."""
    n, v = p.shape
    n_t, v_t = n // rows, v // cols
    big = (p[: n_t * rows, : v_t * cols] >= threshold).reshape(n_t, rows, v_t, cols)
    return float(np.mean(big.any(axis=(1, 3))))


def sort_by_average_logit(z: np.ndarray) -> np.ndarray:
    """The classes reordered by decreasing average logit (CCE's vocabulary sorting)."""
    return z[:, np.argsort(-z.mean(axis=0), kind="stable")]


def padded_microbatches(seed: int = 0, lengths=((12, 3, 7, 1), (16, 16, 2, 9)), v: int = 50):
    """Two micro-batches of 4 sequences padded to 16 tokens: logits (4, 16, v) and targets
    (4, 16) with -100 on the padding, as a data collator makes them."""
    rng = np.random.default_rng(seed)
    batches = []
    for lens in lengths:
        z = rng.normal(0.0, 2.0, (len(lens), 16, v))
        y = rng.integers(0, v, (len(lens), 16))
        for i, k in enumerate(lens):
            y[i, k:] = -100
        batches.append((z, y))
    return batches


def token_losses(batches) -> tuple[np.ndarray, np.ndarray]:
    """Per-micro-batch sum of token losses and count of kept tokens."""
    sums, counts = [], []
    for z, y in batches:
        flat_z, flat_y = z.reshape(-1, z.shape[-1]), y.reshape(-1)
        sums.append(float(cf.cross_entropy(flat_z, flat_y, reduction="sum")))
        counts.append(int(np.sum(flat_y != -100)))
    return np.array(sums), np.array(counts)
