"""Calibration: how far a classifier's confidence is from its accuracy, and how to repair it.

A model is *calibrated* when, among the examples to which it gives confidence about 0.8, about
80 % are right. This module measures that (:func:`expected_calibration_error` with the
per-bin numbers of a reliability diagram and its null distribution
:func:`consistency_null_ece`, :func:`classwise_ece`, :func:`debiased_calibration_error`,
:func:`brier_score` and :func:`brier_decomposition`), repairs it after training
(:func:`fit_temperature`, temperature scaling; :func:`fit_histogram_binning` and
:func:`fit_isotonic`) and gives the loss that changes it during training (:func:`focal_loss`;
its gradient is :func:`focal_loss_grad`).
Chapter 8 (Probabilities you can trust, book/08_calibration.ipynb) explains all of it.

Only numpy is needed (scikit-learn too, imported when :func:`fit_isotonic` is called).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from . import _checks, _core
from ._layout import rows, unrows
from .functional import log_softmax

__all__ = ["expected_calibration_error", "reliability_bins", "ReliabilityBins", "brier_score",
           "consistency_null_ece", "classwise_ece", "debiased_calibration_error",
           "brier_decomposition", "BrierDecomposition", "fit_histogram_binning", "fit_isotonic",
           "Recalibration", "fit_temperature", "focal_loss", "focal_loss_grad", "MAX_BINS"]

NORMS = ("l1", "l2", "max")
STRATEGIES = ("uniform", "quantile")

#: The most bins :func:`reliability_bins` takes. Its result holds four arrays of M values
#: (edges, counts, accuracies, confidences), so time and memory grow with M whatever N is
#: (10**9 bins ran for minutes). A million bins is more than any data set can fill.
MAX_BINS = 10**6


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------

def _option(value: object, name: str, choices: tuple[str, ...]) -> str:
    """A string option among ``choices`` (any other value, a string or not, is refused)."""
    if not (isinstance(value, str) and value in choices):
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _number(value: object, name: str, meaning: str) -> float:
    """A real number as a float; a bool, a string or None is a TypeError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number ({meaning}), got {value!r} "
                        f"of type {type(value).__name__}")
    return float(value)


def _check_n_bins(n_bins: int) -> int:
    """M as a Python int in [1, MAX_BINS]."""
    if isinstance(n_bins, (bool, np.bool_)) or not isinstance(n_bins, numbers.Integral):
        raise TypeError(f"n_bins must be a positive integer, got {n_bins!r} "
                        f"of type {type(n_bins).__name__}")
    if not 1 <= n_bins <= MAX_BINS:
        raise ValueError(f"n_bins must be a positive integer at most {MAX_BINS} (the result "
                         f"holds arrays of n_bins values), got {n_bins!r}")
    return int(n_bins)


def _labels(labels: ArrayLike, n: int, num_classes: int, what: str) -> np.ndarray:
    """Integer class indices of shape (n,) in [0, num_classes), as int64."""
    y = _checks.as_array(labels, "labels")
    if y.dtype.kind not in "iu":
        raise ValueError(f"labels must be integer class indices, got dtype {y.dtype}"
                         + (" (convert with labels.astype(np.int64))" if y.dtype.kind == "f"
                            else ""))
    if y.shape != (n,):
        raise ValueError(f"labels must have shape (N,) = ({n},), one label per row of {what}, "
                         f"got shape {y.shape}")
    if y.dtype == np.uint64 and np.any(y >= num_classes):  # would wrap to negative in int64
        raise IndexError(f"Target {y[y >= num_classes][0]} is out of bounds: class indices must "
                         f"be in [0, {num_classes}) for C = {num_classes} classes.")
    y = y.astype(np.int64, copy=False)
    _checks.check_bounds(y, num_classes)
    return y


def _probs(probs: ArrayLike) -> np.ndarray:
    """Rows of class probabilities, shape (N, C) with N >= 1, as float64."""
    p = _checks.as_array(probs, "probs")
    if p.dtype.kind not in "fiu":
        raise ValueError(f"probs must be a real array of probabilities, got dtype {p.dtype}")
    _checks.check_float_dtype(p, "probs")  # longdouble: a TypeError, as everywhere in celib
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] == 0:
        raise ValueError(f"probs must have shape (N, C) with N >= 1 and C >= 1, got {p.shape}")
    p = p.astype(np.float64)
    if not np.all(np.isfinite(p)):
        raise ValueError("probs must be finite")
    if p.min() < 0 or p.max() > 1:
        raise ValueError(f"probs must lie in [0, 1], got values in [{p.min():.4g}, {p.max():.4g}]: "
                         "are these logits? Apply celib.functional.softmax first")
    sums = p.sum(axis=1)
    if np.max(np.abs(sums - 1)) > 1e-3:
        worst = sums[np.argmax(np.abs(sums - 1))]
        raise ValueError(f"every row of probs must sum to 1 (within 1e-3), found a row summing "
                         f"to {worst:.6g}")
    return p


# --------------------------------------------------------------------------------------------
# Measuring calibration
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReliabilityBins:
    """The numbers of a reliability diagram: top-label confidences and accuracies per bin.

    Attributes
    ----------
    edges : numpy.ndarray, shape (M + 1,)
        Bin edges, from 0 to 1 (``k / M`` for uniform bins). Bin m (0-based) is the interval
        ``(edges[m], edges[m + 1]]``;
        the first bin also holds a confidence of exactly ``edges[0]``.
    counts : numpy.ndarray of int64, shape (M,)
        How many examples fall in each bin.
    accuracies : numpy.ndarray, shape (M,)
        Fraction of the bin's examples whose top-label prediction is right (nan if empty).
    confidences : numpy.ndarray, shape (M,)
        Mean top-label confidence of the bin's examples (nan if empty).

    Notes
    -----
    Made by :func:`reliability_bins`; explained in chapter 8 (Probabilities you can trust,
    book/08_calibration.ipynb). """

    edges: np.ndarray
    counts: np.ndarray
    accuracies: np.ndarray
    confidences: np.ndarray

    @property
    def gaps(self) -> np.ndarray:
        """``accuracies - confidences`` per bin (nan for empty bins)."""
        return self.accuracies - self.confidences

    def error(self, norm: str = "l1") -> float:
        """The calibration error of these bins in ``norm`` (see
        :func:`expected_calibration_error`)."""
        _option(norm, "norm", NORMS)
        full = self.counts > 0
        gaps = np.abs(self.gaps[full])
        weights = self.counts[full] / self.counts.sum()
        if norm == "l1":
            return float(np.sum(weights * gaps))
        if norm == "l2":
            return float(np.sqrt(np.sum(weights * gaps ** 2)))
        return float(np.max(gaps))


