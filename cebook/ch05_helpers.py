"""Plumbing for chapter 5, Numerical stability: float limits and their neighbours, plots.

The page shows what is measured and what it means; this module holds the machinery:

- :func:`limits`, :func:`thresholds`, :func:`neighbours`, :func:`exp_in`, :func:`kind`: the
  range of ``exp`` in float16, bfloat16, float32 and float64, and the floats on either side of
  each threshold;
- :func:`plot_errors`: the figure of the ulp errors the page measures (the four losses, the
  exact references and the measurement loop are on the page, with :mod:`celib.testing`'s
  ``exact_cross_entropy``, ``ulp`` and ``ulp_error``); :func:`bucket`: a coarse printable bound.

Every function is deterministic. The mpmath computations use the caller's precision (the page
sets ``mpmath.mp.dps = 50``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import mpmath
import numpy as np
import torch

BF16 = "bfloat16"
DTYPES = [np.float16, BF16, np.float32, np.float64]


def name_of(dtype) -> str:
    """The printable name of a numpy dtype, or ``'bfloat16'``."""
    return dtype if dtype == BF16 else np.dtype(dtype).name


def limits(dtype) -> tuple[float, float, float]:
    """(largest finite M, smallest normal t, smallest subnormal s) as Python floats."""
    if dtype == BF16:
        fi = torch.finfo(torch.bfloat16)
        s = torch.tensor([1], dtype=torch.int16).view(torch.bfloat16).item()  # bits 0x0001
        return fi.max, fi.smallest_normal, s
    fi = np.finfo(dtype)
    return float(fi.max), float(fi.smallest_normal), float(fi.smallest_subnormal)


def thresholds(dtype) -> dict:
    """Exact (mpmath) values of log M, log t, log s and log(s/2) for ``dtype``."""
    big, tiny, sub = (mpmath.mpf(v) for v in limits(dtype))
    return {"log M": mpmath.log(big), "log t": mpmath.log(tiny),
            "log s": mpmath.log(sub), "log(s/2)": mpmath.log(sub / 2)}


def _step(x, dtype, up: bool):
    """The next float of ``dtype`` after x, upwards or downwards."""
    if dtype == BF16:
        target = torch.tensor(np.inf if up else -np.inf, dtype=torch.bfloat16)
        return torch.nextafter(x, target)
    return np.nextafter(x, dtype(np.inf if up else -np.inf))


def _as_dtype(v, dtype):
    return torch.tensor(v, dtype=torch.bfloat16) if dtype == BF16 else dtype(v)


def exp_in(x, dtype) -> float:
    """``exp(x)`` evaluated in ``dtype`` (numpy's exp; torch's for bfloat16), as a float."""
    if dtype == BF16:
        return torch.exp(x).item()
    with np.errstate(over="ignore", under="ignore"):  # overflow and underflow are being tested
        return float(np.exp(x))


def neighbours(exact, dtype):
    """The largest float of ``dtype`` below ``exact`` (an mpmath number) and the next one up."""
    x = _as_dtype(float(exact), dtype)
    while mpmath.mpf(float(x)) >= exact:
        x = _step(x, dtype, up=False)
    while mpmath.mpf(float(_step(x, dtype, up=True))) < exact:
        x = _step(x, dtype, up=True)
    return x, _step(x, dtype, up=True)


def kind(v: float, dtype) -> str:
    """'inf', 'normal', 'subnormal' or 'zero': what kind of number ``v`` is in ``dtype``."""
    _, tiny, _ = limits(dtype)
    if np.isinf(v):
        return "inf"
    return "normal" if v >= tiny else ("subnormal" if v > 0 else "zero")


STYLE = {"naive": ("tab:red", "x"), "shifted": ("tab:orange", "s"),
         "torch": ("tab:blue", "^"), "celib": ("tab:green", "o")}
CAP = 1e18  # the row at the top of the plot where inf and nan results are drawn


def plot_errors(results: dict, spread, t: int, title: str, C: int = 10) -> None:
    """Plot the ulp errors of the four methods against the spread, float32 and float64 side by
    side; inf/nan results are drawn on a separate row at the top."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, dname in zip(axes, ("float32", "float64"), strict=True):
        for name, (colour, marker) in STYLE.items():
            e = results[dname, C, t]["errors"][name]
            shown = np.where(np.isfinite(e), np.maximum(e, 1e-2), CAP)
            ax.plot(spread, shown, marker=marker, ms=3, lw=1, color=colour, label=name)
        ax.axhline(0.5, color="black", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(5e-3, 1e19)
        ax.set_yticks([1e-2, 0.5, 1e3, 1e6, 1e9, 1e12, 1e15, CAP],
                      ["≤0.01", "0.5", "1e3", "1e6", "1e9", "1e12", "1e15", "inf/nan"])
        ax.set_xlabel(f"spread d (logits [d, 0, ..., 0], C = {C})")
        ax.set_title(dname)
    axes[0].set_ylabel("error in ulps")
    axes[0].legend(loc="center left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    plt.show()


def bucket(worst: float) -> str:
    """A coarse, printable bound for a measured worst ulp error: '≤ 0.5', '≤ 1', '≤ 2', ...

    Coarse on purpose: the last bits of exp and log differ between machines, the bucket does not
    (the page asserts the bound it prints).
    """
    if not np.isfinite(worst):
        return "inf/nan"
    for edge, label in ((0.501, "≤ 0.5"), (1.0, "≤ 1"), (2.0, "≤ 2"), (4.0, "≤ 4")):
        if worst <= edge:
            return label
    return f"~1e{int(np.floor(np.log10(worst)))}"
