"""Checkers for the exercises of chapter 4, Cross-entropy.

Each checker recomputes what it needs with numpy and depends on nothing the page defines.
"""

from __future__ import annotations

import math

import numpy as np

from . import as_array, as_number, call_reader, checker, correct, require

__all__ = ["check_ex1", "check_ex2", "check_ex3", "check_ex4", "check_ex5", "check_ex6"]


def _per_sample(z, y) -> np.ndarray:
    """-log softmax(z)_y per row, float64, with the max-shift."""
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=1, keepdims=True)
    log_q = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    return -log_q[np.arange(len(y)), y]


def _softmax(z) -> np.ndarray:
    """softmax(z) per row, float64, with the max-shift."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _named_mistakes(loss: float, z, y, w=None) -> None:
    """Reject the chapter's named mistakes, each with its hint: the mean over the N x C
    entries (mistake 2), a softmax before the loss (mistake 1), NLLLoss on raw logits, bits."""
    z, y = np.asarray(z, dtype=np.float64), np.asarray(y)
    w = np.ones(z.shape[1]) if w is None else np.asarray(w, dtype=np.float64)
    ell = _per_sample(z, y)
    right = float(np.sum(w[y] * ell) / w[y].sum())
    after_softmax = float(np.sum(w[y] * _per_sample(_softmax(z), y)) / w[y].sum())
    raw_logits = float(np.sum(w[y] * -z[np.arange(len(y)), y]) / w[y].sum())
    require(not math.isclose(loss, right / z.shape[1], rel_tol=1e-6),
            "that is the mean over all N x C entries of the one-hot product: the mean is over "
            "the samples, not the classes")
    require(not math.isclose(loss, after_softmax, rel_tol=1e-6),
            "that is the loss of softmax(z) taken as logits: the loss takes the logits "
            "themselves")
    require(not math.isclose(loss, raw_logits, rel_tol=1e-6),
            "that is -z_y, what NLLLoss returns on raw logits: take the log-softmax first")
    require(not math.isclose(loss, right / math.log(2), rel_tol=1e-6),
            "that is in bits: the loss uses the natural logarithm")


EX1_LOGITS = [[0.02, -0.01, 0.03, -0.04], [-0.03, 0.01, 0.00, 0.02]]
EX1_LABELS = [2, 0]


@checker
def check_ex1(loss, expected) -> None:
    """Exercise 1: the mean loss of a 4-class network at initialisation (logits EX1_LOGITS,
    labels EX1_LABELS), and the value the loss of any C-class classifier starts near, ln C."""
    loss, expected = as_number(loss, "loss"), as_number(expected, "expected")
    z, y, C = EX1_LOGITS, EX1_LABELS, 4
    ell = _per_sample(z, y)
    require(not math.isclose(loss, ell.sum(), rel_tol=1e-6),
            "that is the sum of the two losses: the default reduction is the mean")
    _named_mistakes(loss, z, y)
    require(math.isclose(loss, ell.mean(), rel_tol=1e-6),
            f"{loss:.6f} is not the loss: which probability does each label pick?")
    require(not math.isclose(expected, math.log(2), rel_tol=1e-6),
            "ln 2 is the starting loss of a two-class model: how many classes are there here?")
    require(not math.isclose(expected, math.log2(C), rel_tol=1e-6),
            "that is in bits: the loss uses the natural logarithm")
    require(not math.isclose(expected, 1 / C, rel_tol=1e-6),
            "1/C is the probability each class gets at initialisation; the loss is its -log")
    require(math.isclose(expected, math.log(C), rel_tol=1e-6),
            f"expected = {expected:.4f}: with nearly equal logits every class gets about the same "
            f"probability; what is then the loss of any label?")
    correct(f"the loss is {loss:.4f} nats, within {abs(loss - expected):.4f} of ln {C} = "
            f"{expected:.4f}: a first loss far from ln C means a bug or a bad initial scale.")


@checker
def check_ex2(loss) -> None:
    """Exercise 2: the weighted mean cross-entropy of the exercise's logits, targets, weights."""
    loss = as_number(loss, "loss")
    y, w = np.array([0, 2, 2]), np.array([1.0, 3.0, 2.0])
    z = [[1.0, 0.0, -1.0], [0.5, 0.5, 0.0], [0.0, 2.0, 0.0]]
    ell = _per_sample(z, y)
    weighted_sum = float(np.sum(w[y] * ell))
    _named_mistakes(loss, z, y, w)
    require(not math.isclose(loss, weighted_sum / len(y), rel_tol=1e-6),
            "you divided by N: divide by the sum of the targets' weights")
    require(not math.isclose(loss, weighted_sum / w.sum(), rel_tol=1e-6),
            "you divided by the sum of all class weights: only the targets' weights w[y] count")
    require(math.isclose(loss, weighted_sum / w[y].sum(), rel_tol=1e-6),
            f"{loss:.6f} is not the weighted mean: which weight belongs to each sample?")
    correct(f"the weighted mean is {loss:.4f}.")


