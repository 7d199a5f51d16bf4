"""Checkers for the exercises of chapter 7, The MNIST label-index question.

They read the MNIST files themselves (through :mod:`celib.datasets`, from ``$CELIB_MNIST_DIR``
or the cache), and rebuild the page's held-out split with
``celib.datasets.stratified_split(labels, [8000, 2000], seed=0)``, so they depend on nothing
the page defines. Exercise 3's checker also replays the page's two trainings (the ten-output
and the eleven-output softmax regression, same seeds, same batches, in float64).
"""

from __future__ import annotations

import gzip
import math
import os
from functools import cache
from pathlib import Path

import numpy as np

from cebook.ch07_helpers import sgd_batches, train_softmax_regression
from celib.datasets import load_mnist, load_mnist_labels, stratified_split
from celib.targets import check_targets

from . import as_array, as_number, call_reader, checker, correct, require

__all__ = ["check_ex1", "check_ex2", "check_ex3", "check_ex4"]

IMAGE = 1234  # the test image of exercise 1


@cache
def _test_labels() -> np.ndarray:
    return load_mnist_labels("test", download=False)


@cache
def _train_labels() -> np.ndarray:
    return load_mnist_labels("train", download=False)


def _held_out_labels() -> np.ndarray:
    labels = _test_labels()
    _, held = stratified_split(labels, [8000, 2000], seed=0)
    return labels[held]


@cache
def _held_out_models() -> tuple[np.ndarray, np.ndarray]:
    """The page's two models on the held-out images: C = 10 predictions, C = 11 logits."""
    images, labels = load_mnist("test", download=False)
    X = images.reshape(len(images), -1) / 255.0
    train, held = stratified_split(labels, [8000, 2000], seed=0)
    batches = sgd_batches(8000, batch_size=100, epochs=3, seed=0)
    logits = []
    for C, y, seed in ((10, labels, 0), (11, labels + 1, 1)):   # digits; Lua-style digits + 1
        W0 = np.random.default_rng(seed).normal(0.0, 0.01, size=(C, X.shape[1]))
        W, b, _, _ = train_softmax_regression(X[train], y[train], X[held], y[held], W0,
                                              np.zeros(C), batches, step=0.5)
        logits.append(X[held] @ W.T + b)
    return np.argmax(logits[0], axis=1), logits[1]


def _as_int(value, what: str) -> int:
    number = as_number(value, what)
    require(number == int(number), f"{what} should be a whole number, not {value!r}")
    return int(number)


@checker
def check_ex1(offset, label) -> None:
    """Exercise 1: the byte offset of test image 1234's label, and the label read there."""
    offset = _as_int(offset, "the offset")
    label = _as_int(label, "the label")
    # The folder load_mnist reads from: $CELIB_MNIST_DIR if set, else ~/.cache/celib/mnist.
    root = Path(os.environ.get("CELIB_MNIST_DIR") or "~/.cache/celib/mnist").expanduser()
    with gzip.open(root / "t10k-labels-idx1-ubyte.gz", "rb") as f:
        raw = f.read()
    require(offset != IMAGE, "the file does not start with the labels: count the header first")
    require(offset != 8 + IMAGE - 1 and offset != 8 + IMAGE + 1,
            "off by one: image 0's label is the first byte after the header")
    require(0 <= offset < len(raw), f"offset {offset} is outside the file ({len(raw)} bytes)")
    require(offset == 8 + IMAGE, f"offset {offset} does not hold the label of image {IMAGE}: "
            "how long is the header, and how many bytes does one label take?")
    require(raw[offset] == label, f"the byte at offset {offset} is not {label}: read it again")
    require(label == _test_labels()[IMAGE], f"{label} is not the label of test image {IMAGE}")
    correct(f"offset {offset} holds 0x{label:02x}: image {IMAGE} is labelled {label}.")


@checker
def check_ex2(to_class_index) -> None:
    """Exercise 2: a function mapping SVHN-style labels (uint8 column, 10 for 0) to indices."""
    labels = _test_labels()
    svhn_column = np.where(labels == 0, 10, labels).astype(np.uint8)[:, None]
    out = call_reader(to_class_index, svhn_column.copy(), what="to_class_index")
    require(isinstance(out, np.ndarray), "return a numpy array")
    require(out.shape == labels.shape, f"shape {out.shape}: class indices have shape (N,)")
    require(out.dtype == np.int64, f"dtype {out.dtype}: torch wants class indices as int64")
    require(not np.array_equal(out, labels - 1 + 10 * (labels == 0)),
            "these are valid indices, but digit d became class d - 1: is 0 class 0?")
    require(np.array_equal(out, labels), "class index k must be the digit k (is 0 class 0?)")
    check_targets(out, 10)
    correct("class index k is digit k again.")


@checker
def check_ex3(digit_predictions) -> None:
    """Exercise 3: digit predictions of the eleven-output model for the 2,000 held-out images."""
    y_held = _held_out_labels()
    pred = as_array(digit_predictions, "the predictions", shape=y_held.shape)
    require(np.all(pred == np.round(pred)), "predictions are whole numbers: digits 0 to 9")
    require(pred.min() >= 0 and pred.max() <= 9, "predictions must be digits 0 to 9")
    pred_ten, logits11 = _held_out_models()
    require(not np.array_equal(pred, y_held), "these are the held-out digits themselves "
            "(100% right): the exercise asks what the eleven-output model predicts")
    require(not np.array_equal(pred, pred_ten), "these are the ten-output model's predictions: "
            "the exercise asks for the eleven-output model's, from logits11")
    expected = np.argmax(logits11[:, 1:], axis=1)
    # Where two digit logits tie to rounding, either reading is the model's prediction.
    top2 = np.sort(logits11[:, 1:], axis=1)[:, -2:]
    differ = (pred != expected) & (top2[:, 1] - top2[:, 0] > 1e-9)
    accuracy = float(np.mean(pred == y_held))
    require(not np.any(differ), f"{int(differ.sum())} of {len(pred)} predictions are not the "
            f"eleven-output model's (accuracy {accuracy:.1%} against the digits): which logit "
            "scores the digit k, and which logit is never a target?")
    correct(f"accuracy {accuracy:.1%} against the digits, as good as the ten-output model "
            f"({float(np.mean(pred_ten == y_held)):.1%}), without retraining.")


@checker
def check_ex4(loss) -> None:
    """Exercise 4: the held-out loss of the constant prediction q = training label shares."""
    loss = as_number(loss, "the loss")
    q = np.bincount(_train_labels(), minlength=10) / len(_train_labels())
    p = np.bincount(_held_out_labels(), minlength=10) / 2000
    expected = float(-np.sum(p * np.log(q)))
    require(not math.isclose(loss, float(-np.sum(q * np.log(p))), rel_tol=1e-9),
            "that is H(q, p): which distribution is the target here?")
    require(not math.isclose(loss, math.log(10), rel_tol=1e-9),
            "that is ln 10, the loss of the uniform prediction, not of q")
    require(math.isclose(loss, expected, rel_tol=1e-12),
            f"{loss:.6f} is not the mean cross-entropy of the constant logits log q")
    correct(f"{loss:.4f} nats, below ln 10 = {math.log(10):.4f}.")
