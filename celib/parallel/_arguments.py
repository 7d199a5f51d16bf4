"""The arguments of the parallel API, checked on one rank: every message names the argument.

Type mistakes (a string, a bool or a float where an integer is expected, a numpy array where a
tensor is) raise ``TypeError``; values out of range, wrong shapes and wrong dtypes raise
``ValueError``; a class index out of range raises ``IndexError``, as in torch.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any

from .. import _checks

if TYPE_CHECKING:  # torch is imported inside the functions that need it
    import torch.distributed as dist


def positive_int(value: object, name: str) -> int:
    """A Python or numpy integer >= 1; a bool, a float or a string is a TypeError."""
    number = _checks.check_integer(value, name)
    if number < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return number


def positive_seconds(value: object, name: str) -> float:
    """A finite real number of seconds > 0; a bool or a string is a TypeError."""
    return _checks.check_positive_number(value, name)


def flag(value: object, name: str) -> bool:
    """True or False (a numpy bool too); ``"False"`` or 0 is a TypeError."""
    return _checks.check_bool(value, name)


def check_reduction(value: object) -> str:
    """'mean', 'sum' or 'none': another string is a ValueError, anything else a TypeError."""
    if not isinstance(value, str):
        raise TypeError(f"reduction must be one of 'none', 'mean' or 'sum' (a string), got "
                        f"{value!r} of type {type(value).__name__}")
    _checks.check_reduction(value)
    return value


def check_label_smoothing(value: object) -> float:
    """ε, a real number in [0, 1]; a bool, None or a string is a TypeError, nan a ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"label_smoothing must be a number between 0.0 and 1.0, got "
                        f"{value!r} of type {type(value).__name__}")
    if math.isnan(float(value)):
        raise ValueError("label_smoothing must be between 0.0 and 1.0, got nan")
    return _checks.check_label_smoothing(float(value))


def check_ignore_index(value: object) -> int:
    """An integer (Python or numpy), as in torch; 1.5, 1.0, True or None is a TypeError."""
    return _checks.check_integer(value, "ignore_index")


def process_group(group: object) -> dist.ProcessGroup | None:
    """The process group the collectives use: None (the default group) or a ProcessGroup.

    Checked before anything else, and raised at once on the rank that gets it wrong: without a
    group there is no collective through which the ranks could agree to fail together.
    """
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("vocab-parallel cross-entropy needs a process group: call "
                           "torch.distributed.init_process_group first (celib.parallel.launch "
                           "does it for each rank)")
    if group is not None and not isinstance(group, dist.ProcessGroup):
        raise TypeError(f"group must be a torch.distributed.ProcessGroup or None (the default "
                        f"group), got {type(group).__name__}")
    return group


def tensor(value: Any, name: str, expected: str) -> None:
    """Refuse anything that is not a torch.Tensor (a numpy array, a list, None)."""
    import torch

    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor ({expected}), got "
                        f"{type(value).__name__}")