def reliability_bins(probs: ArrayLike, labels: ArrayLike, n_bins: int = 15,
                     strategy: str = "uniform") -> ReliabilityBins:
    """Bin the top-label confidences and count the accuracy in each bin.

    Parameters
    ----------
    probs : array_like, shape (N, C)
        Predicted class probabilities, each row summing to 1 (within 1e-3), e.g. a softmax.
    labels : array_like of int, shape (N,)
        The true class indices, in ``[0, C)``.
    n_bins : int, default 15
        M, the number of bins, from 1 to ``MAX_BINS`` (10**6). The result holds four arrays of
        M values, so its time and memory grow with M whatever N is (10**9 bins ran for
        minutes); more bins than that would be almost all empty for any data set.
    strategy : {'uniform', 'quantile'}, default 'uniform'
        ``'uniform'``: M equal-width bins with edges ``k / M`` (Guo et al.), each the double
        nearest :math:`k/M`.
        ``'quantile'``: equal-mass bins, inner edges at the ``m / M`` quantiles of the
        confidences (repeated confidences can leave a bin empty).

    Returns
    -------
    ReliabilityBins
        Edges, counts, per-bin accuracies and mean confidences.

    Raises
    ------
    ValueError
        If ``probs`` is not an (N, C) array of finite probabilities with rows summing to 1,
        ``labels`` is not an integer array of shape (N,), ``n_bins`` is not in
        ``[1, MAX_BINS]``, or ``strategy`` is unknown.
    TypeError
        If ``n_bins`` is not an integer (a float, a bool, a string, None), or ``probs`` is a
        longdouble array (celib computes in float16, float32 or float64, as torch on the CPU).
    IndexError
        If a label is outside ``[0, C)`` (the message names it and the range).

    Notes
    -----
    The confidence of row i is :math:`\\hat q_i = \\max_c q_{ic}` and its prediction the first
    class reaching it (``argmax``). Bins are **right-closed**, :math:`B_m = ((m-1)/M, m/M]` for
    :math:`m = 1..M` (Guo et al. 2017): a confidence of exactly 1.0 lands in the last bin, and one
    of exactly 0 in the first. torchmetrics' bins
    are left-closed instead, ``[(m-1)/M, m/M)``, with 1.0 in an extra (M+1)-th bin.

    The uniform edges are ``np.arange(M + 1) / M``: one correctly rounded division each, so
    edge m is the double nearest :math:`m/M` and a confidence computed as ``m / M`` is on it
    and lands in bin m, as in exact arithmetic. ``np.linspace`` (and torchmetrics'
    ``torch.linspace``) is an ulp off for some m and M: ``5 / 6`` lies above
    ``np.linspace(0, 1, 7)[5]`` and would land one bin too high. The tests compare every bin
    with exact rational arithmetic.
    Explained in chapter 8 (Probabilities you can trust, book/08_calibration.ipynb).

    References
    ----------
    .. [1] C. Guo, G. Pleiss, Y. Sun and K. Q. Weinberger, "On calibration of modern neural
       networks", ICML 2017.

    Examples
    --------
    >>> from celib.calibration import reliability_bins
    >>> bins = reliability_bins([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]], [0, 1, 1], n_bins=2)
    >>> bins.counts.tolist(), bins.accuracies.tolist()
    ([0, 3], [nan, 0.6666666666666666])
    """
    p = _probs(probs)
    y = _labels(labels, p.shape[0], p.shape[1], "probs")
    m = _check_n_bins(n_bins)
    _option(strategy, "strategy", STRATEGIES)
    conf = p.max(axis=1)
    right = (p.argmax(axis=1) == y).astype(np.float64)
    if strategy == "uniform":
        # k / M in one correctly rounded division: edge k is the double nearest k/M, so a
        # confidence computed as k/M is on it. (np.linspace is an ulp off for some k, M: with
        # it 5/6 was above its edge and went one bin too high.)
        edges = np.arange(m + 1, dtype=np.float64) / m
    else:
        edges = np.quantile(conf, np.linspace(0.0, 1.0, m + 1))
        edges[0], edges[-1] = 0.0, 1.0
    # side="left": the first edge >= c, so c in (edges[k-1], edges[k]] goes to bin k - 1.
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, m - 1)
    counts = np.bincount(which, minlength=m).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.bincount(which, weights=right, minlength=m) / counts
        mean_conf = np.bincount(which, weights=conf, minlength=m) / counts
    return ReliabilityBins(edges, counts, acc, mean_conf)


def expected_calibration_error(probs: ArrayLike, labels: ArrayLike, n_bins: int = 15,
                               norm: str = "l1", strategy: str = "uniform") -> float:
    """Top-label expected calibration error (ECE), or its max (MCE) or RMS variants.

    Parameters
    ----------
    probs : array_like, shape (N, C)
        Predicted class probabilities, each row summing to 1 (within 1e-3).
    labels : array_like of int, shape (N,)
        The true class indices, in ``[0, C)``.
    n_bins : int, default 15
        M, the number of bins (15 as in Guo et al.).
    norm : {'l1', 'l2', 'max'}, default 'l1'
        ``'l1'``: ECE; ``'l2'``: the root-mean-square calibration error; ``'max'``: MCE.
    strategy : {'uniform', 'quantile'}, default 'uniform'
        Equal-width or equal-mass bins, see :func:`reliability_bins`.

    Returns
    -------
    float
        With :math:`n_m` examples in bin :math:`B_m`, accuracy :math:`\\mathrm{acc}_m` and mean
        confidence :math:`\\mathrm{conf}_m`:

        .. math::
           \\mathrm{ECE} = \\sum_m \\frac{n_m}{N} |\\mathrm{acc}_m - \\mathrm{conf}_m|, \\quad
           \\mathrm{RMS} = \\Big(\\sum_m \\frac{n_m}{N} (\\mathrm{acc}_m - \\mathrm{conf}_m)^2
           \\Big)^{1/2}, \\quad
           \\mathrm{MCE} = \\max_{m:\\, n_m > 0} |\\mathrm{acc}_m - \\mathrm{conf}_m| .

    Raises
    ------
    ValueError
        For a bad ``probs``, ``labels``, ``n_bins``, ``norm`` or ``strategy`` (see
        :func:`reliability_bins`).
    TypeError
        If ``n_bins`` is not an integer, or ``probs`` is a longdouble array.
    IndexError
        If a label is outside ``[0, C)``.

    Notes
    -----
    Bins are right-closed, ((m-1)/M, m/M], and a confidence of 1.0 is in the last bin (Guo et al.
    2017). ``torchmetrics.functional.classification.multiclass_calibration_error`` uses
    left-closed bins and puts 1.0 in a bin of its own, so the two differ when a confidence is
    exactly on an edge. ECE is a biased estimate: it is above 0 on finite data even for a
    perfectly calibrated model, and it depends on M; compare values only at the same M and N.
    Explained in chapter 8 (Probabilities you can trust, book/08_calibration.ipynb).

    References
    ----------
    .. [1] M. P. Naeini, G. F. Cooper and M. Hauskrecht, "Obtaining well calibrated
       probabilities using Bayesian binning", AAAI 2015.
    .. [2] C. Guo, G. Pleiss, Y. Sun and K. Q. Weinberger, "On calibration of modern neural
       networks", ICML 2017.

    Examples
    --------
    >>> from celib.calibration import expected_calibration_error
    >>> probs = [[0.9, 0.1], [0.75, 0.25], [0.3, 0.7], [0.45, 0.55]]
    >>> round(expected_calibration_error(probs, [0, 1, 1, 1], n_bins=5), 4)
    0.25
    """
    _option(norm, "norm", NORMS)
    return reliability_bins(probs, labels, n_bins, strategy).error(norm)


