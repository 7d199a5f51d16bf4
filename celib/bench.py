"""Speed and memory of celib against torch.nn.functional, scipy.special and scikit-learn.

``python -m celib.bench`` times ``logsumexp``, ``log_softmax``, ``cross_entropy`` (index
targets, ``'mean'``) and ``cross_entropy_grad`` in float32 and float64 on the shapes (N, C) =
(4096, 10), (8192, 1000), (512, 50257) and (64, 128000), and prints one table with the ratio
celib/torch. ``--quick`` is the short form for CI (smaller shapes, fewer repeats), ``--json
FILE`` also writes the results, which the performance appendix of the book plots.

How it measures
---------------
* **Time**: every method is called once to warm up, then ``repeats`` rounds call each method
  once, in an order that rotates from round to round (so a burst of load elsewhere on the
  machine hits every method alike); the table shows the median of the rounds. torch is limited
  to the number of threads celib uses (``torch.set_num_threads``). torch's gradient is
  forward plus ``torch.autograd.grad`` of the loss: torch has no other way to compute it.
* **Memory**: the peak of memory allocated during one call, beyond what existed before it,
  *including the result*, as a multiple of the input's size. For numpy code (celib, scipy,
  scikit-learn) it is the peak traced by :mod:`tracemalloc`; torch's allocator is invisible to
  tracemalloc, so for torch it is the rise of the peak resident set size (``VmHWM``, reset
  through ``/proc/self/clear_refs``) in a fresh subprocess, with glibc told to return large
  freed blocks to the system at once (``MALLOC_MMAP_THRESHOLD_``). Linux only; elsewhere the
  torch column is left empty.
* scikit-learn's ``log_loss`` takes probabilities, not logits: it is timed on probabilities
  computed beforehand, so its time leaves out the softmax.

Only numpy is imported with this module; torch, scipy and scikit-learn are imported when the
benchmark runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from dataclasses import asdict, dataclass, field

import numpy as np

from . import _kernels

FUNCTIONS = ("logsumexp", "log_softmax", "cross_entropy", "cross_entropy_grad")
DTYPES = ("float32", "float64")
SHAPES = ((4096, 10), (8192, 1000), (512, 50257), (64, 128000))
QUICK_SHAPES = ((4096, 10), (2048, 1000), (128, 50257), (16, 128000))


@dataclass
class Result:
    """One line of the table: a function, a dtype, a shape, and every method's numbers."""

    function: str
    dtype: str
    shape: tuple[int, int]
    ms: dict[str, float] = field(default_factory=dict)  # median time per method
    memory: dict[str, float] = field(default_factory=dict)  # peak extra bytes / input bytes

    @property
    def ratio(self) -> float:
        """celib's time over torch's (nan if either is missing)."""
        if "celib" in self.ms and self.ms.get("torch"):
            return self.ms["celib"] / self.ms["torch"]
        return float("nan")


