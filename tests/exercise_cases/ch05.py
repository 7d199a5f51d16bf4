"""Exercise cases for chapter 5 (checkers in cebook/exercises/ch05.py)."""

import numpy as np

# Exercise 1: the largest d with exp(-d) > 0 in float64, found as the solution does.
_d = np.float64(745.1332191019412)
with np.errstate(under="ignore"):
    while np.exp(-_d) == 0:
        _d = np.nextafter(_d, -np.inf)
    while np.exp(-np.nextafter(_d, np.inf)) > 0:
        _d = np.nextafter(_d, np.inf)


def _lse_good(x):
    k = np.argmax(x)
    return x[k] + np.log1p(np.sum(np.exp(np.delete(x, k) - x[k])))


def _lse_no_log1p(x):
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


def _lse_no_shift(x):
    return np.log(np.sum(np.exp(x)))


def _lse_log1p_without_removing_max(x):
    m = np.max(x)
    return m + np.log1p(np.sum(np.exp(x - m)) - 1)


def _lse_first_element_shift(x):  # shift by x[0], not the maximum: inf for [0, 1000]
    m = x[0]
    return m + np.log1p(np.sum(np.exp(x[1:] - m)))


def _log_sigmoid_good(x):
    return -(np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x))))


def _log_sigmoid_direct(x):
    return np.log(1 / (1 + np.exp(-x)))


def _log_sigmoid_no_log1p(x):
    return -(np.maximum(-x, 0) + np.log(1 + np.exp(-np.abs(x))))


def _log_sigmoid_overflows(x):
    return -np.log1p(np.exp(-x))


CASES = {
    "check_ex1": {
        "accept": [(_d,)],
        "reject": [
            (709.782712893384,),        # log M, the overflow threshold, not the underflow one
            (708.3964185322641,),       # -log t: exp(-d) only becomes subnormal there
            (744.4400719213812,),       # -log s: exp(-d) is still s/2 < e^-d, rounded up to s
            (745.2,),                   # past the threshold: already -inf
        ],
    },
    "check_ex2": {
        "accept": [(_lse_good,)],
        "reject": [
            (_lse_no_log1p,),                      # max-shift but log(1 + s): loses [0, -40]
            (_lse_no_shift,),                      # textbook: inf for [1000, 1000]
            (_lse_log1p_without_removing_max,),    # log1p of (sum - 1): 1 + s already rounded
            (_lse_first_element_shift,),           # shift by x[0]: inf for [0, 1000]
            (_lse_good(np.array([0.0, -40.0])),),  # a number, not the function
        ],
    },
    "check_ex3": {
        "accept": [(_log_sigmoid_good,)],
        "reject": [
            (_log_sigmoid_direct,),      # the direct formula: -inf at -800, 0 at 40
            (_log_sigmoid_no_log1p,),    # no log1p: 0 instead of -4.2e-18 at x = 40
            (_log_sigmoid_overflows,),   # log1p(exp(-x)): exp(800) overflows at x = -800
        ],
    },
    "check_ex4": {
        "accept": [(2.0 ** 13,)],
        "reject": [
            (2.0 ** 14,),     # works, but not the smallest
            (2.0 ** 12,),     # 1e-8 * 4096 is still subnormal in float16
            (6104.0,),        # t / 1e-8 itself: not a power of two
        ],
    },
}
