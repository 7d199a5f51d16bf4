"""benchmarks.machine: what the process computes with, and the portability pass's check that every
library's dispatch was really forced down (``make test-portable``)."""

from __future__ import annotations

import pytest

from benchmarks import machine as _machine


def _machine_like(**changes) -> _machine.Machine:
    forced = dict(cpu="test CPU", machine="x86_64", numpy_simd=(), torch_simd="DEFAULT",
                  blas=("openblas Nehalem, 1 thread(s)", "openmp, 1 thread(s)"),
                  celib_threads=1, torch_threads=1)
    return _machine.Machine(**{**forced, **changes})


def test_check_forced_names_every_library_that_was_not_forced():
    assert _machine.check_forced(_machine_like(), "baseline", 1) == []
    native = _machine_like(numpy_simd=("X86_V3", "X86_V4"), torch_simd="AVX512",
                           blas=("openblas SkylakeX, 2 thread(s)",), celib_threads=2,
                           torch_threads=2)
    problems = "\n".join(_machine.check_forced(native, "baseline", 1))
    for word in ("numpy dispatches up to X86_V4", "torch's capability is AVX512", "SkylakeX",
                 "celib uses 2 threads", "torch uses 2 threads"):
        assert word in problems
    avx2 = _machine_like(numpy_simd=("X86_V3",), torch_simd="AVX2",
                         blas=("openblas Haswell, 1 thread(s)",))
    assert _machine.check_forced(avx2, "avx2", 1) == []
    assert _machine.check_forced(avx2, "baseline", 1) != []
    # elsewhere than x86-64 the variables do nothing: only the threads are checked
    arm = _machine_like(machine="aarch64", numpy_simd=("ASIMDHP",), torch_simd="SVE256")
    assert _machine.check_forced(arm, "baseline", 1) == []
    with pytest.raises(ValueError, match="isa must be one of"):
        _machine.check_forced(arm, "avx512", 1)


def test_machine_summary_names_the_simd_level():
    assert "numpy AVX-512, torch AVX512" in _machine_like(
        numpy_simd=("X86_V3", "X86_V4"), torch_simd="AVX512").summary()
    assert "no dispatched SIMD (baseline)" in _machine_like().summary()


def test_describe_reads_this_process():
    machine = _machine.describe()
    assert machine.cpu and machine.machine and machine.celib_threads >= 1
    assert machine.torch_simd is not None and machine.torch_threads >= 1  # torch is installed
    assert _machine.main([]) == 0


def test_main_fails_unless_forced(capsys):
    machine = _machine.describe()
    expected_ok = not _machine.check_forced(machine, "baseline", machine.celib_threads)
    assert _machine.main(["--expect", "baseline", "--threads", str(machine.celib_threads)]) == (
        0 if expected_ok else 1)
    assert ("not forced" in capsys.readouterr().err) != expected_ok
