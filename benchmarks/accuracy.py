"""How many units in the last place: celib, torch, scipy and the textbook formulas against exact.

``python -m benchmarks.accuracy`` prints, for ``logsumexp``, ``log_softmax`` and the per-sample
``cross_entropy``, the worst error in ulp of each method on a set of stress inputs, measured
against an exact reference computed with mpmath (60 significant digits), then checks that a
float32 ``'mean'`` does not overflow when the true mean is finite. ``--quick`` uses a smaller
stress set (the one the tests use).

The stress inputs (:func:`stress_cases`) are the ones that break naive code: one dominant logit
(the loss of a confident, correct prediction is tiny and ``log(1 + s)`` rounds it to 0), huge
magnitudes (``exp`` overflows), nearly equal logits (a large offset with tiny differences),
ordinary random logits, with C from 2 to 10,000.

A float64 logsumexp whose exact value is close to 0 gets a table of its own
(:func:`near_zero_table`): there ``m + log1p(s)`` subtracts two nearly equal numbers, and an
error of one ulp of ``m`` in ``log1p(s)`` is many ulp of the result (scipy's and torch's
error grows like ``1/|lse|``). celib computes such rows again in double-double arithmetic.

An error in ulp (:func:`celib.testing.ulp_error`) is ``|computed − exact| / ulp(exact)``,
where ``ulp(v)`` is the gap between consecutive floating-point numbers of the result's dtype at
the exact value ``v``: 0.5 is the best any method can do (the correctly rounded result), and
``inf`` means an infinite or nan result where the exact one is finite. The exact references are
:func:`celib.testing.exact_logsumexp` and :func:`celib.testing.exact_log_softmax`.

Only numpy is imported with this module; mpmath, torch and scipy are imported by the functions
that need them. Chapter 5 (Numerical stability) shows the table.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import DTypeLike

from celib import functional as cf
from celib import naive
from celib.testing import exact_cross_entropy, exact_log_softmax, exact_logsumexp, ulp_error

__all__ = [
    "Case",
    "stress_cases",
    "methods",
    "error_table",
    "mean_overflow_table",
    "near_zero_cases",
    "near_zero_table",
    "format_table",
    "main",
]

FUNCTIONS = ("logsumexp", "log_softmax", "cross_entropy")
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
TARGET_ULP = {np.dtype(np.float32): 1.0, np.dtype(np.float64): 4.0}


def exact_references(case: Case) -> dict[str, np.ndarray]:
    """The exact values of the three functions on every row of ``case``, as object arrays of
    mpmath numbers (60 digits): ``"logsumexp"`` (rows,), ``"log_softmax"`` (rows, C) and
    ``"cross_entropy"`` (rows, 2), the loss for each of the row's two targets."""
    import mpmath

    rows, classes = case.logits.shape
    exact = {"logsumexp": np.empty(rows, dtype=object),
             "log_softmax": np.empty((rows, classes), dtype=object),
             "cross_entropy": np.empty(case.targets.shape, dtype=object)}
    for i, (row, targets) in enumerate(zip(case.logits, case.targets, strict=True)):
        exact["logsumexp"][i] = exact_logsumexp(row)
        exact["log_softmax"][i] = exact_log_softmax(row)
        for j, t in enumerate(targets):  # the loss is minus the log-probability: exactly
            exact["cross_entropy"][i, j] = mpmath.fneg(exact["log_softmax"][i, t], exact=True)
    return exact


# --------------------------------------------------------------------------------------------
# Stress inputs
# --------------------------------------------------------------------------------------------

@dataclass
class Case:
    """A batch of logits (rows × C) with two targets per row: the argmax and another class."""

    name: str
    logits: np.ndarray
    targets: np.ndarray = field(repr=False)  # shape (rows, 2)


