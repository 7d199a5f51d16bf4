"""The linear cross-entropy section of ``python -m benchmarks.speed`` (or ``python -m
benchmarks.speed_linear``).

Times :func:`celib.functional.linear_cross_entropy` (forward) and
:func:`celib.grad.linear_cross_entropy_grad` with ``return_loss=True`` (the loss and the three
gradients in one call; with its default schedule, which recomputes the logits, and with
``schedule='fused'``, which does one matrix product fewer for a bigger scratch) against
``torch.nn.functional.linear_cross_entropy``
(forward, and forward plus ``torch.autograd.grad`` with respect to the input and the weight) on
its default path and on its chunked path (``options=torch.nn.LinearCrossEntropyOptions()``),
in float32, on (N, D, V) = (2048, 256, 32000) and (1024, 512, 128256), with the same number of
threads for celib, torch and the BLAS (celib's default unless ``--threads``). Memory:

* torch's chunked path is timed in one round after its warm-up (it is many times slower on the
  CPU); the other methods in ``repeats`` rounds;
* celib: the peak traced by :mod:`tracemalloc` during one call, beyond what existed before it
  (the result included), against the N·V·4 bytes of the float32 logits it never forms;
* torch: the rise of the peak resident set size (``VmHWM``) during one call, each path in its
  own fresh subprocess so that one path's peak cannot hide another's.

Times are the fastest of rounds that rotate the order of the methods, and a row measured while
other processes took CPU time, or whose rounds spread, shows "noisy" instead of its ratios (see
:mod:`benchmarks.speed`). Chapter 9 explains the
method.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from celib.testing import traced_peak

if TYPE_CHECKING:
    import torch

from .measure import noise, peak_rss_rise, run_in_fresh_python, threads_limited, time_methods

SHAPES = ((2048, 256, 32000), (1024, 512, 128256))
QUICK_SHAPES = ((256, 64, 2000),)
PATHS = ("default", "chunked")

Call = Callable[[], object]  # a zero-argument call to time


def make_problem(shape: tuple[int, int, int],
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32 hidden states X ~ N(0, 1), weights W ~ N(0, 1/D) and uniform int64 targets."""
    n, d, v = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32)
    w = rng.standard_normal((v, d), dtype=np.float32)
    w /= np.float32(np.sqrt(d))
    y = rng.integers(0, v, size=n)
    return x, w, y


def torch_calls(x: np.ndarray, w: np.ndarray, y: np.ndarray, path: str) -> tuple[Call, Call]:
    """Zero-argument callables: torch's forward, and forward plus the gradients."""
    import torch
    import torch.nn.functional as F

    options = torch.nn.LinearCrossEntropyOptions() if path == "chunked" else None
    tx, tw, ty = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(y)

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return F.linear_cross_entropy(tx, tw, ty, options=options)

    def forward_backward() -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        lx, lw = tx.detach().requires_grad_(), tw.detach().requires_grad_()
        loss = F.linear_cross_entropy(lx, lw, ty, options=options)
        return loss, torch.autograd.grad(loss, (lx, lw))

    return forward, forward_backward


def celib_calls(x: np.ndarray, w: np.ndarray, y: np.ndarray) -> tuple[Call, Call, Call]:
    from celib.functional import linear_cross_entropy
    from celib.grad import linear_cross_entropy_grad

    def forward() -> object:
        return linear_cross_entropy(x, w, y)

    # the loss and the gradients in one call, as torch's forward+backward
    def forward_grad() -> tuple:
        return linear_cross_entropy_grad(x, w, y, return_loss=True)

    # the same, one matrix product fewer for a bigger scratch
    def forward_grad_fused() -> tuple:
        return linear_cross_entropy_grad(x, w, y, return_loss=True, schedule="fused")

    return forward, forward_grad, forward_grad_fused


def torch_memory_worker(job: dict) -> int:
    """The rise of peak RSS (bytes) of one torch call: ``job`` names its ``shape``, ``path``,
    ``which`` (0: forward, 1: forward+backward) and ``threads``. Runs in the fresh process
    that :func:`torch_peak_rss` starts."""
    import torch

    torch.set_num_threads(job["threads"])
    x, w, y = make_problem((8, 16, 32))
    for call in torch_calls(x, w, y, job["path"]):
        call()  # load the code paths on a tiny problem first
    x, w, y = make_problem(tuple(job["shape"]))
    return peak_rss_rise(torch_calls(x, w, y, job["path"])[job["which"]])


def torch_peak_rss(shape: tuple[int, int, int], path: str, which: int,
                   threads: int) -> float | None:
    """Rise of torch's peak RSS (bytes) for one call (0: forward, 1: forward+backward), measured
    in a fresh subprocess."""
    job = {"shape": list(shape), "path": path, "which": which, "threads": threads}
    rise = run_in_fresh_python(torch_memory_worker, job)
    return None if rise is None else float(rise)


@dataclass
class LinearRow:
    """One shape of the linear section: times, their spread and noise, and peak memory."""

    shape: tuple[int, int, int]
    logits_bytes: int  # the N x V float32 logits celib never forms
    ms: dict[str, float]  # each method's fastest round
    spread: float  # the largest spread of the compared methods
    noise: str | None  # why the row's ratios cannot be trusted (None: they can)
    celib_peak: dict[str, int] = field(default_factory=dict)  # traced bytes, by call
    torch_rss: dict[str, float | None] = field(default_factory=dict)  # peak RSS rise, by path


