"""Issue 28: a qualitative sentence of the report is backed by a condition on the stored results, and a
result that contradicts it stops the render with one line naming the claim."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hw3.report import claims
from hw3.report.claims import ClaimError, claim


def test_a_claim_that_holds_is_its_sentence():
    assert claim("A beats B", claims.above(0.9, 0.8)) == "A beats B"
    assert claim("a plain bool works too", True) == "a plain bool works too"
    assert claim("so does a numpy bool", np.float64(2) > 1) == "so does a numpy bool"


def test_a_contradicted_claim_fails_with_one_line_naming_it():
    with pytest.raises(ClaimError) as err:
        claim("Nesterov has the best MLP validation accuracy", claims.is_best("nesterov", {"sgd": 0.85, "nesterov": 0.88, "momentum": 0.89}))
    message = str(err.value)
    assert "\n" not in message
    assert "'Nesterov has the best MLP validation accuracy'" in message
    assert "momentum 0.89" in message  # what the data say instead


def test_a_condition_that_is_not_a_truth_value_is_a_mistake():
    with pytest.raises(TypeError, match="must be a Check or a bool"):
        claim("ambiguous", [0.9])
    with pytest.raises(TypeError):
        claim("forgot the condition", None)


@pytest.mark.parametrize("check, holds", [
    (claims.is_best("b", {"a": 1.0, "b": 2.0, "c": 1.5}), True),
    (claims.is_best("b", {"a": 1.0, "b": 2.0, "c": 2.0}), False),  # a tie is not "the best"
    (claims.is_best("b", {"a": 1.0, "b": 2.0}, by=1.0), False),
    (claims.is_worst("a", {"a": 1.0, "b": 2.0}), True),
    (claims.is_worst("b", {"a": 1.0, "b": 2.0}), False),
    (claims.below(1.0, 2.0), True),
    (claims.below(2.0, 2.0), False),
    (claims.above(2.0, 1.0, by=0.5), True),
    (claims.above(2.0, 1.0, by=1.0), False),
    (claims.all_of(claims.above(2, 1), claims.below(1, 2)), True),
    (claims.all_of(claims.above(2, 1), claims.below(3, 2)), False),
])
def test_checks(check, holds):
    assert bool(check) is holds


def test_all_of_names_what_fails():
    check = claims.all_of(claims.above(2, 1, "first"), claims.below(3, 2, "second"))
    assert "second" in check.detail and "first" not in check.detail


def test_best_of_an_unknown_run_is_an_error_not_false():
    with pytest.raises(KeyError):
        claims.is_best("adam", {"sgd": 0.8, "nesterov": 0.9})


def test_noise_checks_use_the_familys_correction_when_there_is_one():
    from hw3.report import stats

    family = stats.seed_family("toy", [("a", [0.90, 0.91, 0.92], "b", [0.80, 0.81, 0.82]),
                                       ("c", [0.50, 0.60, 0.70], "d", [0.50, 0.61, 0.69]),
                                       ("e", [0.9, 0.905, 0.91], "f", [0.888, 0.893, 0.898])])
    t = family[("e", "f")]
    assert t.p_value < 0.05 <= t.p_holm  # significant alone, not after Holm over three
    assert claims.within_noise(t) and not claims.differs(t)
    assert claims.differs(family[("a", "b")])


@pytest.mark.committed_cache
def test_a_stored_result_changed_so_that_a_claim_turns_false_fails_naming_it():
    """A claim about the committed results holds; the same claim on a record whose predictions were
    changed (a copy: the stored entry is untouched) fails, naming the claim."""
    from hw3.experiments import fashion
    from hw3.report import runs

    def mlp_claim(group):
        means = {"original": np.mean([r.on("test").acc for r in group[fashion.MLP_NESTEROV]]),
                 "permuted": np.mean([r.on("test").acc for r in group[fashion.MLP_PERMUTED]])}
        return claim("the MLP on original pixels ends above the MLP on permuted pixels, on average over seeds",
                     claims.is_best("original", means))

    groups = runs.seed_groups([fashion.MLP_NESTEROV, fashion.MLP_PERMUTED])
    assert mlp_claim(groups).startswith("the MLP on original pixels")

    first = groups[fashion.MLP_PERMUTED][0]
    test = first.on("test")
    perfect = dataclasses.replace(test, predicted=test.labels.copy())  # every permuted prediction right
    changed = dataclasses.replace(first, evaluations={**first.evaluations, "test": perfect})
    with pytest.raises(ClaimError, match="'the MLP on original pixels ends above the MLP on permuted pixels"):
        mlp_claim({**groups, fashion.MLP_PERMUTED: [changed, *groups[fashion.MLP_PERMUTED][1:]]})
