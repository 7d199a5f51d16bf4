"""Exercise cases for chapter 1 (checkers in cebook/exercises/ch01.py)."""

import math

import numpy as np

_LN6 = math.log(6)
_FAIR = np.full(6, 1 / 6)
_LOADED = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.5])
_SUM = np.convolve(_FAIR, _FAIR)
_H_FAIR, _H_LOADED, _H_SUM = (float(-np.sum(d * np.log2(d))) for d in (_FAIR, _LOADED, _SUM))
_R = np.array([1 / 8, 1 / 2, 1 / 4, 1 / 8])  # the source of exercise 2
_P = np.array([1 / 2, 1 / 4, 1 / 8, 1 / 8])  # the distribution the code was built for
_H_R = float(-np.sum(_R * np.log2(_R)))
_AVG = float(np.dot(_R, [1, 2, 3, 3]))  # H(r, p) = 2.25 bits
_H_P_R = float(-np.sum(_P * np.log2(_R)))  # H(p, r): the roles swapped
_FREQ = np.array([0.7, 0.2, 0.1])
_H_FREQ = float(-np.sum(_FREQ * np.log(_FREQ)))
_P_HALF = 0.11002786443836031  # the root of H(p) = 1/2 bit on (0, 1/2]

CASES = {
    "check_ex1": {
        "accept": [(_H_FAIR, _H_LOADED, _H_SUM)],
        "reject": [
            (_LN6, _H_LOADED, _H_SUM),                 # the fair die in nats
            (_H_FAIR, _H_LOADED * math.log(2), _H_SUM),  # the loaded die in nats
            (_H_FAIR, _H_FAIR, _H_SUM),                # the loaded die taken as uniform
            (_H_FAIR, _H_LOADED, 2 * _H_FAIR),         # the pair of rolls, not their sum
            (_H_FAIR, _H_LOADED, math.log2(11)),       # the 11 sums taken as equally likely
            (math.log10(6), _H_LOADED, _H_SUM),        # log10 for "bits"
            (6.0, _H_LOADED, _H_SUM),                  # the number of outcomes, not its log
        ],
    },
    "check_ex2": {
        "accept": [(_AVG, _AVG - _H_R)],
        "reject": [
            (_AVG, _H_P_R - 1.75),         # the wrong direction: D(p||r) = 0.625, not D(r||p)
            (_AVG, _AVG - 2.0),            # waste against the fixed-length code (2 bits)
            (_H_P_R, _H_P_R - 1.75),       # H(p, r): frequencies and code lengths swapped
            (1.75, 0.0),                   # the entropy of p: the code's own source
        ],
    },
    "check_ex3": {
        "accept": [(_P_HALF,)],
        "reject": [
            (1 - _P_HALF,),                # the root on the other side of 1/2
            (0.19970990255397758,),        # half a nat, not half a bit (H = 0.5 nats)
            (0.25,),                       # a guess: H(0.25) = 0.811 bits
        ],
    },
    "check_ex4": {
        "accept": [(_FREQ, _H_FREQ)],
        "reject": [
            (np.full(3, 1 / 3), math.log(3)),      # the chance level, not the best constant
            (_FREQ, _H_FREQ / math.log(2)),        # the right q, its loss in bits
            (np.array([1.0, 0.0, 0.0]), 0.0),      # always the majority class: infinite loss
            (_FREQ * 2, _H_FREQ),                  # not a distribution
        ],
    },
    "check_ex5": {
        "accept": [(lambda h, c: math.log(c) - h, lambda c: math.log(c))],
        "reject": [
            (lambda h, c: h - math.log(c), lambda c: math.log(c)),       # the sign flipped
            (lambda h, c: math.log(c) + h, lambda c: math.log(c)),       # the two terms added
            (lambda h, c: math.log(c), lambda c: math.log(c)),           # H(p, u), not the KL
            (lambda h, c: math.log2(c) - h, lambda c: math.log2(c)),     # log C in bits, h nats
            (lambda h, c: h / math.log(c), lambda c: math.log(c)),       # a ratio, not a gap
            (lambda h, c: math.log(c) - h, lambda c: float(c)),          # max entropy = C
            (lambda h, c: math.log(c) - h, lambda c: math.log2(c)),      # max entropy in bits
            (lambda h, c: math.log(c) - h, 1.0),                         # a value, no function
        ],
    },
}