def brier_score(probs: ArrayLike, labels: ArrayLike) -> float:
    """Multiclass Brier score: the mean squared distance between q and the one-hot target.

    Parameters
    ----------
    probs : array_like, shape (N, C)
        Predicted class probabilities, each row summing to 1 (within 1e-3).
    labels : array_like of int, shape (N,)
        The true class indices, in ``[0, C)``.

    Returns
    -------
    float
        :math:`\\frac{1}{N}\\sum_i \\sum_c (q_{ic} - (e_{y_i})_c)^2`, between 0 (certain and
        right) and 2 (certain and wrong). Like the log loss, and unlike accuracy, it is a
        strictly proper scoring rule.

    Raises
    ------
    ValueError
        For a bad ``probs`` or ``labels`` (as in :func:`reliability_bins`).
    TypeError
        If ``probs`` is a longdouble array.
    IndexError
        If a label is outside ``[0, C)``.

    Notes
    -----
    Brier's original score, summed over the C classes (some libraries divide by C or score only
    the true class). Explained in chapter 8 (Probabilities you can trust,
    book/08_calibration.ipynb).

    References
    ----------
    .. [1] G. W. Brier, "Verification of forecasts expressed in terms of probability",
       Monthly Weather Review 78(1), 1950.

    Examples
    --------
    >>> from celib.calibration import brier_score
    >>> round(brier_score([[0.8, 0.2], [0.5, 0.5]], [0, 1]), 4)
    0.29
    """
    p = _probs(probs)
    y = _labels(labels, p.shape[0], p.shape[1], "probs")
    d = p.copy()
    d[np.arange(len(y)), y] -= 1.0
    return float(np.mean(np.sum(d * d, axis=1)))


