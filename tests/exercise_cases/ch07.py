"""Exercise cases for chapter 7 (checkers in cebook/exercises/ch07.py).

They need the MNIST files of ``$CELIB_MNIST_DIR`` (as the chapter does).
"""

import numpy as np

from cebook.exercises.ch07 import _held_out_models
from celib.datasets import load_mnist_labels, stratified_split

_labels = load_mnist_labels("test", download=False)
_train = load_mnist_labels("train", download=False)
_held = _labels[stratified_split(_labels, [8000, 2000], seed=0)[1]]

# Exercise 3: the page's two models replayed; the answer is the eleven-output model's argmax
# over logits 1 to 10. Wrong answers that still score >= 90% against the digits:
_pred_ten, _logits11 = _held_out_models()
_rescued = np.argmax(_logits11[:, 1:], axis=1)
_corrupted = _held.copy()  # the digits with 7.5% of them replaced by a wrong digit
_flipped = np.random.default_rng(0).choice(len(_held), 150, replace=False)
_corrupted[_flipped] = (_corrupted[_flipped] + 3) % 10

# Exercise 4: the constant prediction q (training label shares) scored on the held-out labels.
_q = np.bincount(_train, minlength=10) / len(_train)
_p = np.bincount(_held, minlength=10) / len(_held)


def _percent_ten(y):
    return y.reshape(-1).astype(np.int64) % 10


CASES = {
    "check_ex1": {
        "accept": [(8 + 1234, int(_labels[1234]))],
        "reject": [
            (1234, int(_labels[1234])),           # forgot the 8-byte header
            (8 + 1233, int(_labels[1233])),       # counted images from 1
            (8 + 1234, int(_labels[1234]) + 1),   # right offset, label read 1-based
        ],
    },
    "check_ex2": {
        "accept": [(_percent_ten,)],
        "reject": [
            (lambda y: y.reshape(-1).astype(np.int64) - 1,),   # digit d became class d - 1
            (lambda y: y.astype(np.int64) % 10,),              # kept the (N, 1) column
            (lambda y: y.reshape(-1) % 10,),                   # still uint8, not int64
            (_percent_ten(np.zeros((3, 1), np.uint8)),),       # passed a result, not the function
        ],
    },
    "check_ex3": {
        "accept": [(_rescued,), (np.argmax(_logits11, axis=1) - 1,)],  # both readings
        "reject": [
            (_held,),                             # the held-out digits themselves (100%)
            (_corrupted,),                        # the digits, 7.5% corrupted (92.5%)
            (_pred_ten,),                         # the ten-output model's predictions (91.3%)
            (np.argmax(_logits11, axis=1),),      # argmax of all eleven logits, read as the digit
            ((_held + 1) % 11,),                  # the Lua-style labels, read as the digit
            (_held[:1000],),                      # only half of the held-out images
            ((_held + 1) % 10,),                  # a shift the wrong way round
        ],
    },
    "check_ex4": {
        "accept": [(float(-np.sum(_p * np.log(_q))),)],
        "reject": [
            (float(-np.sum(_q * np.log(_p))),),   # H(q, p): target and model swapped
            (float(np.log(10)),),                 # the uniform prediction's loss
            (float(-np.sum(_q * np.log(_q))),),   # H(q), the entropy of the training shares
        ],
    },
}
