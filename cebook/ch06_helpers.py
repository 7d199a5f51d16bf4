"""Plumbing for chapter 6, Gradients: data sets, training loops and the hidden-layer network.

Notation as in the book (``book/notation.md``): logits ``Z = X W^T`` with ``W`` of shape
(C, D); the bias is folded into ``W`` by a column of ones appended to ``X`` (:func:`with_bias`);
``q = softmax(z)`` is the model, ``p`` the target, ``y`` a class index, ``e_y`` its one-hot
vector.

- :func:`example_batch`, :func:`clouds`, :func:`with_bias`, :func:`check_weights`: the seeded
  data the page and the exercise checkers share;
- :func:`grad_torch`: the gradient of ``F.cross_entropy`` by torch autograd, for any option;
- :func:`ce_loss_and_grad`, :func:`se_loss_and_grad`, :func:`train`, :func:`steps_to_half`:
  softmax regression trained by full-batch gradient descent with cross-entropy or squared error;
- :func:`gradient_descent`: the same for cross-entropy plus an L2 penalty or for the multiclass
  hinge loss (celib's ``multi_margin_loss`` and its gradient), recording the weight norm (the
  separable-data section);
- :func:`min_margin`: the smallest margin z_{i,y_i} - max_{j != y_i} z_{i,j} of a data set,
  for the normalised margin that gradient descent on cross-entropy drives towards the SVM's;
- :func:`mlp_cross_entropy`, :func:`mlp_objective`, :func:`swap_hidden_units`, :func:`fit_mlp`:
  the network with one hidden layer of two tanh units (the advanced convexity section);
- :func:`weight_hessian`, :func:`descent_path`: the Hessian in W and plain gradient descent at a
  chosen learning rate (the step-size section);
- :func:`bias_objective`: softmax regression with an unpenalised bias (exercise 5).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import celib.functional as cf
import celib.grad as cg

CENTRES = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])


def example_batch(seed: int = 0):
    """A batch of N = 6 logit rows over C = 4 classes and its targets.

    Returns ``(Z, labels, with_ignored, soft, w)``: logits (6, 4) of scale 2, class indices,
    the same indices with two set to -100 (ignored), probability targets (rows drawn from a
    flat Dirichlet distribution, i.e. uniformly from the probability simplex) and class weights.
    """
    rng = np.random.default_rng(seed)
    Z = rng.normal(scale=2.0, size=(6, 4))
    labels = np.array([0, 3, 1, 1, 2, 3])
    with_ignored = np.array([0, -100, 1, 1, -100, 3])
    soft = rng.dirichlet(np.ones(4), size=6)
    w = np.array([1.0, 2.0, 0.5, 3.0])
    return Z, labels, with_ignored, soft, w


def clouds(centres=CENTRES, n_per_class: int = 100, scale: float = 1.0, seed: int = 0):
    """Gaussian clouds in the plane, one per class: ``(X, y)`` with X of shape (C n, 2)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(centres)), n_per_class)
    return centres[y] + scale * rng.normal(size=(len(y), 2)), y


def with_bias(X: np.ndarray) -> np.ndarray:
    """X with a column of ones appended, so that the last column of W acts as the bias b."""
    return np.hstack([X, np.ones((len(X), 1))])


def check_weights(seed: int = 1) -> np.ndarray:
    """The weights (3, 3) at which the page checks gradients and Hessians of softmax regression."""
    return np.random.default_rng(seed).normal(size=(3, 3))


def grad_torch(Z: np.ndarray, target: np.ndarray, **options) -> np.ndarray:
    """dL/dZ of ``F.cross_entropy(Z, target, **options)`` by autograd (of the sum for 'none')."""
    Zt = torch.tensor(Z, requires_grad=True)
    if options.get("weight") is not None:
        options = {**options, "weight": torch.tensor(options["weight"])}
    loss = F.cross_entropy(Zt, torch.from_numpy(target), **options)
    (loss.sum() if options.get("reduction") == "none" else loss).backward()
    return Zt.grad.numpy()


