"""Qualitative sentences backed by the stored results: the render stops when the data contradict one.

A sentence of the report that depends on results ("X is the best", "Y ends below Z", "within
noise", "the CNN is more affected") is written through `claim`, with the condition that makes it
true, computed from the stored results:

    claim("Nesterov has the best MLP validation accuracy", is_best(nesterov, mlp_val_means))

returns the sentence text when the condition holds and raises `ClaimError` otherwise, with one line
naming the claim and what the data say instead. A Quarto render (and the test that executes the
report) then stops on that line, instead of printing a sentence the results no longer support.

The conditions are `Check`s: a truth value and a short account of the numbers behind it, built by
the helpers below (`is_best`, `is_worst`, `above`, `below`, `within_noise`, `differs`, `all_of`);
a plain `bool` is accepted too. The things compared are keys of mappings the report builds from the
run lists (configs, labels), never typed row numbers or names.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


class ClaimError(AssertionError):
    """A sentence of the report that the stored results contradict; its message is one line naming it."""


@dataclass(frozen=True)
class Check:
    """A condition and the numbers behind it: `bool(check)` is whether it holds."""

    holds: bool
    detail: str = ""

    def __bool__(self) -> bool:
        return bool(self.holds)


def claim(text: str, condition: Check | bool) -> str:
    """`text` if `condition` holds, else `ClaimError` naming the claim (and what the data say)."""
    if not isinstance(condition, (Check, bool, np.bool_)):  # a list or None would be a mistake in the report
        raise TypeError(f"claim {text!r}: the condition must be a Check or a bool, got {type(condition).__name__}")
    if not condition:
        detail = condition.detail if isinstance(condition, Check) else ""
        raise ClaimError(f"claim contradicted by the stored results: {text!r}" + (f" ({detail})" if detail else ""))
    return text


def _name(key: Any, names: Callable[[Any], str] | None) -> str:
    return names(key) if names else getattr(key, "label", None) or str(key)


def best(scores: Mapping[Hashable, float]) -> Hashable:
    """The key with the highest score (ties: the first in the mapping's order)."""
    if not scores:
        raise ValueError("best of nothing")
    return max(scores, key=lambda k: scores[k])


def worst(scores: Mapping[Hashable, float]) -> Hashable:
    if not scores:
        raise ValueError("worst of nothing")
    return min(scores, key=lambda k: scores[k])


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def is_best(candidate: Hashable, scores: Mapping[Hashable, float], names: Callable[[Any], str] | None = None,
            by: float = 0.0) -> Check:
    """Is `candidate` the highest of `scores` (by more than `by` over the next)? Ties do not count as best."""
    if candidate not in scores:
        raise KeyError(f"{_name(candidate, names)} is not among the compared runs")
    others = {k: v for k, v in scores.items() if k != candidate}
    if not others:
        raise ValueError("is_best needs at least two scores")
    runner_up = best(others)
    holds = scores[candidate] > scores[runner_up] + by
    return Check(holds, f"{_name(candidate, names)} {_fmt(scores[candidate])}, "
                        f"{'next' if holds else 'but'} {_name(runner_up, names)} {_fmt(scores[runner_up])}")


def is_worst(candidate: Hashable, scores: Mapping[Hashable, float], names: Callable[[Any], str] | None = None) -> Check:
    """Is `candidate` the lowest of `scores`?"""
    flipped = {k: -v for k, v in scores.items()}
    check = is_best(candidate, flipped, names)
    runner_up = best({k: v for k, v in flipped.items() if k != candidate})
    return Check(check.holds, f"{_name(candidate, names)} {_fmt(scores[candidate])}, "
                              f"{'next' if check.holds else 'but'} {_name(runner_up, names)} {_fmt(scores[runner_up])}")


def above(a: float, b: float, what: str = "", by: float = 0.0) -> Check:
    """Is `a` greater than `b` (by more than `by`)?"""
    return Check(a > b + by, f"{what + ': ' if what else ''}{_fmt(a)} against {_fmt(b)}")


def below(a: float, b: float, what: str = "", by: float = 0.0) -> Check:
    """Is `a` less than `b` (by more than `by`)?"""
    return Check(a < b - by, f"{what + ': ' if what else ''}{_fmt(a)} against {_fmt(b)}")


def within_noise(test: Any, alpha: float = 0.05) -> Check:
    """Is a comparison not significant? `test` has `p_value`, or `p_holm` (used first: the family's correction)."""
    p = _p(test)
    return Check(p >= alpha, f"p = {p:.2g} against alpha = {alpha:g}")


def differs(test: Any, alpha: float = 0.05) -> Check:
    """Is a comparison significant (after the family's correction where the test carries one)?"""
    p = _p(test)
    return Check(p < alpha, f"p = {p:.2g} against alpha = {alpha:g}")


def _p(test: Any) -> float:
    p = getattr(test, "p_holm", None)
    return float(test.p_value if p is None else p)


def all_of(*checks: Check | bool) -> Check:
    """Every condition holds; the detail names those that fail (or all, when all hold)."""
    failing = [c for c in checks if not c]
    shown = failing or list(checks)
    return Check(not failing, "; ".join(c.detail for c in shown if isinstance(c, Check) and c.detail))