def run(shapes: Sequence[tuple[int, int, int]] = SHAPES, repeats: int = 3,
        threads: int | None = None, memory: bool = True) -> list[LinearRow]:
    """One :class:`LinearRow` per shape."""
    rows = []
    with threads_limited(threads) as threads:
        for shape in shapes:
            x, w, y = make_problem(shape)
            c_fwd, c_fg, c_fused = celib_calls(x, w, y)
            t_fwd, t_fb = torch_calls(x, w, y, "default")
            k_fwd, k_fb = torch_calls(x, w, y, "chunked")
            calls = {"celib fwd": c_fwd, "torch fwd": t_fwd,
                     "celib fwd+grad": c_fg, "celib fused": c_fused, "torch fwd+bwd": t_fb}
            timings, busy = time_methods(calls, repeats)
            # torch's chunked path is many times slower on the CPU: one timed round after the
            # warm-up, so that the benchmark ends in minutes; its time is shown, never compared
            chunked, _ = time_methods({"chunked fwd": k_fwd, "chunked fwd+bwd": k_fb}, 1)
            row = LinearRow(shape, shape[0] * shape[2] * 4,
                            {k: t.best for k, t in {**timings, **chunked}.items()},
                            max(t.spread for t in timings.values()),
                            noise(timings, busy, os.cpu_count() or 1))
            if memory:
                row.celib_peak = {"fwd": traced_peak(c_fwd)[0], "fwd+grad": traced_peak(c_fg)[0],
                                  "fused": traced_peak(c_fused)[0]}
                row.torch_rss = {f"{path} {name}": torch_peak_rss(shape, path, i, threads)
                                 for path in PATHS for i, name in enumerate(("fwd", "fwd+bwd"))}
            rows.append(row)
            del x, w, y
    return rows


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def format_rows(rows: list[LinearRow]) -> str:
    """Two tables: times with the celib/torch ratios, and peak memory in MiB."""
    head = (f"{'N x D x V':<20}{'celib fwd':>10}{'torch fwd':>10}{'chunked':>9}{'ratio':>7}"
            f"{'celib f+g':>11}{'fused':>7}{'torch f+b':>10}{'chunked':>9}{'ratio':>7}"
            f"{'fused':>7}")
    lines = ["linear_cross_entropy, float32, times in ms (ratio = celib / torch default path;"
             " f+g: the default schedule, recompute, and schedule='fused')",
             head, "-" * len(head)]
    noisy = []
    for r in rows:
        ms = r.ms
        n, d, v = r.shape

        def ratio(a: str, b: str, r: LinearRow = r) -> str:
            return "noisy" if r.noise else f"{r.ms[a] / r.ms[b]:.2f}"

        lines.append(
            f"{f'{n} x {d} x {v}':<20}{ms['celib fwd']:>10.0f}{ms['torch fwd']:>10.0f}"
            f"{ms['chunked fwd']:>9.0f}{ratio('celib fwd', 'torch fwd'):>7}"
            f"{ms['celib fwd+grad']:>11.0f}{ms['celib fused']:>7.0f}{ms['torch fwd+bwd']:>10.0f}"
            f"{ms['chunked fwd+bwd']:>9.0f}{ratio('celib fwd+grad', 'torch fwd+bwd'):>7}"
            f"{ratio('celib fused', 'torch fwd+bwd'):>7}")
        if r.noise:
            noisy.append(f"  {n} x {d} x {v}: {r.noise}")
    if noisy:
        lines += ["too noisy to compare (run again on a quiet machine):"] + noisy
    if rows and rows[0].celib_peak:
        head = (f"{'N x D x V':<20}{'logits':>8}{'celib fwd':>10}{'/logits':>8}{'celib f+g':>10}"
                f"{'fused':>8}{'torch fwd':>10}{'torch f+b':>10}{'chunk fwd':>10}{'chunk f+b':>10}")
        lines += ["", "peak extra memory in MiB (celib: tracemalloc; torch: peak RSS rise)",
                  head, "-" * len(head)]
        for r in rows:
            n, d, v = r.shape
            p, t = r.celib_peak, r.torch_rss
            lines.append(
                f"{f'{n} x {d} x {v}':<20}{_mb(r.logits_bytes):>8}{_mb(p['fwd']):>10}"
                f"{p['fwd'] / r.logits_bytes:>8.3f}{_mb(p['fwd+grad']):>10}{_mb(p['fused']):>8}"
                f"{_mb(t['default fwd']):>10}{_mb(t['default fwd+bwd']):>10}"
                f"{_mb(t['chunked fwd']):>10}{_mb(t['chunked fwd+bwd']):>10}")
    return "\n".join(lines)


def section(quick: bool = False, threads: int | None = None, memory: bool = True,
            repeats: int | None = None) -> str:
    """Run the section and return its tables (what ``python -m benchmarks.speed`` prints)."""
    rows = run(QUICK_SHAPES if quick else SHAPES, repeats or 3, threads, memory)
    return format_rows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed_linear",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small shape")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for celib, torch and the BLAS (default: celib's)")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    rows = run(QUICK_SHAPES if args.quick else SHAPES, args.repeats, args.threads,
               not args.no_memory)
    print(format_rows(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(row) for row in rows], f, indent=1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
