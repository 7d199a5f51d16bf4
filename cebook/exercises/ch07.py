"""Checkers for the exercises of chapter 7, The MNIST label-index question.

They read the MNIST files themselves (through :mod:`celib.datasets`, from ``$CELIB_MNIST_DIR``
or the cache), and rebuild the page's held-out split with
``celib.datasets.stratified_split(labels, [8000, 2000], seed=0)``, so they depend on nothing
the page defines.
"""

from __future__ import annotations

import gzip
import math
import os
from functools import cache
from pathlib import Path

import numpy as np

from celib.datasets import load_mnist_labels, stratified_split
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
    accuracy = float(np.mean(pred == y_held))
    require(accuracy >= 0.90, f"accuracy {accuracy:.1%} against the digits: which logit "
            "scores the digit k in the eleven-output model?")
    correct(f"accuracy {accuracy:.1%} against the digits, as good as the ten-output model.")


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