def stress_cases(dtype: DTypeLike, quick: bool = False) -> list[Case]:
    """The stress inputs, deterministic (seeded), for ``dtype`` (float32 or float64).

    Families: ``dominant`` (one logit larger by a gap g), ``huge`` (logits of magnitude up to
    1e30 in float32 and 1e300 in float64, and a large offset), ``near-equal`` (a large offset
    plus differences of a few ulp), ``random`` (normal logits with scale 1 or 10), each for
    several C between 2 and 10,000. ``quick`` keeps fewer rows and classes.
    """
    dtype = np.dtype(dtype)
    f32 = dtype == np.float32
    rng = np.random.default_rng(20240607 + (0 if f32 else 1))
    classes = (2, 3, 10, 100, 1000, 10000) if not quick else (2, 10, 1000)
    rows_for = (lambda c: 1 if c >= 10000 else (2 if c >= 1000 else 4)) if not quick else (
        lambda c: 1 if c >= 1000 else 3)
    gaps: tuple[float, ...] = (1.0, 5.0, 17.0, 40.0, 80.0) if f32 else (
        1.0, 5.0, 17.0, 40.0, 200.0, 700.0)
    if quick:
        gaps = (5.0, 40.0, 80.0) if f32 else (5.0, 40.0, 700.0)
    huge = 1e30 if f32 else 1e300
    offset = 1e4 if f32 else 1e12
    cases: list[Case] = []

    def add(name: str, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=dtype)
        top = np.argmax(x, axis=1)
        other = (top + 1 + rng.integers(0, max(x.shape[1] - 1, 1), size=len(x))) % x.shape[1]
        cases.append(Case(name, x, np.stack([top, other], axis=1)))

    for c in classes:
        n = rows_for(c)
        for g in gaps:
            x = rng.standard_normal((n, c))
            x[np.arange(n), rng.integers(0, c, size=n)] = g + np.abs(x).max(axis=1)
            add(f"dominant gap {g:g}, C={c}", x)
        add(f"huge ±{huge:.0e}, C={c}", rng.uniform(-1, 1, size=(n, c)) * huge)
        add(f"offset {offset:.0e} + N(0,1), C={c}", offset + rng.standard_normal((n, c)))
        add(f"offset -{offset:.0e} + N(0,1), C={c}", -offset + rng.standard_normal((n, c)))
        base = np.full((n, c), 1000.0, dtype=dtype)
        ulps = rng.integers(-4, 5, size=(n, c))
        add(f"near-equal 1000 ± 4 ulp, C={c}",
            base + ulps * np.spacing(np.asarray(1000.0, dtype=dtype)))
        add(f"near-equal 0 ± 1e-6, C={c}", rng.uniform(-1e-6, 1e-6, size=(n, c)))
        for scale in (1.0, 10.0):
            add(f"random N(0,{scale:g}), C={c}", rng.standard_normal((n, c)) * scale)
    return cases


# --------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------

def _pick(matrix: np.ndarray, targets: np.ndarray) -> np.ndarray:
    return np.take_along_axis(np.asarray(matrix), targets, axis=1)


# a method's function: (logits, targets of shape (rows, 2)) -> its results
Method = Callable[[np.ndarray, np.ndarray], np.ndarray]


