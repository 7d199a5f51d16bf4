"""Plumbing for chapter 10 (Beyond one label, ``book/10_beyond_one_label.ipynb``).

The page shows the ideas (the loss of a language model, of a distilled student, of a
contrastive encoder); the encodings, the training loops and the evaluation live here. Every
model is trained with torch on the CPU in float64, from weights drawn by numpy's seeded
generator, with minibatches drawn by numpy: the printed numbers then do not depend on the
reader's CPU (float32 training, or torch's own random draw, rounds differently under AVX-512,
AVX2 or no SIMD, and training amplifies that into printed digits).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from celib import calibration as cc
from celib import functional as cf
from celib.datasets import load_mnist, stratified_split

__all__ = ["CHARS", "PAD", "encode", "bigram_counts", "contexts", "padded_contexts", "CharMLP",
           "train_char_mlp", "sample_names", "load_digits", "Classifier", "train_classifier",
           "soft_targets", "evaluate", "bootstrap_range", "shifted", "Encoder", "train_encoder",
           "linear_probe", "seeded_matrix", "gaussian_pairs", "gaussian_critic"]

#: The 27 tokens: '.' (index 0) marks the start and the end of a name, then a to z.
CHARS = "." + "abcdefghijklmnopqrstuvwxyz"
#: The target value of a padding position: ignored by ``cross_entropy(..., ignore_index=PAD)``.
PAD = -1
_INDEX = {c: i for i, c in enumerate(CHARS)}


def encode(name: str) -> list[int]:
    """The token indices of ``name`` with one boundary token before and after: '.name.'."""
    return [0] + [_INDEX[c] for c in name] + [0]


def bigram_counts(names: list[str]) -> np.ndarray:
    """The (27, 27) float64 matrix N[a, b]: how often token b follows token a."""
    counts = np.zeros((len(CHARS), len(CHARS)))
    for name in names:
        t = encode(name)
        np.add.at(counts, (t[:-1], t[1:]), 1.0)
    return counts


def contexts(names: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (last ``k`` tokens, next token) pair of the names, as int64 arrays (M, k), (M,).

    The context before the first letter is k boundary tokens, so each name of L letters gives
    L + 1 pairs: L letters and the end token.
    """
    X, Y = [], []
    for name in names:
        t = [0] * (k - 1) + encode(name)
        for i in range(len(name) + 1):
            X.append(t[i:i + k])
            Y.append(t[i + k])
    return np.array(X, dtype=np.int64), np.array(Y, dtype=np.int64)


