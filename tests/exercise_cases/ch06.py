"""Exercise cases for chapter 6 (checkers in cebook/exercises/ch06.py)."""

import numpy as np

import celib.functional as cf
from cebook import ch06_helpers as h


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# Exercise 2: the batch of the page.
_Z, _labels, _, _, _ = h.example_batch()
_N, _C = _Z.shape
_Q = cf.softmax(_Z, axis=1)
_E = np.eye(_C)[_labels]
_P = 0.9 * _E + 0.1 / _C


def _weighted_grad(Z, target, w, ignore_index):
    kept = target != ignore_index
    y = np.where(kept, target, 0)
    row_weight = np.where(kept, w[y], 0.0)
    G = row_weight[:, None] * (cf.softmax(Z, axis=1) - np.eye(Z.shape[1])[y])
    return G / row_weight.sum()


def _weighted_grad_over_n(Z, target, w, ignore_index):
    return _weighted_grad(Z, target, w, ignore_index) * np.sum(
        np.where(target != ignore_index, w[np.where(target != ignore_index, target, 0)], 0.0)
    ) / len(Z)


def _weighted_grad_over_kept(Z, target, w, ignore_index):
    kept = target != ignore_index
    y = np.where(kept, target, 0)
    row_weight = np.where(kept, w[y], 0.0)
    G = row_weight[:, None] * (cf.softmax(Z, axis=1) - np.eye(Z.shape[1])[y])
    return G / kept.sum()


# Exercise 4: softmax regression's Hessian at the page's test point, and two wrong versions.
_X, _y = h.clouds(h.CENTRES, n_per_class=100, seed=0)
_X1 = h.with_bias(_X)
_S = cf.softmax(_X1 @ h.check_weights().T, axis=1)
_H_sum = sum(np.kron(np.diag(q) - np.outer(q, q), np.outer(x, x))
             for q, x in zip(_S, _X1, strict=True))
_H_swapped = sum(np.kron(np.outer(x, x), np.diag(q) - np.outer(q, q))
                 for q, x in zip(_S, _X1, strict=True))
_H_diag_only = sum(np.kron(np.diag(q), np.outer(x, x)) for q, x in zip(_S, _X1, strict=True))

# Exercise 5: the flat direction of softmax regression with an unpenalised bias.
_FLAT = np.r_[np.zeros(6), np.ones(3)] / np.sqrt(3)

CASES = {
    "check_ex1": {
        "accept": [
            (lambda x, p: _sigmoid(x) - p,),   # exp(-x) = inf for x < -709 gives 1 / inf = 0: right
            (lambda x, p: np.exp(-np.logaddexp(0.0, -x)) - p,),  # no overflow at all
        ],
        "reject": [
            # overflow-prone: exp(800) = inf, and inf / inf = nan
            (lambda x, p: np.exp(x) / (1 + np.exp(x)) - p,),
            (lambda x, p: p - _sigmoid(x),),                 # sign flipped: target minus prediction
            (lambda x, p: (_sigmoid(x) - p) / len(x),),      # gradient of the mean, not the sum
            (lambda x, p: _sigmoid(x) * (1 - _sigmoid(x)) - p,),  # sigma' instead of sigma
            (_sigmoid(np.zeros(8)),),                        # a value, not the function
        ],
    },
    "check_ex2": {
        "accept": [((_Q - _P) / _N,)],
        "reject": [
            ((_Q - _E) / _N,),                               # no smoothing at all
            (_Q - _P,),                                      # gradient of the sum, no 1/N
            ((_Q - (0.9 * _E + 0.1 / (_C - 1) * (1 - _E))) / _N,),  # eps spread over C-1 classes
        ],
    },
    "check_ex3": {
        "accept": [(_weighted_grad,)],
        "reject": [
            (_weighted_grad_over_n,),                        # divided by N instead of sum w_y
            (_weighted_grad_over_kept,),                     # divided by the number kept
            # no weights, and the ignored rows kept (index -1 picks the last class):
            (lambda Z, t, w, i: cf.softmax(Z, axis=1) - np.eye(Z.shape[1])[t],),
        ],
    },
    "check_ex4": {
        "accept": [(_H_sum / len(_X1),)],
        "reject": [
            (_H_sum,),                                       # Hessian of the sum, no 1/N
            (_H_swapped / len(_X1),),                        # Kronecker factors in the wrong order
            (_H_diag_only / len(_X1),),                      # forgot the -q q^T term
        ],
    },
    "check_ex5": {
        "accept": [(_FLAT,), (-_FLAT,)],
        "reject": [
            # a shift of every row of W: flat for the cross-entropy alone, not with the penalty
            (np.r_[1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0] / np.sqrt(3),),
            (np.ones(9) / 3,),                               # every parameter at once
            (np.r_[np.zeros(6), 1.0, 0.0, 0.0],),            # one class's bias only
            (np.r_[np.zeros(6), np.ones(3)],),               # the right direction, not unit length
            (np.zeros(9),),                                  # no direction
            (_FLAT[:6],),                                    # W only, wrong length
        ],
    },
}