@checker
def check_ex3(floor) -> None:
    """Exercise 3: the smallest loss of one sample, C = 100, label_smoothing=0.2 (nats)."""
    floor = as_number(floor, "floor")
    C, eps = 100, 0.2
    p = np.full(C, eps / C)
    p[0] += 1 - eps
    h = float(-np.sum(p * np.log(p)))
    require(math.isclose(floor, h, rel_tol=1e-6),
            f"{floor:.6f} nats is not the floor: at its minimum the model predicts the smoothed "
            f"target itself; what is the loss then?")
    correct(f"the floor is H(p) = {h:.4f} nats, reached at the logits log p.")


EX4_PLATEAU = math.log(1 + 99 / math.e)   # the floor for C = 100, printed to 4 decimals


@checker
def check_ex4(C, highest) -> None:
    """Exercise 4: a model ending in nn.Softmax whose loss plateaus at 3.6222 with 100 % training
    accuracy: its number of classes C (100), and the highest loss it could report."""
    C, highest = as_number(C, "C"), as_number(highest, "highest")
    f = round(EX4_PLATEAU, 4)
    require(not math.isclose(C, math.exp(f), rel_tol=1e-3),
            "that C makes the plateau ln C, the loss of a uniform guess; but the model is right "
            "on every sample: which loss has a floor above 0 then?")
    require(not math.isclose(C, 2 ** f, rel_tol=1e-3),
            "that reads the plateau in bits: the loss uses the natural logarithm")
    require(not math.isclose(C, math.e * (math.exp(f) - 1), rel_tol=1e-3),
            "off by one: solve log(1 + (C - 1)/e) = plateau for C itself")
    require(abs(C - 100) < 0.05,
            f"C = {C:.4f} does not give that floor: write the floor of a softmax before the "
            f"loss as a function of C and solve for C")
    require(not math.isclose(highest, math.log(100), rel_tol=1e-6),
            "ln C is the loss of a uniform guess by a correct loss; with the extra softmax, "
            "where is the ceiling?")
    require(math.isclose(highest, math.log(math.e + 99), rel_tol=1e-5),
            f"highest = {highest:.4f} is not the ceiling: put all of the probability on one "
            f"wrong class")
    correct(f"C = 100, and the loss is stuck between {EX4_PLATEAU:.4f} and "
            f"{math.log(math.e + 99):.4f}, 1 nat apart, however right or wrong the model is.")


def _sequence_problem(seed: int, n: int, length: int, classes: int):
    """Seeded float64 logits (N, L, C), int32 labels (N, L) (one of them >= 256 when C > 256)
    and positive, unequal class weights; and the right weighted mean, in numpy."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(n, length, classes))
    labels = rng.integers(0, classes, size=(n, length)).astype(np.int32)
    if classes > 256:
        labels[0, 0] = 260                        # uint8 would wrap this label to 4
    w = rng.uniform(0.5, 3.0, size=classes)
    ell = _per_sample(logits.reshape(-1, classes), labels.reshape(-1))
    right = float(np.sum(w[labels.reshape(-1)] * ell) / w[labels.reshape(-1)].sum())
    return logits, labels, w, right


def _remaining_bug(loss: float, logits, labels, w) -> str | None:
    """Which of the script's silent bugs an answer still has, or None."""
    n, length, classes = logits.shape
    y = labels.reshape(-1).astype(np.int64)
    for softmax_first in (False, True):
        for reshaped in (False, True):
            z = _softmax(logits.reshape(-1, classes)).reshape(logits.shape) if softmax_first \
                else logits
            rows = z.reshape(n, classes, length).transpose(0, 2, 1) if reshaped else z
            ell = _per_sample(rows.reshape(-1, classes), y)
            for divide_by_n in (False, True):
                value = np.sum(w[y] * ell) / (len(y) if divide_by_n else w[y].sum())
                if (softmax_first or reshaped or divide_by_n) and math.isclose(
                        loss, float(value), rel_tol=1e-7):
                    return ("a softmax is still applied before the loss" if softmax_first else
                            "the logits are reshaped to (N, C, L), which mixes positions and "
                            "classes: move the class axis with transpose or permute"
                            if reshaped else "the weighted losses are divided by the number of "
                            "tokens: divide by the sum of their weights, or pass weight=w")
    return None