def methods(available_only: bool = True) -> dict[str, dict[str, Method]]:
    """The methods compared, each a dict of functions (x, targets) → results in x's dtype.

    ``celib``, ``naive`` (:mod:`celib.naive`: ``log(sum(exp))``, ``log(softmax)``,
    ``-log(softmax[y])``), and where installed ``torch`` (``torch.logsumexp``,
    ``F.log_softmax``, ``F.cross_entropy(reduction='none')``) and ``scipy``
    (``scipy.special.logsumexp``, ``log_softmax``, and ``-log_softmax[y]`` for the loss).
    ``targets`` has shape (rows, 2): each row's loss is taken for both of its targets.
    """
    table: dict[str, dict[str, Method]] = {
        "celib": {
            "logsumexp": lambda x, t: cf.logsumexp(x, axis=1),
            "log_softmax": lambda x, t: cf.log_softmax(x, axis=1),
            "cross_entropy": lambda x, t: np.stack(
                [cf.cross_entropy(x, t[:, j].astype(np.int64), reduction="none")
                 for j in range(t.shape[1])],
                axis=1),
        },
    }
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:  # pragma: no cover - torch is a test dependency
        torch = None  # type: ignore[assignment]
    if torch is not None:
        def t_ce(x: np.ndarray, t: np.ndarray) -> np.ndarray:
            tx = torch.from_numpy(np.ascontiguousarray(x))
            return np.stack([F.cross_entropy(tx, torch.from_numpy(t[:, j].astype(np.int64)),
                                             reduction="none").numpy() for j in range(t.shape[1])],
                            axis=1)

        table["torch"] = {
            "logsumexp": lambda x, t: torch.logsumexp(torch.from_numpy(x), dim=1).numpy(),
            "log_softmax": lambda x, t: F.log_softmax(torch.from_numpy(x), dim=1).numpy(),
            "cross_entropy": t_ce,
        }
    try:
        import scipy.special as sp
    except ImportError:  # pragma: no cover
        sp = None
    if sp is not None:
        table["scipy"] = {
            "logsumexp": lambda x, t: sp.logsumexp(x, axis=1),
            "log_softmax": lambda x, t: sp.log_softmax(x, axis=1),
            "cross_entropy": lambda x, t: -_pick(sp.log_softmax(x, axis=1), t),
        }
    table["naive"] = {
        "logsumexp": lambda x, t: naive.logsumexp(x, axis=1),
        "log_softmax": lambda x, t: naive.log_softmax(x, axis=1),
        "cross_entropy": lambda x, t: -np.log(_pick(naive.softmax(x, axis=1), t)),
    }
    return table


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

@dataclass
class Worst:
    """The worst error of one method on one function and dtype, and the case that caused it."""

    ulp: float = 0.0
    case: str = ""


# {(function, dtype name): {method: its worst error}}
ErrorTable = dict[tuple[str, str], dict[str, Worst]]


def error_table(quick: bool = False, dtypes: Sequence[DTypeLike] = DTYPES,
                which: Collection[str] | None = None) -> ErrorTable:
    """Worst ulp error per (function, dtype, method) over :func:`stress_cases`.

    Returns ``{(function, dtype name): {method: Worst}}``. ``which`` limits the methods (names
    from :func:`methods`).
    """
    table: ErrorTable = {}
    all_methods = methods()
    if which is not None:
        all_methods = {k: v for k, v in all_methods.items() if k in which}
    for dtype in dtypes:
        dtype = np.dtype(dtype)
        for case in stress_cases(dtype, quick=quick):
            exact = exact_references(case)
            for method, funcs in all_methods.items():
                for name in FUNCTIONS:
                    with np.errstate(all="ignore"):
                        try:
                            got = np.asarray(funcs[name](case.logits, case.targets))
                        except Exception:  # pragma: no cover - a method that cannot run
                            got = np.full(exact[name].shape, np.nan)
                    err = ulp_error(got, exact[name], dtype)
                    worst = float(np.max(err)) if err.size else 0.0
                    cell = table.setdefault((name, dtype.name), {}).setdefault(method, Worst())
                    if worst > cell.ulp or not cell.case:
                        cell.ulp, cell.case = worst, case.name
    return table


@dataclass(frozen=True)
class OverflowRow:
    """One case of :func:`mean_overflow_table`: the true mean (float64, exact enough at this
    size) and each method's float32 ``'mean'``, by method name."""

    case: str
    true_mean: float
    results: dict[str, float]


