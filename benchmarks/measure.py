"""How celib's benchmarks measure: timings that refuse noise, peak memory, and threads.

Shared by :mod:`benchmarks.speed` (the loss family) and :mod:`benchmarks.speed_linear` (the
linear
cross-entropy), so that both measure the same way:

* :func:`time_methods` interleaves the contenders in rounds that rotate their order, repeats a
  quick call within a round, and returns each method's :class:`Timing` (its fastest round and
  its spread) and the CPU that other processes took meanwhile (from /proc/stat);
* :func:`noise` says why a row cannot be trusted (over ``BUSY_LIMIT`` of the machine busy
  elsewhere, or a spread over ``SPREAD_LIMIT``), or None;
* :func:`threads_limited` gives celib, torch and the BLAS libraries the same threads;
* :func:`peak_rss_rise` and :func:`run_in_fresh_python` measure torch's peak memory in a fresh
  process (its allocator is invisible to tracemalloc): ``python -m benchmarks.measure
  MODULE:FUNCTION`` calls a worker function with the job read as JSON from standard input.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

import celib

MIN_ROUND_S = 0.005   # a round of a tiny call repeats it until it has taken this long,
ROW_S = 1.0           # and until all the rounds of a row take this long together
WARM_UP = 0.3         # before them, the methods are called in turn for this share of ROW_S
SPREAD_LIMIT = 0.20   # a median round more than 20 % slower than the best: too noisy
BUSY_LIMIT = 0.10     # other processes took more than 10 % of the CPU time: too noisy


@dataclass(frozen=True)
class Timing:
    """The per-call times (ms) of one method, one per round."""

    samples: tuple[float, ...]

    @property
    def best(self) -> float:
        """The fastest round: noise only ever adds time, so this is the estimate."""
        return min(self.samples)

    @property
    def median(self) -> float:
        return float(np.median(self.samples))

    @property
    def spread(self) -> float:
        """How much slower the median round was than the best, relatively (0: no noise)."""
        return self.median / self.best - 1


def _load(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:.2f}" for v in values) if values else "unknown"


def _load_average() -> tuple[float, ...]:
    return tuple(os.getloadavg()) if hasattr(os, "getloadavg") else ()


class _OtherProcessesMeter:
    """The CPU time that other processes (and the hypervisor: steal) took while this block
    ran, in cores (``.cores``): /proc/stat's busy time of the whole machine less this
    process's own CPU time. None where /proc/stat does not exist."""

    cores: float | None = None

    def __enter__(self) -> _OtherProcessesMeter:
        self.wall, self.busy, self.own = time.perf_counter(), _machine_busy_s(), _own_cpu_s()
        return self

    def __exit__(self, *exc: object) -> None:
        busy = _machine_busy_s()
        if busy is not None and self.busy is not None:
            others = (busy - self.busy) - (_own_cpu_s() - self.own)
            self.cores = max(0.0, others / (time.perf_counter() - self.wall))


