"""Exercise cases for chapter 9 (checkers in cebook/exercises/ch09.py)."""

import numpy as np

from cebook.ch09_helpers import padded_microbatches, token_losses

_sums, _counts = token_losses(padded_microbatches(seed=1))


def _merge3(m1, s1, t1, m2, s2, t2):
    m = np.maximum(m1, m2)
    with np.errstate(invalid="ignore"):
        a = np.where(np.isneginf(m1), 0.0, np.exp(m1 - m))
        b = np.where(np.isneginf(m2), 0.0, np.exp(m2 - m))
    return m, s1 * a + s2 * b, t1 * a + t2 * b


def _merge3_t_not_rescaled(m1, s1, t1, m2, s2, t2):
    m = np.maximum(m1, m2)
    a = np.where(np.isneginf(m1), 0.0, np.exp(m1 - m))
    b = np.where(np.isneginf(m2), 0.0, np.exp(m2 - m))
    return m, s1 * a + s2 * b, t1 + t2


def _merge3_inverted(m1, s1, t1, m2, s2, t2):
    m = np.maximum(m1, m2)
    a, b = np.exp(m - m1), np.exp(m - m2)
    return m, s1 * a + s2 * b, t1 * a + t2 * b


def _merge_pair(m1, s1, t1, m2, s2, t2):
    m = np.maximum(m1, m2)
    return m, s1 + s2


_U = 8192 * 128256 * 2 / 2**30  # Llama 3's bf16 logits, GiB
_G = (8192 + 128256) * 4096 * 2 / 2**30  # dL/dX and dL/dW in bf16
_L = 256 * 128256 * 2 / 2**30  # one Liger chunk of logits

CASES = {
    "check_ex1": {
        "accept": [(2 * 8192 * 128256 * 2 / 2**30,)],
        "reject": [
            (8192 * 128256 * 2 / 2**30,),  # logits only, no gradient
            (2 * 8192 * 128256 * 2 / 1e9,),  # GB instead of GiB
            (2 * 8192 * 128256 * 4 / 2**30,),  # fp32 bytes
            (None,),  # left blank
        ],
    },
    "check_ex2": {
        "accept": [(_merge3,)],
        "reject": [
            (_merge3_t_not_rescaled,),  # rescales s but adds the t's as they are
            (_merge3_inverted,),  # rescales by exp(m - m_A) instead of exp(m_A - m)
            (_merge_pair,),  # returns a pair, not a triple
            (None,),  # left blank
        ],
    },
    "check_ex3": {
        "accept": [(float(_sums.sum() / _counts.sum()),)],
        "reject": [
            (float(np.mean(_sums / _counts)),),  # mean of per-micro-batch means
            (float(_sums.sum() / 2),),  # divided by the number of micro-batches
            (float(2 * _sums.sum() / _counts.sum()),),  # times R = 2, DDP's factor, not wanted here
            ("0.5",),  # not a number
        ],
    },
    "check_ex4": {
        "accept": [(6 * _U, _L + _G, _G)],
        "reject": [
            (_U, _L + _G, _G),  # counts only the logits
            (2 * _U, _L + _G, _G),  # logits and gradient: forgets the fp32 upcast
            (3 * _U, _L + _G, _G),  # the loss in bf16, no upcast
            (5 * _U, _L + _G, _G),  # the forward's peak only
            (6 * _U, _U, _G),  # Liger holding the whole logits
            (6 * _U, _L, _G),  # Liger without the gradients
            (6 * _U, _L + _G, 0.0),  # CCE holding nothing
            (6 * _U, _L + _G, 128256 * 4096 * 2 / 2**30),  # CCE without dL/dX
        ],
    },
}