def mean_overflow_table() -> list[OverflowRow]:
    """float32 ``'mean'`` cross-entropy where the true mean is finite but large sums overflow.

    A correct method returns the true mean rounded to float32, never inf.
    """
    cases = []
    big = np.float32(3e38)
    # one loss of 6e38 (beyond float32) and one of log 2: the mean, 3e38, is a float32
    cases.append(("losses 6e38 and log 2", np.array([[big, -big], [0.0, 0.0]], np.float32),
                  np.array([1, 0])))
    # four losses of 2e38: each is a float32, their sum 8e38 is not, their mean 2e38 is
    z = np.float32(1e38)
    cases.append(("four losses of 2e38", np.tile(np.array([[z, -z]], np.float32), (4, 1)),
                  np.array([1, 1, 1, 1])))
    # losses near 1e38, N = 1000
    rng = np.random.default_rng(7)
    x = np.zeros((1000, 2), np.float32)
    x[:, 0] = rng.uniform(0.5e38, 1e38, size=1000).astype(np.float32)
    cases.append(("1000 losses in [0.5e38, 1e38]", x, np.ones(1000, dtype=np.int64)))

    try:
        import torch
        import torch.nn.functional as F
    except ImportError:  # pragma: no cover
        torch = None  # type: ignore[assignment]
    rows = []
    for name, logits, target in cases:
        ref = [float(exact_cross_entropy(r, int(t))) for r, t in zip(logits, target, strict=True)]
        true_mean = float(np.mean(np.asarray(ref, dtype=np.float64)))
        row = {"celib": float(cf.cross_entropy(logits, target.astype(np.int64)))}
        if torch is not None:
            row["torch"] = float(F.cross_entropy(torch.from_numpy(logits),
                                                 torch.from_numpy(target.astype(np.int64))))
        with np.errstate(all="ignore"):
            p = naive.softmax(logits, axis=1)
            row["naive"] = float(np.mean(-np.log(p[np.arange(len(target)), target])))
        rows.append(OverflowRow(name, true_mean, row))
    return rows


NEAR_ZERO_TARGET = 2.0  # ulp, celib's float64 logsumexp where m and log1p(s) cancel


