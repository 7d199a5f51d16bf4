"""Plumbing for chapter 2 (Softmax): the per-bin table behind a reliability diagram, and the
probability simplex of three classes drawn as a triangle."""

from __future__ import annotations

import numpy as np

__all__ = ["reliability", "to_triangle", "draw_simplex"]

# The corners of the triangle: class 0 bottom left, class 1 bottom right, class 2 at the top.
CORNERS = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])


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


def to_triangle(q) -> np.ndarray:
    """Points of the plane for distributions over 3 classes, shape (..., 3) -> (..., 2).

    Each distribution is the weighted average of the triangle's corners, weighted by its
    probabilities: a one-hot vector is a corner, the uniform distribution the centre.
    """
    return np.asarray(q, dtype=np.float64) @ CORNERS


def draw_simplex(ax, labels=("class 0", "class 1", "class 2")) -> None:
    """The triangle's outline, its corners labelled, and no axes (they mean nothing here)."""
    ax.plot(*CORNERS[[0, 1, 2, 0]].T, color="black", lw=1)
    offsets = [(-0.03, -0.05), (0.03, -0.05), (0.0, 0.04)]
    for corner, label, (dx, dy), ha in zip(CORNERS, labels, offsets, ["right", "left", "center"],
                                           strict=True):
        ax.text(corner[0] + dx, corner[1] + dy, label, ha=ha, va="center")
    ax.set_aspect("equal")
    ax.set_xlim(-0.2, 1.2)
    ax.set_ylim(-0.12, 1.0)
    ax.axis("off")