def _machine_busy_s() -> float | None:
    """Seconds of CPU time the whole machine spent busy since boot (Linux), else None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except OSError:  # pragma: no cover - not Linux
        return None
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    import resource  # (Unix; its clock counts microseconds, os.times()'s only ticks)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_methods(calls: dict, repeats: int) -> tuple[dict[str, Timing], float | None]:
    """Time each zero-argument callable over ``repeats`` rounds that rotate the order.

    Each method is called once (its first call may compile or load code), then the methods
    are called in turn for ``WARM_UP`` of ``ROW_S`` (once each at least): a call's first few
    hundred repetitions can run twice as slow as the rest (celib's and torch's cross-entropy on
    (4096, 10), in a fresh process on a virtual machine). Their mean time there sets how many
    calls make one round: enough for ``MIN_ROUND_S``, and for all the rounds of all the
    methods to take ``ROW_S`` together, so that neither the clock's resolution nor one cache
    miss dominates a tiny call, and /proc/stat's 10 ms ticks are small against the time
    measured. Returns each method's :class:`Timing` and the CPU (in
    cores) that other processes used meanwhile (None where it cannot be measured).
    """
    names = list(calls)
    round_s = max(MIN_ROUND_S, ROW_S / (repeats * len(names)))
    for name in names:  # the first call may compile or load code: it counts for nothing
        calls[name]()
    spent, count = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0)
    warm_until = time.perf_counter() + WARM_UP * ROW_S
    while not count[names[0]] or time.perf_counter() < warm_until:
        for name in names:
            start = time.perf_counter()
            calls[name]()
            spent[name] += time.perf_counter() - start
            count[name] += 1
    number = {name: max(1, min(10_000, math.ceil(round_s * count[name] / spent[name])))
              for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    gc.collect()
    with _OtherProcessesMeter() as meter:
        for round_ in range(repeats):
            for name in names[round_ % len(names):] + names[: round_ % len(names)]:
                call, n = calls[name], number[name]
                start = time.perf_counter()
                for _ in range(n):
                    call()
                samples[name].append(1e3 * (time.perf_counter() - start) / n)
    return {name: Timing(tuple(v)) for name, v in samples.items()}, meter.cores


def noise(timings: dict[str, Timing], busy_elsewhere: float | None, cpus: int) -> str | None:
    """Why a row's ratios cannot be trusted (None: they can): fewer than 3 rounds (no spread to
    judge by), other processes that took over ``BUSY_LIMIT`` of the machine's CPU time while it
    was timed, or a method whose median round was over ``SPREAD_LIMIT`` slower than its best."""
    if min(len(t.samples) for t in timings.values()) < 3:
        return "fewer than 3 rounds: no spread to judge the noise by"
    if busy_elsewhere is not None and busy_elsewhere > BUSY_LIMIT * cpus:
        return f"other processes used {busy_elsewhere:.2f} of {cpus} CPUs"
    worst = max(timings, key=lambda name: timings[name].spread)
    if timings[worst].spread > SPREAD_LIMIT:
        return f"{worst}'s rounds spread {100 * timings[worst].spread:.0f}%"
    return None


def _status_bytes(key: str) -> int:
    """A memory line of /proc/self/status (``VmRSS:``, ``VmHWM:``), in bytes (Linux only)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise KeyError(key)  # pragma: no cover


def peak_rss_rise(call: Callable[[], object]) -> int:
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


def run_in_fresh_python(worker: Callable[[dict], Any], job: dict) -> Any:
    """Call ``worker(job)`` in a fresh Python process and return what it returns (as JSON);
    None where peak RSS cannot be measured (not Linux) or the worker failed (its error is
    printed, not raised). ``worker`` is a module-level function of an importable module."""
    if not sys.platform.startswith("linux") or not os.path.exists("/proc/self/clear_refs"):
        return None  # pragma: no cover
    # Small allocations from the heap, large ones mapped and unmapped at once: RSS then follows
    # what torch holds, not what the allocator keeps cached.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    name = f"{worker.__module__}:{worker.__qualname__}"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.measure", name],
                          input=json.dumps(job), capture_output=True, text=True, env=env,
                          check=False)
    if proc.returncode != 0:  # pragma: no cover - reported, not fatal
        print("torch memory measurement failed:\n" + proc.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _run_worker(name: str) -> None:
    """The fresh process's side of :func:`run_in_fresh_python`: import ``module:function``,
    call it with the job on standard input, and print its result as JSON."""
    module, function = name.split(":")
    worker = getattr(importlib.import_module(module), function)
    print(json.dumps(worker(json.load(sys.stdin))))


@contextlib.contextmanager
def threads_limited(threads: int | None) -> Iterator[int]:
    """Give celib, torch and the BLAS libraries (through threadpoolctl, when installed) the
    same ``threads`` (None: celib's default) for the duration of the block."""
    import torch

    threads = celib.get_num_threads() if threads is None else int(threads)
    previous = celib.set_num_threads(threads)
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
        blas = threadpool_limits(limits=threads)
    except ImportError:  # pragma: no cover
        blas = contextlib.nullcontext()
    try:
        with blas:
            yield threads
    finally:
        celib.set_num_threads(previous)
        torch.set_num_threads(torch_threads)


if __name__ == "__main__":  # pragma: no cover - run by run_in_fresh_python
    _run_worker(sys.argv[1])