@checker
def check_ex5(fixed_loss) -> None:
    """Exercise 5: the fixed training loss, called as fixed_loss(logits, labels, w) with torch
    tensors: logits (N, L, C) float64, labels (N, L) int32, class weights (C,)."""
    import torch

    for seed, shape in ((0, (2, 3, 4)), (1, (3, 5, 7)), (2, (2, 4, 300))):
        logits, labels, w, right = _sequence_problem(seed, *shape)
        result = call_reader(fixed_loss, torch.from_numpy(logits), torch.from_numpy(labels),
                             torch.from_numpy(w), what="fixed_loss")
        loss = as_number(result.detach() if hasattr(result, "detach") else result,
                         "fixed_loss(logits, labels, w)")
        bug = _remaining_bug(loss, logits, labels, w)
        require(bug is None, f"not yet: {bug}")
        wrapped = labels.astype(np.uint8).astype(np.int64)
        if shape[2] > 256:
            require(not math.isclose(loss, _remaining_bug_free(logits, wrapped, w), rel_tol=1e-7),
                    "with C = 300, the label 260 became 4: uint8 holds 0 to 255; class indices "
                    "are int64 (.long())")
        require(math.isclose(loss, right, rel_tol=1e-7),
                f"for logits of shape {shape} the loss should be the weighted mean of the "
                f"per-token losses, not {loss:.6f}")
    correct("all four bugs fixed: logits, not probabilities; the class axis moved, not "
            "reshaped; int64 labels; and the weighted mean divides by the sum of the weights.")


def _remaining_bug_free(logits, labels, w) -> float:
    """The right weighted mean for the given (possibly wrong) labels."""
    classes = logits.shape[2]
    y = labels.reshape(-1)
    ell = _per_sample(logits.reshape(-1, classes), y)
    return float(np.sum(w[y] * ell) / w[y].sum())


@checker
def check_ex6(smoothed_grad) -> None:
    """Exercise 6: the gradient with respect to z of cross-entropy with label smoothing eps,
    for one row of logits z (C,) and a class index y, as smoothed_grad(z, y, eps)."""
    rng = np.random.default_rng(6)
    for C, eps in ((3, 0.1), (5, 0.3), (10, 0.0)):
        z, y = rng.normal(size=C), int(rng.integers(0, C))
        got = as_array(call_reader(smoothed_grad, z.copy(), y, eps, what="smoothed_grad"),
                       "smoothed_grad(z, y, eps)", shape=(C,))
        q = _softmax(z[None, :])[0]
        e_y = np.eye(C)[y]
        p = (1 - eps) * e_y + eps / C
        wrong = {
            "q - e_y ignores the smoothing: the target is the smoothed p, not the one-hot e_y":
                q - e_y,
            "(1 - eps)(q - e_y) smooths only part of the loss: both the e_y term and the "
            "uniform term eps/C belong to the target p": (1 - eps) * (q - e_y),
            "the uniform part is eps/C on every class, the true one included (torch's "
            "convention), not eps/(C - 1) on the others":
                q - ((1 - eps) * e_y + eps / (C - 1) * (1 - e_y)),
            "q - (1 - eps) e_y forgets the eps/C the target puts on every class":
                q - (1 - eps) * e_y,
            "p - q has the wrong sign: the loss falls when z_y rises": p - q,
        }
        if eps > 0:
            for hint, value in wrong.items():
                require(not np.allclose(got, value, rtol=1e-7, atol=1e-12), hint)
        require(np.allclose(got, q - p, rtol=1e-7, atol=1e-12),
                f"for C = {C}, eps = {eps} that is not the gradient: write the loss as "
                f"-sum_c p_c z_c + LSE(z) sum_c p_c and differentiate")
    correct("the gradient is q - p, the model minus the smoothed target: it vanishes exactly at "
            "q = p, so the minimum is at logits log p (up to a constant), never at infinity.")
