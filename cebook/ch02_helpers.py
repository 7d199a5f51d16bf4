"""Plumbing for chapter 2 (Softmax): the per-bin table behind a reliability diagram."""

from __future__ import annotations

import numpy as np

__all__ = ["reliability"]


def reliability(probs, y, n_bins: int = 10, min_count: int = 50) -> np.ndarray:
    """Per confidence bin: mean confidence, accuracy and count, one row per bin.

    ``probs`` has shape (N, C), one predicted distribution per row, and ``y`` holds the N class
    indices. The confidence of a prediction is its largest probability; the bins split [0, 1]
    into ``n_bins`` equal parts, and bins with fewer than ``min_count`` samples are left out.
    """
    probs, y = np.asarray(probs), np.asarray(y)
    bins = np.linspace(0.0, 1.0, n_bins + 1)
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == y
    which = np.clip(np.digitize(confidence, bins) - 1, 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        mask = which == b
        if mask.sum() >= min_count:
            rows.append((confidence[mask].mean(), correct[mask].mean(), mask.sum()))
    return np.array(rows)
