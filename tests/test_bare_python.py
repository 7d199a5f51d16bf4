"""The benchmarks in a Python that has numpy and nothing else: one line says what to install.

A reader who installed celib alone (numpy is its only dependency) and runs a benchmark must
not meet a ModuleNotFoundError traceback. Here a fresh interpreter runs with ``-S`` (no
site-packages) and a path holding only numpy and this checkout, which is what such a reader has.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def numpy_only(tmp_path_factory) -> Path:
    """A folder holding numpy (and its bundled libraries) and nothing else."""
    folder = tmp_path_factory.mktemp("numpy_only")
    site = Path(np.__file__).parents[1]
    for name in ("numpy", "numpy.libs"):
        if (site / name).exists():
            os.symlink(site / name, folder / name)
    return folder


def _run(module: str, numpy_only: Path, *args: str) -> subprocess.CompletedProcess:
    code = ("import runpy, sys; "
            f"sys.path[:0] = [{str(numpy_only)!r}, {str(ROOT)!r}]; "
            f"sys.argv = [{module!r}, *{list(args)!r}]; "
            f"runpy.run_module({module!r}, run_name='__main__')")
    return subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=numpy_only)


def test_the_bare_python_has_numpy_and_celib_and_not_torch(numpy_only):
    code = (f"import sys; sys.path[:0] = [{str(numpy_only)!r}, {str(ROOT)!r}]; "
            "import celib.functional as cf; print(f'{cf.cross_entropy([[0.0, 0.0]], [1]):.4f}'); "
            "import torch")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=numpy_only)
    assert out.stdout == "0.6931\n", out.stderr  # celib works with numpy alone
    assert "No module named 'torch'" in out.stderr


@pytest.mark.parametrize("module, missing, install", [
    ("benchmarks.speed", "torch", "pip install torch==2.13.0"),
    ("benchmarks.accuracy", "mpmath", "pip install mpmath"),
])
def test_a_benchmark_without_its_dependency_says_what_to_install(numpy_only, module, missing,
                                                                 install):
    out = _run(module, numpy_only, "--quick")
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert install in out.stderr and "Traceback" not in out.stderr, out.stderr