def make_input(shape: tuple[int, int], dtype: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits ~ N(0, 2²) of ``shape`` and ``dtype``, and uniform class-index targets (int64)."""
    rng = np.random.default_rng(seed)
    n, c = shape
    x = rng.standard_normal((n, c), dtype=np.float32 if dtype == "float32" else np.float64)
    x *= 2
    return x, rng.integers(0, c, size=n)


def _numpy_methods(function: str, x: np.ndarray, y: np.ndarray,
                   others=("scipy", "sklearn")) -> dict:
    """The numpy implementations of ``function`` on (x, y): celib, and those of ``others``
    (scipy, sklearn) that are installed and have the function."""
    from . import functional as cf
    from . import grad as cg

    calls = {
        "logsumexp": {"celib": lambda: cf.logsumexp(x, axis=1)},
        "log_softmax": {"celib": lambda: cf.log_softmax(x, axis=1)},
        "cross_entropy": {"celib": lambda: cf.cross_entropy(x, y)},
        "cross_entropy_grad": {"celib": lambda: cg.cross_entropy_grad(x, y)},
    }[function]
    try:
        import scipy.special as sp
    except ImportError:  # pragma: no cover
        sp = None
    if "scipy" not in others:
        sp = None
    if sp is not None and function == "logsumexp":
        calls["scipy"] = lambda: sp.logsumexp(x, axis=1)
    if sp is not None and function == "log_softmax":
        calls["scipy"] = lambda: sp.log_softmax(x, axis=1)
    if function == "cross_entropy" and "sklearn" in others:
        try:
            from sklearn.metrics import log_loss
        except ImportError:  # pragma: no cover
            log_loss = None
        if log_loss is not None:
            probabilities = cf.softmax(x, axis=1)
            labels = np.arange(x.shape[1])
            calls["sklearn"] = lambda: log_loss(y, probabilities, labels=labels)
    return calls


def _torch_call(function: str, x, y):
    """A zero-argument callable computing ``function`` with torch on tensors x, y."""
    import torch
    import torch.nn.functional as F

    if function == "logsumexp":
        return lambda: torch.logsumexp(x, dim=1)
    if function == "log_softmax":
        return lambda: F.log_softmax(x, dim=1)
    if function == "cross_entropy":
        return lambda: F.cross_entropy(x, y)

    def grad():
        leaf = x.detach().requires_grad_()
        loss = F.cross_entropy(leaf, y)
        return torch.autograd.grad(loss, leaf)[0]

    return grad


def time_methods(calls: dict, repeats: int) -> dict[str, float]:
    """Median wall time (ms) of each zero-argument callable: warm-up, then rotating rounds."""
    names = list(calls)
    for name in names:
        calls[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    gc.collect()
    for round_ in range(repeats):
        order = names[round_ % len(names):] + names[: round_ % len(names)]
        for name in order:
            start = time.perf_counter()
            calls[name]()
            samples[name].append(time.perf_counter() - start)
    return {name: 1e3 * float(np.median(v)) for name, v in samples.items()}


def traced_peak(call) -> int:
    """Peak bytes allocated (numpy/Python, as seen by tracemalloc) during ``call()``, beyond
    what was allocated before it; the result counts, since it is alive at the end."""
    gc.collect()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = call()
        peak = tracemalloc.get_traced_memory()[1]
        del result
    finally:
        if started:
            tracemalloc.stop()
    return max(0, peak - before)


def _status_bytes(key: str) -> int:
    """A memory line of /proc/self/status (``VmRSS:``, ``VmHWM:``), in bytes (Linux only)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise KeyError(key)  # pragma: no cover


def peak_rss_rise(call) -> int:
    """How far one ``call()`` raises this process's peak RSS above its current RSS, in bytes.

    Used inside the fresh subprocesses that measure torch (Linux: resets the peak through
    /proc/self/clear_refs first, so earlier work does not count).
    """
    import gc

    gc.collect()
    rss = _status_bytes("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current RSS
    result = call()
    peak = _status_bytes("VmHWM:")
    del result
    return max(0, peak - rss)


_TORCH_MEMORY_SCRIPT = r"""
import gc, json, sys
import numpy as np
import torch
from celib.bench import _torch_call, make_input, peak_rss_rise

jobs = json.load(sys.stdin)
torch.set_num_threads(jobs["threads"])
out = []
for function, dtype, n, c in jobs["configs"]:
    x, y = make_input((n, c), dtype)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    small = _torch_call(function, tx[:2, :8].clone(), ty[:2] % 8)
    small()  # load the code paths once
    call = _torch_call(function, tx, ty)
    out.append(peak_rss_rise(call))
    del x, y, tx, ty, call
    gc.collect()
print(json.dumps(out))
"""


def run_memory_script(script: str, job: dict):
    """Run a measuring ``script`` in a fresh Python with ``job`` as JSON on its standard input
    and return the JSON of its last output line; None where peak RSS cannot be measured
    (not Linux) or the script failed (its error is printed, not raised)."""
    if not sys.platform.startswith("linux") or not os.path.exists("/proc/self/clear_refs"):
        return None  # pragma: no cover
    # Small allocations from the heap, large ones mapped and unmapped at once: RSS then follows
    # what torch holds, not what the allocator keeps cached.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    proc = subprocess.run([sys.executable, "-c", script], input=json.dumps(job),
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:  # pragma: no cover - reported, not fatal
        print("torch memory measurement failed:\n" + proc.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def torch_peak_rss(configs: list[tuple[str, str, int, int]], threads: int) -> list[float] | None:
    """Rise of peak RSS (bytes) of each torch call, measured in one fresh subprocess."""
    return run_memory_script(_TORCH_MEMORY_SCRIPT,
                             {"threads": threads, "configs": [list(c) for c in configs]})


def run(shapes=SHAPES, dtypes=DTYPES, functions=FUNCTIONS, repeats: int = 7,
        threads: int | None = None, memory: bool = True, others=("scipy", "sklearn"),
        progress=None) -> list[Result]:
    """Run the benchmark and return one :class:`Result` per (function, dtype, shape).

    ``others`` names the other numpy libraries to time beside celib and torch.
    """
    import torch

    threads = _kernels.get_num_threads() if threads is None else int(threads)
    previous = _kernels.set_num_threads(threads)
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    results: list[Result] = []
    try:
        for shape in shapes:
            for dtype in dtypes:
                x, y = make_input(tuple(shape), dtype)
                tx, ty = torch.from_numpy(x), torch.from_numpy(y)
                for function in functions:
                    calls = _numpy_methods(function, x, y, others)
                    numpy_names = list(calls)
                    calls["torch"] = _torch_call(function, tx, ty)
                    res = Result(function, dtype, tuple(shape))
                    res.ms = time_methods(calls, repeats)
                    if memory:
                        for name in numpy_names:
                            res.memory[name] = traced_peak(calls[name]) / x.nbytes
                    results.append(res)
                    if progress:
                        progress(res)
                del x, y, tx, ty
                gc.collect()
        if memory:
            configs = [(r.function, r.dtype, r.shape[0], r.shape[1]) for r in results]
            rises = torch_peak_rss(configs, threads)
            if rises is not None:
                for r, rise in zip(results, rises):
                    r.memory["torch"] = rise / (r.shape[0] * r.shape[1] * np.dtype(r.dtype).itemsize)
    finally:
        _kernels.set_num_threads(previous)
        torch.set_num_threads(torch_threads)
    return results


def _cell(value: float | None, fmt: str) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    return format(value, fmt)


def format_results(results: list[Result]) -> str:
    """The results as an aligned text table."""
    header = (f"{'function':<19}{'dtype':<8}{'N x C':>13}{'celib ms':>10}{'torch ms':>10}"
              f"{'celib/torch':>12}{'scipy ms':>10}{'sklearn ms':>11}"
              f"{'mem celib':>10}{'mem torch':>10}{'mem other':>10}")
    lines = [header, "-" * len(header)]
    for r in results:
        other = r.memory.get("scipy", r.memory.get("sklearn"))
        lines.append(
            f"{r.function:<19}{r.dtype:<8}{f'{r.shape[0]} x {r.shape[1]}':>13}"
            f"{_cell(r.ms.get('celib'), '.2f'):>10}{_cell(r.ms.get('torch'), '.2f'):>10}"
            f"{_cell(r.ratio, '.2f'):>12}{_cell(r.ms.get('scipy'), '.2f'):>10}"
            f"{_cell(r.ms.get('sklearn'), '.2f'):>11}"
            f"{_cell(r.memory.get('celib'), '.3f'):>10}{_cell(r.memory.get('torch'), '.3f'):>10}"
            f"{_cell(other, '.3f'):>10}"
        )
    return "\n".join(lines)


def environment(threads: int | None = None) -> str:
    """One line on what ran: versions, threads, CPUs, load average."""
    import torch

    threads = _kernels.get_num_threads() if threads is None else threads
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"numpy {np.__version__}, torch {torch.__version__}, python {platform.python_version()}; "
            f"{threads} thread(s) for celib and torch; {os.cpu_count()} CPU(s); "
            f"load average {load}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m celib.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller shapes and 3 repeats (for CI)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7, quick 3)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for celib and torch (default: celib's, i.e. CELIB_NUM_THREADS "
                             "or the usable CPUs)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)

    shapes = QUICK_SHAPES if args.quick else SHAPES
    repeats = args.repeats or (3 if args.quick else 7)
    print(environment(args.threads))
    print("times: median of rounds after a warm-up; memory: peak extra during one call "
          "(result included) / input size\n", flush=True)
    start = time.perf_counter()
    results = run(shapes=shapes, repeats=repeats, threads=args.threads,
                  memory=not args.no_memory,
                  progress=lambda r: print(f"  {r.function} {r.dtype} {r.shape}: "
                                           f"celib {r.ms['celib']:.2f} ms, torch {r.ms['torch']:.2f} ms",
                                           file=sys.stderr, flush=True))
    print(format_results(results))
    ce = [r for r in results if r.function == "cross_entropy" and r.dtype == "float32"]
    print(f"\ncross_entropy float32, celib/torch: "
          + ", ".join(f"{r.shape[0]}x{r.shape[1]} {r.ratio:.2f}" for r in ce))
    from ._bench_linear import section  # linear_cross_entropy vs torch (chapter 9)
    print("\n" + section(args.quick, args.threads, not args.no_memory, args.repeats), flush=True)
    print(f"{environment(args.threads)}; {time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": environment(args.threads),
                       "results": [dict(asdict(r), shape=list(r.shape), ratio=r.ratio)
                                   for r in results]}, f, indent=1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
