"""Exercise cases for chapter 8 (checkers in cebook/exercises/ch08.py)."""

import math

CASES = {
    "check_ex1": {
        "accept": [(0.46, 0.6)],
        "reject": [
            (0.54, 0.6),     # sum of p_c^2, not the expected score
            (0.46, 0.3),     # one-hot report: forgot that a miss costs 2 (1 + 1), not 1
            (0.6, 0.46),     # the two answers swapped
            (None, None),    # blank
        ],
    },
    "check_ex2": {
        "accept": [(0.14,)],
        "reject": [
            (0.26,),         # left-closed bins as torchmetrics, 1.0 in its own bin
            (0.26,),         # class-1 reliability (q_1 against [y == 1]), not the top label
            (0.5 / 3,),      # unweighted mean of the non-empty bins' gaps
            (None,),         # blank
        ],
    },
    "check_ex3": {
        "accept": [(4 / math.log(3),)],
        "reject": [
            (math.log(3) / 4,),   # 1/T instead of T
            (1.0,),               # no scaling
            (-4 / math.log(3),),  # sign slip
        ],
    },
    "check_ex4": {
        "accept": [(0.01 * (1 + 18 * math.log(1 / 0.9)),)],
        "reject": [
            (0.01,),         # (1 - p_t)^gamma only
            (0.1,),          # (1 - p_t)^1
            (None,),         # blank
        ],
    },
}
