"""What `make results` computes and in which order: the stale or missing runs, grouped in levels.

A run comes after every run it reads; within a level the longest runs start first.
"""

from __future__ import annotations

import os

from hw3.experiments.registry import Run
from hw3.experiments.registry import name_of as _name
from hw3.store.cached import check_distinct


def cores() -> int:
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def upstream_names(run: Run) -> list[str]:
    return [exp.name(c) for exp, c in run[0].upstream(run[1])]


def to_compute(runs: list[Run], force: bool = False) -> list[Run]:
    """The runs that are stale or missing (all of them with `force`), plus the upstream runs they need
    that are not current, and the runs that read something recomputed; in dependency order."""
    todo: dict[str, Run] = {}
    asked = {_name(r) for r in runs}
    seen: set[str] = set()

    def visit(run: Run) -> None:
        name = _name(run)
        if name in seen:
            return
        seen.add(name)
        for up in run[0].upstream(run[1]):
            visit(up)
        exp, config = run
        if (force and name in asked) or exp.status(config).state != "cached" or any(n in todo for n in upstream_names(run)):
            todo[name] = run

    for run in runs:
        visit(run)
    check_distinct([*runs, *todo.values()])  # e.g. runs passed by a script, not only the registry's
    return list(todo.values())


def levels(todo: list[Run]) -> list[list[Run]]:
    """Group `todo` so that each run comes after every run of `todo` it reads; longest first within a level."""
    depth: dict[str, int] = {}
    for run in todo:  # `todo` is in dependency order, so upstream runs already have a depth
        depth[_name(run)] = 1 + max((depth[d] for d in upstream_names(run) if d in depth), default=-1)
    return [sorted((r for r in todo if depth[_name(r)] == level), key=expected_cost, reverse=True)
            for level in range(1 + max(depth.values(), default=-1))]


# Rough single-thread seconds per epoch on a current x86 core, by (experiment prefix, model), only to
# start the longest runs first; the analysis experiments (no epochs) cost nothing here.
_EPOCH_COST = {("fashion", "mlp"): 1.0, ("fashion", "cnn"): 11.0, ("multimnist", None): 9.0,
               ("multimnist-single", None): 8.0, ("multimnist-final", None): 11.0,  # 60,000 canvases, and test each epoch
               ("bonus", "bn-cnn"): 10.0, ("bonus", "wide"): 70.0}


def expected_cost(run: Run) -> float:
    exp, config = run
    return _EPOCH_COST.get((exp.prefix, getattr(config, "model", None)), 0.0) * getattr(config, "epochs", 0)