def _check_count(value: object, name: str, low: int, high: int, meaning: str) -> int:
    """An integer in [low, high] as a Python int; a bool, a float or None is a TypeError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer ({meaning}), got {value!r} "
                        f"of type {type(value).__name__}")
    number = int(value)
    if not low <= number <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}] ({meaning}), "
                         f"got {value!r}")
    return number


def _class_bins(p: np.ndarray, m: int) -> np.ndarray:
    """For every entry q_ic, its right-closed uniform bin ((k-1)/M, k/M] as k - 1, shape (N, C)."""
    edges = np.arange(m + 1, dtype=np.float64) / m
    return np.clip(np.searchsorted(edges, p, side="left") - 1, 0, m - 1)


def _per_bin_means(which: np.ndarray, values: np.ndarray, m: int) -> tuple[np.ndarray, ...]:
    """Counts and means of ``values`` (N, C) per bin (M, C) of ``which`` (N, C); nan if empty."""
    c = which.shape[1]
    flat = (which + m * np.arange(c)).ravel(order="F")       # class c's bins are c*M .. c*M+M-1
    counts = np.bincount(flat, minlength=m * c).reshape(c, m).T
    sums = np.bincount(flat, weights=values.ravel(order="F"), minlength=m * c).reshape(c, m).T
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts, sums / counts


def consistency_null_ece(probs: ArrayLike, n_bins: int = 15, reps: int = 200, seed: int = 0,
                         strategy: str = "uniform") -> np.ndarray:
    """ECEs of ``probs`` against label sets drawn from ``probs`` itself (consistency resampling).

    Parameters
    ----------
    probs : array_like, shape (N, C)
        Predicted class probabilities, each row summing to 1 (within 1e-3).
    n_bins : int, default 15
        M, the number of bins of the ECE, as in :func:`expected_calibration_error`.
    reps : int, default 200
        How many label sets to draw, from 1 to 10**6.
    seed : int, default 0
        Seed of ``numpy.random.default_rng`` (an integer >= 0): the same seed gives the same
        values on every machine.
    strategy : {'uniform', 'quantile'}, default 'uniform'
        The ECE's binning, see :func:`reliability_bins`.

    Returns
    -------
    numpy.ndarray of float64, shape (reps,)
        :math:`\\mathrm{ECE}(q, \\tilde y^{(r)})` for :math:`r = 1..R`, where each
        :math:`\\tilde y^{(r)}_i` is drawn from the distribution :math:`q_i` (row i of
        ``probs``).

    Raises
    ------
    ValueError
        For a bad ``probs``, ``n_bins`` or ``strategy`` (as in :func:`reliability_bins`), or
        ``reps`` or ``seed`` out of range.
    TypeError
        If ``n_bins``, ``reps`` or ``seed`` is not an integer, or ``probs`` is a longdouble
        array.

    Notes
    -----
    Labels drawn from q make the predictions perfectly calibrated by construction, so these
    values are what the (upward-biased) ECE estimator gives a perfectly calibrated model with
    exactly these predictions: its null distribution. A measured ECE above their 95 %
    quantile is evidence of miscalibration; one inside their range is not. Bröcker and Smith
    (2007) introduced this resampling for reliability diagrams. Label i is the first class c
    with :math:`u_i < \\sum_{j \\le c} q_{ij}` for a uniform :math:`u_i` (the last class if
    rounding leaves the row's sum below :math:`u_i`).
    Explained in chapter 8 (Probabilities you can trust, book/08_calibration.ipynb).

    References
    ----------
    .. [1] J. Bröcker and L. A. Smith, "Increasing the reliability of reliability diagrams",
       Weather and Forecasting 22(3), 2007.

    Examples
    --------
    >>> import numpy as np
    >>> from celib.calibration import consistency_null_ece
    >>> null = consistency_null_ece(np.full((400, 2), 0.5), n_bins=10, reps=50)
    >>> null.shape, bool(null.min() >= 0), bool(np.median(null) < 0.1)
    ((50,), True, True)
    """
    p = _probs(probs)
    m = _check_n_bins(n_bins)
    _option(strategy, "strategy", STRATEGIES)
    count = _check_count(reps, "reps", 1, 10**6, "the number of label sets")
    rng = np.random.default_rng(_check_count(seed, "seed", 0, 2**63 - 1, "a generator seed"))
    cum = np.cumsum(p, axis=1)
    values = np.empty(count)
    for r in range(count):
        y = np.minimum((rng.random(len(p))[:, None] > cum).sum(axis=1), p.shape[1] - 1)
        values[r] = reliability_bins(p, y, m, strategy).error("l1")
    return values


def classwise_ece(probs: ArrayLike, labels: ArrayLike, n_bins: int = 15) -> float:
    """Classwise expected calibration error (Kull et al. 2019): every class's probability, not
    only the top one, against how often that class is the label.

    Parameters
    ----------
    probs : array_like, shape (N, C)
        Predicted class probabilities, each row summing to 1 (within 1e-3).
    labels : array_like of int, shape (N,)
        The true class indices, in ``[0, C)``.
    n_bins : int, default 15
        M, the number of equal-width, right-closed bins per class, as in
        :func:`reliability_bins`.

    Returns
    -------
    float
        With :math:`B_{cm}` the examples whose :math:`q_{ic}` lies in bin m,

        .. math::
           \\mathrm{cwECE} = \\frac1C \\sum_{c=1}^{C} \\sum_{m=1}^{M}
           \\frac{|B_{cm}|}{N} \\Big| \\frac{1}{|B_{cm}|}\\sum_{i \\in B_{cm}} [y_i = c]
           - \\frac{1}{|B_{cm}|}\\sum_{i \\in B_{cm}} q_{ic} \\Big| .

    Raises
    ------
    ValueError
        For a bad ``probs``, ``labels`` or ``n_bins`` (as in :func:`reliability_bins`).
    TypeError
        If ``n_bins`` is not an integer, or ``probs`` is a longdouble array.
    IndexError
        If a label is outside ``[0, C)``.

    Notes
    -----
    The top-label ECE looks only at :math:`\\max_c q_{ic}`; a model can be calibrated there and
    wrong about its second choices. Class c's term is the binary ECE of :math:`q_{\\cdot c}`
    against the indicator :math:`[y = c]`, which torchmetrics computes as
    ``binary_calibration_error`` (with left-closed bins). Like the ECE it is biased upwards on
    finite data.
    Explained in chapter 8 (Probabilities you can trust, book/08_calibration.ipynb).

    References
    ----------
    .. [1] M. Kull, M. Perello-Nieto, M. Kängsepp, T. Silva Filho, H. Song and P. Flach,
       "Beyond temperature scaling: obtaining well-calibrated multiclass probabilities with
       Dirichlet calibration", NeurIPS 2019.

    Examples
    --------
    >>> from celib.calibration import classwise_ece
    >>> round(classwise_ece([[0.9, 0.1], [0.6, 0.4]], [0, 1], n_bins=2), 4)
    0.25
    """
    p = _probs(probs)
    y = _labels(labels, p.shape[0], p.shape[1], "probs")
    m = _check_n_bins(n_bins)
    hit = (y[:, None] == np.arange(p.shape[1])).astype(np.float64)
    which = _class_bins(p, m)
    counts, freq = _per_bin_means(which, hit, m)
    _, conf = _per_bin_means(which, p, m)
    gaps = np.where(counts > 0, np.abs(freq - conf), 0.0)
    return float(np.sum(counts * gaps) / len(y) / p.shape[1])


def debiased_calibration_error(probs: ArrayLike, labels: ArrayLike, n_bins: int = 15,
                               strategy: str = "quantile", squared: bool = False) -> float:
    """Top-label root-mean-square calibration error with Kumar et al.'s (2019) bias correction.

    Parameters
    ----------
    probs : array_like, shape (N, C)
        Predicted class probabilities, each row summing to 1 (within 1e-3).
    labels : array_like of int, shape (N,)
        The true class indices, in ``[0, C)``.
    n_bins : int, default 15
        M, the number of bins.
    strategy : {'uniform', 'quantile'}, default 'quantile'
        The binning of :func:`reliability_bins`; equal-mass bins, as Kumar et al. use, keep
        every bin's count large.
    squared : bool, default False
        Return the debiased estimate of the *squared* error, which can be negative, instead of
        its square root (0 where the estimate is not positive).

    Returns
    -------
    float
        With :math:`n_m` examples in bin m, accuracy :math:`a_m` and mean confidence
        :math:`c_m`, the estimate of :math:`\\mathrm{CE}_2^2` is

        .. math::
           \\widehat{\\mathrm{CE}_2^2} = \\sum_m \\frac{n_m}{N} \\Big[(a_m - c_m)^2
           - \\frac{a_m (1 - a_m)}{n_m - 1}\\Big]

        (the correction is 0 for a bin of one example); the function returns
        :math:`\\sqrt{\\max(0, \\widehat{\\mathrm{CE}_2^2})}`, or the estimate itself with
        ``squared=True``.

    Raises
    ------
    ValueError
        For a bad ``probs``, ``labels``, ``n_bins`` or ``strategy`` (as in
        :func:`reliability_bins`).
    TypeError
        If ``n_bins`` is not an integer, ``squared`` is not a bool, or ``probs`` is a
        longdouble array.
    IndexError
        If a label is outside ``[0, C)``.

    Notes
    -----
    The plug-in :math:`(a_m - c_m)^2` overestimates the squared gap of bin m by the variance of
    :math:`a_m`, :math:`\\mu_m(1 - \\mu_m)/n_m`; :math:`a_m(1 - a_m)/(n_m - 1)` is that
    variance's unbiased estimate when the bin's labels share one success probability, so the
    difference is an unbiased estimate of :math:`(\\mu_m - c_m)^2`. For a perfectly calibrated
    model the squared estimate scatters around 0 instead of sitting above it. This is the
    debiased estimator of Kumar, Liang and Ma (2019); torchmetrics has it only in a private
    function (``_ce_compute(..., norm="l2", debias=True)``, left-closed bins), which the tests
    compare with. It estimates the l2 error, not the l1 ECE.
    Explained in chapter 8 (Probabilities you can trust, book/08_calibration.ipynb).

    References
    ----------
    .. [1] A. Kumar, P. Liang and T. Ma, "Verified uncertainty calibration", NeurIPS 2019.

    Examples
    --------
    >>> from celib.calibration import debiased_calibration_error
    >>> probs = [[0.8, 0.2]] * 4 + [[0.6, 0.4]] * 4
    >>> labels = [0, 0, 0, 1, 0, 0, 1, 1]
    >>> round(debiased_calibration_error(probs, labels, n_bins=2, squared=True), 6)
    -0.066667
    """
    if not isinstance(squared, (bool, np.bool_)):
        raise TypeError(f"squared must be a bool, got {squared!r} of type "
                        f"{type(squared).__name__}")
    bins = reliability_bins(probs, labels, n_bins, strategy)
    full = bins.counts > 0
    n, acc, conf = bins.counts[full], bins.accuracies[full], bins.confidences[full]
    correction = np.where(n > 1, acc * (1 - acc) / np.maximum(n - 1, 1), 0.0)
    estimate = float(np.sum(n / n.sum() * ((acc - conf) ** 2 - correction)))
    return estimate if squared else math.sqrt(max(estimate, 0.0))


@dataclass(frozen=True)
class BrierDecomposition:
    """The terms of the Brier score on binned forecasts, summed over the classes.

    Attributes
    ----------
    reliability : float
        :math:`\\sum_c \\sum_m \\frac{n_{cm}}{N}(\\bar q_{cm} - \\bar o_{cm})^2`: the calibration
        term (0 for a calibrated forecast).
    resolution : float
        :math:`\\sum_c \\sum_m \\frac{n_{cm}}{N}(\\bar o_{cm} - \\bar o_c)^2`: how far the bins'
        frequencies are from the base rates (larger is better).
    uncertainty : float
        :math:`\\sum_c \\bar o_c (1 - \\bar o_c)`: the Brier score of always forecasting the base
        rates; a property of the labels alone.
    within_variance : float
        :math:`\\sum_c \\frac1N \\sum_i (q_{ic} - \\bar q_{c,m(i)})^2`, 0 when the forecasts are
        constant within each bin.
    within_covariance : float
        :math:`\\sum_c \\frac1N \\sum_i (q_{ic} - \\bar q_{c,m(i)})(o_{ic} - \\bar o_{c,m(i)})`, 0
        when the forecasts are constant within each bin.

    Notes
    -----
    Made by :func:`brier_decomposition`; explained in chapter 8 (Probabilities you can trust,
    book/08_calibration.ipynb).
    """

    reliability: float
    resolution: float
    uncertainty: float
    within_variance: float
    within_covariance: float

    @property
    def refinement(self) -> float:
        """``uncertainty - resolution``: the Brier score left after perfect recalibration of
        binned forecasts."""
        return self.uncertainty - self.resolution

    @property
    def total(self) -> float:
        """``reliability - resolution + uncertainty + within_variance - 2 within_covariance``,
        the Brier score exactly (up to rounding)."""
        return (self.reliability - self.resolution + self.uncertainty + self.within_variance
                - 2 * self.within_covariance)


def brier_decomposition(probs: ArrayLike, labels: ArrayLike,
                        n_bins: int = 15) -> BrierDecomposition:
    """Murphy's decomposition of the Brier score into calibration and refinement terms.

    Parameters
    ----------
    probs : array_like, shape (N, C)
        Predicted class probabilities, each row summing to 1 (within 1e-3).
    labels : array_like of int, shape (N,)
        The true class indices, in ``[0, C)``.
    n_bins : int, default 15
        M, the number of equal-width, right-closed bins of each class's probability.

    Returns
    -------
    BrierDecomposition
        Reliability, resolution, uncertainty and the two within-bin terms, summed over the C
        classes, such that

        .. math::
           \\mathrm{Brier} = \\mathrm{REL} - \\mathrm{RES} + \\mathrm{UNC} + \\mathrm{WBV}
           - 2\\,\\mathrm{WBC}

        exactly. On binned forecasts (every :math:`q_{ic}` replaced by its bin's mean) the
        within-bin terms vanish and Brier = REL + (UNC − RES): calibration plus refinement.

    Raises
    ------
    ValueError
        For a bad ``probs``, ``labels`` or ``n_bins`` (as in :func:`reliability_bins`).
    TypeError
        If ``n_bins`` is not an integer, or ``probs`` is a longdouble array.
    IndexError
        If a label is outside ``[0, C)``.

    Notes
    -----
    The multiclass Brier score of :func:`brier_score` is the sum over classes c of the binary
    Brier score of :math:`q_{\\cdot c}` against :math:`o_{ic} = [y_i = c]`; each is decomposed
    over the bins of :math:`q_{\\cdot c}` (Murphy 1973). Expanding
    :math:`(q - o)^2` around the bin means gives the three classical terms and, for forecasts
    that vary within a bin, the within-bin variance and covariance of Stephenson, Coelho and
    Jolliffe (2008). DeGroot and Fienberg (1983) call REL the calibration and UNC − RES the
    refinement.
    Explained in chapter 8 (Probabilities you can trust, book/08_calibration.ipynb).

    References
    ----------
    .. [1] A. H. Murphy, "A new vector partition of the probability score", Journal of Applied
       Meteorology 12(4), 1973.
    .. [2] D. B. Stephenson, C. A. S. Coelho and I. T. Jolliffe, "Two extra components in the
       Brier score decomposition", Weather and Forecasting 23(4), 2008.

    Examples
    --------
    >>> from celib.calibration import brier_decomposition, brier_score
    >>> probs, labels = [[0.8, 0.2], [0.8, 0.2], [0.3, 0.7]], [0, 1, 1]
    >>> d = brier_decomposition(probs, labels, n_bins=5)
    >>> round(d.reliability, 4), round(d.refinement, 4), round(brier_score(probs, labels), 4)
    (0.18, 0.3333, 0.5133)
    """
    p = _probs(probs)
    y = _labels(labels, p.shape[0], p.shape[1], "probs")
    m = _check_n_bins(n_bins)
    n = len(y)
    hit = (y[:, None] == np.arange(p.shape[1])).astype(np.float64)
    which = _class_bins(p, m)
    counts, freq = _per_bin_means(which, hit, m)
    _, conf = _per_bin_means(which, p, m)
    full = counts > 0
    base = hit.mean(axis=0)
    cols = np.arange(p.shape[1])
    dq, do = p - conf[which, cols], hit - freq[which, cols]
    return BrierDecomposition(
        reliability=float(np.sum(counts[full] * (conf[full] - freq[full]) ** 2) / n),
        resolution=float(np.sum(counts * np.where(full, freq - base, 0.0) ** 2) / n),
        uncertainty=float(np.sum(base * (1 - base))),
        within_variance=float(np.sum(dq * dq) / n),
        within_covariance=float(np.sum(dq * do) / n))


# --------------------------------------------------------------------------------------------
# Recalibration maps
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recalibration:
    """A fitted one-vs-rest recalibration map: each class's probability is mapped on its own,
    then every row is renormalised to sum to 1.

    Attributes
    ----------
    method : str
        ``'histogram'`` (:func:`fit_histogram_binning`) or ``'isotonic'``
        (:func:`fit_isotonic`).
    knots : tuple of numpy.ndarray
        Per class: the bin edges (histogram binning) or the increasing breakpoints (isotonic).
    values : tuple of numpy.ndarray
        Per class: the value of each bin, or the fitted value at each breakpoint.

    Notes
    -----
    Explained in chapter 8 (Probabilities you can trust, book/08_calibration.ipynb).
    """

    method: str
    knots: tuple
    values: tuple

    def apply(self, probs: ArrayLike) -> np.ndarray:
        """Map ``probs`` (N, C), with the C of the fit, to recalibrated probabilities (N, C),
        float64; a row that every map sends to 0 becomes uniform."""
        p = _probs(probs)
        if p.shape[1] != len(self.values):
            raise ValueError(f"probs must have C = {len(self.values)} columns, the classes of "
                             f"the fit, got shape {p.shape}")
        out = np.empty_like(p)
        for c, (knots, values) in enumerate(zip(self.knots, self.values, strict=True)):
            if self.method == "histogram":
                which = np.clip(np.searchsorted(knots, p[:, c], side="left") - 1, 0,
                                len(values) - 1)
                out[:, c] = values[which]
            else:
                out[:, c] = np.interp(p[:, c], knots, values)
        sums = out.sum(axis=1, keepdims=True)
        return np.where(sums > 0, out / np.where(sums > 0, sums, 1.0), 1.0 / p.shape[1])


def fit_histogram_binning(probs: ArrayLike, labels: ArrayLike,
                          n_bins: int = 15) -> Recalibration:
    """Histogram binning (Zadrozny and Elkan 2001), one-vs-rest: each class's probability is
    replaced by the frequency of that class among the fitting examples in its bin.

    Parameters
    ----------
    probs : array_like, shape (N, C)
        Predicted class probabilities of a validation set (never of the test set).
    labels : array_like of int, shape (N,)
        Their true class indices, in ``[0, C)``.
    n_bins : int, default 15
        M, the number of equal-width, right-closed bins per class.

    Returns
    -------
    Recalibration
        ``apply(probs)`` maps new probabilities: :math:`g_c(q_c) = \\theta_{c,m(q_c)}`, then
        the row is divided by its sum.

    Raises
    ------
    ValueError
        For a bad ``probs``, ``labels`` or ``n_bins`` (as in :func:`reliability_bins`).
    TypeError
        If ``n_bins`` is not an integer, or ``probs`` is a longdouble array.
    IndexError
        If a label is outside ``[0, C)``.

    Notes
    -----
    :math:`\\theta_{cm} = \\frac{1}{|B_{cm}|}\\sum_{i \\in B_{cm}} [y_i = c]` minimises the
    squared error :math:`\\sum_{i \\in B_{cm}} (\\theta_{cm} - [y_i = c])^2`; an empty bin keeps
    its midpoint. Unlike temperature scaling it can change the argmax, hence the accuracy, and a
    class with :math:`\\theta = 0` gets probability 0, so the NLL can be infinite on new data.
    Guo et al. (2017) compare it with temperature scaling in their Table 1.
    Explained in chapter 8 (Probabilities you can trust, book/08_calibration.ipynb).

    References
    ----------
    .. [1] B. Zadrozny and C. Elkan, "Obtaining calibrated probability estimates from decision
       trees and naive Bayesian classifiers", ICML 2001.
    .. [2] C. Guo, G. Pleiss, Y. Sun and K. Q. Weinberger, "On calibration of modern neural
       networks", ICML 2017.

    Examples
    --------
    >>> from celib.calibration import fit_histogram_binning
    >>> fit = fit_histogram_binning([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7]], [0, 1, 1], n_bins=2)
    >>> fit.values[0].tolist(), fit.apply([[0.95, 0.05]]).round(3).tolist()
    ([0.0, 0.5], [[0.5, 0.5]])
    """
    p = _probs(probs)
    y = _labels(labels, p.shape[0], p.shape[1], "probs")
    m = _check_n_bins(n_bins)
    hit = (y[:, None] == np.arange(p.shape[1])).astype(np.float64)
    counts, freq = _per_bin_means(_class_bins(p, m), hit, m)
    edges = np.arange(m + 1, dtype=np.float64) / m
    middle = (edges[:-1] + edges[1:]) / 2
    theta = np.where(counts > 0, freq, middle[:, None])
    return Recalibration("histogram", (edges,) * p.shape[1],
                         tuple(theta[:, c].copy() for c in range(p.shape[1])))


def fit_isotonic(probs: ArrayLike, labels: ArrayLike) -> Recalibration:
    """Isotonic regression (Zadrozny and Elkan 2002), one-vs-rest: each class's probability is
    mapped by the non-decreasing function that best fits that class's indicator.

    Parameters
    ----------
    probs : array_like, shape (N, C)
        Predicted class probabilities of a validation set (never of the test set).
    labels : array_like of int, shape (N,)
        Their true class indices, in ``[0, C)``.

    Returns
    -------
    Recalibration
        ``apply(probs)`` maps new probabilities: :math:`g_c` interpolates linearly between the
        fitted breakpoints and is constant beyond the first and last; then the row is divided
        by its sum.

    Raises
    ------
    ValueError
        For a bad ``probs`` or ``labels`` (as in :func:`reliability_bins`).
    TypeError
        If ``probs`` is a longdouble array.
    IndexError
        If a label is outside ``[0, C)``.
    ImportError
        If scikit-learn is not installed (it is imported only here).

    Notes
    -----
    :math:`g_c` minimises :math:`\\sum_i (g_c(q_{ic}) - [y_i = c])^2` over non-decreasing
    functions with values in [0, 1], found by pool-adjacent-violators in
    ``sklearn.isotonic.IsotonicRegression`` (``out_of_bounds="clip"``). Like histogram
    binning, but with bins chosen by the data; it can change the argmax and give a class
    probability 0.
    Explained in chapter 8 (Probabilities you can trust, book/08_calibration.ipynb).

    References
    ----------
    .. [1] B. Zadrozny and C. Elkan, "Transforming classifier scores into accurate multiclass
       probability estimates", KDD 2002.

    Examples
    --------
    >>> from celib.calibration import fit_isotonic
    >>> fit = fit_isotonic([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]], [0, 1, 0, 1])
    >>> fit.values[0].round(3).tolist()
    [0.0, 0.5, 0.5, 1.0]
    """
    p = _probs(probs)
    y = _labels(labels, p.shape[0], p.shape[1], "probs")
    from sklearn.isotonic import IsotonicRegression   # lazily: celib needs only numpy
    knots, values = [], []
    for c in range(p.shape[1]):
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(p[:, c], (y == c).astype(np.float64))
        knots.append(np.asarray(iso.X_thresholds_, np.float64))
        values.append(np.asarray(iso.y_thresholds_, np.float64))
    return Recalibration("isotonic", tuple(knots), tuple(values))


# --------------------------------------------------------------------------------------------
# Temperature scaling
# --------------------------------------------------------------------------------------------

def _nll_slope(z: np.ndarray, y: np.ndarray, beta: float) -> float:
    """d/dβ of the mean NLL of softmax(β z): the row mean of Σ_c q_c (z_c − z_y)."""
    centred = z - z[np.arange(len(y)), y][:, None]      # z_c − z_y, exact to one rounding
    s = beta * centred
    s -= s.max(axis=1, keepdims=True)
    q = np.exp(s)
    q /= q.sum(axis=1, keepdims=True)
    return float(np.mean(np.sum(q * centred, axis=1)))


def fit_temperature(logits: ArrayLike, labels: ArrayLike, rtol: float = 1e-10) -> float:
    """The temperature T > 0 that minimises the mean NLL of ``softmax(logits / T)``.

    Parameters
    ----------
    logits : array_like, shape (N, C)
        Logits of a validation set (never of the test set), C >= 2, all finite.
    labels : array_like of int, shape (N,)
        Their true class indices, in ``[0, C)``.
    rtol : float, default 1e-10
        Relative width, in :math:`\\beta = 1/T`, at which the search stops (>= 1e-15).

    Returns
    -------
    float
        T. Dividing the logits by it never changes their argmax, so **accuracy is unchanged**;
        only the confidences move.

    Raises
    ------
    ValueError
        If ``logits`` is not (N, C) with N >= 1, has fewer than 2 classes or a non-finite value;
        if ``labels`` is not an integer array of shape (N,); if ``rtol`` is out of range; or if
        no finite positive T minimises the NLL: when every label already has the largest logit
        (the NLL falls all the way to T → 0) or when the logits do no better than the uniform
        distribution (the NLL falls as T → ∞).
    TypeError
        If ``rtol`` is not a real number (a bool, a string, None), or ``logits`` is a
        longdouble array.
    IndexError
        If a label is outside ``[0, C)`` (the message names it and the range).

    Notes
    -----
    With :math:`\\beta = 1/T`, :math:`f(\\beta) = \\frac1N\\sum_i
    [\\log\\sum_c e^{\\beta z_{ic}} - \\beta z_{iy_i}]` is convex (a log-sum-exp of functions
    linear in :math:`\\beta`), with slope :math:`f'(\\beta) = \\frac1N \\sum_i \\sum_c
    q_{ic}(z_{ic} - z_{iy_i})`, increasing from :math:`f'(0)` (mean logit minus true logit) to
    :math:`f'(\\infty)` (max logit minus true logit). The minimiser exists iff
    :math:`f'(0) < 0 < f'(\\infty)`; the function brackets the sign change of :math:`f'` by
    doubling, then bisects it.

    Accuracy of the result: the returned :math:`\\beta` is the midpoint of an interval on whose
    ends the float64 slope has opposite signs, with relative width at most ``rtol``; so T is
    within a relative ``rtol`` of a zero of the computed slope, and, :math:`f` being flat at its
    minimum, the NLL at T exceeds its minimum by :math:`O(\\mathrm{rtol}^2)` (plus float64
    rounding of the slope, about 1e-16 times the logits' spread).
    Explained in chapter 8 (Probabilities you can trust, book/08_calibration.ipynb).

    References
    ----------
    .. [1] C. Guo, G. Pleiss, Y. Sun and K. Q. Weinberger, "On calibration of modern neural
       networks", ICML 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from celib.calibration import fit_temperature
    >>> z = np.array([[4.0, 0.0], [4.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    >>> y = np.array([0, 0, 1, 1])   # 3 of 4 right: the best confidence is 0.75
    >>> T = fit_temperature(z, y)
    >>> round(T, 6), round(float(1 / (1 + np.exp(-4 / T))), 6)
    (3.640957, 0.75)
    """
    z, y = _temperature_problem(logits, labels)
    if not 1e-15 <= _number(rtol, "rtol", "a relative tolerance in [1e-15, 1)") < 1:
        raise ValueError(f"rtol must be a number in [1e-15, 1), got {rtol!r}")
    if _nll_slope(z, y, 0.0) >= 0:
        raise ValueError("the logits do no better than uniform guessing on these labels (mean "
                         "logit >= true logit on average): the NLL decreases as T -> inf")
    true_is_max = z[np.arange(len(y)), y] >= z.max(axis=1)
    if np.all(true_is_max):
        raise ValueError("every label already has the largest logit: the NLL decreases as "
                         "T -> 0, so no finite T minimises it")
    return 1.0 / _bisect_slope_zero(z, y, float(rtol))


def _temperature_problem(logits: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """fit_temperature's logits as finite float64 (N, C), C >= 2, and its labels, checked."""
    z = _checks.float_array(logits, "logits")
    if z.ndim != 2 or z.shape[0] == 0:
        raise ValueError(f"logits must have shape (N, C) with N >= 1, got {z.shape}")
    if z.shape[1] < 2:
        raise ValueError(f"temperature scaling needs at least 2 classes, got C = {z.shape[1]}")
    z = z.astype(np.float64)
    if not np.all(np.isfinite(z)):
        raise ValueError("logits must be finite (found inf or nan)")
    return z, _labels(labels, z.shape[0], z.shape[1], "logits")


def _bisect_slope_zero(z: np.ndarray, y: np.ndarray, rtol: float) -> float:
    """The β > 0 where the NLL's slope changes sign: bracketed by doubling, then bisected to a
    relative width of ``rtol`` (the midpoint of the last bracket)."""
    lo, hi = 1.0, 1.0
    while _nll_slope(z, y, hi) < 0:
        lo, hi = hi, 2.0 * hi
        if hi > 1e300:  # pragma: no cover - the slope tends to a positive limit
            raise ValueError("could not bracket the minimum of the NLL (T below 1e-300)")
    while lo == hi or _nll_slope(z, y, lo) >= 0:
        hi, lo = lo, 0.5 * lo
        if lo < 1e-300:  # pragma: no cover - f'(0) < 0 was checked
            raise ValueError("could not bracket the minimum of the NLL (T above 1e300)")
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if _nll_slope(z, y, mid) < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# --------------------------------------------------------------------------------------------
# Focal loss
# --------------------------------------------------------------------------------------------

def _focal_parts(input: ArrayLike, target: ArrayLike, gamma: float, alpha: ArrayLike | None,
                 reduction: str) -> tuple[np.ndarray, _core.IndexTargets, np.ndarray,
                                          np.ndarray, np.ndarray, np.ndarray]:
    """Checked rows of logits, targets, log p_t, 1 − p_t and α_t."""
    x = _checks.logits_array(input, "input", target)
    num_classes = _checks.class_count(x)
    t = _checks.as_array(target, "target")
    _checks.check_index_target(t, x.shape, probabilities_allowed=False)
    _checks.check_reduction(reduction)
    g = _number(gamma, "gamma", "the focusing parameter, >= 0")
    if not (math.isfinite(g) and g >= 0):
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
    if alpha is not None:
        a = _checks.as_array(alpha, "alpha")
        _checks.check_float_dtype(a, "alpha")
        if a.ndim == 0:
            raise ValueError(
                "alpha must be None or one weight per class, shape (C,); a scalar alpha (Lin et "
                f"al.'s binary form) is alpha=[1 - a, a] for C = 2, got {alpha!r}")
        if a.dtype.kind not in "fiu" or a.shape != (num_classes,) or not np.all(
                np.isfinite(a)) or np.any(a < 0):
            raise ValueError(f"alpha must hold C = {num_classes} finite weights >= 0, "
                             f"got {alpha!r}")
        alpha = a.astype(np.float64)
    targets = _core.index_targets(t, num_classes, None, None)   # every element counts 1
    labels = targets.classes                            # in the order of rows(x)
    logp = log_softmax(rows(x).astype(np.float64), axis=1)
    logpt = logp[np.arange(len(labels)), labels]
    one_minus = -np.expm1(logpt)                        # 1 − p_t without cancellation
    at = np.ones_like(logpt) if alpha is None else alpha[labels]
    return x, targets, logp, logpt, one_minus, at


def focal_loss(input: ArrayLike, target: ArrayLike, gamma: float = 2.0,
               alpha: ArrayLike | None = None, reduction: str = "mean") -> np.ndarray | np.floating:
    """Focal loss of Lin et al. (2017), :math:`-\\alpha_y (1 - p_t)^\\gamma \\log p_t`, from logits.

    Parameters
    ----------
    input : array_like, shape (C,), (N, C) or (N, C, d1, ..., dK)
        Logits (float16/32/64), class axis 1 (axis 0 for one vector), as in
        :func:`celib.functional.cross_entropy`.
    target : array_like of int64 or uint8
        Class indices, of the input's shape without the class axis.
    gamma : float, default 2.0
        The focusing parameter :math:`\\gamma \\ge 0`; ``gamma=0`` is exactly cross-entropy.
    alpha : array_like, shape (C,), optional
        Per-class weights :math:`\\alpha_c \\ge 0`; example i is weighted by
        :math:`\\alpha_{y_i}`. Lin et al.'s binary :math:`\\alpha` (for the foreground, and
        :math:`1 - \\alpha` for the background, as in ``torchvision.ops.sigmoid_focal_loss``) is
        ``alpha=[1 - a, a]`` with C = 2. A scalar is refused: in the softmax form it would only
        scale the loss.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        ``'mean'`` divides by the number of elements, **not** by :math:`\\sum_i \\alpha_{y_i}`
        (Lin et al. normalise by a count too), so with ``alpha`` and ``gamma=0`` it is
        ``cross_entropy(weight=alpha, reduction='sum') / N``, not ``cross_entropy(weight=alpha)``.

    Returns
    -------
    numpy.ndarray
        The reduced loss (0-d) or, for ``'none'``, one loss per element; in the input's dtype.

    Raises
    ------
    ValueError
        For integer logits, a target of the wrong dtype or shape, an unknown reduction, a
        negative or non-finite ``gamma``, or an ``alpha`` that is not C non-negative weights.
    TypeError
        If ``gamma`` is not a real number (a bool, a string, None), or ``input`` or ``alpha``
        is a longdouble array.
    IndexError
        If a target is outside ``[0, C)``.

    Notes
    -----
    :math:`\\log p_t` comes from :func:`celib.functional.log_softmax` and
    :math:`1 - p_t` from ``-expm1(log p_t)``, so nothing cancels or overflows. The factor
    :math:`(1 - p_t)^\\gamma` shrinks the loss of examples already classified well; it was made
    for the extreme foreground/background imbalance of dense object detection (RetinaNet), and
    Mukhoti et al. (2020) found that it also leaves networks better calibrated than
    cross-entropy. Its gradient is :func:`focal_loss_grad`.
    Explained in chapter 8 (Probabilities you can trust, book/08_calibration.ipynb).

    References
    ----------
    .. [1] T.-Y. Lin, P. Goyal, R. Girshick, K. He and P. Dollár, "Focal loss for dense object
       detection", ICCV 2017.
    .. [2] J. Mukhoti, V. Kulharia, A. Sanyal, S. Golodetz, P. H. S. Torr and P. K. Dokania,
       "Calibrating deep neural networks using focal loss", NeurIPS 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from celib.calibration import focal_loss
    >>> z = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    >>> y = np.array([0, 2])
    >>> focal_loss(z, y, gamma=0.0).round(6), focal_loss(z, y, gamma=2.0).round(6)
    (np.float64(0.669079), np.float64(0.249571))
    """
    x, targets, _, logpt, one_minus, at = _focal_parts(input, target, gamma, alpha, reduction)
    with np.errstate(divide="ignore"):
        per = -at * one_minus ** gamma * logpt
    return _core.reduce(per, targets, reduction, x.dtype)


def focal_loss_grad(input: ArrayLike, target: ArrayLike, gamma: float = 2.0,
                    alpha: ArrayLike | None = None, reduction: str = "mean") -> np.ndarray:
    """Gradient of :func:`celib.calibration.focal_loss` with respect to the logits.

    Parameters
    ----------
    input, target, gamma, alpha, reduction
        As in :func:`celib.calibration.focal_loss`, with the same checks and errors.

    Returns
    -------
    numpy.ndarray
        :math:`\\partial L / \\partial\\,\\text{input}`, in the input's shape and dtype; for
        ``reduction='none'`` the gradient of the sum of the per-element losses.

    Notes
    -----
    With :math:`q = \\operatorname{softmax}(z)` and :math:`p_t = q_y`, the loss of one example
    is :math:`\\ell = -\\alpha_y (1-p_t)^\\gamma \\log p_t` and

    .. math::
       \\frac{\\partial \\ell}{\\partial z} = s\\,(q - e_y), \\qquad
       s = \\alpha_y (1-p_t)^{\\gamma}\\Big(1 - \\gamma\\, \\frac{p_t \\log p_t}{1 - p_t}\\Big),

    cross-entropy's gradient :math:`q - e_y` scaled by :math:`s`, which is 1 for
    :math:`\\gamma = 0` and falls towards 0 as :math:`p_t \\to 1` (:math:`\\log p_t / (1-p_t)`
    tends to -1 there, and is evaluated as that limit at :math:`p_t = 1`). Checked against
    torch autograd in the tests.

    Where :math:`p_t` underflows to 0 (:math:`\\log p_t = -\\infty`, a logit some 1e308 from
    the others, or an infinite one), :math:`p_t \\log p_t / (1-p_t)` is taken as its limit 0,
    so the gradient is :math:`\\alpha_y (q - e_y)`, finite, as cross-entropy's is. A deliberate
    difference from torch autograd on the written-out loss, which gives nan there for
    :math:`\\gamma > 0` (it multiplies 0 by inf); for :math:`\\gamma = 0` both give
    :math:`q - e_y`.
    Explained in chapter 8 (Probabilities you can trust, book/08_calibration.ipynb).

    Examples
    --------
    >>> import numpy as np
    >>> from celib.calibration import focal_loss_grad
    >>> focal_loss_grad(np.array([[0.0, 0.0]]), np.array([0]), gamma=0.0)
    array([[-0.5,  0.5]])
    """
    x, targets, logp, logpt, one_minus, at = _focal_parts(input, target, gamma, alpha, reduction)
    pt = np.exp(logpt)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(one_minus > 0, logpt / one_minus, -1.0)
    # p_t log p_t / (1 - p_t) tends to 0 as p_t -> 0: where p_t underflowed (log p_t = -inf,
    # a logit beyond float64's range of the others) its limit, not 0 * inf = nan
    pt_ratio = np.where(pt > 0, pt * np.where(pt > 0, ratio, 0.0), 0.0)
    s = at * one_minus ** gamma * (1.0 - gamma * pt_ratio)
    g = np.exp(logp)
    g[np.arange(len(targets.classes)), targets.classes] -= 1.0
    g *= s[:, None]
    g = _core.reduce_gradient(g, targets, reduction)
    return unrows(g, x.shape).astype(x.dtype)