def padded_contexts(names: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """A padded batch: contexts (N, T, k) and targets (N, T), T the longest name's length + 1.

    Name n fills positions 0..len(n); the positions after it have the context of boundary
    tokens and the target :data:`PAD`.
    """
    T = max(map(len, names)) + 1
    X = np.zeros((len(names), T, k), dtype=np.int64)
    Y = np.full((len(names), T), PAD, dtype=np.int64)
    for n, name in enumerate(names):
        x, y = contexts([name], k)
        X[n, :len(y)], Y[n, :len(y)] = x, y
    return X, Y


def seeded_matrix(rows: int, cols: int, scale: float, rng: np.random.Generator) -> torch.Tensor:
    """A float64 parameter of shape (rows, cols), normal with standard deviation ``scale``,
    drawn by numpy (the same on every CPU)."""
    return torch.tensor(rng.normal(0.0, scale, (rows, cols)), requires_grad=True)


@dataclass
class CharMLP:
    """Bengio et al.'s model: embed the last k tokens, concatenate, tanh layer, logits."""

    params: list
    k: int
    history: dict = field(default_factory=dict)

    def logits(self, X) -> torch.Tensor:
        """Logits (..., 27) for contexts X (..., k) (a numpy array or a tensor)."""
        E, W1, b1, W2, b2 = self.params
        X = torch.as_tensor(X)
        h = torch.tanh(E[X].flatten(-2) @ W1.T + b1)
        return h @ W2.T + b2

    def nll(self, X: np.ndarray, Y: np.ndarray) -> float:
        """The mean NLL per token (nats) of the pairs (X, Y), with celib."""
        with torch.no_grad():
            return float(cf.cross_entropy(self.logits(X).numpy(), Y))

    def size(self) -> int:
        """The number of parameters."""
        return sum(p.numel() for p in self.params)


def train_char_mlp(train: tuple, val: tuple, k: int = 3, emb: int = 10, hidden: int = 64,
                   steps: int = 600, batch: int = 512, lr: float = 0.02, every: int = 50,
                   seed: int = 0) -> CharMLP:
    """Train a :class:`CharMLP` with Adam on minibatches of (context, next token) pairs; record
    the mean training loss of the last ``every`` batches and the validation NLL every ``every``
    steps in ``history``."""
    rng = np.random.default_rng(seed)
    C = len(CHARS)
    model = CharMLP([seeded_matrix(C, emb, 1.0, rng),
                     seeded_matrix(hidden, k * emb, (k * emb) ** -0.5, rng),
                     torch.zeros(hidden, dtype=torch.float64, requires_grad=True),
                     seeded_matrix(C, hidden, 0.1 * hidden ** -0.5, rng),
                     torch.zeros(C, dtype=torch.float64, requires_grad=True)], k)
    optimiser = torch.optim.Adam(model.params, lr=lr)
    model.history = {"step": [], "train": [], "val": []}
    X, Y = torch.from_numpy(train[0]), torch.from_numpy(train[1])
    recent = []
    for step in range(1, steps + 1):
        i = torch.from_numpy(rng.integers(0, len(Y), batch))
        loss = F.cross_entropy(model.logits(X[i]), Y[i])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        recent.append(loss.item())
        if step % every == 0:  # the training loss: the mean over the last `every` batches
            model.history["step"].append(step)
            model.history["train"].append(float(np.mean(recent)))
            model.history["val"].append(model.nll(*val))
            recent = []
    return model


def sample_names(model: CharMLP, temperature: float, n: int, seed: int) -> list[str]:
    """``n`` names drawn from the model with its logits divided by ``temperature``."""
    rng = np.random.default_rng(seed)
    names = []
    for _ in range(n):
        context, name = [0] * model.k, ""
        while len(name) < 30:
            with torch.no_grad():
                z = model.logits(np.array(context)).numpy() / temperature
            token = int(rng.choice(len(CHARS), p=cf.softmax(z)))
            if token == 0:
                break
            name += CHARS[token]
            context = context[1:] + [token]
        names.append(name)
    return names


# ----------------------------------------------------------------------------- distillation


def load_digits() -> dict:
    """Chapter 8's parts of the MNIST test file: ``{"fit", "val", "held"}`` -> (X, y), X
    float64 in [0, 1] of shape (N, 784): 7,000 to fit, 1,000 to validate, 2,000 held out."""
    images, labels = load_mnist("test", download=False)
    X = images.reshape(len(images), -1) / 255.0
    train, held = stratified_split(labels, [8000, 2000], seed=0)
    fit, val = stratified_split(labels[train], [7000, 1000], seed=1)
    parts = {"fit": train[fit], "val": train[val], "held": held}
    return {k: (X[i], labels[i].astype(np.int64)) for k, i in parts.items()}


@dataclass
class Classifier:
    """Softmax regression (``hidden=None``) or a one-hidden-layer ReLU MLP, float64."""

    params: list

    def logits(self, X) -> torch.Tensor:
        """The logits (N, 10) of inputs X (N, D), as a tensor."""
        X = torch.as_tensor(X)
        if len(self.params) == 2:
            return X @ self.params[0].T + self.params[1]
        W1, b1, W2, b2 = self.params
        return torch.relu(X @ W1.T + b1) @ W2.T + b2

    def numpy_logits(self, X: np.ndarray) -> np.ndarray:
        """The logits as float64 numpy, without gradients."""
        with torch.no_grad():
            return self.logits(X).numpy()


def _classifier(D: int, hidden: int | None, rng: np.random.Generator) -> Classifier:
    def bias(n: int) -> torch.Tensor:
        return torch.zeros(n, dtype=torch.float64, requires_grad=True)

    if hidden is None:
        return Classifier([seeded_matrix(10, D, 0.01, rng), bias(10)])
    return Classifier([seeded_matrix(hidden, D, (2 / D) ** 0.5, rng), bias(hidden),
                       seeded_matrix(10, hidden, hidden ** -0.5, rng), bias(10)])


def soft_targets(teacher_logits: np.ndarray, T: float) -> np.ndarray:
    """The teacher's probabilities at temperature T, softmax(v / T), float64."""
    return cf.softmax(np.asarray(teacher_logits) / T, axis=1)


def train_classifier(X: np.ndarray, y: np.ndarray, hidden: int | None = None, epochs: int = 20,
                     batch: int = 250, lr: float = 0.003, teacher: np.ndarray | None = None,
                     T: float = 1.0, alpha: float = 0.0, seed: int = 0) -> Classifier:
    """Train with Adam on ``alpha`` x hard cross-entropy + (1 - alpha) x T^2 x the KL
    divergence to the teacher's logits at temperature T (``teacher=None``: hard labels only)."""
    rng = np.random.default_rng(seed)
    model = _classifier(X.shape[1], hidden, rng)
    optimiser = torch.optim.Adam(model.params, lr=lr)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    pt = None if teacher is None else torch.from_numpy(soft_targets(teacher, T))
    for _ in range(epochs):
        for i in np.array_split(rng.permutation(len(y)), len(y) // batch):
            z = model.logits(Xt[i])
            if pt is None:
                loss = F.cross_entropy(z, yt[i])
            else:
                soft = F.kl_div(F.log_softmax(z / T, dim=1), pt[i], reduction="batchmean")
                loss = alpha * F.cross_entropy(z, yt[i]) + (1 - alpha) * T**2 * soft
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model


def evaluate(logits: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy, NLL (nats) and ECE (15 equal-width bins) of logits, with celib."""
    q = cf.softmax(logits, axis=1)
    return {"acc": float(np.mean(logits.argmax(1) == y)),
            "nll": float(cf.cross_entropy(logits, y)),
            "ece": float(cc.expected_calibration_error(q, y))}


def bootstrap_range(logits: np.ndarray, y: np.ndarray, reps: int = 200,
                    seed: int = 0) -> dict:
    """The 5 % and 95 % quantiles of each metric of :func:`evaluate` over ``reps`` resamples
    of the examples with replacement."""
    rng = np.random.default_rng(seed)
    draws = [evaluate(logits[i], y[i]) for i in rng.integers(0, len(y), (reps, len(y)))]
    return {key: tuple(np.quantile([d[key] for d in draws], [0.05, 0.95]))
            for key in draws[0]}


# ----------------------------------------------------------------------------- contrastive


def shifted(X: np.ndarray, rng: np.random.Generator, max_shift: int = 2) -> np.ndarray:
    """Each 28 x 28 image of X (N, 784) moved by a random whole-pixel shift in
    [-max_shift, max_shift] along each axis, the uncovered border filled with 0."""
    m = max_shift
    padded = np.pad(X.reshape(-1, 28, 28), ((0, 0), (m, m), (m, m)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (28, 28), axis=(1, 2))
    dy, dx = rng.integers(-m, m + 1, (2, len(X)))
    return windows[np.arange(len(X)), m - dy, m - dx].reshape(len(X), -1)


@dataclass
class Encoder:
    """A one-hidden-layer ReLU encoder to unit vectors, and a learned log(1/tau)."""

    params: list
    log_scale: torch.Tensor
    history: dict = field(default_factory=dict)

    def embed(self, X) -> torch.Tensor:
        """Unit-norm embeddings (N, d) of inputs X (N, 784)."""
        W1, b1, W2 = self.params
        return F.normalize(torch.relu(torch.as_tensor(X) @ W1.T + b1) @ W2.T, dim=1)

    def features(self, X: np.ndarray) -> np.ndarray:
        """The hidden layer (N, hidden), the representation a linear probe reads."""
        W1, b1, _ = self.params
        with torch.no_grad():
            return torch.relu(torch.as_tensor(X) @ W1.T + b1).numpy()


def train_encoder(X: np.ndarray, hidden: int = 128, dim: int = 32, steps: int = 300,
                  batch: int = 256, lr: float = 0.003, tau: float = 0.1,
                  seed: int = 0) -> Encoder:
    """Train an :class:`Encoder` with CLIP's symmetric InfoNCE loss on two shifted views of
    each image in a batch; the temperature is learned as log(1/tau), clipped at 100 as CLIP
    does. Records the loss and tau every 25 steps."""
    rng = np.random.default_rng(seed)
    enc = Encoder([seeded_matrix(hidden, X.shape[1], (2 / X.shape[1]) ** 0.5, rng),
                   torch.zeros(hidden, dtype=torch.float64, requires_grad=True),
                   seeded_matrix(dim, hidden, hidden ** -0.5, rng)],
                  torch.tensor(np.log(1 / tau), requires_grad=True))
    optimiser = torch.optim.Adam([*enc.params, enc.log_scale], lr=lr)
    enc.history = {"step": [], "loss": [], "tau": []}
    labels = torch.arange(batch)
    for step in range(1, steps + 1):
        images = X[rng.choice(len(X), batch, replace=False)]
        u, v = enc.embed(shifted(images, rng)), enc.embed(shifted(images, rng))
        s = enc.log_scale.clamp(max=np.log(100.0)).exp() * u @ v.T
        loss = (F.cross_entropy(s, labels) + F.cross_entropy(s.T, labels)) / 2
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 25 == 0:
            enc.history["step"].append(step)
            enc.history["loss"].append(loss.item())
            enc.history["tau"].append(1 / enc.log_scale.exp().item())
    return enc


def linear_probe(train: tuple, test: tuple, epochs: int = 30, seed: int = 0) -> float:
    """Held-out accuracy of softmax regression trained (Adam, float64) on standardised
    features: the linear probe."""
    mean, std = train[0].mean(0), train[0].std(0) + 1e-6
    model = train_classifier((train[0] - mean) / std, train[1], epochs=epochs, batch=100,
                             lr=0.01, seed=seed)
    return float(np.mean(model.numpy_logits((test[0] - mean) / std).argmax(1) == test[1]))


def gaussian_pairs(n: int, d: int, rho: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pairs (x, y) of d-dimensional standard normals, coordinate k of y correlated
    with coordinate k of x by ``rho``; their mutual information is -d/2 log(1 - rho^2)."""
    x = rng.standard_normal((n, d))
    return x, rho * x + np.sqrt(1 - rho**2) * rng.standard_normal((n, d))


def gaussian_critic(x: np.ndarray, y: np.ndarray, rho: float) -> np.ndarray:
    """The (n, n) matrix of log p(y_j | x_i) - log p(y_j): the best critic for InfoNCE."""
    s2 = 1 - rho**2
    cond = -((y[None, :, :] - rho * x[:, None, :]) ** 2).sum(-1) / (2 * s2)
    return cond - 0.5 * x.shape[1] * np.log(s2) + 0.5 * (y**2).sum(-1)[None, :]
