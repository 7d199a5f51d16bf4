"""Speed and memory of celib against torch.nn.functional, scipy.special and scikit-learn.

``python -m benchmarks.speed`` times ``logsumexp``, ``log_softmax``, ``cross_entropy`` (index
targets, ``'mean'``) and ``cross_entropy_grad`` in float32 and float64 on the shapes (N, C) =
(4096, 10), (8192, 1000), (512, 50257) and (64, 128000), and prints one table with the ratio
celib/torch. ``--quick`` is the short form for CI (smaller shapes, fewer repeats), ``--json
FILE`` also writes the results.

How it measures
---------------
* **The machine**: the header names the CPU, the vector instructions numpy and torch dispatch
  to (numpy vectorises float64 ``exp`` only with AVX-512, which moves celib's ratios
  several-fold), the BLAS, the threads actually used, and the load average before and after.
* **Time**: the methods are first called in turn for ``WARM_UP`` of a row's time (a call's
  first few hundred repetitions can run twice as slow), which also sets how many calls make
  one of its rounds (at least ``MIN_ROUND_S`` of work). Then ``repeats`` rounds call every method,
  in an order that rotates from round to round, so that a burst of load elsewhere hits every
  method alike. A method's time is its fastest round (noise only ever adds time), and its
  *spread* is how much slower its median round was. celib, torch and the BLAS all get the
  same number of threads. torch's gradient is forward plus ``torch.autograd.grad`` of the
  loss: torch has no other way to compute it.
* **Noise is refused, not printed.** While a row is timed, /proc/stat tells how much CPU
  other processes took. A row where they took over ``BUSY_LIMIT`` of the machine's CPU time,
  or where a method's spread is over ``SPREAD_LIMIT``, prints "too noisy" instead of its
  ratio, and nothing is concluded from it.
* **Memory**: the peak of memory allocated during one call, beyond what existed before it,
  *including the result*, as a multiple of the input's size. For numpy code (celib, scipy,
  scikit-learn) it is the peak traced by :mod:`tracemalloc` (:func:`celib.testing.traced_peak`);
  torch's allocator is invisible to tracemalloc, so for torch it is the rise of the peak
  resident set size (``VmHWM``, reset through ``/proc/self/clear_refs``) in a fresh subprocess,
  with glibc told to return large freed blocks to the system at once
  (``MALLOC_MMAP_THRESHOLD_``). Linux only; elsewhere the torch column is left empty.
* scikit-learn's ``log_loss`` takes probabilities, not logits: it is timed on probabilities
  computed beforehand, so its time leaves out the softmax.

Only numpy is imported with this module; torch, scipy, scikit-learn and threadpoolctl are
imported when the benchmark runs.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from dataclasses import asdict, dataclass, field

import numpy as np

from celib.testing import traced_peak

if TYPE_CHECKING:
    import torch

from . import machine as _machine
from .measure import (
    BUSY_LIMIT,
    SPREAD_LIMIT,
    Timing,
    _load,
    _load_average,
    noise,
    peak_rss_rise,
    run_in_fresh_python,
    threads_limited,
    time_methods,
)
from .speed_linear import section as linear_section

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
    timings: dict[str, Timing] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)  # peak extra bytes / input bytes
    noise: str | None = None  # why the times cannot be compared (None: they can)

    @property
    def ms(self) -> dict[str, float]:
        """Each method's time (its fastest round), in ms."""
        return {name: t.best for name, t in self.timings.items()}

    @property
    def ratio(self) -> float:
        """celib's time over torch's; nan if either is missing or the row is too noisy."""
        if self.noise is None and "celib" in self.ms and self.ms.get("torch"):
            return self.ms["celib"] / self.ms["torch"]
        return float("nan")


@dataclass
class Report:
    """A benchmark run: the machine as it was, the load average around it, and the rows."""

    machine: _machine.Machine
    load_before: tuple[float, ...]
    load_after: tuple[float, ...]
    results: list[Result]
    backend: str = "numpy"  # celib's kernels: 'numpy' or 'numba' (CELIB_BACKEND)

    def header(self) -> str:
        """What ran where: CPU, SIMD level, BLAS, threads, celib's backend, load averages,
        limits."""
        return (f"{self.machine.summary()}\n"
                f"celib backend: {self.backend} (CELIB_BACKEND)\n"
                f"load average (1, 5, 15 min): {_load(self.load_before)} before, "
                f"{_load(self.load_after)} after; a row is 'too noisy' when other processes "
                f"take over {100 * BUSY_LIMIT:.0f}% of the CPU time, a method's median round "
                f"is over {100 * SPREAD_LIMIT:.0f}% slower than its best, or there are fewer "
                "than 3 rounds")


