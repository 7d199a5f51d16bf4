"""What this process computes with: the CPU, the SIMD code paths numpy and torch dispatch to,
the BLAS kernels and the thread counts.

Each of these can change the rounding of a float32 result, and a training run amplifies such
roundings into printed digits. The benchmark prints :func:`describe` beside its timings, and the
book's portability pass (``make test-portable``) forces every library's dispatch down with
environment variables and runs ``python -m benchmarks.machine --expect ISA`` first, which fails
unless the forcing took:

============================  ==================================  ===========================
library                       variable (``ISA=baseline``)         how to see that it took
============================  ==================================  ===========================
numpy's own loops             ``NPY_DISABLE_CPU_FEATURES``        :attr:`Machine.numpy_simd`
torch's ATen kernels          ``ATEN_CPU_CAPABILITY=default``     :attr:`Machine.torch_simd`
numpy's BLAS (OpenBLAS)       ``OPENBLAS_CORETYPE=Nehalem``       :attr:`Machine.blas`
torch's BLAS (MKL)            ``MKL_ENABLE_INSTRUCTIONS=SSE4_2``  not visible; see below
torch's oneDNN (convolution)  ``ONEDNN_MAX_CPU_ISA=SSE41``        not visible; see below
============================  ==================================  ===========================

numpy 2.4 names its dispatch targets by x86-64 level (``X86_V3`` is AVX2 and FMA,
``X86_V4`` is AVX-512), so the older names (``AVX512F``, ``AVX2``, ...) no longer disable
anything. MKL and oneDNN do not report their instruction set on an AMD processor; the two
variables are set for Intel readers, where they do change MKL's and oneDNN's kernels.

Nothing but the standard library is imported at module level; torch and threadpoolctl are
optional.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import platform
import sys
from dataclasses import dataclass

__all__ = ["Machine", "describe", "check_forced"]

# numpy's dispatch targets, from the lowest to the highest, with the names readers know.
_NUMPY_SIMD_NAMES = {"X86_V3": "AVX2", "X86_V4": "AVX-512", "AVX512_ICL": "AVX-512 (Ice Lake)",
                     "AVX512_SPR": "AVX-512 FP16 (Sapphire Rapids)"}
# What each level of the portability pass expects to see.
_EXPECTED: dict[str, dict[str, str | None]] = {
    "baseline": {"numpy_top": None, "torch": "DEFAULT", "openblas": "Nehalem"},
    "avx2": {"numpy_top": "X86_V3", "torch": "AVX2", "openblas": "Haswell"}}


@dataclass(frozen=True)
class Machine:
    """The processor and the code paths this process uses (see :func:`describe`)."""

    cpu: str                      # the processor's model name
    machine: str                  # platform.machine(): x86_64, aarch64, arm64, ...
    numpy_simd: tuple[str, ...]   # numpy's dispatch targets in use; () is the baseline only
    torch_simd: str | None        # torch.backends.cpu.get_cpu_capability(); None without torch
    blas: tuple[str, ...]         # e.g. ("openblas SkylakeX, 2 threads", "openmp, 2 threads")
    celib_threads: int
    torch_threads: int | None

    @property
    def simd_level(self) -> str:
        """numpy's and torch's highest vector instructions in use, in words."""
        top = self.numpy_simd[-1] if self.numpy_simd else None
        numpy_level = _NUMPY_SIMD_NAMES.get(top, top) if top else "no dispatched SIMD (baseline)"
        return f"numpy {numpy_level}, torch {self.torch_simd or 'not installed'}"

    def summary(self) -> str:
        """One line: CPU, SIMD level, BLAS and threads."""
        threads = f"celib {self.celib_threads}"
        if self.torch_threads is not None:
            threads += f", torch {self.torch_threads}"
        return (f"{self.cpu} ({self.machine}); {self.simd_level}; "
                f"BLAS: {'; '.join(self.blas) or 'unknown'}; threads: {threads}")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model")):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover - not Linux
        pass
    return platform.processor() or "unknown CPU"  # pragma: no cover


def _numpy_simd() -> tuple[str, ...]:
    # numpy keeps its dispatch tables in a private module that has no type stubs
    umath = importlib.import_module("numpy._core._multiarray_umath")
    features: dict[str, bool] = umath.__cpu_features__
    return tuple(name for name in umath.__cpu_dispatch__ if features.get(name))


def _blas() -> tuple[str, ...]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover
        return ()
    return tuple(f"{pool['internal_api']}"
                 + (f" {pool['architecture']}" if pool.get("architecture") else "")
                 + f", {pool['num_threads']} thread(s)" for pool in threadpool_info())


def describe() -> Machine:
    """The :class:`Machine` this process runs on, as numpy, torch and the BLAS see it now."""
    from celib import get_num_threads

    torch_simd = torch_threads = None
    if "torch" in sys.modules or _importable("torch"):
        import torch
        torch_simd = torch.backends.cpu.get_cpu_capability()
        torch_threads = torch.get_num_threads()
    return Machine(_cpu_model(), platform.machine(), _numpy_simd(), torch_simd, _blas(),
                   get_num_threads(), torch_threads)


def _importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def check_forced(machine: Machine, isa: str, threads: int) -> list[str]:
    """What in ``machine`` differs from the portability pass's ``isa`` ("baseline" or "avx2")
    and ``threads`` (torch's count may be lower); empty when the forcing took. On a processor
    that is not x86-64 only the thread counts are checked: the variables force x86 code paths."""
    if isa not in _EXPECTED:
        raise ValueError(f"isa must be one of {sorted(_EXPECTED)}, got {isa!r}")
    problems = []
    if machine.celib_threads != threads:
        problems.append(f"celib uses {machine.celib_threads} threads, not {threads}")
    if machine.torch_threads is not None and machine.torch_threads > threads:
        # (torch takes OMP_NUM_THREADS as an upper bound: it never uses more than the cores)
        problems.append(f"torch uses {machine.torch_threads} threads, more than {threads}")
    if machine.machine not in ("x86_64", "AMD64"):
        return problems
    want = _EXPECTED[isa]
    top = machine.numpy_simd[-1] if machine.numpy_simd else None
    if top not in (want["numpy_top"], None):
        problems.append(f"numpy dispatches up to {top}, not {want['numpy_top'] or 'the baseline'}")
    if machine.torch_simd not in (None, want["torch"], "DEFAULT"):
        problems.append(f"torch's capability is {machine.torch_simd}, not {want['torch']}")
    openblas = [b for b in machine.blas if b.startswith("openblas")]
    if openblas and str(want["openblas"]) not in openblas[0]:
        problems.append(f"numpy's BLAS runs {openblas[0]}, not {want['openblas']} kernels")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.machine",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--expect", choices=sorted(_EXPECTED), help="fail unless forced to this")
    parser.add_argument("--threads", type=int, default=1, help="the thread count to expect")
    args = parser.parse_args(argv)
    machine = describe()
    print(machine.summary())
    if args.expect:
        problems = check_forced(machine, args.expect, args.threads)
        for problem in problems:
            print(f"not forced: {problem}", file=sys.stderr)
        if problems:
            return 1
        print(f"forced to {args.expect} with {args.threads} thread(s)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