def ce_loss_and_grad(W, X1, y):
    """Mean cross-entropy of softmax regression and its gradient with respect to W."""
    Z = X1 @ W.T
    return float(cf.cross_entropy(Z, y)), cg.cross_entropy_grad(Z, y).T @ X1


def se_loss_and_grad(W, X1, y):
    """Mean squared error between softmax(X1 W^T) and the one-hot targets, and its gradient."""
    Z = X1 @ W.T
    Q = cf.softmax(Z, axis=1)
    E = np.eye(W.shape[0])[y]
    V = 2 * (Q - E) / len(y)                                  # dL/dQ for the mean over examples
    GZ = Q * (V - np.sum(Q * V, axis=1, keepdims=True))      # J^T V, row by row
    return float(np.mean(np.sum((Q - E) ** 2, axis=1))), GZ.T @ X1


def train(W0, loss_and_grad, X1, y, lr: float, steps: int = 300) -> dict:
    """Full-batch gradient descent; records the cross-entropy and accuracy before every step."""
    W = W0.copy()
    history = {"ce": [], "accuracy": []}
    for _ in range(steps + 1):
        Z = X1 @ W.T
        history["ce"].append(float(cf.cross_entropy(Z, y)))
        history["accuracy"].append(float(np.mean(Z.argmax(axis=1) == y)))
        W = W - lr * loss_and_grad(W, X1, y)[1]
    history = {k: np.array(v) for k, v in history.items()}
    history["W"] = W
    return history


def steps_to_half(W0, loss_and_grad, X1, y, lr: float, max_steps: int = 3000):
    """Gradient-descent steps until the training accuracy first reaches 50% (None: never)."""
    W = W0.copy()
    for step in range(max_steps + 1):
        if np.mean((X1 @ W.T).argmax(axis=1) == y) >= 0.5:
            return step
        W = W - lr * loss_and_grad(W, X1, y)[1]
    return None


def _ce_fast(W, X1, y, lam):
    """Mean cross-entropy + lam ||W||^2 and its gradient, in plain numpy (fast inner loop)."""
    Z = X1 @ W.T
    m = Z.max(axis=1, keepdims=True)
    E = np.exp(Z - m)
    lse = m[:, 0] + np.log(E.sum(axis=1))
    Q = E / E.sum(axis=1, keepdims=True)
    Q[np.arange(len(y)), y] -= 1
    loss = float(np.mean(lse - Z[np.arange(len(y)), y]))
    return loss + lam * float(np.sum(W ** 2)), (Q.T @ X1) / len(y) + 2 * lam * W


def _hinge_fast(W, X1, y, lam):
    """Mean multiclass hinge loss (torch's ``F.multi_margin_loss``, p = 1, margin 1) plus
    lam ||W||^2, and its gradient; at a kink the gradient taken is 0, as in torch."""
    Z = X1 @ W.T
    loss, GZ = float(cf.multi_margin_loss(Z, y)), cg.multi_margin_loss_grad(Z, y)
    return loss + lam * float(np.sum(W ** 2)), GZ.T @ X1 + 2 * lam * W


def gradient_descent(X1, y, C: int, loss: str = "ce", lam: float = 0.0, lr: float = 0.5,
                     checkpoints=(10, 100, 1000, 10_000)) -> dict:
    """Gradient descent from W = 0 on cross-entropy (``loss='ce'``) or the multiclass hinge
    loss (``'hinge'``), plus ``lam ||W||^2``; returns {step: (W, objective, gradient)} at the
    checkpoints, the gradient being the one at W (before the step)."""
    f = _ce_fast if loss == "ce" else _hinge_fast
    W = np.zeros((C, X1.shape[1]))
    out = {}
    for step in range(max(checkpoints) + 1):
        value, G = f(W, X1, y, lam)
        if step in checkpoints:
            out[step] = (W.copy(), value, G)
        W = W - lr * G
    return out