def make_input(shape: tuple[int, int], dtype: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits ~ N(0, 2²) of ``shape`` and ``dtype``, and uniform class-index targets (int64)."""
    rng = np.random.default_rng(seed)
    n, c = shape
    x = rng.standard_normal((n, c), dtype=np.float32 if dtype == "float32" else np.float64)
    x *= 2
    return x, rng.integers(0, c, size=n)


Call = Callable[[], object]


def _numpy_methods(function: str, x: np.ndarray, y: np.ndarray,
                   others: tuple[str, ...] = ("scipy", "sklearn")) -> dict[str, Call]:
    """The numpy implementations of ``function`` on (x, y): celib, and those of ``others``
    (scipy, sklearn) that are installed and have the function."""
    from celib import functional as cf
    from celib import grad as cg

    celib: dict[str, Call] = {
        "logsumexp": lambda: cf.logsumexp(x, axis=1),
        "log_softmax": lambda: cf.log_softmax(x, axis=1),
        "cross_entropy": lambda: cf.cross_entropy(x, y),
        "cross_entropy_grad": lambda: cg.cross_entropy_grad(x, y),
    }
    calls = {"celib": celib[function]}
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


def _torch_call(function: str, x: torch.Tensor, y: torch.Tensor) -> Call:
    """A zero-argument callable computing ``function`` with torch on tensors x, y."""
    import torch
    import torch.nn.functional as F

    if function == "logsumexp":
        return lambda: torch.logsumexp(x, dim=1)
    if function == "log_softmax":
        return lambda: F.log_softmax(x, dim=1)
    if function == "cross_entropy":
        return lambda: F.cross_entropy(x, y)

    def grad() -> torch.Tensor:
        leaf = x.detach().requires_grad_()
        loss = F.cross_entropy(leaf, y)
        return torch.autograd.grad(loss, leaf)[0]

    return grad


def torch_memory_worker(job: dict) -> list[int]:
    """The rise of peak RSS (bytes) of each torch call in ``job`` (its ``configs``, each
    (function, dtype, N, C), on ``threads`` threads). Runs in the fresh process that
    :func:`torch_peak_rss` starts."""
    import torch

    torch.set_num_threads(job["threads"])
    rises = []
    for function, dtype, n, c in job["configs"]:
        x, y = make_input((n, c), dtype)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        _torch_call(function, tx[:2, :8].clone(), ty[:2] % 8)()  # load the code paths once
        call = _torch_call(function, tx, ty)
        rises.append(peak_rss_rise(call))
        del x, y, tx, ty, call
        gc.collect()
    return rises


def torch_peak_rss(configs: list[tuple[str, str, int, int]], threads: int) -> list[float] | None:
    """Rise of peak RSS (bytes) of each torch call, measured in one fresh subprocess."""
    job = {"threads": threads, "configs": [list(c) for c in configs]}
    return run_in_fresh_python(torch_memory_worker, job)


def run(shapes: Sequence[tuple[int, int]] = SHAPES, dtypes: Sequence[str] = DTYPES,
        functions: Sequence[str] = FUNCTIONS, repeats: int = 7, threads: int | None = None,
        memory: bool = True, others: tuple[str, ...] = ("scipy", "sklearn"),
        progress: Callable[[Result], object] | None = None) -> Report:
    """Run the benchmark: a :class:`Report` with one :class:`Result` per (function, dtype,
    shape). ``others`` names the other numpy libraries to time beside celib and torch."""
    import torch

    results: list[Result] = []
    load_before = _load_average()
    cpus = os.cpu_count() or 1
    with threads_limited(threads) as threads:
        machine = _machine.describe()
        for shape in shapes:
            for dtype in dtypes:
                x, y = make_input(shape, dtype)
                tx, ty = torch.from_numpy(x), torch.from_numpy(y)
                for function in functions:
                    calls = _numpy_methods(function, x, y, others)
                    numpy_names = list(calls)
                    calls["torch"] = _torch_call(function, tx, ty)
                    timings, busy = time_methods(calls, repeats)
                    res = Result(function, dtype, shape, timings,
                                 noise=noise(timings, busy, cpus))
                    if memory:
                        for name in numpy_names:
                            res.memory[name] = traced_peak(calls[name])[0] / x.nbytes
                    results.append(res)
                    if progress:
                        progress(res)
                del x, y, tx, ty
                gc.collect()
    if memory:
        configs = [(r.function, r.dtype, r.shape[0], r.shape[1]) for r in results]
        rises = torch_peak_rss(configs, threads)
        if rises is not None:
            for r, rise in zip(results, rises, strict=True):
                r.memory["torch"] = rise / (r.shape[0] * r.shape[1] * np.dtype(r.dtype).itemsize)
    return Report(machine, load_before, _load_average(), results, _backend())


def _backend() -> str:
    """celib's backend as it runs: numpy, or numba with its version and threading layer."""
    from celib._kernels import get_backend

    name = get_backend()
    if name != "numba":
        return name
    import numba

    layer = numba.config.THREADING_LAYER  # type: ignore[attr-defined]
    return f"numba {numba.__version__}, threading layer {layer}"


def _cell(value: float | None, fmt: str) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    return format(value, fmt)


def format_results(results: list[Result]) -> str:
    """The results as an aligned text table; a noisy row shows why instead of its ratio."""
    header = (f"{'function':<19}{'dtype':<8}{'N x C':>13}{'celib ms':>10}{'torch ms':>10}"
              f"{'celib/torch':>12}{'spread':>8}{'scipy ms':>10}{'sklearn ms':>11}"
              f"{'mem celib':>10}{'mem torch':>10}{'mem other':>10}")
    lines = [header, "-" * len(header)]
    noisy = []
    for r in results:
        other = r.memory.get("scipy", r.memory.get("sklearn"))
        spread = max(t.spread for t in r.timings.values())
        lines.append(
            f"{r.function:<19}{r.dtype:<8}{f'{r.shape[0]} x {r.shape[1]}':>13}"
            f"{_cell(r.ms.get('celib'), '.3f'):>10}{_cell(r.ms.get('torch'), '.3f'):>10}"
            f"{'too noisy' if r.noise else _cell(r.ratio, '.2f'):>12}{f'{100 * spread:.0f}%':>8}"
            f"{_cell(r.ms.get('scipy'), '.3f'):>10}{_cell(r.ms.get('sklearn'), '.3f'):>11}"
            f"{_cell(r.memory.get('celib'), '.3f'):>10}{_cell(r.memory.get('torch'), '.3f'):>10}"
            f"{_cell(other, '.3f'):>10}")
        if r.noise:
            noisy.append(f"  {r.function} {r.dtype} {r.shape[0]} x {r.shape[1]}: {r.noise}")
    if noisy:
        lines += ["too noisy to compare (run again on a quiet machine):"] + noisy
    return "\n".join(lines)


NUMPY_WITHOUT_AVX512 = "X86_V4 AVX512_ICL AVX512_SPR"  # NPY_DISABLE_CPU_FEATURES, numpy 2.4


def run_elsewhere(env: dict[str, str], shapes: Sequence[tuple[int, int]],
                  dtypes: Sequence[str] = ("float32",), repeats: int = 3,
                  threads: int | None = None) -> Report:
    """The benchmark (times only) in a fresh Python with ``env`` added to the environment: for
    settings read when a library loads, such as numpy's ``NPY_DISABLE_CPU_FEATURES``."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "bench.json")
        command = [sys.executable, "-m", "benchmarks.speed", "--no-memory", "--no-linear",
                   "--repeats", str(repeats), "--dtypes", ",".join(dtypes), "--json", path,
                   "--shapes", ",".join(f"{n}x{c}" for n, c in shapes)]
        if threads is not None:
            command += ["--threads", str(threads)]
        subprocess.run(command, env={**os.environ, **env}, check=True, capture_output=True)
        with open(path) as f:
            return report_from_json(json.load(f))


def compare_dispatch(report: Report, other: Report) -> str:
    """celib's time and ratio in ``report`` beside the same rows of ``other`` (e.g. from
    :func:`run_elsewhere` with numpy's AVX-512 turned off), as a table headed by each run's
    numpy SIMD level."""
    rows = {(r.function, r.dtype, r.shape): r for r in other.results}
    head = (f"{'function':<19}{'N x C':>13}{'celib ms':>10}{'ratio':>11}"
            f"{'celib ms':>10}{'ratio':>11}")
    levels = (report.machine.simd_level, other.machine.simd_level)
    lines = [f"{'':<32}" + "".join(f"{level.split(',')[0]:>21}" for level in levels), head,
             "-" * len(head)]
    for r in report.results:
        o = rows.get((r.function, r.dtype, r.shape))
        if o is None:
            continue
        ratio = "too noisy" if r.noise else f"{r.ratio:.2f}"
        other_ratio = "too noisy" if o.noise else f"{o.ratio:.2f}"
        lines.append(f"{r.function:<19}{f'{r.shape[0]} x {r.shape[1]}':>13}"
                     f"{r.ms['celib']:>10.3f}{ratio:>11}{o.ms['celib']:>10.3f}{other_ratio:>11}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller shapes and 3 repeats (for CI)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed rounds (default 7, quick 3)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for celib, torch and the BLAS (default: celib's, i.e. "
                             "CELIB_NUM_THREADS or the usable CPUs)")
    parser.add_argument("--shapes", type=_parse_shapes, default=None, metavar="NxC,...",
                        help="the shapes to time, e.g. 4096x10,1024x1000")
    parser.add_argument("--dtypes", default=",".join(DTYPES), help="e.g. float32")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    parser.add_argument("--no-linear", action="store_true",
                        help="skip the linear_cross_entropy section")
    parser.add_argument("--backend", choices=("numpy", "numba", "auto"), default=None,
                        help="celib's kernels (default: CELIB_BACKEND, else numpy)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["CELIB_BACKEND"] = args.backend
    if importlib.util.find_spec("torch") is None:
        print("python -m benchmarks.speed times celib against torch, which is not installed: "
              "pip install torch==2.13.0 (scipy, scikit-learn and threadpoolctl are used when "
              "installed), or run `make bench`, which creates .venv with all of them.",
              file=sys.stderr)
        return 2

    shapes = args.shapes or (QUICK_SHAPES if args.quick else SHAPES)
    repeats = args.repeats or (3 if args.quick else 7)
    start = time.perf_counter()
    report = run(shapes=shapes, dtypes=tuple(args.dtypes.split(",")), repeats=repeats,
                 threads=args.threads, memory=not args.no_memory,
                 progress=lambda r: print(f"  {r.function} {r.dtype} {r.shape}: "
                                          f"celib {r.ms['celib']:.3f} ms, "
                                          f"torch {r.ms['torch']:.3f} ms",
                                          file=sys.stderr, flush=True))
    print(report.header())
    print("times: the fastest of the rounds, after a warm-up; spread: how much slower the "
          "median round was; memory: peak extra during one call (result included) / input "
          "size\n")
    print(format_results(report.results))
    ce = [r for r in report.results if r.function == "cross_entropy" and r.dtype == "float32"]
    if ce:
        print("\ncross_entropy float32, celib/torch: " + ", ".join(
            f"{r.shape[0]}x{r.shape[1]} {'too noisy' if r.noise else format(r.ratio, '.2f')}"
            for r in ce))
    if not args.no_linear:  # linear_cross_entropy against torch (chapter 9)
        print("\n" + linear_section(args.quick, args.threads, not args.no_memory, args.repeats),
              flush=True)
    print(f"\n{time.perf_counter() - start:.0f} s; "
          f"load average {_load(_load_average())} at the end")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report_to_json(report), f, indent=1)
    return 0


def _parse_shapes(text: str) -> tuple[tuple[int, int], ...]:
    try:
        shapes = tuple(tuple(int(v) for v in part.split("x")) for part in text.split(","))
    except ValueError:
        shapes = ()
    if not shapes or any(len(shape) != 2 or min(shape) < 1 for shape in shapes):
        raise argparse.ArgumentTypeError(f"expected shapes like 4096x10,1024x1000, got {text!r}")
    return shapes  # type: ignore[return-value]


def report_to_json(report: Report) -> dict[str, Any]:
    """The report as plain JSON data (what ``--json`` writes)."""
    return {"machine": asdict(report.machine), "simd_level": report.machine.simd_level,
            "load_before": report.load_before, "load_after": report.load_after,
            "backend": report.backend,
            "results": [{"function": r.function, "dtype": r.dtype, "shape": list(r.shape),
                         "ms": r.ms, "spread": {k: t.spread for k, t in r.timings.items()},
                         "samples_ms": {k: t.samples for k, t in r.timings.items()},
                         "memory": r.memory, "noise": r.noise,
                         "ratio": None if math.isnan(r.ratio) else r.ratio}
                        for r in report.results]}


def report_from_json(data: dict[str, Any]) -> Report:
    """The :class:`Report` that :func:`report_to_json` wrote (``--json``)."""
    machine = data["machine"]
    machine = _machine.Machine(**{**machine, "numpy_simd": tuple(machine["numpy_simd"]),
                                  "blas": tuple(machine["blas"])})
    results = [Result(r["function"], r["dtype"], (r["shape"][0], r["shape"][1]),
                      {k: Timing(tuple(v)) for k, v in r["samples_ms"].items()},
                      r["memory"], r["noise"]) for r in data["results"]]
    return Report(machine, tuple(data["load_before"]), tuple(data["load_after"]), results,
                  data.get("backend", "numpy"))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
