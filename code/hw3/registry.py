"""The list of every cached experiment the report reads, in the order `make results` runs them."""

from __future__ import annotations

from typing import Any

from . import bonus, experiments, gallery, multimnist
from .cache import Experiment


def all_experiments() -> list[tuple[Experiment, Any]]:
    runs: list[tuple[Experiment, Any]] = [(gallery.run_gallery, gallery.GALLERY)]
    runs += [(experiments.run_fashion, c) for c in experiments.FASHION + experiments.PERMUTED]
    runs += [(bonus.run_bonus, c) for c in bonus.ABLATION]  # the longest runs, so they start first
    runs += [(multimnist.run_multimnist, c) for c in multimnist.SWEEP]
    runs += [(multimnist.run_single_task, c) for c in multimnist.SINGLE_TASK]
    runs += [(bonus.run_bonus_final, bonus.FINAL), (multimnist.run_multimnist_analysis, multimnist.ANALYSIS)]
    return runs


# Experiments that read other experiments' cached results: run after everything else.
DEPENDENT = frozenset({bonus.FINAL.name, multimnist.ANALYSIS.name})


# Rough single-thread seconds per epoch on a current x86 core, only to schedule the longest runs first.
_EPOCH_COST = {"mlp": 1.0, "cnn": 11.0, "MultiMNISTConfig": 9.0, "SingleTaskConfig": 8.0, "BonusConfig": 28.0}


def expected_cost(name: str) -> float:
    _, config = lookup(name)
    kind = getattr(config, "model", type(config).__name__)
    return _EPOCH_COST.get(kind, 0.0) * getattr(config, "epochs", 0)


def by_name() -> dict[str, tuple[Experiment, Any]]:
    return {config.name: (func, config) for func, config in all_experiments()}


def lookup(name: str) -> tuple[Experiment, Any]:
    table = by_name()
    if name not in table:
        raise KeyError(f"no experiment named {name!r}; known: {', '.join(table)}")
    return table[name]
