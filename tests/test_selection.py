"""Model selection: every selection function picks the best run on validation and never reads the test split.

The results given to the selection functions carry a poisoned test split: either test numbers that
would change the choice if they were read, or an object that fails the test on any access.
"""

from __future__ import annotations

import itertools
import math

import pytest

from hw3.experiments import bonus, multimnist


class ReadOfTheTestSplit(AssertionError):
    pass


class Untouchable(dict):
    """A test-split entry that fails the test if anything reads it."""

    def _refuse(self, *args, **kwargs):
        raise ReadOfTheTestSplit("a selection function read the test split")

    __getitem__ = get = keys = values = items = __iter__ = __len__ = __contains__ = _refuse


def poison(kind: str, best_on_test: bool):
    """A test-split entry: NaN, a value that would win if read, or one that raises on access."""
    if kind == "raise":
        return Untouchable()
    value = {"nan": math.nan, "huge": 1e9 if best_on_test else -1e9}[kind]
    return {"acc": value, "acc_all": value, "acc_left": value, "acc_right": value, "loss": value}


POISONS = ["nan", "huge", "raise"]


# --------------------------------------------------------------------------- bonus.choose


def bonus_results(val_accs: dict[str, tuple[float, float]], test: str | None = None) -> dict[str, dict]:
    """Ablation results as run_bonus returns them: final val (plain) and val_tta accuracies, and a poisoned test."""
    worst = min(val_accs, key=lambda n: max(val_accs[n]))
    out = {}
    for name, (plain, tta) in val_accs.items():
        final = {"val": {"acc": plain, "loss": 1 - plain}, "val_tta": {"acc": tta, "loss": 1 - tta}}
        if test is not None:
            final["test"] = poison(test, best_on_test=name == worst)
            final["test_tta"] = poison(test, best_on_test=name == worst)
        out[name] = {"final": final, "config": {"label": name}}
    return out


def test_choose_picks_the_step_with_the_best_validation_accuracy():
    results = bonus_results({"bonus-a": (0.80, 0.79), "bonus-b": (0.91, 0.90), "bonus-c": (0.85, 0.86)})
    assert bonus.choose(results) == ("bonus-b", False), "choose must pick the best validation accuracy, without TTA when plain is better"


def test_choose_ranks_steps_by_their_mean_over_seeds():
    # step a: one lucky seed (0.95) but a lower mean; step b: consistently good. Labels repeat across seeds.
    runs = {f"{label}-seed{i}": {"config": {"label": label}, "final": {"val": {"acc": acc}, "val_tta": {"acc": 0.0}}}
            for label, accs in (("a", (0.95, 0.80, 0.80)), ("b", (0.90, 0.90, 0.90))) for i, acc in enumerate(accs)}
    assert bonus.choose(runs) == ("b", False), "choose must rank a step by its mean validation accuracy over seeds, not its best seed"


def test_choose_uses_flip_averaging_when_it_is_better_on_validation():
    results = bonus_results({"bonus-a": (0.80, 0.79), "bonus-b": (0.90, 0.93), "bonus-c": (0.92, 0.91)})
    assert bonus.choose(results) == ("bonus-b", True), "choose must pick (step, tta) with the best validation accuracy over both"


def test_choose_does_not_depend_on_the_order_of_the_steps():
    accs = {"bonus-a": (0.80, 0.79), "bonus-b": (0.95, 0.90), "bonus-c": (0.85, 0.86), "bonus-d": (0.70, 0.94)}
    for order in itertools.permutations(accs):
        results = bonus_results({k: accs[k] for k in order})
        assert bonus.choose(results) == ("bonus-b", False), f"choose depends on the order of the steps: {order}"


@pytest.mark.parametrize("kind", POISONS)
def test_choose_never_reads_the_test_split(kind):
    accs = {"bonus-a": (0.80, 0.79), "bonus-b": (0.90, 0.93), "bonus-c": (0.92, 0.91), "bonus-z": (0.10, 0.11)}
    assert bonus.choose(bonus_results(accs, test=kind)) == ("bonus-b", True), \
        f"choose must select on validation only (test split poisoned with {kind!r})"


# --------------------------------------------------------------------------- multimnist.best_on_validation


def multimnist_results(val: dict[str, dict[str, float]], test: str | None = None) -> dict[str, dict]:
    worst = min(val, key=lambda n: val[n]["acc_all"])
    out = {}
    for name, metrics in val.items():
        final = {"val": {"loss": 1.0, **metrics}}
        if test is not None:
            final["test"] = poison(test, best_on_test=name == worst)
        out[name] = {"final": final}
    return out


SWEEP = {
    "multimnist-adam-lr0.0003-e10": {"acc_all": 0.90, "acc_left": 0.97, "acc_right": 0.93},
    "multimnist-adam-lr0.001-e10": {"acc_all": 0.93, "acc_left": 0.96, "acc_right": 0.96},
    "multimnist-adam-lr0.003-e10": {"acc_all": 0.91, "acc_left": 0.99, "acc_right": 0.92},
}


def test_best_on_validation_picks_the_best_both_right_accuracy():
    assert multimnist.best_on_validation(multimnist_results(SWEEP)) == "multimnist-adam-lr0.001-e10", \
        "best_on_validation must pick the highest validation acc_all (not a single head's accuracy)"


def test_best_on_validation_does_not_depend_on_the_order_of_the_runs():
    for order in itertools.permutations(SWEEP):
        assert multimnist.best_on_validation(multimnist_results({k: SWEEP[k] for k in order})) == "multimnist-adam-lr0.001-e10", \
            f"best_on_validation depends on the order of the runs: {order}"


@pytest.mark.parametrize("kind", POISONS)
def test_best_on_validation_never_reads_the_test_split(kind):
    assert multimnist.best_on_validation(multimnist_results(SWEEP, test=kind)) == "multimnist-adam-lr0.001-e10", \
        f"best_on_validation must select on validation only (test split poisoned with {kind!r})"
