"""Every public function of celib.functional, celib.grad and celib.naive, every argument, fed
a bad value: wrong type, wrong shape, out of range, non-finite, None, a bool where a number is
expected.

Each must raise the exception the house rules name (IndexError for a class index out of range,
ValueError or TypeError otherwise) with a message that names the argument; never accept the
value silently, never crash, never let numpy's or Python's own message through. The table is
checked against the modules' ``__all__`` and the functions' signatures, so that a new function
or a new argument cannot be left out. (The tables for celib.info, celib.targets and
celib.calibration live beside their own tests.)
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from celib import functional as cf
from celib import grad as cg
from celib import naive

# Tabled beside their torch comparisons in tests/test_kl_bce_margin.py (BAD_ARGUMENTS), which
# checks that its table covers every argument of these six.
ELSEWHERE = {"functional": {"kl_div", "binary_cross_entropy", "multi_margin_loss"},
             "grad": {"kl_div_grad", "binary_cross_entropy_grad", "multi_margin_loss_grad"}}

# numpy's and Python's internal messages: none may reach the user.
INTERNAL = ("setting an array element with a sequence", "cannot reshape", "according to the rule",
            "inhomogeneous", "not callable", "object of type", "unsupported operand",
            "could not convert", "ufunc", "only integer scalar arrays", "index 0 is out of bounds")

X = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
Y = np.array([0, 2])
H = np.array([[1.0, -0.5], [0.3, 0.8]])  # linear_cross_entropy: hidden states (N, D)
W = np.array([[0.2, -0.1], [0.4, 0.3], [-0.6, 0.5]])  # (C, D)
RAGGED = [[1.0, 2.0], [3.0]]


@dataclass(frozen=True)
class Bad:
    """One bad value of one argument, the exception it must raise, and the word the message
    must contain (the argument's name unless said otherwise)."""

    arg: str
    value: Any
    error: type[Exception] | tuple[type[Exception], ...]
    names: str = ""
    kind: str = ""

    @property
    def word(self) -> str:
        return self.names or self.arg


@dataclass(frozen=True)
class Case:
    fn: Callable[..., Any]
    good: dict[str, Any]
    bad: list[Bad] = field(default_factory=list)


V, T = ValueError, TypeError
VT = (ValueError, TypeError)

# the bad values every loss's shared options get
OPTION_BADS = [
    Bad("reduction", "avg", V, kind="out of range"), Bad("reduction", None, V, kind="None"),
    Bad("reduction", True, V, kind="bool"), Bad("reduction", 1, V, kind="wrong type"),
    Bad("ignore_index", 1.5, V, kind="wrong type"), Bad("ignore_index", True, V, kind="bool"),
    Bad("ignore_index", np.inf, V, kind="non-finite"), Bad("ignore_index", "1", V),
    Bad("weight", [1.0, 2.0], V, kind="wrong shape"), Bad("weight", RAGGED, V, kind="ragged"),
    Bad("weight", np.array([1 + 1j, 1, 1]), V, kind="wrong type"),
    Bad("weight", np.array([None, 1, 1]), V, kind="None"),
    Bad("weight", np.ones(3, np.float32), T, kind="wrong dtype"),
]
SMOOTHING_BADS = [
    Bad("label_smoothing", 1.5, V, kind="out of range"), Bad("label_smoothing", -0.1, V),
    Bad("label_smoothing", np.nan, V, kind="non-finite"), Bad("label_smoothing", "0.1", V),
    Bad("label_smoothing", None, V, kind="None"), Bad("label_smoothing", True, V, kind="bool"),
]


def input_bads(name: str, shape_error: type[Exception] = V) -> list[Bad]:
    return [
        Bad(name, RAGGED, V, kind="ragged"), Bad(name, None, V, kind="None"),
        Bad(name, np.array([[1 + 1j, 2.0]]), V, kind="wrong type"),
        Bad(name, np.ones((2, 3), np.longdouble), T, kind="longdouble"),
        Bad(name, np.array(True), V, kind="bool"), Bad(name, "abc", V, kind="wrong type"),
    ]


def target_bads(shape_word: str = "target") -> list[Bad]:
    return [
        Bad("target", np.array([0, 3]), IndexError, names="Target 3", kind="out of range"),
        Bad("target", np.array([0, -1]), IndexError, names="Target -1", kind="out of range"),
        Bad("target", np.array([0, 1, 2]), V, names=shape_word, kind="wrong shape"),
        Bad("target", np.array([0, 1], np.int32), V, names="int64", kind="wrong dtype"),
        Bad("target", np.array([True, False]), V, names="int64", kind="bool"),
        Bad("target", None, V, names="target", kind="None"),
        Bad("target", [[0], [1, 2]], V, kind="ragged"),
    ]


def softmax_family_bads() -> list[Bad]:
    return input_bads("x") + [
        Bad("axis", 2, V, kind="out of range"), Bad("axis", 1.0, V, kind="wrong type"),
        Bad("axis", None, V, kind="None"), Bad("axis", True, V, kind="bool"),
        Bad("axis", np.nan, V, kind="non-finite"),
    ]


def naive_target_bads() -> list[Bad]:
    """The textbook formulas index with any integer dtype; the rest is refused as elsewhere."""
    return [bad for bad in target_bads() if bad.kind not in ("wrong dtype", "bool")] + [
        Bad("target", np.array([0.0, 1.0]), V, kind="wrong type"),
        Bad("target", np.array([True, False]), V, kind="bool")]


def naive_bads(name: str) -> list[Bad]:
    return input_bads(name) + [
        Bad("axis", 2, V, kind="out of range"), Bad("axis", 1.5, T, kind="wrong type"),
        Bad("axis", None, T, kind="None"), Bad("axis", True, T, kind="bool"),
    ]


LINEAR_BADS = input_bads("input") + [
    Bad("linear_weight", RAGGED, V, kind="ragged"), Bad("linear_weight", None, V, kind="None"),
    Bad("linear_weight", np.ones((3, 5)), V, kind="wrong shape"),
    Bad("linear_weight", W.astype(np.float32), V, kind="wrong dtype"),
    Bad("linear_weight", np.ones((3, 2), np.longdouble), T, kind="longdouble"),
    Bad("target", np.array([0, 3]), IndexError, names="Target 3", kind="out of range"),
    Bad("target", np.array([0, 1, 2]), V, kind="wrong shape"),
    Bad("target", np.array([0, 1], np.int32), V, names="int64", kind="wrong dtype"),
    Bad("target", None, V, names="target", kind="None"),
    Bad("target", [[0], [1, 2]], V, kind="ragged"),
    Bad("linear_bias", np.ones(4), V, kind="wrong shape"),
    Bad("linear_bias", np.ones(3, np.float32), V, kind="wrong dtype"),
    Bad("linear_bias", np.array([None] * 3), V, kind="None"),
    Bad("chunk_size", 0, V, kind="out of range"), Bad("chunk_size", 2.0, V, kind="wrong type"),
    Bad("chunk_size", True, V, kind="bool"), Bad("chunk_size", np.inf, V, kind="non-finite"),
] + OPTION_BADS + SMOOTHING_BADS


LOSS_GOOD = dict(input=X, target=Y)
CASES: dict[str, Case] = {
    "functional.logsumexp": Case(cf.logsumexp, dict(x=X), softmax_family_bads() + [
        Bad("axis", (0, 0), V, kind="repeated"), Bad("axis", (), V, kind="empty"),
        Bad("keepdims", "False", T, kind="wrong type"), Bad("keepdims", None, T, kind="None"),
        Bad("keepdims", 1, T, kind="bool"), Bad("keepdims", "yes", T)]),
    "functional.softmax": Case(cf.softmax, dict(x=X), softmax_family_bads() + [
        Bad("dtype", np.int64, V, kind="wrong type"), Bad("dtype", "floatX", V),
        Bad("dtype", np.longdouble, T, kind="longdouble"), Bad("dtype", True, V, kind="bool")]),
    "functional.log_softmax": Case(cf.log_softmax, dict(x=X), softmax_family_bads() + [
        Bad("dtype", np.int64, V, kind="wrong type"), Bad("dtype", "floatX", V),
        Bad("dtype", np.longdouble, T, kind="longdouble"), Bad("dtype", True, V, kind="bool")]),
    "functional.one_hot": Case(cf.one_hot, dict(labels=Y, num_classes=3), [
        Bad("labels", np.array([0.0, 1.0]), V, names="integer", kind="wrong type"),
        Bad("labels", RAGGED, V, kind="ragged"), Bad("labels", None, V, names="integer"),
        Bad("labels", np.array([0, 3]), IndexError, names="Target 3", kind="out of range"),
        Bad("num_classes", 3.5, T, kind="wrong type"), Bad("num_classes", "3", T),
        Bad("num_classes", True, T, kind="bool"), Bad("num_classes", 3.0, T),
        Bad("num_classes", 1e3, T), Bad("num_classes", np.nan, T, kind="non-finite"),
        Bad("num_classes", None, T, kind="None"), Bad("num_classes", -2, V, kind="out of range"),
    ]),
    "functional.nll_loss": Case(cf.nll_loss, dict(LOSS_GOOD), input_bads("input") + target_bads()
                                + OPTION_BADS + [
        Bad("target", np.zeros(2), V, names="nll_loss takes class indices", kind="float")]),
    "functional.cross_entropy": Case(cf.cross_entropy, dict(LOSS_GOOD), input_bads("input")
                                     + target_bads() + OPTION_BADS + SMOOTHING_BADS),
    "functional.binary_cross_entropy_with_logits": Case(
        cf.binary_cross_entropy_with_logits, dict(input=X, target=np.zeros_like(X)),
        input_bads("input") + [
            Bad("target", np.zeros(3), V, kind="wrong shape"),
            Bad("target", np.zeros((2, 3), np.int64), V, kind="wrong type"),
            Bad("target", None, V, kind="None"), Bad("target", RAGGED, V, kind="ragged"),
            Bad("weight", np.ones(4), V, kind="wrong shape"),
            Bad("weight", np.array([1 + 1j]), V, kind="wrong type"),
            Bad("weight", np.array([None]), V, kind="None"), Bad("weight", RAGGED, V),
            Bad("pos_weight", np.ones(4), V, kind="wrong shape"),
            Bad("pos_weight", np.array([None]), V, kind="None"),
            Bad("pos_weight", np.array([1j]), V, kind="wrong type"),
            Bad("reduction", "avg", V, kind="out of range"), Bad("reduction", None, V),
            Bad("reduction", True, V, kind="bool")]),
    "functional.linear_cross_entropy": Case(cf.linear_cross_entropy,
                                            dict(input=H, linear_weight=W, target=Y),
                                            LINEAR_BADS),
    "grad.cross_entropy_grad": Case(cg.cross_entropy_grad, dict(LOSS_GOOD), input_bads("input")
                                    + target_bads() + OPTION_BADS + SMOOTHING_BADS),
    "grad.softmax_jacobian": Case(cg.softmax_jacobian, dict(z=X[0]), input_bads("z") + [
        Bad("z", X, V, kind="wrong shape")]),
    "grad.numerical_grad": Case(cg.numerical_grad, dict(f=np.sum, x=X[0]), input_bads("x") + [
        Bad("f", None, T, kind="None"), Bad("f", 3.0, T, kind="wrong type"),
        Bad("eps", 0.0, V, kind="out of range"), Bad("eps", -1e-6, V),
        Bad("eps", np.inf, V, kind="non-finite"), Bad("eps", np.nan, V),
        Bad("eps", True, T, kind="bool"), Bad("eps", None, T, kind="None"),
        Bad("eps", "1e-6", T, kind="wrong type")]),
    "grad.linear_cross_entropy_grad": Case(cg.linear_cross_entropy_grad,
                                           dict(input=H, linear_weight=W, target=Y),
                                           LINEAR_BADS + [
        Bad("return_loss", "yes", V, kind="wrong type"), Bad("return_loss", None, V),
        Bad("return_loss", 1, V, kind="bool"),
        Bad("schedule", "fast", V, kind="out of range"), Bad("schedule", None, V),
        Bad("schedule", True, V, kind="bool")]),
    "naive.softmax": Case(naive.softmax, dict(z=X), naive_bads("z")),
    "naive.log_softmax": Case(naive.log_softmax, dict(z=X), naive_bads("z")),
    "naive.logsumexp": Case(naive.logsumexp, dict(z=X), naive_bads("z")),
    "naive.cross_entropy": Case(naive.cross_entropy, dict(logits=X, target=Y),
                                input_bads("logits") + naive_target_bads()),
    "naive.cross_entropy_from_probs": Case(
        naive.cross_entropy_from_probs, dict(probs=np.full((2, 3), 1 / 3), target=Y),
        input_bads("probs") + naive_target_bads()),
}
MODULES = {"functional": cf, "grad": cg, "naive": naive}


def test_the_table_covers_every_public_function():
    tabled = {name for name in CASES}
    public = {f"{m}.{name}" for m, module in MODULES.items() for name in module.__all__}
    elsewhere = {f"{m}.{name}" for m, names in ELSEWHERE.items() for name in names}
    assert elsewhere <= public
    assert tabled == public - elsewhere, (
        "a public function without bad-argument cases, or a case for a function that is gone")


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_table_covers_every_argument(name):
    case = CASES[name]
    params = set(inspect.signature(case.fn).parameters)
    assert params == {bad.arg for bad in case.bad}, f"{name}: arguments without a bad value"


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_good_call_works(name):
    case = CASES[name]
    case.fn(**case.good)


CALLS = [(name, bad) for name, case in CASES.items() for bad in case.bad]


@pytest.mark.parametrize("name, bad", CALLS,
                         ids=[f"{n}-{b.arg}={b.value!r:.20}" for n, b in CALLS])
def test_a_bad_argument_is_refused_by_name(name, bad):
    case = CASES[name]
    with pytest.raises(Exception) as raised:
        case.fn(**{**case.good, bad.arg: bad.value})
    error = raised.value
    assert isinstance(error, bad.error), f"{type(error).__name__}: {error}"
    message = str(error)
    assert bad.word.lower() in message.lower(), message
    for internal in INTERNAL:
        assert internal not in message, message
