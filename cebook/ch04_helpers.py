"""Plumbing for chapter 4 (Cross-entropy, ``book/04_cross_entropy.ipynb``).

The page shows a small network trained with ``nn.CrossEntropyLoss``; the data set, the model
and the mini-batch loop, with celib's loss recomputed and compared at every step, live here so
that the page's cells show the idea rather than the bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import celib.functional as cf

__all__ = ["rule_data", "make_model", "accuracy", "History", "train"]


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


@dataclass
class History:
    """Per-epoch records of :func:`train`."""

    loss: list = field(default_factory=list)         # mean training loss, torch
    loss_celib: list = field(default_factory=list)   # the same, recomputed by celib
    accuracy: list = field(default_factory=list)     # training accuracy after the epoch
    steps: int = 0                                   # optimiser steps taken
    max_gap: float = 0.0                             # largest |torch - celib| over all steps


def train(model, loss_fn, X, y, epochs: int = 50, batch_size: int = 32, lr: float = 0.1,
          log_every: int = 5, track_celib: bool = True, tolerance: float = 1e-6) -> History:
    """Mini-batch SGD on ``loss_fn(model(X_batch), y_batch)``; the batches are drawn from a
    generator seeded with 0, so two runs see the same batches.

    With ``track_celib``, each step's loss is recomputed by
    :func:`celib.functional.cross_entropy` from the same logits and asserted to agree within
    ``tolerance``. Every ``log_every`` epochs a line is printed (0: never).
    """
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(0)
    h = History()
    for epoch in range(1, epochs + 1):
        permutation = torch.randperm(len(X), generator=order)
        total = total_celib = 0.0
        for start in range(0, len(X), batch_size):
            batch = permutation[start:start + batch_size]
            logits = model(X[batch])
            loss = loss_fn(logits, y[batch])
            if track_celib:
                loss_celib = float(cf.cross_entropy(logits.detach().numpy(), y[batch].numpy()))
                gap = abs(loss.item() - loss_celib)
                assert gap <= tolerance, (loss.item(), loss_celib)
                h.max_gap = max(h.max_gap, gap)
                total_celib += loss_celib * len(batch)
            total += loss.item() * len(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            h.steps += 1
        h.loss.append(total / len(X))
        h.loss_celib.append(total_celib / len(X))
        h.accuracy.append(accuracy(model, X, y))
        if log_every and epoch % log_every == 0:
            celib_part = f"  celib {h.loss_celib[-1]:.4f}" if track_celib else ""
            print(f"epoch {epoch:3d}  loss: torch {h.loss[-1]:.4f}{celib_part}"
                  f"  train accuracy {h.accuracy[-1]:.3f}")
    return h