def near_zero_cases(rows: int = 300, seed: int = 20251206) -> list[Case]:
    """float64 logits whose logsumexp is near 0: standard-normal rows with C = 2 and 3 (where
    ``|lse| < 1`` is common), the ``rows // 2`` rows of each C with the smallest ``|lse|``
    out of ``4 rows``, and ``LSE(-ln 2, -ln 2)`` ≈ 2.3e-17."""
    rng = np.random.default_rng(seed)
    cases = []
    for c in (2, 3):
        x = rng.standard_normal((4 * rows, c))
        with np.errstate(all="ignore"):
            lse = np.log(np.sum(np.exp(x), axis=1))
        x = x[np.argsort(np.abs(lse))[: rows // 2]]
        cases.append(Case(f"N(0,1) with |lse| near 0, C={c}", x,
                          np.zeros((len(x), 2), dtype=np.int64)))
    x = np.full((1, 2), -np.log(2.0))
    cases.append(Case("LSE(-ln 2, -ln 2)", x, np.zeros((1, 2), dtype=np.int64)))
    return cases


def near_zero_table(cases: Sequence[Case] | None = None) -> dict[str, dict[str, float]]:
    """The worst ulp error of each method's float64 ``logsumexp`` on each of
    :func:`near_zero_cases`, as ``{case name: {method: ulp}}`` (celib, and torch and scipy
    where installed)."""
    cases = near_zero_cases() if cases is None else cases
    table: dict[str, dict[str, float]] = {}
    for case in cases:
        exact = np.array([exact_logsumexp(row) for row in case.logits], dtype=object)
        for method, funcs in methods().items():
            if method != "naive":
                got = np.asarray(funcs["logsumexp"](case.logits, case.targets))
                err = ulp_error(got, exact, np.float64)
                table.setdefault(case.name, {})[method] = float(np.max(err))
    return table


_LADDER = (0.51, 1.0, 2.0, 4.0, 8.0, 100.0, 1e4, 1e6)


def format_ulp(v: float, coarse: bool = False) -> str:
    """An error in ulps as printed in the tables; ``coarse``: the first bound it meets on the
    ladder 0.51, 1, 2, 4, 8, 100, 1e4, 1e6 (see :func:`format_table`)."""
    if not np.isfinite(v):
        return "inf"
    if coarse:
        for bound in _LADDER:
            if v <= bound:
                return f"≤ {bound:g}"
        return f"> {_LADDER[-1]:g}"
    if v < 100:
        return f"{v:.2f}"
    return f"{v:.1e}"


def format_table(table: ErrorTable, show_cases: bool = False, coarse: bool = False) -> str:
    """The error table as aligned text: one line per function and dtype, one column per method.

    ``coarse`` prints each worst error as the first bound it meets on a fixed ladder
    (0.51, 1, 2, 4, 8, 100, 1e4, 1e6 ulp): the exact last digits of an error depend on the CPU's
    ``exp`` and ``log`` (numpy and torch pick SIMD code by CPU), the bounds do not.
    """
    names = []
    for cells in table.values():
        for method in cells:
            if method not in names:
                names.append(method)
    header = f"{'function':<15}{'dtype':<9}" + "".join(f"{n:>12}" for n in names) + f"{'target':>9}"
    lines = [header, "-" * len(header)]
    for (function, dtype), cells in table.items():
        target = TARGET_ULP[np.dtype(dtype)]
        line = f"{function:<15}{dtype:<9}" + "".join(
            f"{format_ulp(cells[n].ulp, coarse) if n in cells else '-':>12}" for n in names)
        lines.append(line + f"{'≤ ' + format(target, 'g'):>9}")
    if show_cases:
        lines.append("")
        lines.append("worst case per cell:")
        for (function, dtype), cells in table.items():
            for n in names:
                if n in cells:
                    worst = format_ulp(cells[n].ulp, coarse)
                    lines.append(f"  {function} {dtype} {n}: {worst} ulp on '{cells[n].case}'")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the error table and the float32 'mean' overflow check; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="the smaller stress set used by the tests")
    parser.add_argument("--cases", action="store_true",
                        help="also print the case behind each worst error")
    parser.add_argument("--backend", choices=("numpy", "numba", "auto"), default=None,
                        help="celib's kernels (default: CELIB_BACKEND, else numpy)")
    args = parser.parse_args(argv)
    if args.backend:  # read by celib at every call
        os.environ["CELIB_BACKEND"] = args.backend
    if importlib.util.find_spec("mpmath") is None:
        print("python -m benchmarks.accuracy computes its exact references with mpmath, which is "
              "not installed: pip install mpmath (torch and scipy are compared when installed), "
              "or run `make accuracy`, which creates .venv with all of them.", file=sys.stderr)
        return 2

    from celib._kernels import get_backend

    table = error_table(quick=args.quick)
    print(f"celib's backend: {get_backend()} (CELIB_BACKEND, or --backend)")
    print("Worst error in ulp against an exact reference (mpmath, 60 digits);")
    print("0.5 is the correctly rounded result, "
          "inf a non-finite result where the exact one is finite.")
    print("cross_entropy is per sample (reduction='none'); scipy's is -log_softmax[y].")
    print()
    print(format_table(table, show_cases=args.cases))
    missed = [
        f"{function} {dtype}: {cells['celib'].ulp:.2f} ulp > {TARGET_ULP[np.dtype(dtype)]:g}"
        for (function, dtype), cells in table.items()
        if cells["celib"].ulp > TARGET_ULP[np.dtype(dtype)]
    ]
    near_zero = near_zero_table(near_zero_cases(rows=60 if args.quick else 300))
    print("\nfloat64 logsumexp near 0 (m and log1p(s) cancel), worst error in ulp "
          f"(celib's target ≤ {NEAR_ZERO_TARGET:g}):")
    for name, cells in near_zero.items():
        print(f"  {name:<32}" + "  ".join(f"{k} {format_ulp(v):<8}" for k, v in cells.items())
              .rstrip())
        if cells["celib"] > NEAR_ZERO_TARGET:
            missed.append(f"logsumexp near 0, {name}: {cells['celib']:.2f} ulp")
    print("\nfloat32 'mean' cross-entropy where the true mean is finite:")
    rows = mean_overflow_table()
    keys = list(rows[0].results)
    print(f"{'case':<32}{'true mean':>14}" + "".join(f"{k:>14}" for k in keys))
    for row in rows:
        print(f"{row.case:<32}{row.true_mean:>14.6g}"
              + "".join(f"{row.results[k]:>14.6g}" for k in keys))
        if not np.isfinite(row.results["celib"]):
            missed.append(f"'mean' overflow: {row.case}")
    if missed:
        print("\ntargets missed: " + "; ".join(missed))
        return 1
    print("\ncelib meets every target (float64 ≤ 4 ulp, ≤ 2 near 0, float32 ≤ 1 ulp, "
          "no 'mean' overflow).")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
