"""Exercise cases for chapter 3 (checkers in cebook/exercises/ch03.py)."""

import math

import numpy as np

_RAW = np.array([1.0, 10.0, 3.0, 7.0])
_N, _C = 4096, 32_000
_Y, _EYE = [3, 1], np.eye(4)


def _softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


_Z5, _T5, _PW5 = np.array([1.0, -2.0, 0.5]), np.array([1.0, 0.0, 1.0]), np.array([3.0, 2.0, 1.0])
_POS, _NEG = _T5 * _softplus(-_Z5), (1 - _T5) * _softplus(_Z5)

CASES = {
    "check_ex1": {
        "accept": [(np.rint(_RAW).astype(np.int64) - 1,)],
        "reject": [
            # uint8: torch accepts it, but 300 or ignore_index=-100 wrap silently (mistake 3)
            (np.array([0, 9, 2, 6], dtype=np.uint8),),
            (_RAW - 1,),                              # 0-based but still float64
            (_RAW.astype(np.int64),),                 # int64 but still 1-based: 10 is out of range
            ((_RAW - 1).astype(np.int32),),           # int32: PyTorch refuses it
            ((_RAW - 1).astype(np.int64)[:, None],),  # shape (4, 1) instead of (4,)
        ],
    },
    "check_ex2": {
        "accept": [(8 * _N, 4 * _N * _C)],
        "reject": [
            (4 * _N, 4 * _N * _C),                    # int32 indices (4 bytes), not int64
            (8 * _N, 8 * _N * _C),                    # a float64 one-hot matrix
            (_N, _N * _C),                            # counted entries, not bytes
        ],
    },
    "check_ex3": {
        "accept": [(0.8 * _EYE[_Y] + 0.05,), ((0.8 * _EYE[_Y] + 0.05).astype(np.float32),)],
        "reject": [
            (np.where(_EYE[_Y] > 0, 0.8, 0.2 / 3),),  # fairseq's eps/(C-1) convention
            (0.9 * _EYE[_Y] + 0.1 / 4,),              # eps = 0.1, not 0.2
            (0.8 * _EYE[[2, 0]] + 0.05,),             # labels read as 1-based
            (0.8 * _EYE[_Y] + 0.2,),                  # eps, not eps/C, added everywhere
        ],
    },
    "check_ex4": {
        "accept": [(0.1 * 3 / 2,)],
        "reject": [
            (0.1,),                                   # the same number in both conventions
            (0.1 * 2 / 3,),                           # the ratio upside down
            (0.1 / 2,),                               # eps/(C-1) itself, the mass of one class
        ],
    },
    "check_ex5": {
        "accept": [(float(np.mean(_PW5 * _POS + _NEG)),)],
        "reject": [
            (float(np.mean(_POS + _NEG)),),           # pos_weight forgotten
            (float(np.mean(_PW5 * (_POS + _NEG))),),  # pos_weight on the negative term too
            (float(np.sum(_PW5 * _POS + _NEG)),),     # the sum, not the mean
            (float(np.sum(_PW5 * _POS + _NEG) / np.sum(_PW5)),),  # divided by the weights
            (math.log(2),),                           # a guess: ln 2
        ],
    },
}
