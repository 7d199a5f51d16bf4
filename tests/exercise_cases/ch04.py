"""Exercise cases for chapter 4 (checkers in cebook/exercises/ch04.py)."""

import math

import numpy as np


def _ell(z, y):
    z = np.asarray(z, dtype=np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    log_q = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_q[np.arange(len(y)), y]


def _softmax(z):
    e = np.exp(np.asarray(z, dtype=np.float64))
    return e / e.sum(axis=1, keepdims=True)


_Z1 = np.array([[-0.0464, -0.0268], [-0.0234, -0.0091]])
_Z2 = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0], [0.0, 2.0, 0.0]])


_L1 = _ell(_Z1, [0, 1])
_L1_SWAPPED = _ell([[-0.0464, -0.0268], [-0.0234, -0.0091]], [1, 0])
_Y2, _W2 = np.array([0, 2, 2]), np.array([1.0, 3.0, 2.0])
_L2 = _ell(_Z2, _Y2)
_P3 = np.full(100, 0.002)
_P3[0] += 0.8
_H3 = float(-np.sum(_P3 * np.log(_P3)))
_P3_FAIRSEQ = np.full(100, 0.2 / 99)
_P3_FAIRSEQ[0] = 0.8
_LOW, _HIGH = math.log(1 + 999 / math.e), math.log(math.e + 999)

CASES = {
    "check_ex1": {
        "accept": [(float(_L1.mean()),)],
        "reject": [
            (float(_L1.sum()),),                      # the sum, not the mean
            (float(_L1_SWAPPED.mean()),),             # each label picks the other class
            (math.log(2),),                           # the uniform guess, ln 2
            (float(_L1.mean() / 2),),                 # mistake 2: (-onehot * log q).mean(), / C
            (float(_ell(_softmax(_Z1), [0, 1]).mean()),),  # mistake 1: a softmax before the loss
            (float(-_Z1[[0, 1], [0, 1]].mean()),),    # NLLLoss on raw logits: -mean z_y
            (float(_L1.mean() / math.log(2)),),       # in bits, not nats
        ],
    },
    "check_ex2": {
        "accept": [(float(np.sum(_W2[_Y2] * _L2) / _W2[_Y2].sum()),)],
        "reject": [
            (float(np.sum(_W2[_Y2] * _L2) / 3),),     # mistake 3: mean of weighted losses, / N
            (float(np.sum(_W2[_Y2] * _L2) / _W2.sum()),),  # divided by all class weights
            (float(_L2.mean()),),                     # weights ignored
            (float(np.sum(_W2[[0, 1, 1]] * _L2) / _W2[[0, 1, 1]].sum()),),  # 1-based weights
            (float(np.sum(_W2[_Y2] * _L2) / _W2[_Y2].sum() / 3),),  # mistake 2: mean over N x C
            (float(np.sum(_W2[_Y2] * _ell(_softmax(_Z2), _Y2)) / _W2[_Y2].sum()),),  # mistake 1
            (float(np.sum(_W2[_Y2] * -_Z2[[0, 1, 2], _Y2]) / _W2[_Y2].sum()),),  # NLL on logits
        ],
    },
    "check_ex3": {
        "accept": [(_H3,)],
        "reject": [
            (0.0,),                                   # the floor without smoothing
            (_H3 / math.log(2),),                     # in bits
            (float(-np.sum(_P3_FAIRSEQ * np.log(_P3_FAIRSEQ))),),  # eps/(C-1) convention
            (math.log(100),),                         # the uniform prediction's loss
        ],
    },
    "check_ex4": {
        "accept": [(_LOW, _HIGH)],
        "reject": [
            (0.0, math.log(1000)),                    # the range of the correct loss at 0 / uniform
            (_HIGH, _LOW),                            # swapped
            (math.log(1 + 9 / math.e), math.log(math.e + 9)),  # C = 10, not 1000
            (_LOW, _LOW + math.log(2)),               # a guess at the width
        ],
    },
}
