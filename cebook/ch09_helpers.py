"""Plumbing for chapter 9, Cross-entropy at LLM scale: data, measurements and plots, so the page
shows the ideas (the merge rule, the chunked loss, the denominator) and not the bookkeeping."""

from __future__ import annotations

import contextlib
import os
import sys

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


def ddp_head_problem(d: int = 8, seed: int = 0):
    """The data-parallel example: a linear head W (v, d), and per micro-batch the hidden states
    X (64, d) of ``padded_microbatches(seed)``'s tokens and their targets (-100 on the padding),
    all float64 numpy arrays drawn from one seeded generator."""
    batches = padded_microbatches(seed=seed)
    v = batches[0][0].shape[-1]
    rng = np.random.default_rng(seed + 100)
    w = rng.standard_normal((v, d)) / np.sqrt(d)
    data = [(rng.standard_normal((y.size, d)), y.reshape(-1)) for _, y in batches]
    return w, data


def ddp_world(rank: int, world_size: int) -> dict[str, np.ndarray]:
    """One rank of a DistributedDataParallel run of ``ddp_head_problem``: rank r holds
    micro-batch r and all-reduces the kept-token count; then, twice, it takes
    ``loss = sum / global count`` (the second time multiplied by the world size) and runs DDP's
    backward, which all-reduces the gradients and divides them by the world size. Returns the
    two gradients of W (float64), ``{"sum / count": ..., "times R": ...}``."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    w, data = ddp_head_problem()
    head = torch.nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=torch.float64)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(w))
    model = torch.nn.parallel.DistributedDataParallel(head)
    x, y = (torch.from_numpy(a) for a in data[rank])
    count = (y != -100).sum()
    dist.all_reduce(count)  # the global number of kept tokens
    grads = {}
    for name, factor in (("sum / count", 1), ("times R", world_size)):
        head.weight.grad = None
        loss = F.cross_entropy(model(x), y, reduction="sum") / count * factor
        loss.backward()  # DDP: all-reduce of the gradients, then division by world_size
        grads[name] = head.weight.grad.numpy().copy()
    return grads


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence what native code writes to file descriptor 2 while the block runs (the profiler
    prints its start and stop there, with a timestamp); Python's sys.stderr is left alone."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _profiled(call):
    from torch.profiler import ProfilerActivity, profile

    with _quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU],
                                         profile_memory=True) as prof:
        result = call()
    return prof, result


def _live_and_peak(prof) -> tuple[int, int]:
    """Bytes still held at the end of a profiled call, and the most held at any moment."""
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        live += e.nbytes()
        peak = max(peak, live)
    return live, peak


MATMULS = ("aten::mm", "aten::addmm", "aten::addmm_")


def _matmuls(prof) -> int:
    return sum(e.name in MATMULS for e in prof.events())


def forward_backward(loss_fn, *args, **kwargs) -> dict[str, int]:
    """Profile ``loss = loss_fn(*args, **kwargs).sum()`` and then ``loss.backward()`` with
    torch's profiler. Returns
    ``{"peak": ..., "forward": ..., "backward": ...}``: the largest number of bytes that torch's
    CPU allocator held at any moment of the two passes for tensors allocated during them (from
    the profiler's allocation records in time order: torch's memory is invisible to
    tracemalloc; the bytes are the tensors' sizes, the same on every machine), and the number
    of matrix products (mm, addmm, addmm_) run in each pass."""
    prof_f, loss = _profiled(lambda: loss_fn(*args, **kwargs).sum())
    prof_b, _ = _profiled(loss.backward)
    (live_f, peak_f), (_, peak_b) = _live_and_peak(prof_f), _live_and_peak(prof_b)
    return {"peak": max(peak_f, live_f + peak_b), "forward": _matmuls(prof_f),
            "backward": _matmuls(prof_b)}


GEMMA2_SOFTCAP = 30.0  # Gemma 2's final-logit soft-cap: cap * tanh(z / cap)


def eager_head_loss(e, c, y, softcap: float | None = None):
    """The loss the way CCE's README writes its baseline, run eagerly: bf16 logits
    ``e @ c.T``, Gemma 2's soft-cap if ``softcap`` is given, the upcast to fp32, then
    ``F.cross_entropy``."""
    import torch
    import torch.nn.functional as F

    logits = e @ c.T
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits.float(), y)


def _allocations(prof, unit: int) -> list[tuple[str, float]]:
    """The top-level ops of a profiled call that allocated at least 1 % of ``unit`` bytes
    (net of what they freed inside), in the order they ran, with the bytes in units."""
    return [(e.name, e.cpu_memory_usage / unit) for e in prof.events()
            if e.cpu_parent is None and e.cpu_memory_usage > unit / 100]


def loss_memory(n: int, d: int, v: int, softcap: float | None = None, seed: int = 0) -> dict:
    """Profile :func:`eager_head_loss` forward and backward in bf16 on the CPU, with torch's
    allocation records (the bytes are the tensors' sizes, the same on every machine).

    Everything is in units of the bf16 logits, ``n * v * 2`` bytes: ``forward``, the peak of
    the forward; ``held``, what the forward leaves allocated for the backward; ``backward``,
    the peak of the backward above that; ``step``, the peak of the two; ``buffers``, the
    forward's allocations as ``(op, units)``."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    e = torch.randn(n, d, generator=gen).to(torch.bfloat16).requires_grad_()
    c = torch.randn(v, d, generator=gen).to(torch.bfloat16).requires_grad_()
    y = torch.randint(0, v, (n,), generator=gen)
    unit = n * v * 2
    prof_f, loss = _profiled(lambda: eager_head_loss(e, c, y, softcap))
    prof_b, _ = _profiled(loss.backward)
    (held, forward), (_, backward) = _live_and_peak(prof_f), _live_and_peak(prof_b)
    return {"forward": forward / unit, "held": held / unit, "backward": backward / unit,
            "step": max(forward, held + backward) / unit, "buffers": _allocations(prof_f, unit)}


def bf16_running_sum(values, kahan: bool = False, dim: int = -1):
    """Sum ``values`` along ``dim`` one slice at a time into an accumulator kept in bf16, as a
    kernel that stores its running sum in bf16 would: every addition is rounded to bf16.
    With ``kahan=True`` a bf16 compensation term carries what each addition lost (Kahan
    summation). Returns the bf16 sums as float64 numpy values."""
    import torch

    x = torch.as_tensor(values).to(torch.bfloat16).movedim(dim, 0)
    total = torch.zeros(x.shape[1:], dtype=torch.bfloat16)
    lost = torch.zeros_like(total)
    for term in x:
        if kahan:
            term = term - lost
            new_total = total + term
            lost = (new_total - total) - term  # what the rounding of the addition dropped
            total = new_total
        else:
            total = total + term
    return total.double().numpy()


def token_losses_of(n: int = 8192, v: int = 1000, seed: int = 0) -> np.ndarray:
    """Per-token losses of ``n`` tokens with random logits over ``v`` classes (float64)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, (n, v))
    return cf.cross_entropy(z, rng.integers(0, v, n), reduction="none")


def packed_row(lengths=(200, 40, 8, 8), v: int = 50, seed: int = 0):
    """One packed training row: documents of ``lengths`` tokens back to back. Returns logits
    (T, v), targets (T,) and the document id of each token; each document gets its own
    logit scale, so documents differ in difficulty as real ones do."""
    rng = np.random.default_rng(seed)
    doc = np.repeat(np.arange(len(lengths)), lengths)
    scale = rng.uniform(0.5, 3.0, len(lengths))[doc]
    z = rng.standard_normal((len(doc), v)) * scale[:, None]
    y = np.where(rng.random(len(doc)) < 0.5, z.argmax(axis=1), rng.integers(0, v, len(doc)))
    return z, y, doc
