"""Exercise cases for chapter 4 (checkers in cebook/exercises/ch04.py)."""

import math

import numpy as np
import torch
import torch.nn.functional as F


def _ell(z, y):
    z = np.asarray(z, dtype=np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    log_q = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_q[np.arange(len(y)), y]


def _softmax(z):
    e = np.exp(np.asarray(z, dtype=np.float64))
    return e / e.sum(axis=1, keepdims=True)


_Z1 = np.array([[0.02, -0.01, 0.03, -0.04], [-0.03, 0.01, 0.00, 0.02]])
_Z2 = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0], [0.0, 2.0, 0.0]])


_L1 = _ell(_Z1, [2, 0])
_L1_SWAPPED = _ell(_Z1, [0, 2])
_LN4 = math.log(4)
_Y2, _W2 = np.array([0, 2, 2]), np.array([1.0, 3.0, 2.0])
_L2 = _ell(_Z2, _Y2)
_P3 = np.full(100, 0.002)
_P3[0] += 0.8
_H3 = float(-np.sum(_P3 * np.log(_P3)))
_P3_FAIRSEQ = np.full(100, 0.2 / 99)
_P3_FAIRSEQ[0] = 0.8
_HIGH4 = math.log(math.e + 99)

def _fixed_loss(logits, labels, w):
    classes = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, classes), labels.reshape(-1).long(), weight=w)


def _fixed_loss_transposed(logits, labels, w):
    per_token = F.cross_entropy(logits.transpose(1, 2), labels.long(), reduction="none")
    return (w[labels.long()] * per_token).sum() / w[labels.long()].sum()


def _broken_loss(logits, labels, w):
    n, length, classes = logits.shape
    q = F.softmax(logits, dim=-1)
    per_token = F.cross_entropy(q.reshape(n, classes, length), labels, reduction="none")
    return (w[labels] * per_token).mean()


def _partial(softmax=False, reshape=False, divide_by_n=False, uint8=False, int32=False):
    """The script with only some of its bugs fixed."""
    def loss(logits, labels, w):
        n, length, classes = logits.shape
        y = labels if int32 else labels.to(torch.uint8 if uint8 else torch.int64).long()
        z = F.softmax(logits, dim=-1) if softmax else logits
        z = z.reshape(n, classes, length) if reshape else z.transpose(1, 2)
        per_token = F.cross_entropy(z, y, reduction="none")
        weighted = w[y.long()] * per_token
        return weighted.mean() if divide_by_n else weighted.sum() / w[y.long()].sum()
    return loss


def _grad(formula):
    def smoothed_grad(z, y, eps):
        e = np.exp(z - z.max())
        C = len(z)
        return formula(e / e.sum(), np.eye(C)[y], eps, C)
    return smoothed_grad


_grad_right = _grad(lambda q, e_y, eps, C: q - ((1 - eps) * e_y + eps / C))


CASES = {
    "check_ex1": {
        "accept": [(float(_L1.mean()), _LN4)],
        "reject": [
            (float(_L1.sum()), _LN4),                 # the sum, not the mean
            (float(_L1_SWAPPED.mean()), _LN4),        # each label picks another class
            (_LN4, _LN4),                             # the uniform guess ln C for the loss itself
            (float(_L1.mean() / 4), _LN4),            # mistake 2: (-onehot * log q).mean(), / C
            (float(_ell(_softmax(_Z1), [2, 0]).mean()), _LN4),  # mistake 1: softmax before
            (float(-_Z1[[0, 1], [2, 0]].mean()), _LN4),  # NLLLoss on raw logits: -mean z_y
            (float(_L1.mean() / math.log(2)), _LN4),  # in bits, not nats
            (float(_L1.mean()), math.log(2)),         # ln 2: the binary model's starting loss
            (float(_L1.mean()), 2.0),                 # log2(4): the start in bits
            (float(_L1.mean()), 0.25),                # 1/C: the probability, not its -log
            (float(_L1.mean()), 0.0),                 # a perfect model's loss
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
        "accept": [(100, _HIGH4), (99.99999999999997, _HIGH4)],
        "reject": [
            (math.exp(3.6222), _HIGH4),               # the plateau read as ln C (uniform guess)
            (2 ** 3.6222, _HIGH4),                    # the plateau read in bits
            (99, _HIGH4),                             # off by one: e (e^f - 1) without the 1 +
            (100, math.log(100)),                     # highest = ln C, the uniform guess
            (100, math.inf),                          # the correct loss's ceiling, not this one
            (100, 3.6222),                            # highest = lowest
        ],
    },
    "check_ex5": {
        "accept": [(_fixed_loss,), (_fixed_loss_transposed,)],
        "reject": [
            (_broken_loss,),                          # the script as given: int32 crashes
            (_partial(softmax=True),),                # bug left: a softmax before the loss
            (_partial(reshape=True),),                # bug left: (N, L, C) reshaped to (N, C, L)
            (_partial(divide_by_n=True),),            # bug left: mean of weighted losses, / N
            (_partial(uint8=True),),                  # labels as uint8: 260 wraps to 4
            (_partial(softmax=True, divide_by_n=True),),  # two bugs left
            (_partial(int32=True),),                  # int32 labels left: RuntimeError
        ],
    },
    "check_ex6": {
        "accept": [(_grad_right,)],
        "reject": [
            (_grad(lambda q, e_y, eps, C: q - e_y),),             # smoothing ignored
            (_grad(lambda q, e_y, eps, C: (1 - eps) * (q - e_y)),),  # only scaled
            (_grad(lambda q, e_y, eps, C: q - ((1 - eps) * e_y + eps / (C - 1) * (1 - e_y))),),
            # ^ eps/(C-1) on the wrong classes (fairseq's convention), not eps/C on all
            (_grad(lambda q, e_y, eps, C: q - (1 - eps) * e_y),),  # the eps/C term dropped
            (_grad(lambda q, e_y, eps, C: (1 - eps) * e_y + eps / C - q),),  # sign flipped
            (lambda z, y, eps: np.zeros(len(z)),),                 # "the gradient is 0 at the min"
        ],
    },
}
