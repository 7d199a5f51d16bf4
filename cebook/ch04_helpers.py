"""Plumbing for chapter 4 (Cross-entropy, ``book/04_cross_entropy.ipynb``).

The page trains a small network with ``nn.CrossEntropyLoss``; its training loop is on the page.
The data set, the model and the accuracy live here, so that the page's cells show the idea
rather than the bookkeeping.
"""

from __future__ import annotations

__all__ = ["rule_data", "make_model", "accuracy"]


def rule_data(n: int = 1000, n_train: int = 800, seed: int = 0):
    """``n`` standard normal points in R^10 labelled by x0 + x1 - x2 + 0.8 x3 x4 > 0.

    Returns ``(X_train, y_train, X_test, y_test)`` as torch tensors (float64 and int64); the
    first ``n_train`` points train, the rest test. The points are drawn in float32 and widened,
    and the network is trained in float64, so that the printed losses and accuracies do not
    depend on the rounding of a particular CPU's float32 kernels.
    """
    import torch

    torch.manual_seed(seed)
    X = torch.randn(n, 10)
    labels = (X[:, 0] + X[:, 1] - X[:, 2] + 0.8 * X[:, 3] * X[:, 4] > 0).long()
    X = X.double()
    return X[:n_train], labels[:n_train], X[n_train:], labels[n_train:]


def make_model(seed: int = 0):
    """The network 10 -> 5 -> 2 with a ReLU, initialised from ``torch.manual_seed(seed)`` (in
    float32, as PyTorch does by default) and then converted to float64."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 2)).double()


def accuracy(model, X, y) -> float:
    """The fraction of rows of ``X`` whose largest logit is at the label ``y``."""
    import torch

    with torch.no_grad():
        return (model(X).argmax(dim=1) == y).float().mean().item()
