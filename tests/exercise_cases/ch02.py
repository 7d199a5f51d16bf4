"""Exercise cases for chapter 2 (checkers in cebook/exercises/ch02.py)."""

import math

import numpy as np
import scipy.optimize


def _softmax(z, axis=-1):  # the solution: one max-shift per slice, kept for broadcasting
    z = np.asarray(z, dtype=float)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _softmax_no_shift(z, axis=-1):  # the textbook formula: inf / inf for [1000, 999]
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _softmax_longdouble(z, axis=-1):  # no shift, wider type: still overflows past ~11356
    e = np.exp(np.asarray(z, dtype=np.longdouble))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float64)


def _softmax_global_max(z, axis=-1):  # one shift for the batch: nan for [[1000, 999], [0, -1]]
    e = np.exp(z - z.max())
    return e / e.sum(axis=axis, keepdims=True)


def _softmax_last_axis_shift(z, axis=-1):  # shift along the last axis whatever axis is given
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _softmax_ignores_axis(z, axis=-1):  # normalizes the last axis always
    return _softmax(z)


def _softmax_mean_shift(z, axis=-1):  # chapter 5's mistake 3, the mean: nan for [0, 2000]
    z = np.asarray(z, dtype=float)
    e = np.exp(z - z.mean(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _softmax_float32(z, axis=-1):  # right shift, but in float32: about 7 digits
    z = np.asarray(z, dtype=np.float32)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(z):  # the solution
    m = z.max(axis=1, keepdims=True)
    return z - (m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True)))


def _log_of_softmax(z):  # log(softmax(z)): -inf where a probability underflows
    return np.log(_softmax(z, axis=1))


def _log_softmax_global_max(z):  # one maximum for the batch: log(0) in the other rows
    m = z.max()
    return z - (m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True)))


def _log_softmax_mean_shift(z):  # chapter 5's mistake 3, the mean: -inf for [0, 2000]
    m = z.mean(axis=1, keepdims=True)
    return z - (m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True)))


def _log_softmax_float32(z):  # right shift, but in float32: 1000.3133 is rounded to 6e-5
    z = np.asarray(z, dtype=np.float32)
    m = z.max(axis=1, keepdims=True)
    return z - (m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True)))


def _log_softmax_float32_back(z):  # the same, cast back to float64 at the end
    return _log_softmax_float32(z).astype(np.float64)


def _log_softmax_longdouble(z):  # no shift, in long double: overflows for [20000, 19999]
    zl = np.asarray(z, dtype=np.longdouble)
    return (zl - np.log(np.sum(np.exp(zl), axis=1, keepdims=True))).astype(np.float64)


def _top(T):
    return _softmax(np.array([2.0, 1.0, 0.1]) / T)[0]


_T09 = scipy.optimize.brentq(lambda T: _top(T) - 0.9, 0.05, 1.0, xtol=1e-12)

CASES = {
    "check_ex1": {
        "accept": [(_softmax,)],
        "reject": [
            (_softmax_no_shift,),          # no shift: nan for [1000, 999]
            (_softmax_longdouble,),        # no shift in long double: nan for [20000, 19999]
            (_softmax_global_max,),        # the batch's maximum: nan in the row [0, -1]
            (_softmax_last_axis_shift,),   # shift along the wrong axis: 0 / 0 in a column
            (_softmax_ignores_axis,),      # the axis argument ignored
            (_softmax_mean_shift,),        # shift by the mean: nan for [0, 2000] (ch. 5, mistake 3)
            (_softmax_float32,),           # computed in float32: right to 7 digits only
            (_softmax(np.array([1000.0, 999.0])),),  # a result, not the function
        ],
    },
    "check_ex2": {
        "accept": [(_T09, _T09, 2 * _T09)],
        "reject": [
            (1 / _T09, 1 / _T09, 1 / (2 * _T09)),  # multiplied the logits by T, not divided
            (1.0, 1.0, 2.0),                       # the plain softmax: top probability 0.659
            (-_T09, -_T09, -2 * _T09),             # a negative temperature
            (_T09, _T09 + 5, 2 * _T09),            # a common shift taken to change T
            (_T09, _T09 * 7 / 2, 2 * _T09),        # T scaled with the top logit (2 -> 7)
            (_T09, _T09, _T09 / 2),                # doubled logits: T halved, not doubled
            (_T09, _T09, _T09),                    # doubled logits: scale taken as a shift
        ],
    },
    "check_ex3": {
        "accept": [([0.0, math.log(4)],), (np.log([0.2, 0.8]),), ([10.0, 10.0 + math.log(4)],)],
        "reject": [
            ([0.2, 0.8],),                 # the probabilities used as logits
            ([math.log(4), 0.0],),         # the classes swapped
            ([0.0, 4.0],),                 # the odds, not the log-odds
        ],
    },
    "check_ex4": {
        "accept": [(_log_softmax,)],
        "reject": [
            (_log_of_softmax,),            # log(softmax(z)): -inf for [0, -1000, 3]
            (_log_softmax_global_max,),    # the batch's maximum: +inf in the row [0, -1]
            (_log_softmax_longdouble,),    # no shift in long double: overflows at 20000
            (_log_softmax_mean_shift,),    # shift by the mean: -inf for [0, 2000] (ch. 5 mistake 3)
            (_log_softmax_float32,),       # computed and returned in float32
            (_log_softmax_float32_back,),  # computed in float32, returned as float64
        ],
    },
}
