"""Exercise cases for chapter 10 (checkers in cebook/exercises/ch10.py), computed with torch."""

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from cebook.exercises.ch10 import (EX1_LOSSES, EX2_STUDENT, EX2_TEACHER, EX3_DIGITS, EX3_SIM,
                                  EX3_TAU)

_TOTAL = float(sum(x.sum() for x in EX1_LOSSES))
_TOKENS = sum(len(x) for x in EX1_LOSSES)
_PER_TOKEN = _TOTAL / _TOKENS
_PER_NAME = float(np.mean([x.mean() for x in EX1_LOSSES]))

_V, _Z, _T = torch.from_numpy(EX2_TEACHER), torch.from_numpy(EX2_STUDENT), 4.0
_P = F.softmax(_V / _T, dim=1)
_LOG_Q = F.log_softmax(_Z / _T, dim=1)
_KL = F.kl_div(_LOG_Q, _P, reduction="batchmean").item()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # torch warns that 'mean' is not the KL divergence
    _KL_MEAN = F.kl_div(_LOG_Q, _P, reduction="mean").item()
_CE = F.cross_entropy(_Z / _T, _P).item()
_KL_T1 = F.kl_div(F.log_softmax(_Z, dim=1), _P, reduction="batchmean").item()
_KL_REVERSED = F.kl_div(F.log_softmax(_V / _T, dim=1), F.softmax(_Z / _T, dim=1),
                        reduction="batchmean").item()
_KL_PROBS = F.kl_div(F.softmax(_Z / _T, dim=1), _P, reduction="batchmean").item()

_S = torch.from_numpy(EX3_SIM / EX3_TAU)
_N = len(EX3_SIM)
_ROWS = F.cross_entropy(_S, torch.arange(_N)).item()
_COLS = F.cross_entropy(_S.T, torch.arange(_N)).item()

CASES = {
    "check_ex1": {
        "accept": [(_PER_TOKEN, math.exp(_PER_TOKEN))],
        "reject": [
            (_PER_NAME, math.exp(_PER_NAME)),  # a per-name mean where a per-token mean is meant
            (_PER_TOKEN, math.exp(_PER_NAME)),        # perplexity from the per-name mean
            (_TOTAL / (3 * 10), math.exp(_TOTAL / 30)),  # padding positions counted as tokens
            (_PER_TOKEN, 2 ** _PER_TOKEN),            # 2 ** (a loss in nats)
            (_TOTAL, math.exp(_TOTAL)),               # the sum, not the mean
            (..., ...),                               # blank
        ],
    },
    "check_ex2": {
        "accept": [(_T**2 * _KL,)],
        "reject": [
            (_KL,),                                   # the T^2 factor left out
            (_T * _KL,),                              # T instead of T^2
            (_T**2 * _KL_MEAN,),                      # reduction='mean' (divides by N x C)
            (_T**2 * _CE,),                           # cross-entropy: KL + H(p)
            (_T**2 * _KL_T1,),                        # student's logits not divided by T
            (_T**2 * _KL_REVERSED,),                  # KL(q || p), the wrong direction
            (_T**2 * _KL_PROBS,),                     # kl_div given probabilities, not log q
            (None,),                                  # blank
        ],
    },
    "check_ex3": {
        "accept": [(_ROWS,)],
        "reject": [
            (F.cross_entropy(_S, torch.zeros(_N, dtype=torch.long)).item(),),  # labels not
            # arange(N): all zeros
            (F.cross_entropy(_S, torch.from_numpy(EX3_DIGITS)).item(),),  # labels not arange(N):
            # the class labels of the images
            (F.cross_entropy(_S, torch.arange(_N).flip(0)).item(),),  # labels not arange(N):
            # reversed
            (F.cross_entropy(torch.from_numpy(EX3_SIM), torch.arange(_N)).item(),),  # tau forgotten
            (_COLS,),                                 # the columns, not the rows
        ],
    },
    "check_ex4": {
        "accept": [((_ROWS + _COLS) / 2,)],
        "reject": [
            ((_ROWS + _COLS) / 4,),                   # the symmetric loss halved twice
            (_ROWS + _COLS,),                         # the sum of the two directions
            (_ROWS,),                                 # one direction only
            ("0.5",),                                 # a string: not a number
        ],
    },
}
