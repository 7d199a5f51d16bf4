"""Fixtures and the hypothesis profile for the celib test-suite.

The helpers the test modules share (torch as the oracle, the tolerances, data generation)
are in :mod:`tests.celib_testing`; ``tests/`` is a package, so this file is ``tests.conftest``
and the browser tests' is ``tests.browser.conftest``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

from tests.celib_testing import FLOAT_DTYPES

# --------------------------------------------------------------------------------------
# Hypothesis: one reproducible profile, loaded by default.
#   derandomize=True  -> the same examples on every run and every machine (seeded from
#                        the test's name), so CI failures reproduce locally;
#   print_blob=True   -> a failing example is printed with a @reproduce_failure blob;
#   database=None     -> nothing written to .hypothesis/ (derandomized runs never use it).
# Per-test @settings(max_examples=...) override only the example count.
# --------------------------------------------------------------------------------------
settings.register_profile(
    "ci",
    derandomize=True,
    print_blob=True,
    deadline=None,
    database=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev",  # HYPOTHESIS_PROFILE=dev: random (non-derandomized) exploration, more examples
    print_blob=True,
    deadline=None,
    max_examples=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

torch.set_num_threads(1)  # tiny tensors; threads only add noise and contention under xdist


@pytest.fixture(params=FLOAT_DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    """Each test using this fixture runs once for float32 and once for float64."""
    return np.dtype(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(20240601)
