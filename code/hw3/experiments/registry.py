"""Every run the report reads, as (experiment, config) pairs: what `make results` computes and the CLI lists."""

from __future__ import annotations

import functools
from typing import Any

from hw3.experiments import bonus, fashion, gallery, multimnist, multimnist_final
from hw3.store.cached import Experiment, check_distinct

Run = tuple[Experiment, Any]


def all_experiments() -> list[Run]:
    """In the report's order; `hw3.compute.runner` schedules them by their dependencies."""
    runs: list[Run] = [(gallery.run_gallery, gallery.GALLERY), (gallery.run_data_check, gallery.DATA_CHECK)]
    listed = fashion.FASHION + fashion.PERMUTED + fashion.MLP_SEEDS
    runs += [(fashion.run_fashion, c) for c in listed]
    runs += [(fashion.run_fashion, c) for c in fashion.SEEDED if c not in listed]  # the other seeds, and the controls
    runs += [(fashion.run_dead_units, fashion.DEAD_UNITS)]
    runs += [(bonus.run_bonus, c) for c in bonus.RUNS]
    runs += [(bonus.run_bonus_final, bonus.FINAL)]
    runs += [(multimnist.run_multimnist, c) for c in multimnist.SWEEP]
    runs += [(multimnist.run_multimnist_analysis, multimnist.ANALYSIS)]
    runs += [(multimnist.run_single_task, c) for c in multimnist.SINGLE_TASK]
    runs += [(multimnist_final.run_final, c) for c in multimnist_final.FINAL]
    check_distinct(runs)  # two configs with one name would overwrite each other's entry: fail at registration
    return runs


def name_of(run: Run) -> str:
    exp, config = run
    return exp.name(config)


def by_name() -> dict[str, Run]:
    return {name_of(r): r for r in all_experiments()}


def lookup(name: str) -> Run:
    table = by_name()
    if name not in table:
        raise KeyError(f"no experiment named {name!r}; known: {', '.join(table)}")
    return table[name]


@functools.cache
def _experiment_by_config() -> dict[Any, Experiment]:
    return {config: exp for exp, config in all_experiments()}


def experiment_of(config: Any) -> Experiment:
    """The experiment that computes this registered config (the report reads only registered runs)."""
    table = _experiment_by_config()
    if config not in table:
        raise KeyError(f"no registered experiment has the config {config!r}")
    return table[config]