def min_margin(W: np.ndarray, X1: np.ndarray, y: np.ndarray) -> float:
    """The smallest margin over the data set: min_i (z_{i,y_i} - max_{j != y_i} z_{i,j}) with
    logits Z = X1 W^T; positive exactly when W separates the data."""
    Z = X1 @ W.T
    rival = np.where(np.eye(W.shape[0])[y] > 0, -np.inf, Z).max(axis=1)   # best wrong logit
    return float((Z[np.arange(len(y)), y] - rival).min())


def _unpack(theta, C: int = 3):
    """The flat parameter vector (15 numbers) as W1 (2x2), b1 (2), W2 (Cx2), b2 (C)."""
    return theta[:4].reshape(2, 2), theta[4:6], theta[6:6 + 2 * C].reshape(C, 2), theta[6 + 2 * C:]


def mlp_cross_entropy(theta, X, y):
    """Mean cross-entropy of the network z = W2 tanh(W1 x + b1) + b2 (torch tensors)."""
    W1, b1, W2, b2 = _unpack(theta)
    return F.cross_entropy(torch.tanh(X @ W1.T + b1) @ W2.T + b2, y)


def mlp_objective(theta, X, y, lam: float):
    """Cross-entropy plus the weight-decay penalty lam ||theta||^2."""
    return mlp_cross_entropy(theta, X, y) + lam * (theta ** 2).sum()


def swap_hidden_units(theta):
    """The same network with its two hidden units swapped: rows of W1, b1, columns of W2."""
    W1, b1, W2, b2 = _unpack(theta)
    return torch.cat([W1[[1, 0]].reshape(-1), b1[[1, 0]], W2[:, [1, 0]].reshape(-1), b2])


def fit_mlp(X, y, lam: float, seed: int = 0):
    """Minimise :func:`mlp_objective` with L-BFGS (strong Wolfe line search) from a seeded
    start; returns the parameter vector (float64, detached)."""
    torch.manual_seed(seed)
    theta = torch.cat([torch.randn(4), torch.zeros(2), torch.randn(6), torch.zeros(3)]).double()
    theta.requires_grad_()
    optimiser = torch.optim.LBFGS([theta], max_iter=500, tolerance_grad=1e-9,
                                  tolerance_change=0.0, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        value = mlp_objective(theta, X, y, lam)
        value.backward()
        return value

    optimiser.step(closure)
    return theta.detach()


def weight_hessian(W: np.ndarray, X1: np.ndarray) -> np.ndarray:
    """The Hessian of softmax regression's mean cross-entropy in W (flattened row by row):
    the mean over examples of (diag(q_i) - q_i q_i^T) ⊗ x_i x_i^T (exercise 4's formula)."""
    Q = cf.softmax(X1 @ W.T, axis=1)
    return sum(np.kron(np.diag(q) - np.outer(q, q), np.outer(x, x))
               for q, x in zip(Q, X1, strict=True)) / len(X1)


def descent_path(X1, y, C: int, lr: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Gradient descent on the mean cross-entropy from W = 0: the loss before each of ``steps``
    steps and after the last (``steps + 1`` values), and the final W."""
    W = np.zeros((C, X1.shape[1]))
    losses = np.empty(steps + 1)
    for step in range(steps + 1):
        losses[step], G = _ce_fast(W, X1, y, 0.0)
        if step < steps:
            W = W - lr * G
    return losses, W


def bias_objective(theta, X, y, lam: float):
    """Softmax regression with a separate, unpenalised bias (exercise 5): mean cross-entropy of
    z = W x + b plus lam ||W||^2, with theta = (W row by row, then b) as a torch tensor."""
    C, D = int(y.max()) + 1, X.shape[1]
    W, b = theta[:C * D].reshape(C, D), theta[C * D:]
    return F.cross_entropy(X @ W.T + b, y) + lam * (W ** 2).sum()
